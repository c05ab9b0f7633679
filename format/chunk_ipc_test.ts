// Hostile input: whatever the bytes, reading a chunk ends in a named error (never a bare TypeError or
// RangeError, a hang, or an allocation beyond what the real byte size allows).
import { test } from "node:test";
import process from "node:process";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Data, makeData, RecordBatch, Schema, Struct, Table, tableFromArrays, tableFromIPC, tableToIPC, Uint16 } from "apache-arrow";
import { encodeChunk } from "./encode_chunk.ts";
import { decodeChunk, readKeyGroupRange } from "./decode_chunk.ts";
import { sliceChunk } from "./chunk_slice.ts";
import { readChunkFile } from "./chunk_ipc.ts";
import { SnapshotFormatError, UnsupportedFormatVersionError } from "./errors.ts";
import type { StateLayout } from "./state_layout.ts";
import { longOr } from "./_test_fuzz.ts";

const LAYOUT: StateLayout = {
  kind: "map",
  keyType: "string",
  userKeyType: "msgpack",
  namespaced: true,
  value: {
    encoding: "arrow",
    type: {
      struct: [
        { name: "n", type: "int64" },
        { name: "label", type: "dictionary", nullable: true },
        { name: "tags", type: { list: "dictionary" }, nullable: true },
        { name: "flag", type: "bool" },
        { name: "inner", type: { struct: [{ name: "bin", type: "binary", nullable: true }, { name: "ts", type: "timestamp" }] }, nullable: true },
      ],
    },
  },
};

function sample(delta = false): Uint8Array {
  const n = 9;
  const keyGroups = [0, 0, 1, 3, 3, 3, 7, 8, 8];
  return encodeChunk(LAYOUT, {
    length: n,
    keyGroups,
    keys: keyGroups.map((g, i) => `key-${g}-${i}é`),
    namespaces: keyGroups.map((_, i) => `ns${i % 2}`),
    userKeys: keyGroups.map((_, i) => [i, "u"]),
    values: keyGroups.map((_, i) => (i === 4 ? { n: 1n, label: null, tags: null, flag: true, inner: null } : {
      n: BigInt(i) * 7n,
      label: `l${i % 3}`,
      tags: i % 2 ? ["a", "b"] : [],
      flag: i % 2 === 0,
      inner: { bin: i % 3 ? new Uint8Array([i]) : null, ts: 1000 * i },
    })),
    ...(delta ? { ops: Uint8Array.from(keyGroups, (_, i) => i % 3 === 0 ? 1 : 0) } : {}),
  }).bytes;
}

/** Every way of reading `bytes` either works or throws a SnapshotFormatError. */
function readAllWays(bytes: Uint8Array): number {
  let failures = 0;
  const attempts: (() => unknown)[] = [
    () => decodeChunk(bytes, { path: "fuzz.arrow" }),
    () => readKeyGroupRange(bytes, { start: 1, end: 3 }),
    () => sliceChunk(bytes, { start: 3, end: 7 }),
  ];
  for (const attempt of attempts) {
    try {
      attempt();
    } catch (e) {
      failures++;
      if (!(e instanceof SnapshotFormatError)) assert.fail(`expected a SnapshotFormatError, got ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
    }
  }
  return failures;
}

test("every truncation of a chunk is a SnapshotFormatError", () => {
  for (const bytes of [sample(), encodeChunk(LAYOUT, { length: 0, keyGroups: [], keys: [], namespaces: [], userKeys: [], values: [] }).bytes]) {
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(() => decodeChunk(bytes.subarray(0, n)), SnapshotFormatError, `prefix of ${n} bytes`);
      if (n > 0 && n % 7 === 0) assert.throws(() => decodeChunk(bytes.subarray(n)), SnapshotFormatError, `suffix from ${n}`);
    }
  }
});

test("random bytes are SnapshotFormatErrors (property)", () => {
  const magic = new TextEncoder().encode("ARROW1");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (body, framed) => {
      let bytes = body;
      if (framed) {
        bytes = new Uint8Array(body.length + 16);
        bytes.set(magic, 0);
        bytes.set(body, 8);
        bytes.set(magic, bytes.length - 6);
      }
      assert.throws(() => decodeChunk(bytes), SnapshotFormatError);
    }),
    { numRuns: longOr(300, 3000) },
  );
});

test("bit-flipped chunks decode or fail with SnapshotFormatError (property)", () => {
  const chunks = [sample(false), sample(true)];
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 0, max: 7 }), fc.nat({ max: 3 }), fc.boolean(), (pos, bit, extra, delta) => {
      const bytes = chunks[delta ? 1 : 0].slice();
      const at = pos % bytes.length;
      bytes[at] ^= 1 << bit;
      for (let k = 1; k <= extra; k++) bytes[(at + k * 977) % bytes.length] ^= 1 << ((bit + k) % 8);
      readAllWays(bytes);
    }),
    { numRuns: longOr(400, 4000) },
  );
});

test("lying 32- and 64-bit numbers anywhere in the file are caught", () => {
  const base = sample(true);
  const values32 = [0, 1, -1, 0x7fffffff, -0x80000000, 0xffff, 0x10000, base.length, 8];
  let failures = 0;
  let runs = 0;
  for (let at = 0; at + 4 <= base.length; at += 4) {
    for (const v of values32) {
      const bytes = base.slice();
      new DataView(bytes.buffer).setInt32(at, v, true);
      failures += readAllWays(bytes);
      runs++;
    }
  }
  const values64 = [2n ** 53n, 2n ** 62n, -1n, 2n ** 31n, 1n];
  for (let at = 0; at + 8 <= base.length; at += 8) {
    for (const v of values64) {
      const bytes = base.slice();
      new DataView(bytes.buffer).setBigInt64(at, v, true);
      failures += readAllWays(bytes);
      runs++;
    }
  }
  assert.ok(failures > runs, `most corruptions should be detected (${failures} failures in ${runs} runs × 3 readers)`);
});

/** Re-serializes a chunk with apache-arrow after changing its metadata, columns or batches. */
function rewrite(bytes: Uint8Array, change: { metadata?: (m: Map<string, string>) => void; column?: [number, (d: Data) => Data]; batches?: (b: RecordBatch[]) => RecordBatch[]; stream?: boolean }): Uint8Array {
  const t = tableFromIPC(bytes);
  const metadata = new Map(t.schema.metadata);
  change.metadata?.(metadata);
  let fields = t.schema.fields;
  let batches = t.batches.map((b) => b.data);
  if (change.column) {
    const [i, f] = change.column;
    batches = batches.map((d) => {
      const children = [...d.children];
      children[i] = f(children[i]);
      return children as unknown as Data;
    }).map((children) => {
      const kids = children as unknown as Data[];
      fields = fields.map((fl, j) => (j === i ? fl.clone({ nullable: fl.nullable || kids[j].nullCount > 0 ? fl.nullable : fl.nullable }) : fl));
      return makeData({ type: new Struct(fields), length: kids[0].length, nullCount: 0, children: kids });
    });
  }
  const schema = new Schema(fields, metadata);
  let rbs = batches.map((d) => new RecordBatch(schema, d));
  if (change.batches) rbs = change.batches(rbs);
  return tableToIPC(new Table(schema, rbs), change.stream ? "stream" : "file");
}

function throwsFormat(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeChunk(bytes, { path: "crafted.arrow" }), (e: unknown) => {
    assert.ok(e instanceof SnapshotFormatError, String(e));
    assert.match(e.message, pattern);
    return true;
  });
}

test("apache-arrow re-serialization of a chunk still reads (the crafted cases below start from it)", () => {
  const bytes = sample();
  assert.deepEqual(decodeChunk(rewrite(bytes, {})).values, decodeChunk(bytes).values);
});

test("crafted chunks with lying metadata are rejected with clear messages", () => {
  const bytes = sample();
  throwsFormat(tableToIPC(tableFromArrays({ x: Int32Array.of(1, 2) }), "file"), /lacks arrowpoint\.formatVersion/);
  throwsFormat(rewrite(bytes, { stream: true }), /ARROW1/);
  assert.throws(() => decodeChunk(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.formatVersion", "2") })), (e: unknown) => {
    assert.ok(e instanceof UnsupportedFormatVersionError);
    assert.equal(e.found, 2);
    return true;
  });
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.formatVersion", "one") }), /not a version number/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.layout", "{") }), /not JSON/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.delete("arrowpoint.layout") }), /lacks arrowpoint\.layout/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.layout", JSON.stringify({ ...LAYOUT, kind: "value", userKeyType: undefined })) }), /the layout needs/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.layout", JSON.stringify({ ...LAYOUT, keyType: "int32" })) }), /column key should be int32/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.layout", JSON.stringify({ ...LAYOUT, value: { encoding: "msgpack" } })) }), /column value should be binary/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.layout", JSON.stringify({ kind: "bogus" })) }), /layout is invalid/);
  const deep = { list: "int8" } as Record<string, unknown>;
  let t: Record<string, unknown> = deep;
  for (let i = 0; i < 100; i++) t = { list: t };
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.layout", JSON.stringify({ kind: "value", keyType: "string", value: { encoding: "arrow", type: t } })) }), /deeper than/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.delete("arrowpoint.keyGroupIndex") }), /lacks arrowpoint\.keyGroupIndex/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.keyGroupIndex", '{"keyGroups":[0,1,3,7,8],"offsets":[0,2,3,6,7,8]}') }), /offsets must run from 0/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.keyGroupIndex", '{"keyGroups":[0,1,3,7,8],"offsets":[0,2,4,6,7,9]}') }), /does not match the kg column/);
  throwsFormat(rewrite(bytes, { metadata: (m) => m.set("arrowpoint.keyGroupIndex", "[]") }), /keyGroups/);
});

test("crafted chunks with bad columns are rejected", () => {
  const bytes = sample();
  // kg not ascending.
  throwsFormat(rewrite(bytes, { column: [0, (d) => makeData({ type: new Uint16(), length: d.length, nullCount: 0, data: Uint16Array.from((d.values as Uint16Array).slice().reverse()) })] }), /not sorted by key group/);
  // kg beyond 32767.
  throwsFormat(rewrite(bytes, { column: [0, (d) => makeData({ type: new Uint16(), length: d.length, nullCount: 0, data: Uint16Array.from(d.values as Uint16Array, (v, i) => (i === d.length - 1 ? 40000 : v)) })] }), /beyond 32767/);
  // Nulls in a non-nullable column.
  throwsFormat(rewrite(bytes, { column: [1, (d) => d.clone(d.type, 0, d.length, 1, [d.valueOffsets, d.values, Uint8Array.of(0xfe, 0xff)] as never)] }), /non-nullable but has 1 nulls/);
  // Two record batches.
  throwsFormat(rewrite(bytes, { batches: (b) => [b[0], b[0]] }), /at most one/);
  // Dictionary index outside the dictionary.
  const dict = encodeChunk({ kind: "value", keyType: "int32", value: { encoding: "arrow", type: "dictionary" } }, { length: 2, keyGroups: [0, 1], keys: [1, 2], values: ["a", "b"] }).bytes;
  throwsFormat(rewrite(dict, { column: [2, (d) => d.clone(d.type, 0, d.length, 0, [undefined, Int32Array.of(0, 9), undefined] as never)] }), /dictionary index 9/);
  // Utf8 offsets decreasing or past the data.
  throwsFormat(rewrite(bytes, { column: [1, (d) => d.clone(d.type, 0, d.length, 0, [Int32Array.from(d.valueOffsets as Int32Array, (v, i) => (i === 3 ? 1 : v)), d.values, undefined] as never)] }), /offsets decrease/);
  throwsFormat(rewrite(bytes, { column: [1, (d) => d.clone(d.type, 0, d.length, 0, [d.valueOffsets, (d.values as Uint8Array).subarray(0, 5), undefined] as never)] }), /past the data buffer|offsets/);
  // Invalid UTF-8 in a string column.
  throwsFormat(rewrite(bytes, { column: [1, (d) => d.clone(d.type, 0, d.length, 0, [d.valueOffsets, Uint8Array.from(d.values as Uint8Array, (v, i) => (i === 2 ? 0xff : v)), undefined] as never)] }), /invalid UTF-8/);
});

test("readChunkFile() bounds every allocation by the file size", () => {
  // A batch claiming 2^31-1 rows over a few bytes of buffers fails validation before anything is allocated.
  const bytes = sample();
  const view = new DataView(bytes.buffer);
  let hit = 0;
  for (let at = 0; at + 8 <= bytes.length; at += 8) {
    if (view.getBigInt64(at, true) !== 9n) continue; // the batch length and the root field nodes
    const copy = bytes.slice();
    new DataView(copy.buffer).setBigInt64(at, 0x7fffffffn, true);
    const before = process.memoryUsage?.().arrayBuffers ?? 0;
    assert.throws(() => readChunkFile(copy), SnapshotFormatError);
    const after = process.memoryUsage?.().arrayBuffers ?? 0;
    assert.ok(after - before < 64 * 1024 * 1024);
    hit++;
  }
  assert.ok(hit > 0);
});
