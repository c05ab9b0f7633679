/**
 * Byte helpers shared by the backends: always plain `Uint8Array`s (never Node `Buffer`s, whose `slice`
 * shares memory), copied when ownership changes hands.
 *
 * @module
 */

/**
 * A fresh copy of `bytes` as a plain `Uint8Array` (also for a Node `Buffer`, whose `slice` would share memory).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyBytes } from "./bytes.ts";
 * const a = new Uint8Array([1, 2]);
 * const b = copyBytes(a);
 * a[0] = 9;
 * assert.equal(b[0], 1);
 * ```
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/**
 * A plain `Uint8Array` view of the same memory (turns a `Buffer` into a `Uint8Array` without copying).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { asUint8Array } from "./bytes.ts";
 * assert.equal(asUint8Array(new Uint8Array([1])).constructor.name, "Uint8Array");
 * ```
 */
export function asUint8Array(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Concatenates chunks into one new `Uint8Array`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { concatBytes } from "./bytes.ts";
 * assert.deepEqual(concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]), new Uint8Array([1, 2, 3]));
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
