import { test } from "node:test";
import assert from "node:assert/strict";
import { checksumOf, crc32, crc32Js, verifyChecksum } from "./checksum.ts";
import { ChecksumMismatchError, SnapshotFormatError } from "./errors.ts";

const enc = new TextEncoder();

test("crc32() matches the standard check value and the JS fallback", () => {
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926);
  assert.equal(crc32Js(enc.encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  const big = new Uint8Array(100_003);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  for (const n of [0, 1, 7, 8, 9, 63, 4096, 100_003]) {
    assert.equal(crc32(big.subarray(0, n)), crc32Js(big.subarray(0, n)), `length ${n}`);
    assert.equal(crc32(big.subarray(3, 3 + Math.max(0, n - 3))), crc32Js(big.subarray(3, 3 + Math.max(0, n - 3))));
  }
});

test("checksumOf() formats crc32 with 8 lowercase hex digits", () => {
  assert.equal(checksumOf(enc.encode("123456789")), "crc32:cbf43926");
  assert.equal(checksumOf(new Uint8Array(0)), "crc32:00000000");
  assert.match(checksumOf(new Uint8Array([1])), /^crc32:[0-9a-f]{8}$/);
});

test("verifyChecksum() passes on a match and names the file on a mismatch", () => {
  const bytes = enc.encode("hello");
  verifyChecksum(bytes, checksumOf(bytes), "a.arrow");
  const flipped = bytes.slice();
  flipped[2] ^= 1;
  assert.throws(() => verifyChecksum(flipped, checksumOf(bytes), "chk-1/a.arrow"), (e: unknown) => {
    assert.ok(e instanceof ChecksumMismatchError);
    assert.equal(e.code, "ARROWPOINT_CHECKSUM_MISMATCH");
    assert.equal(e.path, "chk-1/a.arrow");
    assert.equal(e.expected, checksumOf(bytes));
    assert.equal(e.actual, checksumOf(flipped));
    return true;
  });
});

test("verifyChecksum() rejects checksums it does not understand", () => {
  for (const bad of ["", "crc32:123", "crc32c:00000000", "sha256:00", "crc32:ABCDEF01"]) {
    assert.throws(() => verifyChecksum(new Uint8Array(0), bad, "x"), SnapshotFormatError);
  }
});
