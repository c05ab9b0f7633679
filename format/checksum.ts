/**
 * Checksums of snapshot files: `crc32:` + 8 lowercase hex digits of the CRC-32 (IEEE 802.3, the zlib/PNG
 * polynomial `0xEDB88320` reflected) of the file's bytes as stored.
 *
 * CRC-32 is computed by `node:zlib`'s native `crc32` (Node ≥ 20.15, Deno 2), which measured 7 GB/s under Node
 * and ~39 GB/s under Deno on a 37 MB chunk, against 2.1 GB/s for the best pure-JS table version
 * (slicing-by-8) and 0.5 GB/s for a byte-at-a-time table (bench in docs/format.md, Chunks). The JS version is
 * kept as the fallback for Node 20.0–20.14, which lack `zlib.crc32`; both give identical values.
 *
 * @module
 */
import * as zlib from "node:zlib";
import { ChecksumMismatchError, SnapshotFormatError } from "./errors.ts";

/** The checksum algorithm arrowpoint writes, the prefix of every checksum string. */
export const CHECKSUM_ALGORITHM: "crc32" = "crc32";

const TABLE: Int32Array = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * CRC-32 in JavaScript, slicing-by-8 (2 GB/s here). The fallback when `node:zlib` has no `crc32`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32Js } from "./checksum.ts";
 * assert.equal(crc32Js(new TextEncoder().encode("123456789")).toString(16), "cbf43926");
 * ```
 */
export function crc32Js(bytes: Uint8Array, initial = 0): number {
  const t = TABLE;
  let c = ~initial;
  let i = 0;
  const end8 = bytes.length - 8;
  for (; i <= end8; i += 8) {
    const lo = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^ t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^ t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]];
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc32Fn = (data: Uint8Array, value?: number) => number;
const nativeCrc32: Crc32Fn | undefined = typeof (zlib as { crc32?: unknown }).crc32 === "function"
  ? (zlib as unknown as { crc32: Crc32Fn }).crc32
  : undefined;

/**
 * The CRC-32 of `bytes` as an unsigned 32-bit number, using the native implementation when the runtime has one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crc32 } from "./checksum.ts";
 * assert.equal(crc32(new TextEncoder().encode("123456789")) === 0xcbf43926, true);
 * ```
 */
export function crc32(bytes: Uint8Array): number {
  return nativeCrc32 ? nativeCrc32(bytes) >>> 0 : crc32Js(bytes);
}

/**
 * The checksum string of a file's bytes as stored: `"crc32:"` + 8 lowercase hex digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checksumOf } from "./checksum.ts";
 * assert.equal(checksumOf(new TextEncoder().encode("123456789")), "crc32:cbf43926");
 * ```
 */
export function checksumOf(bytes: Uint8Array): string {
  return CHECKSUM_ALGORITHM + ":" + crc32(bytes).toString(16).padStart(8, "0");
}

const CHECKSUM_PATTERN = /^crc32:[0-9a-f]{8}$/;

/**
 * Checks `bytes` against the checksum a manifest records for the file at `path`.
 *
 * @throws {ChecksumMismatchError} when the bytes do not match.
 * @throws {SnapshotFormatError} when `expected` is not a checksum this version understands.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checksumOf, verifyChecksum } from "./checksum.ts";
 * const bytes = new Uint8Array([1, 2, 3]);
 * verifyChecksum(bytes, checksumOf(bytes), "chk-1/a.arrow"); // passes
 * try {
 *   verifyChecksum(new Uint8Array([1, 2, 4]), checksumOf(bytes), "chk-1/a.arrow");
 * } catch (e) {
 *   assert.equal((e as Error).name, "ChecksumMismatchError");
 * }
 * ```
 */
export function verifyChecksum(bytes: Uint8Array, expected: string, path: string): void {
  if (typeof expected !== "string" || !CHECKSUM_PATTERN.test(expected)) {
    throw new SnapshotFormatError(
      `unsupported checksum ${JSON.stringify(expected)}: expected "crc32:" and 8 lowercase hex digits`,
      { path, field: "checksum" },
    );
  }
  const actual = checksumOf(bytes);
  if (actual !== expected) throw new ChecksumMismatchError(path, expected, actual);
}
