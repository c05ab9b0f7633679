import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  arrowSchema,
  buildKeyGroupIndex,
  checkLayout,
  chunkPlan,
  encodeKeyGroupIndex,
  parseKeyGroupIndex,
  rowsOfKeyGroups,
} from "./chunk_schema.ts";
import type { StateLayout } from "./state_layout.ts";
import { longOr } from "./_test_fuzz.ts";

test("checkLayout() normalizes property order and drops defaults and unknown properties", () => {
  const r = checkLayout({
    value: { type: { struct: [{ type: "int8", name: "a", nullable: false }, { nullable: true, name: "b", type: { list: "utf8" } }] }, encoding: "arrow" },
    namespaced: false,
    keyType: "string",
    kind: "value",
    name: "ignored",
  });
  assert.equal(r.problem, undefined);
  assert.equal(
    JSON.stringify(r.layout),
    '{"kind":"value","keyType":"string","value":{"encoding":"arrow","type":{"struct":[{"name":"a","type":"int8"},{"name":"b","type":{"list":"utf8"},"nullable":true}]}}}',
  );
  assert.deepEqual(checkLayout({ kind: "operator-list", value: { encoding: "msgpack", jsonSchema: { type: "object" } } }).layout, {
    kind: "operator-list",
    value: { encoding: "msgpack", jsonSchema: { type: "object" } },
  });
});

test("checkLayout() names what is wrong", () => {
  const bad: [unknown, RegExp][] = [
    [null, /must be an object/],
    [{ kind: "set", keyType: "string", value: { encoding: "msgpack" } }, /kind must be one of/],
    [{ kind: "value", value: { encoding: "msgpack" } }, /keyType/],
    [{ kind: "value", keyType: "uuid", value: { encoding: "msgpack" } }, /keyType/],
    [{ kind: "map", keyType: "string", value: { encoding: "msgpack" } }, /userKeyType/],
    [{ kind: "value", keyType: "string", userKeyType: "string", value: { encoding: "msgpack" } }, /only map state/],
    [{ kind: "operator-list", keyType: "string", value: { encoding: "msgpack" } }, /operator-list/],
    [{ kind: "operator-list", namespaced: true, value: { encoding: "msgpack" } }, /namespaced/],
    [{ kind: "value", keyType: "string", value: { encoding: "json" } }, /encoding/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: "decimal" } }, /unknown type "decimal"/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [] } } }, /non-empty/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "a", type: "int8" }, { name: "a", type: "int8" }] } } }, /duplicate/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "", type: "int8" }] } } }, /non-empty string/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "__proto__", type: "int8" }] } } }, /__proto__/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "a", type: "int8", nullable: "yes" }] } } }, /nullable must be a boolean/],
    [{ kind: "value", keyType: "string", value: { encoding: "arrow", type: { map: "utf8" } } }, /struct/],
  ];
  for (const [layout, pattern] of bad) {
    const r = checkLayout(layout);
    assert.ok(r.problem, JSON.stringify(layout));
    assert.match(r.problem!, pattern);
  }
  let deep: unknown = "int8";
  for (let i = 0; i < 40; i++) deep = { list: deep };
  assert.match(checkLayout({ kind: "value", keyType: "string", value: { encoding: "arrow", type: deep } }).problem!, /deeper than 32/);
});

test("chunkPlan() lays out columns in order with pre-order dictionary ids", () => {
  const layout: StateLayout = {
    kind: "map",
    keyType: "msgpack",
    userKeyType: "bytes",
    namespaced: true,
    value: { encoding: "arrow", type: { struct: [{ name: "a", type: "dictionary" }, { name: "b", type: { list: { struct: [{ name: "c", type: "dictionary" }] } } }, { name: "d", type: "dictionary" }] } },
  };
  const plan = chunkPlan(layout, true);
  assert.deepEqual(plan.columns.map((c) => [c.name, c.type, c.nullable]), [
    ["kg", "uint16", false],
    ["key", "binary", false],
    ["ns", "utf8", false],
    ["ukey", "binary", false],
    ["op", "uint8", false],
    ["value", "struct", true],
  ]);
  assert.equal(plan.columns[1].msgpack, true);
  assert.equal(plan.columns[3].msgpack, undefined);
  const v = plan.columns[5];
  assert.deepEqual([v.children[0].dictionaryId, v.children[1].children[0].children[0].dictionaryId, v.children[2].dictionaryId], [0, 1, 2]);
  assert.equal(v.children[1].children[0].name, "item");
  assert.equal(plan.dictionaries, 3);
  const schema = arrowSchema(plan, { keyGroups: [4], offsets: [0, 2] });
  assert.equal(schema.metadata.get("arrowpoint.keyGroupIndex"), '{"keyGroups":[4],"offsets":[0,2]}');
  assert.equal(schema.metadata.get("arrowpoint.layout"), JSON.stringify(layout));
  // List state wraps the element type; msgpack list state is one blob per row.
  assert.equal(chunkPlan({ kind: "list", keyType: "string", value: { encoding: "arrow", type: "int8" } }, false).columns[2].type, "list");
  assert.equal(chunkPlan({ kind: "list", keyType: "string", value: { encoding: "msgpack" } }, false).columns[2].type, "binary");
  assert.deepEqual(chunkPlan({ kind: "operator-list", value: { encoding: "arrow", type: "int8" } }, false).columns.map((c) => c.name), ["value"]);
});

test("key-group index: build, encode, parse and look up (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 32767 }), { maxLength: 50 }), fc.integer({ min: 0, max: 32767 }), fc.integer({ min: 0, max: 32767 }), (kgs, a, b) => {
      const kg = Uint16Array.from(kgs.sort((x, y) => x - y));
      const index = buildKeyGroupIndex(kg, 0, kg.length);
      const parsed = parseKeyGroupIndex(encodeKeyGroupIndex(index), kg.length);
      assert.deepEqual(parsed, index);
      const [start, end] = [Math.min(a, b), Math.max(a, b)];
      const { from, to } = rowsOfKeyGroups(index, start, end);
      const inRange = [...kg.keys()].filter((i) => kg[i] >= start && kg[i] <= end);
      assert.deepEqual([from, to], inRange.length ? [inRange[0], inRange[inRange.length - 1] + 1] : [from, from]);
      assert.equal(to - from, inRange.length);
    }),
    { numRuns: longOr(300, 3000) },
  );
});

test("parseKeyGroupIndex() rejects malformed indexes", () => {
  for (const [text, rows] of [
    ["nope", 0],
    ["{}", 0],
    ['{"keyGroups":[1],"offsets":[0]}', 0],
    ['{"keyGroups":[2,1],"offsets":[0,1,2]}', 2],
    ['{"keyGroups":[1,1],"offsets":[0,1,2]}', 2],
    ['{"keyGroups":[40000],"offsets":[0,1]}', 1],
    ['{"keyGroups":[1,2],"offsets":[0,0,2]}', 2],
    ['{"keyGroups":[1],"offsets":[0,3]}', 2],
    ['{"keyGroups":[1.5],"offsets":[0,2]}', 2],
  ] as const) {
    assert.equal(typeof parseKeyGroupIndex(text, rows), "string", text);
  }
  assert.deepEqual(parseKeyGroupIndex('{"keyGroups":[],"offsets":[0]}', 0), { keyGroups: [], offsets: [0] });
});
