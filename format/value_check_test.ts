import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeChunk } from "./encode_chunk.ts";
import { SchemaViolationError } from "./errors.ts";
import type { FieldType, KeyType } from "./state_layout.ts";
import { compileValueCheck, explainValue, keyCheck, valueChecker } from "./value_check.ts";

const SAMPLES: readonly unknown[] = [
  0, -0, 1, -1, 127, 128, -129, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32,
  1.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 63, -(2 ** 63), 2 ** 64, 0n, -1n, 2n ** 63n - 1n, 2n ** 63n, -(2n ** 63n), -(2n ** 63n) - 1n,
  2n ** 64n - 1n, 2n ** 64n, "", "x", "\uD800", "é", true, false, new Uint8Array([1]), new Date(0), new Date(NaN), [], [1, 2], ["a"],
  [1, null], new Int32Array([3]), { a: 1 }, { a: "1" }, { a: 1, b: "x" }, { a: 1, b: null }, { b: "x" }, null, undefined, Symbol("s"),
];

const TYPES: readonly FieldType[] = [
  "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "utf8", "dictionary", "binary",
  "timestamp", { list: "int32" }, { list: "utf8" }, { struct: [{ name: "a", type: "int32" }] },
  { struct: [{ name: "a", type: "int32" }, { name: "b", type: "utf8", nullable: true }] },
  { struct: [{ name: "a", type: "float64" }, { name: "b", type: "utf8" }, { name: "c", type: "bool", nullable: true }] },
  { struct: [{ name: "a", type: "int64" }, { name: "b", type: "utf8" }, { name: "c", type: "bool", nullable: true }, { name: "d", type: { list: "int8" } }] },
];

function encodes(type: FieldType, v: unknown): boolean {
  try {
    encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type } }, { length: 1, keyGroups: [0], keys: ["k"], values: [v] });
    return true;
  } catch (e) {
    if (e instanceof SchemaViolationError) return false;
    throw e;
  }
}

test("compileValueCheck() accepts exactly the values the chunk encoder can store, for every type", () => {
  for (const type of TYPES) {
    const check = compileValueCheck(type);
    for (const v of SAMPLES) {
      if (v === null || v === undefined) continue; // a stored value is never null: update(null) clears
      const label = `${JSON.stringify(type)} ← ${typeof v === "bigint" ? `${v}n` : typeof v === "symbol" ? "symbol" : JSON.stringify(v) ?? String(v)}`;
      const ok = check(v);
      assert.equal(ok, encodes(type, v), label);
      assert.equal(explainValue(type, v) === undefined, ok, `explainValue agrees with the check: ${label}`);
    }
  }
});

test("explainValue() names the field path, the expected type and what it got", () => {
  const type: FieldType = { struct: [{ name: "user", type: { struct: [{ name: "id", type: "int32" }] } }, { name: "tags", type: { list: "utf8" } }] };
  assert.equal(explainValue("int32", "7"), 'value must be an integer in -2147483648..2147483647 (int32), got string "7"');
  assert.equal(explainValue(type, { user: { id: 1.5 }, tags: [] }), "value.user.id must be an integer in -2147483648..2147483647 (int32), got number 1.5");
  assert.equal(explainValue(type, { user: { id: 1 }, tags: ["a", 3] }), "value.tags[1] must be a string of well-formed Unicode (utf8), got number 3");
  assert.equal(explainValue(type, { user: { id: 1 } }), "value.tags is undefined but it is not nullable");
  assert.match(explainValue("utf8", "\uDC00")!, /lone surrogate/);
  assert.equal(explainValue(type, { user: { id: 1 }, tags: ["a"] }), undefined);
});

test("keyCheck() follows the key column types, and msgpack keys take anything", () => {
  const cases: [KeyType, unknown, boolean][] = [
    ["string", "a", true], ["string", 1, false], ["int32", 2 ** 31, false], ["int32", -5, true], ["int64", 5n, true], ["int64", 5, true],
    ["int64", "5", false], ["float64", 0.5, true], ["bytes", new Uint8Array(1), true], ["bytes", [1], false],
  ];
  for (const [t, v, ok] of cases) assert.equal(keyCheck(t)!(v), ok, `${t} ← ${String(v)}`);
  assert.equal(keyCheck("msgpack"), undefined);
});

test("valueChecker(): the one rule set for tools and runtime (encoder's rules; JSON Schema for msgpack)", () => {
  const struct = valueChecker({ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int64" }] } } })!;
  assert.equal(struct({ n: 2 ** 60 }), undefined, "an integer number in int64 range is stored exactly");
  assert.equal(struct({ n: 1n, extra: "x" }), undefined, "undeclared fields are ignored, as the encoder ignores them");
  assert.match(struct({ n: 1.5 })!, /^value\.n must be a bigint or an integer number in int64 range/);
  const list = valueChecker({ kind: "list", keyType: "string", value: { encoding: "arrow", type: "utf8" } })!;
  assert.equal(list(["a", "b"]), undefined);
  assert.match(list(["a", null])!, /^value\[1\] is null but it is not nullable/);
  const schema = valueChecker({ kind: "value", keyType: "string", value: { encoding: "msgpack", jsonSchema: { type: "object", required: ["id"] } } })!;
  assert.equal(schema({ id: 1 }), undefined);
  assert.match(schema({})!, /^value must have required property 'id'/);
  assert.equal(valueChecker({ kind: "value", keyType: "string", value: { encoding: "msgpack" } }), undefined);
});
