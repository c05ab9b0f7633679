import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { compress, decompress, detectCompression } from "./compression.ts";
import { SnapshotFormatError } from "./errors.ts";

function sample(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i % 7 === 0 ? (i * 2654435761) >>> 24 : 65 + (i % 13);
  return b;
}

test("compress() then decompress() round-trips with and without rawBytes", () => {
  for (const n of [0, 1, 100, 70_000, 300_001]) {
    const raw = sample(n);
    for (const level of [0, 1, 6, 9]) {
      const packed = compress(raw, "deflate", level);
      assert.equal(detectCompression(packed), "deflate");
      assert.deepEqual(decompress(packed, { compression: "deflate", rawBytes: n }), raw);
      assert.deepEqual(decompress(packed), raw);
    }
  }
});

test("compress() with none returns the bytes; misuse throws built-in errors", () => {
  const raw = sample(10);
  assert.equal(compress(raw, "none"), raw);
  assert.equal(decompress(raw, { compression: "none" }), raw);
  assert.throws(() => compress(raw, "zstd" as "none"), TypeError);
  assert.throws(() => compress(raw, "deflate", 10), RangeError);
});

test("detectCompression() tells Arrow files from zlib streams", () => {
  assert.equal(detectCompression(new TextEncoder().encode("ARROW1\0\0")), "none");
  assert.equal(detectCompression(new Uint8Array([1, 2, 3])), undefined);
  assert.throws(() => decompress(new Uint8Array([1, 2, 3])), SnapshotFormatError);
});

test("decompress() caps a decompression bomb without rawBytes", () => {
  const bomb = compress(new Uint8Array(50_000_000), "deflate", 9); // ~50 kB of zeros → 50 MB
  assert.ok(bomb.length < 100_000);
  assert.throws(() => decompress(bomb, { compression: "deflate", path: "bomb.arrow" }), (e: unknown) => {
    assert.ok(e instanceof SnapshotFormatError);
    assert.equal(e.path, "bomb.arrow");
    assert.match(e.message, /exceeds/);
    return true;
  });
});

test("decompress() enforces rawBytes exactly and rejects impossible sizes", () => {
  const raw = sample(10_000);
  const packed = compress(raw, "deflate");
  assert.throws(() => decompress(packed, { compression: "deflate", rawBytes: 9_999 }), /exceeds rawBytes/);
  assert.throws(() => decompress(packed, { compression: "deflate", rawBytes: 10_001 }), /rawBytes says/);
  assert.throws(() => decompress(packed, { compression: "deflate", rawBytes: 1e15 }), SnapshotFormatError);
  assert.throws(() => decompress(packed, { compression: "deflate", rawBytes: -1 }), SnapshotFormatError);
});

test("decompress() turns corrupt or truncated deflate data into SnapshotFormatError", () => {
  const raw = sample(50_000);
  const packed = compress(raw, "deflate");
  const cases = [packed.subarray(0, packed.length >> 1), packed.subarray(0, 2), new Uint8Array([0x78, 0x9c, 0xff, 0xff, 0xff])];
  for (const c of cases) assert.throws(() => decompress(c, { compression: "deflate" }), SnapshotFormatError);
  for (let i = 0; i < 200; i++) {
    const bad = packed.slice();
    bad[(i * 7919) % bad.length] ^= 1 << (i % 8);
    try {
      decompress(bad, { compression: "deflate", rawBytes: raw.length });
    } catch (e) {
      assert.ok(e instanceof SnapshotFormatError, String(e));
    }
  }
});

test("decompress() keeps transient memory near the cap while refusing a bomb", () => {
  const bomb = compress(new Uint8Array(32 << 20), "deflate", 9); // 32 MiB of zeros in ~32 KiB
  const cap = 64 * bomb.length + (1 << 20);
  const external = () => Math.max(process.memoryUsage().external, process.memoryUsage().arrayBuffers);
  const before = external();
  assert.throws(() => decompress(bomb, { compression: "deflate" }), SnapshotFormatError);
  const grew = external() - before;
  assert.ok(grew <= cap + (1 << 20), `grew ${grew} bytes for a cap of ${cap}`);
});
