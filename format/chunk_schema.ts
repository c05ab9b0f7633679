/**
 * The one description of a chunk's columns that encoding, decoding and slicing share: the Arrow schema a
 * {@link StateLayout} gives, the schema-level metadata keys, and the key-group index.
 *
 * Columns, in order (docs/format.md, Chunks): `kg` Uint16 · `key` · `ns` Utf8 · `ukey` · `op` Uint8 · `value`.
 *
 * @module
 */
import {
  Binary,
  Bool,
  type DataType,
  Dictionary,
  Field as ArrowField,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  List,
  Schema,
  Struct,
  TimestampMillisecond,
  Uint16,
  Uint32,
  Uint64,
  Uint8,
  Utf8,
} from "apache-arrow";
import {
  type Field,
  type FieldType,
  KEY_TYPES,
  type KeyType,
  SCALAR_TYPES,
  type ScalarType,
  type StateKind,
  type StateLayout,
  type ValueEncoding,
} from "./state_layout.ts";

/**
 * The chunk format version this module writes and the newest it reads; with the metadata keys below it is
 * what makes a chunk self-describing (docs/format.md, Chunks).
 *
 * @example Reading a chunk's metadata with apache-arrow
 * ```ts
 * import assert from "node:assert/strict";
 * import { tableFromIPC } from "apache-arrow";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { META_FORMAT_VERSION, META_KEY_GROUP_INDEX, META_LAYOUT } from "./chunk_schema.ts";
 * const { bytes } = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "msgpack" } }, { length: 1, keyGroups: [4], keys: ["a"], values: [1] });
 * const meta = tableFromIPC(bytes).schema.metadata;
 * assert.equal(meta.get(META_FORMAT_VERSION), "1");
 * assert.equal(JSON.parse(meta.get(META_LAYOUT)!).kind, "value");
 * assert.equal(meta.get(META_KEY_GROUP_INDEX), '{"keyGroups":[4],"offsets":[0,1]}');
 * ```
 */
export const CHUNK_FORMAT_VERSION: number = 1;
/** Schema metadata key: the chunk's {@link StateLayout} as canonical JSON. */
export const META_LAYOUT: string = "arrowpoint.layout";
/** Schema metadata key: the chunk format version, a decimal integer string (`"1"`). */
export const META_FORMAT_VERSION: string = "arrowpoint.formatVersion";
/** Schema metadata key: the key-group index, JSON `{"keyGroups":[...],"offsets":[...]}` (keyed state only). */
export const META_KEY_GROUP_INDEX: string = "arrowpoint.keyGroupIndex";
/** The name of a list's child field. */
export const LIST_ITEM_NAME: string = "item";
/** Nesting limit of struct/list value types (a guard against hostile layouts). */
export const MAX_TYPE_DEPTH: number = 32;
/** Limit on the number of fields a value type may have, all levels together. */
export const MAX_TYPE_FIELDS: number = 10_000;
/** The largest key group (maxParallelism ≤ 32768). */
export const MAX_KEY_GROUP: number = 32767;

const STATE_KINDS: readonly StateKind[] = ["value", "list", "map", "reducing", "aggregating", "operator-list"];

/** The Arrow-level type of one column or nested field. */
export type ColumnType = ScalarType | "struct" | "list";

/**
 * One column (or nested field) of a chunk: what the Arrow schema says and what the JS values are.
 */
export interface ColumnPlan {
  /** Arrow field name. */
  readonly name: string;
  /** Arrow-level type. `binary` with `msgpack` holds msgpack blobs. */
  readonly type: ColumnType;
  /** Arrow field nullability. */
  readonly nullable: boolean;
  /** Struct fields or the list element (one), else empty. */
  readonly children: readonly ColumnPlan[];
  /** The explicit dictionary id of a `dictionary` column (pre-order over the schema, from 0). */
  readonly dictionaryId?: number;
  /** A `binary` column whose values are msgpack-encoded JS values. */
  readonly msgpack?: boolean;
}

/** Everything needed to write or check a chunk of one layout. */
export interface ChunkPlan {
  /** The normalized layout. */
  readonly layout: StateLayout;
  /** Its canonical JSON, the `arrowpoint.layout` metadata value. */
  readonly layoutJson: string;
  /** Whether the chunk has an `op` column. */
  readonly delta: boolean;
  /** Whether the state is keyed (has `kg` and `key`). */
  readonly keyed: boolean;
  /** The columns in schema order. */
  readonly columns: readonly ColumnPlan[];
  /** Index of each named column in `columns`, -1 when absent. */
  readonly index: { readonly kg: number; readonly key: number; readonly ns: number; readonly ukey: number; readonly op: number; readonly value: number };
  /** The number of dictionaries (ids 0..n-1). */
  readonly dictionaries: number;
}

/** The result of {@link checkLayout}: a normalized layout or what is wrong with the input. */
export type LayoutCheck = { readonly layout: StateLayout; readonly problem?: undefined } | { readonly layout?: undefined; readonly problem: string };

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

class LayoutProblem extends Error {}

function fail(msg: string): never {
  throw new LayoutProblem(msg);
}

function checkFieldType(t: unknown, where: string, depth: number, count: { n: number }): FieldType {
  if (++count.n > MAX_TYPE_FIELDS) fail(`value type has more than ${MAX_TYPE_FIELDS} fields`);
  if (typeof t === "string") {
    if (!(SCALAR_TYPES as readonly string[]).includes(t)) fail(`${where}: unknown type ${JSON.stringify(t)}; expected one of ${SCALAR_TYPES.join(", ")}, a struct or a list`);
    return t as ScalarType;
  }
  if (!isObject(t)) fail(`${where}: a type must be a scalar type name, {struct: [...]} or {list: type}`);
  if (depth >= MAX_TYPE_DEPTH) fail(`${where}: types nest deeper than ${MAX_TYPE_DEPTH} levels`);
  if ("struct" in t) {
    const fields = t.struct;
    if (!Array.isArray(fields) || fields.length === 0) fail(`${where}: struct needs a non-empty array of fields`);
    const seen = new Set<string>();
    const out: Field[] = [];
    for (let i = 0; i < fields.length; i++) {
      const f: unknown = fields[i];
      if (!isObject(f)) fail(`${where}.struct[${i}]: a field must be {name, type, nullable?}`);
      const name = f.name;
      if (typeof name !== "string" || name.length === 0 || name.length > 1024) fail(`${where}.struct[${i}]: field name must be a non-empty string of at most 1024 characters`);
      if (name === "__proto__") fail(`${where}.struct[${i}]: field name "__proto__" is not allowed`);
      if (seen.has(name)) fail(`${where}: duplicate field name ${JSON.stringify(name)}`);
      seen.add(name);
      if (f.nullable !== undefined && typeof f.nullable !== "boolean") fail(`${where}.${name}: nullable must be a boolean`);
      const type = checkFieldType(f.type, `${where}.${name}`, depth + 1, count);
      out.push(f.nullable === true ? { name, type, nullable: true } : { name, type });
    }
    return { struct: out };
  }
  if ("list" in t) return { list: checkFieldType(t.list, `${where}[]`, depth + 1, count) };
  return fail(`${where}: a type must be a scalar type name, {struct: [...]} or {list: type}`);
}

function checkKeyType(k: unknown, what: string): KeyType {
  if (typeof k !== "string" || !(KEY_TYPES as readonly string[]).includes(k)) fail(`${what} must be one of ${KEY_TYPES.join(", ")}: got ${JSON.stringify(k)}`);
  return k as KeyType;
}

/**
 * Validates a layout (from a caller or a chunk's metadata) and returns it normalized: known properties only,
 * in a fixed order, `nullable`/`namespaced` only when true. Unknown properties (say, a state descriptor's
 * `name`) are ignored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkLayout } from "./chunk_schema.ts";
 * assert.equal(checkLayout({ kind: "value", keyType: "string", value: { encoding: "msgpack" } }).problem, undefined);
 * assert.match(checkLayout({ kind: "value", value: { encoding: "msgpack" } }).problem ?? "", /^keyType must be one of string, int32, /);
 * ```
 */
export function checkLayout(x: unknown): LayoutCheck {
  try {
    if (!isObject(x)) fail("a layout must be an object");
    const kind = x.kind;
    if (typeof kind !== "string" || !(STATE_KINDS as readonly string[]).includes(kind)) fail(`kind must be one of ${STATE_KINDS.join(", ")}: got ${JSON.stringify(kind)}`);
    const out: { kind: StateKind; keyType?: KeyType; userKeyType?: KeyType; namespaced?: boolean; value: ValueEncoding } = {
      kind: kind as StateKind,
      value: { encoding: "msgpack" },
    };
    if (kind === "operator-list") {
      if (x.keyType !== undefined || x.userKeyType !== undefined) fail("operator-list state has no keyType or userKeyType");
      if (x.namespaced === true) fail("operator-list state cannot be namespaced");
    } else {
      out.keyType = checkKeyType(x.keyType, "keyType");
      if (kind === "map") out.userKeyType = checkKeyType(x.userKeyType, "userKeyType (map state)");
      else if (x.userKeyType !== undefined) fail("only map state has a userKeyType");
    }
    if (x.namespaced !== undefined && typeof x.namespaced !== "boolean") fail("namespaced must be a boolean");
    if (x.namespaced === true) out.namespaced = true;
    const v = x.value;
    if (!isObject(v)) fail("value must be {encoding: \"arrow\", type} or {encoding: \"msgpack\"}");
    if (v.encoding === "arrow") {
      out.value = { encoding: "arrow", type: checkFieldType(v.type, "value", 0, { n: 0 }) };
    } else if (v.encoding === "msgpack") {
      if (v.jsonSchema !== undefined && !isObject(v.jsonSchema)) fail("value.jsonSchema must be an object");
      out.value = v.jsonSchema === undefined ? { encoding: "msgpack" } : { encoding: "msgpack", jsonSchema: v.jsonSchema };
    } else {
      fail(`value.encoding must be "arrow" or "msgpack": got ${JSON.stringify(v.encoding)}`);
    }
    // Fixed property order: the canonical JSON is the chunk metadata and the encoder cache key.
    const layout: StateLayout = {
      kind: out.kind,
      ...(out.keyType !== undefined ? { keyType: out.keyType } : {}),
      ...(out.userKeyType !== undefined ? { userKeyType: out.userKeyType } : {}),
      ...(out.namespaced ? { namespaced: true } : {}),
      value: out.value,
    };
    return { layout };
  } catch (e) {
    if (e instanceof LayoutProblem) return { problem: e.message };
    throw e;
  }
}

function planOfType(name: string, t: FieldType, nullable: boolean, ids: { next: number }): ColumnPlan {
  if (typeof t === "string") {
    return t === "dictionary" ? { name, type: t, nullable, children: [], dictionaryId: ids.next++ } : { name, type: t, nullable, children: [] };
  }
  if ("struct" in t) {
    return { name, type: "struct", nullable, children: t.struct.map((f) => planOfType(f.name, f.type, f.nullable === true, ids)) };
  }
  return { name, type: "list", nullable, children: [planOfType(LIST_ITEM_NAME, t.list, false, ids)] };
}

function keyColumn(name: string, k: KeyType): ColumnPlan {
  switch (k) {
    case "string":
      return { name, type: "utf8", nullable: false, children: [] };
    case "int32":
    case "int64":
    case "float64":
      return { name, type: k, nullable: false, children: [] };
    case "bytes":
      return { name, type: "binary", nullable: false, children: [] };
    case "msgpack":
      return { name, type: "binary", nullable: false, children: [], msgpack: true };
  }
}

/**
 * The columns of a chunk of `layout` (already normalized by {@link checkLayout}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chunkPlan } from "./chunk_schema.ts";
 * const plan = chunkPlan({ kind: "value", keyType: "string", value: { encoding: "arrow", type: "int64" } }, false);
 * assert.equal(plan.columns.map((c) => `${c.name}:${c.type}`).join(" "), "kg:uint16 key:utf8 value:int64");
 * ```
 */
export function chunkPlan(layout: StateLayout, delta: boolean): ChunkPlan {
  const columns: ColumnPlan[] = [];
  const index = { kg: -1, key: -1, ns: -1, ukey: -1, op: -1, value: -1 };
  const keyed = layout.kind !== "operator-list";
  if (keyed) {
    index.kg = columns.push({ name: "kg", type: "uint16", nullable: false, children: [] }) - 1;
    index.key = columns.push(keyColumn("key", layout.keyType!)) - 1;
  }
  if (layout.namespaced) index.ns = columns.push({ name: "ns", type: "utf8", nullable: false, children: [] }) - 1;
  if (layout.kind === "map") index.ukey = columns.push(keyColumn("ukey", layout.userKeyType!)) - 1;
  if (delta) index.op = columns.push({ name: "op", type: "uint8", nullable: false, children: [] }) - 1;
  const ids = { next: 0 };
  let value: ColumnPlan;
  if (layout.value.encoding === "msgpack") {
    value = { name: "value", type: "binary", nullable: delta, children: [], msgpack: true };
  } else if (layout.kind === "list") {
    value = planOfType("value", { list: layout.value.type }, delta, ids);
  } else {
    value = planOfType("value", layout.value.type, delta, ids);
  }
  index.value = columns.push(value) - 1;
  return { layout, layoutJson: JSON.stringify(layout), delta, keyed, columns, index, dictionaries: ids.next };
}

/**
 * The apache-arrow type of a column (dictionary ids explicit, so identical input gives identical bytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arrowType } from "./chunk_schema.ts";
 * assert.equal(String(arrowType({ name: "n", type: "int64", nullable: false, children: [] })), "Int64");
 * ```
 */
export function arrowType(c: ColumnPlan): DataType {
  switch (c.type) {
    case "bool":
      return new Bool();
    case "int8":
      return new Int8();
    case "int16":
      return new Int16();
    case "int32":
      return new Int32();
    case "int64":
      return new Int64();
    case "uint8":
      return new Uint8();
    case "uint16":
      return new Uint16();
    case "uint32":
      return new Uint32();
    case "uint64":
      return new Uint64();
    case "float32":
      return new Float32();
    case "float64":
      return new Float64();
    case "utf8":
      return new Utf8();
    case "dictionary":
      return new Dictionary(new Utf8(), new Int32(), c.dictionaryId!, false);
    case "binary":
      return new Binary();
    case "timestamp":
      return new TimestampMillisecond("UTC");
    case "struct":
      return new Struct(c.children.map(arrowField));
    case "list":
      return new List(arrowField(c.children[0]));
  }
}

/**
 * The apache-arrow field of a column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arrowField } from "./chunk_schema.ts";
 * assert.equal(arrowField({ name: "kg", type: "uint16", nullable: false, children: [] }).name, "kg");
 * ```
 */
export function arrowField(c: ColumnPlan): ArrowField {
  return new ArrowField(c.name, arrowType(c), c.nullable);
}

/**
 * The apache-arrow schema of a chunk, with its schema-level metadata. Pass `fields` to reuse the field (and
 * dictionary type) objects the column data was built with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arrowSchema, chunkPlan } from "./chunk_schema.ts";
 * const plan = chunkPlan({ kind: "operator-list", value: { encoding: "msgpack" } }, false);
 * assert.equal(arrowSchema(plan, undefined).metadata.get("arrowpoint.formatVersion"), "1");
 * ```
 */
export function arrowSchema(
  plan: ChunkPlan,
  keyGroupIndex: KeyGroupIndex | undefined,
  fields: readonly ArrowField[] = plan.columns.map(arrowField),
): Schema {
  const metadata = new Map<string, string>([
    [META_FORMAT_VERSION, String(CHUNK_FORMAT_VERSION)],
    [META_LAYOUT, plan.layoutJson],
  ]);
  if (plan.keyed) metadata.set(META_KEY_GROUP_INDEX, encodeKeyGroupIndex(keyGroupIndex ?? { keyGroups: [], offsets: [0] }));
  return new Schema([...fields], metadata);
}

/**
 * Where each key group's rows are: key group `keyGroups[i]` holds rows `[offsets[i], offsets[i + 1])`.
 * `keyGroups` ascending, `offsets` has one more entry (the last is the row count).
 */
export interface KeyGroupIndex {
  /** The key groups present, ascending. */
  readonly keyGroups: readonly number[];
  /** Row offsets; `offsets.length === keyGroups.length + 1`. */
  readonly offsets: readonly number[];
}

/**
 * Builds the key-group index of a sorted `kg` column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildKeyGroupIndex } from "./chunk_schema.ts";
 * assert.deepEqual(buildKeyGroupIndex(Uint16Array.of(3, 3, 7), 0, 3), { keyGroups: [3, 7], offsets: [0, 2, 3] });
 * ```
 */
export function buildKeyGroupIndex(kg: ArrayLike<number>, start: number, end: number): KeyGroupIndex {
  const keyGroups: number[] = [];
  const offsets: number[] = [];
  let prev = -1;
  for (let i = start; i < end; i++) {
    const g = kg[i];
    if (g !== prev) {
      keyGroups.push(g);
      offsets.push(i - start);
      prev = g;
    }
  }
  offsets.push(end - start);
  return { keyGroups, offsets };
}

/**
 * The metadata text of a key-group index: `{"keyGroups":[...],"offsets":[...]}`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeKeyGroupIndex } from "./chunk_schema.ts";
 * assert.equal(encodeKeyGroupIndex({ keyGroups: [3, 7], offsets: [0, 2, 3] }), '{"keyGroups":[3,7],"offsets":[0,2,3]}');
 * ```
 */
export function encodeKeyGroupIndex(index: KeyGroupIndex): string {
  return `{"keyGroups":[${index.keyGroups.join(",")}],"offsets":[${index.offsets.join(",")}]}`;
}

/**
 * Parses and checks a key-group index against a chunk's row count. Returns a problem description if it is
 * malformed: not JSON, key groups not strictly ascending or beyond 32767, offsets not starting at 0, not
 * strictly ascending, or not ending at `rows`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseKeyGroupIndex } from "./chunk_schema.ts";
 * assert.deepEqual(parseKeyGroupIndex('{"keyGroups":[3],"offsets":[0,2]}', 2), { keyGroups: [3], offsets: [0, 2] });
 * assert.equal(typeof parseKeyGroupIndex('{"keyGroups":[3],"offsets":[0,5]}', 2), "string");
 * ```
 */
export function parseKeyGroupIndex(text: string, rows: number): KeyGroupIndex | string {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    return "key-group index is not JSON";
  }
  if (!isObject(x) || !Array.isArray(x.keyGroups) || !Array.isArray(x.offsets)) return "key-group index must be {keyGroups: [...], offsets: [...]}";
  const kg = x.keyGroups as unknown[];
  const off = x.offsets as unknown[];
  if (off.length !== kg.length + 1) return "key-group index needs one more offset than key groups";
  let prev = -1;
  for (const g of kg) {
    if (typeof g !== "number" || !Number.isInteger(g) || g <= prev || g > MAX_KEY_GROUP) return "key-group index key groups must be ascending integers in 0..32767";
    prev = g;
  }
  if (off[0] !== 0 || off[off.length - 1] !== rows) return `key-group index offsets must run from 0 to the row count ${rows}`;
  for (let i = 1; i < off.length; i++) {
    const o = off[i];
    if (typeof o !== "number" || !Number.isInteger(o) || o <= (off[i - 1] as number)) return "key-group index offsets must be strictly ascending integers";
  }
  return { keyGroups: kg as number[], offsets: off as number[] };
}

/**
 * The rows `[from, to)` holding key groups `start..end` (inclusive), by binary search in an index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowsOfKeyGroups } from "./chunk_schema.ts";
 * assert.deepEqual(rowsOfKeyGroups({ keyGroups: [3, 7, 9], offsets: [0, 2, 3, 6] }, 4, 9), { from: 2, to: 6 });
 * ```
 */
export function rowsOfKeyGroups(index: KeyGroupIndex, start: number, end: number): { from: number; to: number } {
  const g = index.keyGroups;
  const lower = (x: number): number => {
    let lo = 0;
    let hi = g.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (g[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  if (end < start) return { from: 0, to: 0 };
  const i = lower(start);
  const j = lower(end + 1);
  if (i >= j) return { from: index.offsets[i], to: index.offsets[i] };
  return { from: index.offsets[i], to: index.offsets[j] };
}
