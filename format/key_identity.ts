/**
 * The one definition of what a key is, beyond its bytes: its identity (equal keys, equal identity, whatever
 * their object identity), whether it fits a key type, and how it is printed in messages.
 *
 * @module
 */
import type { KeyType } from "./state_layout.ts";

/** A primitive that identifies a key (or user key, or namespace) in a `Map`. */
export type KeyId = string | number | bigint | boolean;

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

function canonical(v: unknown): string {
  switch (typeof v) {
    case "string":
      return "s" + JSON.stringify(v);
    case "number":
      return "n" + (Object.is(v, -0) ? "0" : String(v));
    case "bigint":
      return "b" + v;
    case "boolean":
      return v ? "T" : "F";
  }
  if (v instanceof Uint8Array) {
    let s = "u";
    for (let i = 0; i < v.length; i++) s += (v[i] < 16 ? "0" : "") + v[i].toString(16);
    return s;
  }
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v === null || v === undefined) return "_";
  return "j" + JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));
}

/**
 * The `Map` identity of a key: primitives as themselves (a `Map` tells `1`, `"1"` and `1n` apart), byte
 * arrays, tuples and other values as a canonical string no primitive string key can equal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyIdentity } from "./key_identity.ts";
 * assert.equal(keyIdentity("a"), "a");
 * assert.equal(keyIdentity(["a", 1]) === keyIdentity(["a", 1]), true);
 * ```
 */
export function keyIdentity(key: unknown): KeyId {
  const t = typeof key;
  if (t === "string" || t === "number" || t === "bigint" || t === "boolean") return key as KeyId;
  return "\u0000\u0001" + canonical(key);
}

/**
 * The identity of a row of a keyed state: its key, and its namespace (namespaced state) and user key (map
 * state) when the state has them. A plain key's row identity is its key identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowIdentity } from "./key_identity.ts";
 * assert.equal(rowIdentity("k", "ns", 1, true, true) === rowIdentity("k", "ns", 1, true, true), true);
 * ```
 */
export function rowIdentity(key: unknown, ns: string | undefined, ukey: unknown, namespaced: boolean, map: boolean): KeyId {
  if (!namespaced && !map) return keyIdentity(key);
  let id = canonical(key);
  if (namespaced) id += "\u0000" + (ns ?? "");
  if (map) id += "\u0000" + canonical(ukey);
  return id;
}

/**
 * Whether a JS value is a key of a key type: `int32` an integer number in int32 range, `int64` a bigint in
 * int64 range, `msgpack` anything but null/undefined, functions and symbols.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyFits } from "./key_identity.ts";
 * assert.equal(keyFits("int64", 5n), true);
 * assert.equal(keyFits("int64", 1n << 63n), false);
 * assert.equal(keyFits("int32", 1.5), false);
 * ```
 */
export function keyFits(keyType: KeyType, key: unknown): boolean {
  switch (keyType) {
    case "string":
      return typeof key === "string";
    case "int32":
      return typeof key === "number" && (key | 0) === key;
    case "int64":
      return typeof key === "bigint" && key >= INT64_MIN && key <= INT64_MAX;
    case "float64":
      return typeof key === "number";
    case "bytes":
      return key instanceof Uint8Array;
    case "msgpack":
      return key !== undefined && key !== null && typeof key !== "function" && typeof key !== "symbol";
  }
}

/**
 * A short printable form of a key (or any value) for messages and samples: JSON-like, strings quoted,
 * bigints as `123n`, bytes as `bytes(<hex>)`, cut at `max` characters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyText } from "./key_identity.ts";
 * assert.equal(keyText(42n), "42n");
 * assert.equal(keyText(["a", 1]), '["a",1]');
 * assert.equal(keyText(new Uint8Array([1, 255])), "bytes(01ff)");
 * ```
 */
export function keyText(v: unknown, max = 120): string {
  let s: string;
  if (typeof v === "string") s = JSON.stringify(v);
  else if (typeof v === "bigint") s = `${v}n`;
  else if (v instanceof Uint8Array) s = `bytes(${[...v.subarray(0, 32)].map((b) => b.toString(16).padStart(2, "0")).join("")}${v.length > 32 ? "…" : ""})`;
  else {
    try {
      s = JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x instanceof Uint8Array ? `bytes(${x.length})` : x)) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}
