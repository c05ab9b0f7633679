import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeChunk } from "./encode_chunk.ts";
import { decodeChunk, openChunk } from "./decode_chunk.ts";
import { assignKeyGroup, type Key } from "./key_group.ts";
import { type FieldSource, keyGroupsOfColumn, rewriteChunk, sliceChunk } from "./chunk_slice.ts";
import { tableFromIPC } from "@uwdata/flechette";
import { tableFromIPC as arrowTableFromIPC } from "apache-arrow";
import { checksumOf } from "./checksum.ts";
import { ChecksumMismatchError } from "./errors.ts";
import type { StateLayout } from "./state_layout.ts";
import { longOr } from "./_test_fuzz.ts";

const LAYOUT: StateLayout = {
  kind: "map",
  keyType: "string",
  userKeyType: "int64",
  namespaced: true,
  value: {
    encoding: "arrow",
    type: {
      struct: [
        { name: "n", type: "int64" },
        { name: "label", type: "dictionary", nullable: true },
        { name: "tags", type: { list: "utf8" }, nullable: true },
        { name: "flag", type: "bool", nullable: true },
        { name: "inner", type: { struct: [{ name: "u", type: "uint16" }, { name: "bin", type: "binary", nullable: true }, { name: "ts", type: "timestamp" }] }, nullable: true },
        { name: "f", type: "float32" },
      ],
    },
  },
};

function valueOf(i: number): unknown {
  if (i % 11 === 5) return { n: BigInt(i), label: null, tags: null, flag: null, inner: null, f: i };
  return {
    n: BigInt(i) * -3n,
    label: `label-${i % 5}`,
    tags: Array.from({ length: i % 4 }, (_, k) => `t${i}-${k}`),
    flag: i % 3 === 0,
    inner: { u: i % 65536, bin: i % 2 ? new Uint8Array([i & 255, 7]) : null, ts: 1_700_000_000_000 + i },
    f: i / 2,
  };
}

test("sliceChunk() equals decode + filter for any key-group range (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 80 }),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 32 }),
      fc.boolean(),
      fc.boolean(),
      (kgs, a, b, delta, deflate) => {
        const keyGroups = [...kgs].sort((x, y) => x - y);
        const n = keyGroups.length;
        const rows = {
          length: n,
          keyGroups,
          keys: keyGroups.map((g, i) => `k${g}-${i}`),
          namespaces: keyGroups.map((_, i) => `ns${i % 3}`),
          userKeys: keyGroups.map((_, i) => BigInt(i)),
          values: keyGroups.map((_, i) => valueOf(i)),
          ...(delta ? { ops: Uint8Array.from(keyGroups, (_, i) => (i % 4 === 1 ? 1 : 0)) } : {}),
        };
        const c = encodeChunk(LAYOUT, rows, { compression: deflate ? "deflate" : "none" });
        const full = decodeChunk(c.bytes);
        const range = { start: Math.min(a, b), end: Math.max(a, b) };
        const s = sliceChunk(c.bytes, range, { checksum: c.checksum }, { compression: deflate ? "none" : "deflate" });
        assert.equal(s.checksum, checksumOf(s.bytes));
        const got = decodeChunk(s.bytes, { checksum: s.checksum, rawBytes: s.rawBytes });
        const idx = keyGroups.map((g, i) => [g, i]).filter(([g]) => g >= range.start && g <= range.end).map(([, i]) => i);
        assert.equal(s.rows, idx.length);
        assert.deepEqual([...got.keyGroups!], idx.map((i) => full.keyGroups![i]));
        assert.deepEqual(got.keys, idx.map((i) => full.keys![i]));
        assert.deepEqual(got.namespaces, idx.map((i) => full.namespaces![i]));
        assert.deepEqual(got.userKeys, idx.map((i) => full.userKeys![i]));
        assert.deepEqual(got.values, idx.map((i) => full.values[i]));
        assert.deepEqual(got.ops === undefined ? undefined : [...got.ops], delta ? idx.map((i) => full.ops![i]) : undefined);
        assert.deepEqual(got.layout, full.layout);
        assert.deepEqual(s.keyGroupRange, idx.length ? { start: keyGroups[idx[0]], end: keyGroups[idx[idx.length - 1]] } : undefined);
      },
    ),
    { numRuns: longOr(150, 1500) },
  );
});

/** Value fields a migration may keep (renamed), widen, turn into a dictionary, or add as constants. */
const MIGRATED = [
  { name: "n", type: "int64" },
  { name: "w", type: "int16", nullable: true, widen: ["int64", "float64", "int32"] },
  { name: "s", type: "utf8", nullable: true, widen: ["dictionary"] },
  { name: "flag", type: "bool", nullable: true },
  { name: "tags", type: { list: "utf8" }, nullable: true },
  { name: "inner", type: { struct: [{ name: "u", type: "uint16" }, { name: "bin", type: "binary", nullable: true }, { name: "label", type: "dictionary", nullable: true }] }, nullable: true },
  { name: "ts", type: "timestamp" },
] as const;
const ADDED = [
  { field: { name: "region", type: "utf8" }, value: "eu" },
  { field: { name: "seen", type: "bool" }, value: true },
  { field: { name: "gone", type: "int64", nullable: true }, value: null },
  { field: { name: "cat", type: "dictionary" }, value: "c" },
] as const;

function migratedValue(i: number, nulls: number): unknown {
  const z = (k: number) => (nulls >> ((i + k) % 7)) & 1; // which fields are null varies by row and by case
  return {
    n: BigInt(i) - 40n,
    w: z(0) ? null : (i * 37) % 65536 - 32768,
    s: z(1) ? null : `s${i % 6}é`,
    flag: z(2) ? null : i % 3 === 0,
    tags: z(3) ? null : Array.from({ length: i % 4 }, (_, k) => `t${i}-${k}`),
    inner: z(4) ? null : { u: i * 7, bin: z(5) ? null : Uint8Array.of(i & 255), label: z(6) ? null : `L${i % 3}` },
    ts: 1_700_000_000_000 + i,
  };
}

test("rewriteChunk() of a key-group range reads back as the whole-chunk rewrite's rows of that range, here, in apache-arrow and in flechette (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 90 }),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 32 }),
      fc.record({ delta: fc.boolean(), deflate: fc.boolean(), nulls: fc.nat({ max: 127 }) }),
      fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6], { minLength: 1 }),
      fc.array(fc.nat({ max: 2 }), { minLength: 7, maxLength: 7 }),
      fc.subarray([0, 1, 2, 3]),
      (kgs, a, b, { delta, deflate, nulls }, keep, widen, added) => {
        const keyGroups = [...kgs].sort((x, y) => x - y);
        const n = keyGroups.length;
        const old: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: MIGRATED.map(({ name, type, ...r }) => ({ name, type, ...("nullable" in r ? { nullable: r.nullable } : {}) })) } } } as StateLayout;
        const c = encodeChunk(old, {
          length: n,
          keyGroups,
          keys: keyGroups.map((g, i) => `k${g}-${i}`),
          ...(delta ? { ops: Uint8Array.from(keyGroups, (_, i) => (i % 5 === 2 ? 1 : 0)) } : {}),
          values: keyGroups.map((_, i) => (delta && i % 5 === 2 ? null : migratedValue(i, nulls))),
        }, { compression: deflate ? "deflate" : "none" });
        const fields: unknown[] = [];
        const sources: FieldSource[] = [];
        for (const k of keep) {
          const f = MIGRATED[k];
          const to = "widen" in f && widen[k] < f.widen.length ? f.widen[widen[k]] : undefined;
          fields.push({ name: `${f.name}_${k}`, type: to ?? f.type, ...("nullable" in f ? { nullable: f.nullable } : {}) });
          sources.push(to ? { from: f.name, to } : { from: f.name });
        }
        for (const k of added) {
          fields.push(ADDED[k].field);
          sources.push({ constant: ADDED[k].value });
        }
        const layout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: fields } } } as StateLayout;
        const range = { start: Math.min(a, b), end: Math.max(a, b) };
        const info = { checksum: c.checksum, compression: c.compression, rawBytes: c.rawBytes };
        const part = rewriteChunk(c.bytes, info, { range, layout, value: { fields: sources } }, { compression: deflate ? "none" : "deflate" });
        const whole = decodeChunk(rewriteChunk(c.bytes, info, { layout, value: { fields: sources } }).bytes);
        const got = decodeChunk(part.bytes, { checksum: part.checksum, compression: part.compression, rawBytes: part.rawBytes });
        const idx = keyGroups.map((g, i) => [g, i]).filter(([g]) => g >= range.start && g <= range.end).map(([, i]) => i);
        assert.equal(part.rows, idx.length);
        assert.deepEqual([...got.keyGroups!], idx.map((i) => whole.keyGroups![i]));
        assert.deepEqual(got.keys, idx.map((i) => whole.keys![i]));
        assert.deepEqual(got.ops === undefined ? undefined : [...got.ops], delta ? idx.map((i) => whole.ops![i]) : undefined);
        assert.deepEqual(got.values, idx.map((i) => whole.values[i]));
        assert.deepEqual(got.layout, whole.layout);
        assert.deepEqual(part.keyGroupRange, idx.length ? { start: keyGroups[idx[0]], end: keyGroups[idx[idx.length - 1]] } : undefined);
        if (part.compression === "none") {
          assert.equal(tableFromIPC(part.bytes, { useBigInt: true }).numRows, idx.length);
          const t = arrowTableFromIPC(part.bytes);
          assert.equal(t.numRows, idx.length);
          assert.deepEqual(t.getChild("key")?.toArray(), got.keys);
        }
      },
    ),
    { numRuns: longOr(150, 1500) },
  );
});

test("sliceChunk() of a whole range keeps every row; slices of slices compose", () => {
  const n = 300;
  const keyGroups = Array.from({ length: n }, (_, i) => Math.floor(i / 10));
  const c = encodeChunk(LAYOUT, {
    length: n,
    keyGroups,
    keys: keyGroups.map((_, i) => `key-${i}`),
    namespaces: keyGroups.map(() => "n"),
    userKeys: keyGroups.map((_, i) => i),
    values: keyGroups.map((_, i) => valueOf(i)),
  });
  const all = sliceChunk(c.bytes, { start: 0, end: 32767 });
  assert.deepEqual(decodeChunk(all.bytes).values, decodeChunk(c.bytes).values);
  const half = sliceChunk(c.bytes, { start: 3, end: 20 });
  const quarter = sliceChunk(half.bytes, { start: 7, end: 11 });
  assert.deepEqual(decodeChunk(quarter.bytes).values, decodeChunk(c.bytes).values.slice(70, 120));
});

test("sliceChunk() verifies checksums and rejects operator state", () => {
  const c = encodeChunk(LAYOUT, { length: 1, keyGroups: [1], keys: ["a"], namespaces: ["n"], userKeys: [1n], values: [valueOf(1)] });
  assert.throws(() => sliceChunk(c.bytes, { start: 0, end: 1 }, { checksum: "crc32:00000000" }), ChecksumMismatchError);
  const op = encodeChunk({ kind: "operator-list", value: { encoding: "msgpack" } }, { length: 1, values: [1] });
  assert.throws(() => sliceChunk(op.bytes, { start: 0, end: 1 }), TypeError);
});

test("keyGroupsOfColumn() hashes key columns exactly as assignKeyGroup() hashes the decoded keys (property)", () => {
  const cases: { keyType: "string" | "int32" | "int64" | "float64"; key: fc.Arbitrary<unknown> }[] = [
    { keyType: "string", key: fc.string({ unit: "binary", maxLength: 8 }).filter((s) => !/\p{Cs}/u.test(s)) },
    { keyType: "int32", key: fc.integer() },
    { keyType: "int64", key: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }) },
    { keyType: "float64", key: fc.oneof(fc.double(), fc.integer(), fc.maxSafeInteger()) },
  ];
  for (const { keyType, key } of cases) {
    fc.assert(
      fc.property(fc.array(key, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 32768 }), (keys, maxP) => {
        const layout = { kind: "value", keyType, value: { encoding: "msgpack" } } as const;
        const f = openChunk(encodeChunk(layout, { length: keys.length, keyGroups: keys.map(() => 0), keys, values: keys.map(() => 1) }).bytes);
        const row = Uint32Array.from(keys, (_, i) => keys.length - 1 - i);
        const got = keyGroupsOfColumn([f.columns[f.plan.index.key]], new Uint32Array(keys.length), row, maxP)!;
        assert.deepEqual([...got], [...row].map((r) => assignKeyGroup(keys[r] as Key, maxP)));
      }),
      { numRuns: longOr(60, 600), seed: 5 },
    );
  }
});
