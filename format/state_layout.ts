/**
 * The one description of a state's columns that the manifest records and that chunk encoding and decoding
 * share: key type, value encoding (typed Arrow columns or msgpack), and which optional columns exist.
 *
 * @module
 */

/**
 * How keys are stored in the `key` column of a chunk.
 * - `string` → Arrow Utf8
 * - `int32` → Arrow Int32 (JS number)
 * - `int64` → Arrow Int64 (JS bigint)
 * - `float64` → Arrow Float64 (JS number; any number key)
 * - `bytes` → Arrow Binary (Uint8Array)
 * - `msgpack` → Arrow Binary holding msgpack (tuples and other composite keys)
 */
export type KeyType = "string" | "int32" | "int64" | "float64" | "bytes" | "msgpack";

/** All key types, as a runtime list. */
export const KEY_TYPES: readonly KeyType[] = ["string", "int32", "int64", "float64", "bytes", "msgpack"];

/**
 * A scalar Arrow type a value field can have.
 * `dictionary` is a dictionary-encoded Utf8 (Int32 indices), for low-cardinality labels.
 * `timestamp` is milliseconds since the epoch (Arrow Timestamp(ms), JS number).
 * `int64`/`uint64` are JS bigints.
 */
export type ScalarType =
  | "bool"
  | "int8"
  | "int16"
  | "int32"
  | "int64"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "float32"
  | "float64"
  | "utf8"
  | "dictionary"
  | "binary"
  | "timestamp";

/** All scalar types, as a runtime list. */
export const SCALAR_TYPES: readonly ScalarType[] = [
  "bool",
  "int8",
  "int16",
  "int32",
  "int64",
  "uint8",
  "uint16",
  "uint32",
  "uint64",
  "float32",
  "float64",
  "utf8",
  "dictionary",
  "binary",
  "timestamp",
];

/** A field type: a scalar, a struct of named fields, or a list of one element type. */
export type FieldType = ScalarType | { readonly struct: readonly Field[] } | { readonly list: FieldType };

/** A named, typed field of a struct value. Non-nullable unless `nullable` is true. */
export interface Field {
  /** The field name (JS property name). */
  readonly name: string;
  /** Its Arrow type. */
  readonly type: FieldType;
  /** Whether `null`/`undefined` is allowed. */
  readonly nullable?: boolean;
}

/**
 * How a state's values are encoded.
 * - `{ encoding: "arrow", type }`: typed Arrow columns (`type` is usually a struct; a scalar is allowed).
 * - `{ encoding: "msgpack", jsonSchema? }`: msgpack bytes in a Binary column, optionally validated with a
 *   JSON Schema (ajv) on write and migration.
 */
export type ValueEncoding =
  | { readonly encoding: "arrow"; readonly type: FieldType }
  | { readonly encoding: "msgpack"; readonly jsonSchema?: Readonly<Record<string, unknown>> };

/** The kind of a state. Operator (non-keyed) state is always `operator-list`. */
export type StateKind = "value" | "list" | "map" | "reducing" | "aggregating" | "operator-list";

/** How operator state is redistributed when parallelism changes. */
export type Redistribution = "split" | "union" | "broadcast";

/**
 * The column layout of one state's chunks: everything needed to encode or decode them.
 *
 * Chunk columns, in this order (docs/format.md):
 * - `kg` Uint16: key group (keyed state only), rows sorted ascending by it
 * - `key` by `keyType` (keyed state only)
 * - `ns` Utf8 (only when `namespaced`)
 * - `ukey` by `userKeyType` (map state only)
 * - `op` Uint8: 0 upsert, 1 delete (delta chunks only)
 * - `value` by `value` encoding; for list state an Arrow List of the element type (or one msgpack array);
 *   null on delete rows
 */
export interface StateLayout {
  /** The state's kind. */
  readonly kind: StateKind;
  /** Key type for keyed state; absent for operator state. */
  readonly keyType?: KeyType;
  /** User-key type, map state only. */
  readonly userKeyType?: KeyType;
  /** Whether rows carry a namespace column. */
  readonly namespaced?: boolean;
  /** How values (list state: elements) are encoded. */
  readonly value: ValueEncoding;
}

/** The msgpack value encoding without a schema: the default for states that declare none. */
export const MSGPACK_VALUES: ValueEncoding = { encoding: "msgpack" };

/**
 * The value range of each narrow integer scalar type (inclusive): the one table the encoder and
 * the migration validator both check against.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INTEGER_RANGES } from "./state_layout.ts";
 * assert.deepEqual(INTEGER_RANGES.uint8, [0, 255]);
 * ```
 */
export const INTEGER_RANGES: Readonly<Record<"int8" | "int16" | "int32" | "uint8" | "uint16" | "uint32", readonly [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
};

function sameType(a: FieldType, b: FieldType): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  if ("struct" in a) {
    if (!("struct" in b) || a.struct.length !== b.struct.length) return false;
    return a.struct.every((f, i) => f.name === b.struct[i].name && (f.nullable === true) === (b.struct[i].nullable === true) && sameType(f.type, b.struct[i].type));
  }
  return "list" in b && sameType(a.list, b.list);
}

/**
 * Whether two layouts give chunks the same columns (the one layout-equality rule): kind, key types,
 * namespace, value encoding and Arrow type (field names, order and nullability). A msgpack value's JSON
 * Schema is not part of the columns: it may change without a rewrite (its schema version says so).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameLayout } from "./state_layout.ts";
 * const a = { kind: "value" as const, keyType: "string" as const, value: { encoding: "msgpack" as const } };
 * assert.equal(sameLayout(a, { ...a }), true);
 * assert.equal(sameLayout(a, { ...a, keyType: "int32" }), false);
 * ```
 */
export function sameLayout(a: StateLayout, b: StateLayout): boolean {
  if (a.kind !== b.kind || a.keyType !== b.keyType || a.userKeyType !== b.userKeyType || (a.namespaced === true) !== (b.namespaced === true)) return false;
  if (a.value.encoding !== b.value.encoding) return false;
  return a.value.encoding === "msgpack" || sameType(a.value.type, (b.value as { type: FieldType }).type);
}
