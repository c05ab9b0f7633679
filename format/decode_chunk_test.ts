import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeChunk } from "./encode_chunk.ts";
import { decodeChunk, readKeyGroupRange } from "./decode_chunk.ts";
import { compress } from "./compression.ts";
import { ChecksumMismatchError, SnapshotFormatError } from "./errors.ts";
import type { StateLayout } from "./state_layout.ts";
import { longOr } from "./_test_fuzz.ts";

const LAYOUT: StateLayout = {
  kind: "value",
  keyType: "string",
  value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int64" }, { name: "tags", type: { list: "dictionary" } }, { name: "note", type: "utf8", nullable: true }] } },
};

function rowsFor(kgs: number[]) {
  const keyGroups = [...kgs].sort((a, b) => a - b);
  return {
    length: keyGroups.length,
    keyGroups,
    keys: keyGroups.map((g, i) => `k-${g}-${i}`),
    values: keyGroups.map((g, i) => ({ n: BigInt(i * 1000 + g), tags: i % 3 ? [`t${g % 4}`] : [], note: i % 2 ? null : `note ${i}` })),
  };
}

test("readKeyGroupRange() returns exactly the rows whose key group is in range (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 60 }),
      fc.integer({ min: 0, max: 45 }),
      fc.integer({ min: -2, max: 45 }),
      fc.boolean(),
      (kgs, start, end, deflate) => {
        const rows = rowsFor(kgs);
        const c = encodeChunk(LAYOUT, rows, { compression: deflate ? "deflate" : "none" });
        const got = readKeyGroupRange(c.bytes, { start, end }, { checksum: c.checksum, rawBytes: c.rawBytes });
        const idx = rows.keyGroups.map((g, i) => [g, i]).filter(([g]) => g >= start && g <= end).map(([, i]) => i);
        assert.deepEqual([...got.keyGroups!], idx.map((i) => rows.keyGroups[i]));
        assert.deepEqual(got.keys, idx.map((i) => rows.keys[i]));
        assert.deepEqual(got.values, idx.map((i) => rows.values[i]));
        assert.equal(got.length, idx.length);
      },
    ),
    { numRuns: longOr(200, 2000) },
  );
});

test("readKeyGroupRange() never materializes rows outside the range", () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "msgpack" } };
  const c = encodeChunk(layout, { length: 3, keyGroups: [1, 2, 3], keys: ["a", "b", "c"], values: ["ok-1", "ZZZZZZZZ", "ok-3"] });
  // Corrupt row 2's msgpack blob (fixstr header 0xa8 → 0xc1, a byte msgpack never uses).
  const bytes = c.bytes.slice();
  const text = new TextDecoder("latin1").decode(bytes);
  const at = text.indexOf("ZZZZZZZZ") - 1;
  assert.equal(bytes[at], 0xa8);
  bytes[at] = 0xc1;
  assert.throws(() => decodeChunk(bytes), SnapshotFormatError);
  assert.deepEqual(readKeyGroupRange(bytes, { start: 3, end: 3 }).values, ["ok-3"]);
  assert.deepEqual(readKeyGroupRange(bytes, { start: 0, end: 1 }).values, ["ok-1"]);
});

test("readKeyGroupRange() rejects operator state and malformed ranges", () => {
  const op = encodeChunk({ kind: "operator-list", value: { encoding: "msgpack" } }, { length: 1, values: [1] });
  assert.throws(() => readKeyGroupRange(op.bytes, { start: 0, end: 1 }), TypeError);
  const c = encodeChunk(LAYOUT, rowsFor([1, 2]));
  assert.throws(() => readKeyGroupRange(c.bytes, { start: 0.5, end: 1 }), TypeError);
  assert.throws(() => readKeyGroupRange(c.bytes, { start: -1, end: 1 }), TypeError);
  assert.deepEqual(readKeyGroupRange(c.bytes, { start: 5, end: 2 }).values, []);
});

test("decodeChunk() verifies the checksum before anything else", () => {
  const c = encodeChunk(LAYOUT, rowsFor([1, 2, 3]));
  const bad = c.bytes.slice();
  bad[bad.length >> 1] ^= 0x10;
  assert.throws(() => decodeChunk(bad, { checksum: c.checksum, path: "chk-3/x.arrow" }), (e: unknown) => {
    assert.ok(e instanceof ChecksumMismatchError);
    assert.equal(e.path, "chk-3/x.arrow");
    return true;
  });
  assert.throws(() => readKeyGroupRange(bad, { start: 0, end: 9 }, { checksum: c.checksum }), ChecksumMismatchError);
});

test("decodeChunk() reads deflate chunks with and without the manifest's hints, and caps bombs", () => {
  const rows = rowsFor(Array.from({ length: 500 }, (_, i) => i % 17));
  const c = encodeChunk(LAYOUT, rows, { compression: "deflate", level: 1 });
  const want = decodeChunk(encodeChunk(LAYOUT, rows).bytes).values;
  assert.deepEqual(decodeChunk(c.bytes, { compression: "deflate", rawBytes: c.rawBytes }).values, want);
  assert.deepEqual(decodeChunk(c.bytes).values, want);
  assert.throws(() => decodeChunk(c.bytes, { compression: "deflate", rawBytes: c.rawBytes - 1 }), SnapshotFormatError);
  assert.throws(() => decodeChunk(c.bytes, { compression: "none" }), SnapshotFormatError);
  const bomb = compress(new Uint8Array(64 * 1024 * 1024), "deflate", 9); // 64 MiB of zeros in ~64 KiB
  assert.throws(() => decodeChunk(bomb, { path: "bomb.arrow" }), (e: unknown) => e instanceof SnapshotFormatError && /exceeds/.test(e.message));
  assert.throws(() => decodeChunk(bomb, { compression: "deflate", rawBytes: 1e12 }), SnapshotFormatError);
});

test("decodeChunk() rejects non-Uint8Array input as misuse", () => {
  assert.throws(() => decodeChunk("x" as unknown as Uint8Array), TypeError);
});

test("decodeChunk() reads chunks at any byte offset (unaligned views)", () => {
  const c = encodeChunk(LAYOUT, rowsFor([0, 4, 4, 9]));
  for (const shift of [1, 3, 4, 7]) {
    const host = new Uint8Array(c.bytes.length + shift);
    host.set(c.bytes, shift);
    assert.deepEqual(decodeChunk(host.subarray(shift)).values, decodeChunk(c.bytes).values);
  }
});
