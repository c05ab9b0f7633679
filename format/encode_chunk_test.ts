import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChunkRows, encodeChunk } from "./encode_chunk.ts";
import { decodeChunk } from "./decode_chunk.ts";
import { SchemaViolationError } from "./errors.ts";
import type { FieldType, KeyType, StateLayout } from "./state_layout.ts";

function roundTrip(layout: StateLayout, rows: ChunkRows) {
  const c = encodeChunk(layout, rows);
  const d = decodeChunk(c.bytes, { checksum: c.checksum, path: "t.arrow" });
  assert.equal(d.length, rows.length);
  assert.equal(c.rows, rows.length);
  return { c, d };
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

const ALL_SCALARS: FieldType = {
  struct: [
    { name: "b", type: "bool" },
    { name: "i8", type: "int8" },
    { name: "i16", type: "int16" },
    { name: "i32", type: "int32" },
    { name: "i64", type: "int64" },
    { name: "u8", type: "uint8" },
    { name: "u16", type: "uint16" },
    { name: "u32", type: "uint32" },
    { name: "u64", type: "uint64" },
    { name: "f32", type: "float32" },
    { name: "f64", type: "float64" },
    { name: "s", type: "utf8" },
    { name: "d", type: "dictionary" },
    { name: "bin", type: "binary" },
    { name: "ts", type: "timestamp" },
  ],
};

test("encodeChunk() round-trips every scalar type at its extremes", () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: ALL_SCALARS } };
  const values = [
    { b: true, i8: -128, i16: -32768, i32: -2147483648, i64: I64_MIN, u8: 0, u16: 0, u32: 0, u64: 0n, f32: -1.5, f64: -Number.MAX_VALUE, s: "", d: "x", bin: new Uint8Array(0), ts: -8.64e15 },
    { b: false, i8: 127, i16: 32767, i32: 2147483647, i64: I64_MAX, u8: 255, u16: 65535, u32: 4294967295, u64: U64_MAX, f32: 3.4028234663852886e38, f64: Number.MIN_VALUE, s: "z", d: "y", bin: new Uint8Array([0, 255]), ts: 8.64e15 },
    { b: true, i8: 0, i16: 1, i32: -1, i64: 0, u8: 7, u16: 8, u32: 9, u64: 2 ** 53, f32: 0.1, f64: NaN, s: "mid", d: "x", bin: new Uint8Array([9]), ts: new Date(1_700_000_000_123) },
    { b: false, i8: 1, i16: 2, i32: 3, i64: -(2 ** 53), u8: 1, u16: 1, u32: 1, u64: 2 ** 63 + 2 ** 12, f32: -Infinity, f64: -0, s: "x".repeat(1000), d: "y", bin: new Uint8Array(300).fill(7), ts: 0 },
  ];
  const { d } = roundTrip(layout, { length: 4, keyGroups: [0, 1, 1, 2], keys: ["a", "b", "c", "d"], values });
  const want = values.map((v) => ({
    ...v,
    i64: BigInt(v.i64),
    u64: BigInt(v.u64),
    f32: Math.fround(v.f32),
    ts: v.ts instanceof Date ? v.ts.getTime() : v.ts,
  }));
  assert.deepEqual(d.values, want);
  assert.deepEqual(d.keys, ["a", "b", "c", "d"]);
  assert.deepEqual([...d.keyGroups!], [0, 1, 1, 2]);
  assert.equal(Object.is((d.values[3] as { f64: number }).f64, -0), true);
});

test("encodeChunk() round-trips every scalar type as a top-level value", () => {
  const samples: Record<string, unknown[]> = {
    bool: [true, false],
    int8: [-128, 127],
    int16: [-32768, 32767],
    int32: [-2147483648, 2147483647],
    int64: [I64_MIN, I64_MAX],
    uint8: [0, 255],
    uint16: [0, 65535],
    uint32: [0, 4294967295],
    uint64: [0n, U64_MAX],
    float32: [0.5, -2],
    float64: [Math.PI, -1e308],
    utf8: ["", "日本語"],
    dictionary: ["a", "a"],
    binary: [new Uint8Array([1]), new Uint8Array(0)],
    timestamp: [-1, 1_700_000_000_000],
  };
  for (const [type, values] of Object.entries(samples)) {
    const layout = { kind: "value", keyType: "int32", value: { encoding: "arrow", type } } as StateLayout;
    const { d } = roundTrip(layout, { length: 2, keyGroups: [5, 5], keys: [1, -1], values });
    assert.deepEqual(d.values, values, type);
    assert.deepEqual(d.keys, [1, -1]);
  }
});

test("encodeChunk() round-trips nullable fields, nested structs and lists", () => {
  const type: FieldType = {
    struct: [
      { name: "n", type: "int64", nullable: true },
      { name: "tags", type: { list: "utf8" }, nullable: true },
      { name: "inner", type: { struct: [{ name: "x", type: "float64" }, { name: "l", type: "dictionary", nullable: true }, { name: "deep", type: { list: { struct: [{ name: "q", type: "bool" }] } } }] }, nullable: true },
      { name: "grid", type: { list: { list: "int32" } } },
      { name: "ts", type: "timestamp", nullable: true },
      { name: "bin", type: "binary", nullable: true },
      { name: "flag", type: "bool", nullable: true },
    ],
  };
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type } };
  const values = [
    { n: 1n, tags: ["a", "b"], inner: { x: 1, l: "p", deep: [{ q: true }, { q: false }] }, grid: [[1, 2], [], [3]], ts: 5, bin: new Uint8Array([1]), flag: true },
    { n: null, tags: null, inner: null, grid: [], ts: null, bin: null, flag: null },
    { tags: [], inner: { x: 2, deep: [] }, grid: [[]] }, // missing nullable fields become null
    { n: -5n, tags: [""], inner: { x: -0.5, l: null, deep: [{ q: true }] }, grid: [[-1]], ts: 0, bin: new Uint8Array(0), flag: false },
  ];
  const { d } = roundTrip(layout, { length: 4, keyGroups: [3, 3, 3, 3], keys: ["a", "b", "c", "d"], values });
  assert.deepEqual(d.values, [
    values[0],
    values[1],
    { n: null, tags: [], inner: { x: 2, l: null, deep: [] }, grid: [[]], ts: null, bin: null, flag: null },
    values[3],
  ]);
});

test("encodeChunk() round-trips unicode strings, including surrogate pairs and long runs", () => {
  const strings = ["", "a", "é", "ß", "日本語テキスト", "😀", "a😀b", "\u0000", "\u007f\u0080", "\uffff", "𝄞".repeat(1000), "mixed ascii and ünïcödé ".repeat(200)];
  const big = Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? `κλειδί-${i}-😀` : `key-${i}`)); // several 64 KiB blocks
  const all = [...strings, ...big];
  const prefix = (s: string, n: number): string => Array.from(s).slice(0, n).join(""); // whole code points
  const layout: StateLayout = { kind: "map", keyType: "string", userKeyType: "string", namespaced: true, value: { encoding: "arrow", type: { struct: [{ name: "s", type: "utf8" }, { name: "d", type: "dictionary" }] } } };
  const { d } = roundTrip(layout, {
    length: all.length,
    keyGroups: all.map(() => 0),
    keys: all,
    namespaces: all.map((s) => prefix(s, 3)),
    userKeys: [...all].reverse(),
    values: all.map((s) => ({ s, d: prefix(s, 2) })),
  });
  assert.deepEqual(d.keys, all);
  assert.deepEqual(d.userKeys, [...all].reverse());
  assert.deepEqual(d.namespaces, all.map((s) => prefix(s, 3)));
  assert.deepEqual(d.values, all.map((s) => ({ s, d: prefix(s, 2) })));
});

test("encodeChunk() round-trips every key type", () => {
  const keysByType: Record<KeyType, unknown[]> = {
    string: ["a", "😀", ""],
    int32: [-2147483648, 0, 2147483647],
    int64: [I64_MIN, 0n, I64_MAX],
    float64: [-0.5, 1e300, NaN],
    bytes: [new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(100).fill(255)],
    msgpack: [["tenant", 7], { a: 1, b: [true, null] }, 12345678901234n],
  };
  for (const [keyType, keys] of Object.entries(keysByType) as [KeyType, unknown[]][]) {
    const layout: StateLayout = { kind: "value", keyType, value: { encoding: "msgpack" } };
    const { d } = roundTrip(layout, { length: 3, keyGroups: [0, 1, 2], keys, values: [1, "two", { three: 3 }] });
    assert.deepEqual(d.keys, keys, keyType);
    assert.deepEqual(d.values, [1, "two", { three: 3 }]);
  }
  // int64 keys given as numbers come back as bigints.
  const { d } = roundTrip({ kind: "value", keyType: "int64", value: { encoding: "msgpack" } }, { length: 2, keyGroups: [0, 0], keys: [5, -(2 ** 60)], values: [0, 0] });
  assert.deepEqual(d.keys, [5n, -(2n ** 60n)]);
});

test("encodeChunk() round-trips map state, namespaces and msgpack values", () => {
  const layout: StateLayout = { kind: "map", keyType: "string", userKeyType: "int64", namespaced: true, value: { encoding: "msgpack" } };
  const values = [{ nested: { deep: [1, 2, { x: "y" }] } }, null, 3.5, "s", [1n, 2n ** 63n - 1n], new Uint8Array([1, 2]), true];
  const n = values.length;
  const { d } = roundTrip(layout, {
    length: n,
    keyGroups: [0, 0, 1, 1, 2, 2, 9],
    keys: ["u", "u", "v", "v", "w", "w", "x"],
    namespaces: ["window-1", "window-2", "", "n", "n", "n", "n"],
    userKeys: [1n, 2n, 3, 4n, 5n, 6n, 7n],
    values,
  });
  assert.deepEqual(d.userKeys, [1n, 2n, 3n, 4n, 5n, 6n, 7n]);
  assert.deepEqual(d.namespaces, ["window-1", "window-2", "", "n", "n", "n", "n"]);
  assert.deepEqual(d.values, values);
  assert.deepEqual(d.layout, layout);
});

test("encodeChunk() writes delta chunks with ops; delete rows decode to null", () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "c", type: "int64" }, { name: "l", type: "dictionary" }] } } };
  const ops = Uint8Array.of(0, 1, 0, 1);
  const { d } = roundTrip(layout, { length: 4, keyGroups: [0, 0, 4, 4], keys: ["a", "b", "c", "d"], ops, values: [{ c: 1n, l: "x" }, undefined, { c: 2n, l: "y" }, "ignored"] });
  assert.deepEqual([...d.ops!], [0, 1, 0, 1]);
  assert.deepEqual(d.values, [{ c: 1n, l: "x" }, null, { c: 2n, l: "y" }, null]);
  // All rows deleted: the dictionary stays valid (no values at all).
  const all = roundTrip(layout, { length: 2, keyGroups: [1, 2], keys: ["a", "b"], ops: Uint8Array.of(1, 1), values: [null, null] });
  assert.deepEqual(all.d.values, [null, null]);
  // msgpack and list values too.
  const list = roundTrip({ kind: "list", keyType: "int32", value: { encoding: "arrow", type: "utf8" } }, { length: 2, keyGroups: [1, 2], keys: [1, 2], ops: Uint8Array.of(1, 0), values: [null, ["a"]] });
  assert.deepEqual(list.d.values, [null, ["a"]]);
  const mp = roundTrip({ kind: "value", keyType: "int32", value: { encoding: "msgpack" } }, { length: 2, keyGroups: [1, 2], keys: [1, 2], ops: Uint8Array.of(1, 0), values: [5, null] });
  assert.deepEqual(mp.d.values, [null, null]);
  assert.deepEqual([...mp.d.ops!], [1, 0]);
});

test("encodeChunk() writes list state as Arrow lists or one msgpack array per row", () => {
  const arrow = roundTrip({ kind: "list", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "t", type: "timestamp" }] } } }, {
    length: 3,
    keyGroups: [0, 1, 2],
    keys: ["a", "b", "c"],
    values: [[{ t: 1 }, { t: 2 }], [], [{ t: 3 }]],
  });
  assert.deepEqual(arrow.d.values, [[{ t: 1 }, { t: 2 }], [], [{ t: 3 }]]);
  const typed = roundTrip({ kind: "list", keyType: "string", value: { encoding: "arrow", type: "float64" } }, { length: 1, keyGroups: [0], keys: ["a"], values: [Float64Array.of(1, 2)] });
  assert.deepEqual(typed.d.values, [[1, 2]]);
  const mp = roundTrip({ kind: "list", keyType: "string", value: { encoding: "msgpack" } }, { length: 2, keyGroups: [0, 1], keys: ["a", "b"], values: [[1, "x", null], []] });
  assert.deepEqual(mp.d.values, [[1, "x", null], []]);
});

test("encodeChunk() writes operator-list state without key columns", () => {
  const layout: StateLayout = { kind: "operator-list", value: { encoding: "arrow", type: { struct: [{ name: "partition", type: "int32" }, { name: "offset", type: "int64" }] } } };
  const values = [{ partition: 0, offset: 10n }, { partition: 1, offset: 20n }];
  const { c, d } = roundTrip(layout, { length: 2, values });
  assert.equal(c.keyGroupRange, undefined);
  assert.equal(d.keyGroups, undefined);
  assert.equal(d.keys, undefined);
  assert.deepEqual(d.values, values);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [0], values: [values[0]] }), TypeError);
});

test("encodeChunk() handles empty chunks of every shape", () => {
  const layouts: StateLayout[] = [
    { kind: "value", keyType: "string", value: { encoding: "arrow", type: ALL_SCALARS } },
    { kind: "map", keyType: "msgpack", userKeyType: "bytes", namespaced: true, value: { encoding: "msgpack" } },
    { kind: "list", keyType: "int64", value: { encoding: "arrow", type: { list: "dictionary" } } },
    { kind: "operator-list", value: { encoding: "msgpack" } },
  ];
  for (const layout of layouts) {
    const keyed = layout.kind !== "operator-list";
    const rows: ChunkRows = {
      length: 0,
      values: [],
      ...(keyed ? { keyGroups: [], keys: [] } : {}),
      ...(layout.namespaced ? { namespaces: [] } : {}),
      ...(layout.kind === "map" ? { userKeys: [] } : {}),
    };
    const { c, d } = roundTrip(layout, rows);
    assert.equal(c.keyGroupRange, undefined);
    assert.deepEqual(d.values, []);
    assert.equal(d.keys?.length, keyed ? 0 : undefined);
    const delta = roundTrip(layout, { ...rows, ops: new Uint8Array(0) });
    assert.deepEqual([...delta.d.ops!], []);
  }
});

test("encodeChunk() gives identical bytes for identical input, and keyGroupRange/rawBytes", () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "a", type: "dictionary" }, { name: "b", type: { list: "dictionary" } }] } } };
  const rows = () => ({ length: 3, keyGroups: [2, 2, 40], keys: ["x", "y", "z"], values: [{ a: "p", b: ["q"] }, { a: "r", b: [] }, { a: "p", b: ["s", "q"] }] });
  const a = encodeChunk(layout, rows());
  // Other dictionaries created in between must not change the ids.
  encodeChunk({ kind: "value", keyType: "int32", value: { encoding: "arrow", type: "dictionary" } }, { length: 1, keyGroups: [0], keys: [1], values: ["q"] });
  const b = encodeChunk(JSON.parse(JSON.stringify(layout)), rows());
  assert.deepEqual(a.bytes, b.bytes);
  assert.equal(a.checksum, b.checksum);
  assert.deepEqual(a.keyGroupRange, { start: 2, end: 40 });
  assert.equal(a.rawBytes, a.bytes.length);
  assert.equal(a.compression, "none");
  const z = encodeChunk(layout, rows(), { compression: "deflate", level: 9 });
  assert.equal(z.compression, "deflate");
  assert.equal(z.rawBytes, a.bytes.length);
  assert.deepEqual(decodeChunk(z.bytes, { compression: "deflate", rawBytes: z.rawBytes, checksum: z.checksum }).values, decodeChunk(a.bytes).values);
  assert.deepEqual(decodeChunk(z.bytes).keys, ["x", "y", "z"]); // compression detected
});

test("encodeChunk() reports schema violations with the field and the row's key", () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "inner", type: { struct: [{ name: "v", type: "utf8" }] }, nullable: true }, { name: "l", type: { list: "int8" } }] } } };
  const base = { count: 1n, inner: { v: "x" }, l: [1] };
  const cases: [unknown, RegExp][] = [
    [{ ...base, count: undefined }, /value\.count is missing/],
    [{ ...base, count: "7" }, /value\.count must be a bigint or an integer number/],
    [{ ...base, count: 1.5 }, /value\.count/],
    [{ ...base, count: 2n ** 63n }, /int64 range/],
    [{ ...base, inner: { v: 5 } }, /value\.inner\.v must be a string/],
    [{ ...base, inner: {} }, /value\.inner\.v is missing/],
    [{ ...base, l: [1, 300] }, /value\.l\[\] must be an integer in -128\.\.127/],
    [{ ...base, l: "nope" }, /value\.l must be an array/],
    [null, /value is missing/],
    [5, /value must be an object/],
    [{ ...base, inner: { v: "\ud800" } }, /lone surrogate/],
  ];
  for (const [bad, pattern] of cases) {
    assert.throws(
      () => encodeChunk(layout, { length: 3, keyGroups: [0, 1, 2], keys: ["ok", "bad-key", "z"], values: [base, bad, base] }, { state: "counts" }),
      (e: unknown) => {
        assert.ok(e instanceof SchemaViolationError, String(e));
        assert.equal(e.state, "counts");
        assert.equal(e.key, "\"bad-key\""); // keyText: strings quoted, as every tool prints keys
        assert.match(e.message, pattern);
        assert.match(e.message, /row 1/);
        return true;
      },
    );
  }
  // A null nullable struct is fine; keys of the wrong type are violations too.
  encodeChunk(layout, { length: 1, keyGroups: [0], keys: ["k"], values: [{ ...base, inner: null }] });
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [0], keys: [7], values: [base] }), /key must be a string/);
  assert.throws(() => encodeChunk({ kind: "value", keyType: "int32", value: { encoding: "msgpack" } }, { length: 1, keyGroups: [0], keys: [2 ** 31], values: [1] }), SchemaViolationError);
  assert.throws(() => encodeChunk({ kind: "value", keyType: "msgpack", value: { encoding: "msgpack" } }, { length: 1, keyGroups: [0], keys: [() => 1], values: [1] }), SchemaViolationError);
});

test("encodeChunk() rejects misuse with built-in errors", () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "msgpack" } };
  assert.throws(() => encodeChunk(layout, { length: 2, keyGroups: [3, 1], keys: ["a", "b"], values: [1, 2] }), /ascending/);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [32768], keys: ["a"], values: [1] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [-1], keys: ["a"], values: [1] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [0.5], keys: ["a"], values: [1] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: 2, keyGroups: [0, 0], keys: ["a"], values: [1, 2] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: 1, keys: ["a"], values: [1] }), TypeError);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [0], keys: ["a"], values: [] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: -1, values: [] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [0], keys: ["a"], ops: Uint8Array.of(2), values: [1] }), RangeError);
  assert.throws(() => encodeChunk(layout, { length: 1, keyGroups: [0], keys: ["a"], namespaces: ["n"], values: [1] }), TypeError);
  assert.throws(() => encodeChunk({ kind: "map", keyType: "string", value: { encoding: "msgpack" } } as StateLayout, { length: 0, values: [] }), /userKeyType/);
  assert.throws(() => encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [] } } }, { length: 0, values: [] }), TypeError);
  assert.throws(() => encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "__proto__", type: "int8" }] } } }, { length: 0, values: [] }), TypeError);
});

test("encodeChunk() accepts Uint16Array key groups and layouts with extra properties", () => {
  const layout = { name: "counts", schemaVersion: 3, kind: "value", keyType: "string", value: { encoding: "arrow", type: "int32" } } as StateLayout;
  const { d } = roundTrip(layout, { length: 3, keyGroups: Uint16Array.of(1, 1, 32767), keys: ["a", "b", "c"], values: [1, 2, 3] });
  assert.deepEqual([...d.keyGroups!], [1, 1, 32767]);
  assert.deepEqual(d.layout, { kind: "value", keyType: "string", value: { encoding: "arrow", type: "int32" } });
});

test("encodeChunk() encodes a large chunk twice identically (scratch memory is reused safely)", () => {
  const n = 70_000;
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "c", type: "int64" }, { name: "s", type: "float64", nullable: true }, { name: "l", type: "dictionary" }] } } };
  const rows = {
    length: n,
    keyGroups: Array.from({ length: n }, (_, i) => i >> 10),
    keys: Array.from({ length: n }, (_, i) => `user-${i}`),
    values: Array.from({ length: n }, (_, i) => ({ c: BigInt(i) * 1000n, s: i % 3 ? i / 7 : null, l: `l${i % 50}` })),
  };
  const a = encodeChunk(layout, rows);
  const small = encodeChunk(layout, { length: 1, keyGroups: [0], keys: ["q"], values: [{ c: 1n, s: 1, l: "z" }] });
  const b = encodeChunk(layout, rows);
  assert.deepEqual(a.bytes, b.bytes);
  const d = decodeChunk(a.bytes);
  assert.deepEqual(d.values[69_999], rows.values[69_999]);
  assert.deepEqual(d.values[3], { c: 3000n, s: null, l: "l3" });
  assert.deepEqual(decodeChunk(small.bytes).keys, ["q"]);
});

test("encodeChunk() and decodeChunk() give the same bytes and values without code generation", async () => {
  const { codegen } = await import("./_chunk_codegen.ts");
  const layout: StateLayout = {
    kind: "value",
    keyType: "string",
    value: {
      encoding: "arrow",
      type: {
        struct: [
          ...(ALL_SCALARS as { struct: { name: string; type: FieldType }[] }).struct.map((f, i) => ({ ...f, nullable: i % 2 === 0 })),
          { name: "inner", type: { struct: [{ name: "x", type: "int16" }, { name: "l", type: "dictionary" }] }, nullable: true },
          { name: "list", type: { list: "utf8" } },
        ],
      },
    },
  };
  const full = { b: true, i8: 1, i16: 2, i32: 3, i64: 4n, u8: 5, u16: 6, u32: 7, u64: 8n, f32: 0.5, f64: 9.25, s: "é", d: "x", bin: new Uint8Array([1]), ts: 10, inner: { x: 11, l: "y" }, list: ["a"] };
  const sparse = { i8: 1, i32: 3, u8: 5, u32: 7, f32: 0.5, s: "s", bin: new Uint8Array(0), inner: null, list: [] }; // nullable fields left out
  const rows = { length: 3, keyGroups: [0, 1, 2], keys: ["a", "b", "c"], values: [full, sparse, full], ops: Uint8Array.of(0, 0, 1) };
  const fused = encodeChunk(layout, rows);
  const decoded = decodeChunk(fused.bytes);
  codegen.enabled = false;
  try {
    const plain = encodeChunk(layout, rows);
    assert.deepEqual(plain.bytes, fused.bytes);
    assert.deepEqual(decodeChunk(plain.bytes), decoded);
    assert.throws(() => encodeChunk(layout, { ...rows, values: [{ ...full, i64: "x" }, full, full] }), /value\.i64 must be/);
  } finally {
    codegen.enabled = true;
  }
  assert.throws(() => encodeChunk(layout, { ...rows, values: [{ ...full, i64: "x" }, full, full] }), /value\.i64 must be/);
  assert.deepEqual(decoded.values[1], { b: null, i8: 1, i16: null, i32: 3, i64: null, u8: 5, u16: null, u32: 7, u64: null, f32: 0.5, f64: null, s: "s", d: null, bin: new Uint8Array(0), ts: null, inner: null, list: [] });
});
