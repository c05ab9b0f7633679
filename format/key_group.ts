/**
 * Key groups: how keyed state is partitioned, exactly as Apache Flink's `KeyGroupRangeAssignment` does it.
 *
 * key → Java `hashCode` → Flink's murmur finalizer → `% maxParallelism` = key group; key group → subtask
 * by `keyGroup * parallelism / maxParallelism`. Changing parallelism moves whole key groups; changing
 * maxParallelism re-hashes every key.
 *
 * @module
 */
import { KeyGroupError } from "./errors.ts";

/** The largest maxParallelism Flink (and arrowpoint) allows: 2^15. */
export const UPPER_BOUND_MAX_PARALLELISM: number = 32768;
/** The smallest default maxParallelism Flink picks. */
export const DEFAULT_LOWER_BOUND_MAX_PARALLELISM: number = 128;

/**
 * A key arrowpoint can partition. Strings and integers hash exactly as Flink's Java keys would.
 */
export type Key = string | number | bigint | boolean | Uint8Array | readonly Key[];

/** An inclusive range of key groups, `[start, end]`. Empty when `end < start`. */
export interface KeyGroupRange {
  /** First key group in the range. */
  readonly start: number;
  /** Last key group in the range (inclusive). */
  readonly end: number;
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const f64 = new Float64Array(1);
const f64Words = new Int32Array(f64.buffer);
// Float64Array shares the platform's endianness; find which 32-bit word is the high one once.
const HI = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f ? 1 : 0;
const LO = 1 - HI;

/** Java `String.hashCode`: over UTF-16 code units, as JS strings are. */
function stringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/** Java `Long.hashCode`: `(int) (v ^ (v >>> 32))`. */
function longHash(v: bigint): number {
  const u = BigInt.asUintN(64, v);
  return Number(BigInt.asIntN(32, u ^ (u >> 32n)));
}

/** `Long.hashCode` for a safe integer, without BigInt. */
function safeIntegerHash(n: number): number {
  const lo = n % 4294967296; // exact for safe integers; sign follows n
  const hi = Math.floor(n / 4294967296);
  return ((lo | 0) ^ (hi | 0)) | 0;
}

/** Java `Double.hashCode`: Long.hashCode of doubleToLongBits (NaN canonicalised). */
function doubleHash(n: number): number {
  f64[0] = Number.isNaN(n) ? NaN : n;
  if (Number.isNaN(n)) return 0x7ff80000; // doubleToLongBits(NaN) = 0x7ff8000000000000
  return (f64Words[LO] ^ f64Words[HI]) | 0;
}

/**
 * The Java `hashCode` arrowpoint uses for a key. For strings and integers it equals what Java computes for
 * `String`, `Integer` (int32 numbers) and `Long` (other safe integers, bigints in int64 range), so key
 * groups match Flink. Other keys get a fixed, documented hash (docs/format.md):
 * non-integer numbers → `Double.hashCode`; booleans → `Boolean.hashCode` (1231/1237);
 * `Uint8Array` → `Arrays.hashCode(byte[])` over signed bytes; arrays (tuples) → `List.hashCode`
 * (`h = 31 * h + hash(e)`, from 1). Never depends on the process, runtime or arrowpoint version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { javaHashCode } from "./key_group.ts";
 * assert.equal(javaHashCode("hello"), 99162322); // as "hello".hashCode() in Java
 * ```
 */
export function javaHashCode(key: Key): number {
  switch (typeof key) {
    case "string":
      return stringHash(key);
    case "number":
      if ((key | 0) === key && !Object.is(key, -0)) return key; // Integer.hashCode
      if (Number.isSafeInteger(key)) return safeIntegerHash(key);
      if (Object.is(key, -0)) return 0;
      return doubleHash(key);
    case "bigint":
      if (key < INT64_MIN || key > INT64_MAX) {
        throw new KeyGroupError(`Cannot hash bigint key ${key} as it is outside the int64 range; use a string key instead`);
      }
      return longHash(key);
    case "boolean":
      return key ? 1231 : 1237;
    default:
      break;
  }
  if (key instanceof Uint8Array) {
    let h = 1;
    for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + ((key[i] << 24) >> 24)) | 0;
    return h;
  }
  if (Array.isArray(key)) {
    let h = 1;
    for (const e of key as readonly Key[]) h = (Math.imul(h, 31) + javaHashCode(e)) | 0;
    return h;
  }
  throw new KeyGroupError(
    `Cannot hash key of type ${key === null ? "null" : typeof key} as keys must be string, number, bigint, boolean, Uint8Array or an array of those`,
  );
}

/**
 * Flink's `MathUtils.murmurHash`: the murmur3 finalizer applied to one int, made non-negative.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { murmurHash } from "./key_group.ts";
 * assert.equal(murmurHash(0) >= 0, true);
 * ```
 */
export function murmurHash(code: number): number {
  let h = Math.imul(code | 0, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  h = Math.imul(h, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  h ^= 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  if (h >= 0) return h;
  if (h !== -2147483648) return -h;
  return 0;
}

function checkMaxParallelism(maxParallelism: number): void {
  if (!Number.isInteger(maxParallelism) || maxParallelism < 1 || maxParallelism > UPPER_BOUND_MAX_PARALLELISM) {
    throw new KeyGroupError(
      `Cannot use maxParallelism as it must be an integer in 1..${UPPER_BOUND_MAX_PARALLELISM}: current value is ${maxParallelism}`,
    );
  }
}

function checkParallelism(parallelism: number, maxParallelism: number): void {
  checkMaxParallelism(maxParallelism);
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > maxParallelism) {
    throw new KeyGroupError(
      `Cannot use parallelism as it must be an integer in 1..maxParallelism (${maxParallelism}): current value is ${parallelism}`,
    );
  }
}

/**
 * The key group of a hash code already computed (`javaHashCode`): `murmurHash(hash) % maxParallelism`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assignKeyGroup, keyGroupForHash, javaHashCode } from "./key_group.ts";
 * assert.equal(keyGroupForHash(javaHashCode("a"), 128), assignKeyGroup("a", 128));
 * ```
 */
export function keyGroupForHash(hash: number, maxParallelism: number): number {
  return murmurHash(hash) % maxParallelism;
}

/**
 * The key group of a key, exactly as Flink's `KeyGroupRangeAssignment.assignToKeyGroup`.
 *
 * @example
 * ```ts
 * import { assignKeyGroup } from "./key_group.ts";
 * const kg = assignKeyGroup("user-000123", 128); // 0..127, the same as Flink for this String key
 * ```
 */
export function assignKeyGroup(key: Key, maxParallelism: number): number {
  checkMaxParallelism(maxParallelism);
  return murmurHash(javaHashCode(key)) % maxParallelism;
}

/**
 * The subtask (operator index) that owns a key group: `keyGroup * parallelism / maxParallelism`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { operatorIndexFor } from "./key_group.ts";
 * assert.equal(operatorIndexFor(127, 4, 128), 3);
 * ```
 */
export function operatorIndexFor(keyGroup: number, parallelism: number, maxParallelism: number): number {
  checkParallelism(parallelism, maxParallelism);
  if (!Number.isInteger(keyGroup) || keyGroup < 0 || keyGroup >= maxParallelism) {
    throw new KeyGroupError(
      `Cannot find the subtask of key group ${keyGroup} as it must be an integer in 0..${maxParallelism - 1}`,
    );
  }
  return Math.floor((keyGroup * parallelism) / maxParallelism);
}

/**
 * The contiguous, inclusive key-group range owned by subtask `operatorIndex`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyGroupRangeFor } from "./key_group.ts";
 * assert.deepEqual(keyGroupRangeFor(1, 3, 128), { start: 43, end: 85 });
 * ```
 */
export function keyGroupRangeFor(operatorIndex: number, parallelism: number, maxParallelism: number): KeyGroupRange {
  checkParallelism(parallelism, maxParallelism);
  if (!Number.isInteger(operatorIndex) || operatorIndex < 0 || operatorIndex >= parallelism) {
    throw new KeyGroupError(
      `Cannot compute the key-group range of subtask ${operatorIndex} as it must be an integer in 0..${parallelism - 1}`,
    );
  }
  const start = Math.floor((operatorIndex * maxParallelism + parallelism - 1) / parallelism);
  const end = Math.floor(((operatorIndex + 1) * maxParallelism - 1) / parallelism);
  return { start, end };
}

function roundUpToPowerOfTwo(x: number): number {
  let p = 1;
  while (p < x) p *= 2;
  return p;
}

/**
 * Flink's default maxParallelism for an operator parallelism: the next power of two of
 * `parallelism * 1.5`, at least 128 and at most 32768.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultMaxParallelism } from "./key_group.ts";
 * assert.equal(defaultMaxParallelism(4), 128);
 * assert.equal(defaultMaxParallelism(200), 512);
 * ```
 */
export function defaultMaxParallelism(parallelism: number): number {
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > UPPER_BOUND_MAX_PARALLELISM) {
    throw new KeyGroupError(
      `Cannot compute a default maxParallelism as parallelism must be an integer in 1..${UPPER_BOUND_MAX_PARALLELISM}: current value is ${parallelism}`,
    );
  }
  const p = roundUpToPowerOfTwo(parallelism + Math.floor(parallelism / 2));
  return Math.min(Math.max(p, DEFAULT_LOWER_BOUND_MAX_PARALLELISM), UPPER_BOUND_MAX_PARALLELISM);
}

/**
 * Whether a key group lies in a range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rangeContains } from "./key_group.ts";
 * assert.equal(rangeContains({ start: 0, end: 9 }, 9), true);
 * ```
 */
export function rangeContains(range: KeyGroupRange, keyGroup: number): boolean {
  return keyGroup >= range.start && keyGroup <= range.end;
}

/**
 * Whether two key-group ranges share at least one key group.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rangesOverlap } from "./key_group.ts";
 * assert.equal(rangesOverlap({ start: 0, end: 9 }, { start: 9, end: 20 }), true);
 * ```
 */
export function rangesOverlap(a: KeyGroupRange, b: KeyGroupRange): boolean {
  return a.start <= b.end && b.start <= a.end && a.start <= a.end && b.start <= b.end;
}
