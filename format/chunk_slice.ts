/**
 * Rewriting a chunk at the Arrow level: slicing it to a key-group range (rescaling) and changing its value
 * column's schema (migrations). The validated column buffers are wrapped as apache-arrow `Data`
 * (zero-copy), sliced, re-typed and re-serialized, so no value becomes a JS value: a renamed or dropped
 * field costs nothing per row, an added field is one constant vector, a widened field one typed-array
 * conversion, utf8 → dictionary one dictionary build. A key-group slice of a chunk (a shard's or a rescale's
 * part) skips apache-arrow: its columns are sliced as views (bitmaps shifted, offsets rebased) and the file
 * is written from them directly.
 *
 * @module
 */
import { type Data, type DataType, makeData, makeVector } from "apache-arrow";
import type { ChunkFile, ColumnData, ColumnValues } from "./chunk_ipc.ts";
import { arrowField, buildKeyGroupIndex, chunkPlan, type ColumnPlan } from "./chunk_schema.ts";
import { INTEGER_RANGES, type ScalarType, type StateLayout } from "./state_layout.ts";
import { javaHashCode, keyGroupForHash, murmurHash } from "./key_group.ts";
import type { Compression } from "./compression.ts";
import { type ChunkReadInfo, checkRange, keyGroupRows, openChunk } from "./decode_chunk.ts";
import { type EncodedChunk, finishChunk } from "./encode_chunk.ts";
import { ArrowpointError, SnapshotFormatError } from "./errors.ts";
import { relabelChunk, schemaOnly, writeChunkColumns } from "./_chunk_relabel.ts";
import { Arena } from "./_scratch.ts";

/** Wraps a validated column as apache-arrow Data over the same memory. */
function toArrowData(col: ColumnData, type: DataType): Data {
  const base = { type, length: col.length, nullCount: col.nullCount, nullBitmap: col.validity ?? undefined };
  switch (col.plan.type) {
    case "struct":
      return makeData({ ...base, children: col.children.map((c, i) => toArrowData(c, type.children[i].type as DataType)) } as never);
    case "list":
      return makeData({ ...base, valueOffsets: col.offsets!, child: toArrowData(col.children[0], type.children[0].type as DataType) } as never);
    case "utf8":
    case "binary":
      return makeData({ ...base, valueOffsets: col.offsets!, data: col.values! } as never);
    case "dictionary": {
      const dictType = (type as DataType & { dictionary: DataType }).dictionary;
      const dictionary = makeVector(toArrowData(col.dictionary!, dictType));
      return makeData({ ...base, data: col.values!, dictionary } as never);
    }
    default:
      return makeData({ ...base, data: col.values! } as never);
  }
}

/**
 * Where a field of a rewritten struct value comes from: an existing field (by its old name; widened to
 * `to` when given), or one constant for every row.
 */
export type FieldSource = { readonly from: string; readonly to?: ScalarType } | { readonly constant: unknown };

/**
 * How a chunk's value column is rebuilt (for list state: its element): a struct value's fields, in the new
 * order, each from a {@link FieldSource}; or a scalar value widened to `scalar`.
 */
export type ValueMap = { readonly fields: readonly FieldSource[] } | { readonly scalar: ScalarType };

const INT_TYPES = new Set(["int8", "int16", "int32", "uint8", "uint16", "uint32"]);

/**
 * Whether a column of type `from` converts to `to` exactly, as a typed-array conversion (or a dictionary
 * build): narrower integers to int32 (when they fit) / int64 / float64, float32 to float64, utf8 to
 * dictionary.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { columnConvertible } from "./chunk_slice.ts";
 * assert.equal(columnConvertible("int16", "int64"), true);
 * assert.equal(columnConvertible("int64", "float64"), false);
 * ```
 */
export function columnConvertible(from: ScalarType, to: ScalarType): boolean {
  if (from === to) return true;
  if (from === "utf8") return to === "dictionary";
  if (from === "float32") return to === "float64";
  if (!INT_TYPES.has(from)) return false;
  if (to === "int64" || to === "float64") return true;
  return to === "int32" && from !== "uint32";
}

/**
 * Whether `value` can be the constant of a column of scalar type `type` (nullable or not), exactly as the
 * encoder would accept it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { constantFits } from "./chunk_slice.ts";
 * assert.equal(constantFits("utf8", false, "eu"), true);
 * assert.equal(constantFits("int8", false, 300), false);
 * assert.equal(constantFits("int32", true, null), true);
 * ```
 */
export function constantFits(type: ScalarType, nullable: boolean, value: unknown): boolean {
  if (value === null || value === undefined) return nullable;
  switch (type) {
    case "bool":
      return typeof value === "boolean";
    case "utf8":
    case "dictionary":
      return typeof value === "string" && !/\p{Cs}/u.test(value); // no lone surrogate
    case "binary":
      return value instanceof Uint8Array;
    case "float32":
    case "float64":
      return typeof value === "number";
    case "int64":
      return (typeof value === "bigint" && value >= -(1n << 63n) && value < 1n << 63n) || (Number.isSafeInteger(value));
    case "uint64":
      return (typeof value === "bigint" && value >= 0n && value < 1n << 64n) || (Number.isSafeInteger(value) && (value as number) >= 0);
    case "timestamp":
      return Number.isSafeInteger(value) || (value instanceof Date && Number.isSafeInteger(value.getTime()));
    default: {
      const [lo, hi] = INTEGER_RANGES[type as keyof typeof INTEGER_RANGES];
      return Number.isInteger(value) && (value as number) >= lo && (value as number) <= hi;
    }
  }
}

const utf8 = new TextEncoder();

function typedArrayOf(type: string, n: number): ColumnValues {
  switch (type) {
    case "int8":
      return new Int8Array(n);
    case "int16":
      return new Int16Array(n);
    case "int32":
    case "dictionary":
      return new Int32Array(n);
    case "uint8":
      return new Uint8Array(n);
    case "uint16":
      return new Uint16Array(n);
    case "uint32":
      return new Uint32Array(n);
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int64":
    case "timestamp":
      return new BigInt64Array(n);
    case "uint64":
      return new BigUint64Array(n);
  }
  throw new TypeError(`Cannot make a typed array of ${type}`);
}

function repeatedBytes(bytes: Uint8Array, n: number): { offsets: Int32Array; values: Uint8Array } {
  const offsets = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) offsets[i] = i * bytes.length;
  const values = new Uint8Array(n * bytes.length);
  if (values.length) {
    values.set(bytes, 0);
    for (let filled = bytes.length; filled < values.length; filled *= 2) values.copyWithin(filled, 0, Math.min(filled, values.length - filled));
  }
  return { offsets, values };
}

function plainColumn(plan: ColumnPlan, length: number, parts: Partial<ColumnData>): ColumnData {
  return { plan, length, nullCount: 0, validity: null, offsets: null, values: null, children: [], dictionary: null, ...parts };
}

/** One constant for `length` rows, as a column (see {@link constantFits}). */
function constantColumn(plan: ColumnPlan, value: unknown, length: number): ColumnData {
  const type = plan.type;
  if (value === null || value === undefined) {
    const validity = new Uint8Array(Math.ceil(length / 8));
    if (type === "utf8" || type === "binary") return plainColumn(plan, length, { nullCount: length, validity, offsets: new Int32Array(length + 1), values: new Uint8Array(0) });
    if (type === "bool") return plainColumn(plan, length, { nullCount: length, validity, values: new Uint8Array(validity.length) });
    if (type === "dictionary") {
      const dictionary = plainColumn({ name: "dictionary", type: "utf8", nullable: false, children: [] }, 0, { offsets: new Int32Array(1), values: new Uint8Array(0) });
      return plainColumn(plan, length, { nullCount: length, validity, values: new Int32Array(length), dictionary });
    }
    return plainColumn(plan, length, { nullCount: length, validity, values: typedArrayOf(type, length) });
  }
  switch (type) {
    case "bool":
      return plainColumn(plan, length, { values: new Uint8Array(Math.ceil(length / 8)).fill(value ? 0xff : 0) });
    case "utf8":
    case "binary":
      return plainColumn(plan, length, repeatedBytes(typeof value === "string" ? utf8.encode(value) : (value as Uint8Array), length));
    case "dictionary": {
      const word = repeatedBytes(utf8.encode(value as string), 1);
      const dictionary = plainColumn({ name: "dictionary", type: "utf8", nullable: false, children: [] }, 1, word);
      return plainColumn(plan, length, { values: new Int32Array(length), dictionary });
    }
    case "int64":
    case "uint64":
    case "timestamp": {
      const values = typedArrayOf(type, length) as BigInt64Array;
      values.fill(BigInt(value instanceof Date ? value.getTime() : (value as number | bigint)));
      return plainColumn(plan, length, { values });
    }
    default: {
      const values = typedArrayOf(type, length) as Float64Array;
      values.fill(value as number);
      return plainColumn(plan, length, { values });
    }
  }
}

/** A column converted to another scalar type (see {@link columnConvertible}). */
function convertColumn(col: ColumnData, plan: ColumnPlan): ColumnData {
  const from = col.plan.type;
  if (from === plan.type) return { ...col, plan };
  if (from === "utf8" && plan.type === "dictionary") {
    const off = col.offsets!;
    const data = col.values as Uint8Array;
    const index = new Map<string, number>();
    const words: Uint8Array[] = [];
    const values = new Int32Array(col.length);
    const dec = new TextDecoder();
    for (let i = 0; i < col.length; i++) {
      if (col.validity && ((col.validity[i >> 3] >> (i & 7)) & 1) === 0) continue;
      const bytes = data.subarray(off[i], off[i + 1]);
      const word = dec.decode(bytes);
      let at = index.get(word);
      if (at === undefined) {
        index.set(word, (at = words.length));
        words.push(bytes);
      }
      values[i] = at;
    }
    const offsets = new Int32Array(words.length + 1);
    for (let i = 0; i < words.length; i++) offsets[i + 1] = offsets[i] + words[i].length;
    const bytes = new Uint8Array(offsets[words.length]);
    for (let i = 0; i < words.length; i++) bytes.set(words[i], offsets[i]);
    const dictionary = plainColumn({ name: "dictionary", type: "utf8", nullable: false, children: [] }, words.length, { offsets, values: bytes });
    return { ...col, plan, offsets: null, values, dictionary };
  }
  const src = col.values as Exclude<ColumnValues, BigInt64Array | BigUint64Array>;
  const out = typedArrayOf(plan.type, col.length);
  if (out instanceof BigInt64Array) for (let i = 0; i < col.length; i++) out[i] = BigInt(src[i]);
  else (out as Float64Array).set(src.subarray(0, col.length));
  return { ...col, plan, values: out };
}

function mapValue(col: ColumnData, plan: ColumnPlan, map: ValueMap): ColumnData {
  if (plan.type === "list") return { ...col, plan, children: [mapValue(col.children[0], plan.children[0], map)] };
  if ("scalar" in map) return convertColumn(col, plan);
  const children = plan.children.map((cp, i) => {
    const src = map.fields[i];
    if ("constant" in src) return constantColumn(cp, src.constant, col.length);
    const child = col.children.find((k) => k.plan.name === src.from);
    if (!child) throw new TypeError(`Cannot rewrite chunk as its value has no field ${JSON.stringify(src.from)}`);
    return src.to ? convertColumn(child, cp) : { ...child, plan: cp };
  });
  return { ...col, plan, children };
}

/** What {@link rewriteChunk} changes; everything omitted stays. */
export interface ChunkRewrite {
  /** Keep only the rows of these key groups. */
  readonly range?: { readonly start: number; readonly end: number };
  /** The new layout (its value column differs from the chunk's; keys and kinds stay). */
  readonly layout?: StateLayout;
  /** How the new value column is made from the old one (required with `layout` unless only names change). */
  readonly value?: ValueMap;
}

/**
 * A new chunk from an existing one at the Arrow level: sliced to a key-group range, its value column
 * re-typed by a {@link ValueMap}, with no row becoming a JS value. The result is checksummed and
 * compressed as `options` says (default `"none"`).
 *
 * @throws {SnapshotFormatError} / {ChecksumMismatchError} for bad input bytes, as `decodeChunk`.
 * @throws {TypeError} for operator-state chunks with a range, or a malformed range or map.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { decodeChunk } from "./decode_chunk.ts";
 * import { rewriteChunk } from "./chunk_slice.ts";
 * const c = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }] } } },
 *   { length: 1, keyGroups: [0], keys: ["a"], values: [{ n: 1 }] });
 * const layout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "region", type: "utf8" }] } } } as const;
 * const out = rewriteChunk(c.bytes, {}, { layout, value: { fields: [{ from: "n", to: "int64" }, { constant: "eu" }] } });
 * assert.deepEqual(decodeChunk(out.bytes).values, [{ count: 1n, region: "eu" }]);
 * ```
 */
export function rewriteChunk(bytes: Uint8Array, info: ChunkReadInfo, change: ChunkRewrite, options: { compression?: Compression; level?: number } = {}): EncodedChunk {
  if (change.range) checkRange(change.range);
  const uncompressed = (info.compression ?? "none") === "none";
  return rewriteFile(openChunk(bytes, info), info, change, options, uncompressed ? bytes : undefined);
}

/** Bits `[from, from + n)` of a bitmap as a new bitmap starting at bit 0 (a view when byte-aligned). */
function sliceBits(bits: Uint8Array, from: number, n: number): Uint8Array {
  const start = from >> 3;
  const bytes = (n + 7) >> 3;
  const shift = from & 7;
  if (shift === 0) return bits.subarray(start, start + bytes);
  const out = new Uint8Array(bytes);
  const last = bits.length - 1;
  for (let i = 0, k = start; i < bytes; i++, k++) out[i] = ((bits[k] >> shift) | (k < last ? bits[k + 1] << (8 - shift) : 0)) & 0xff;
  // Bits past the last row came from later rows: cleared, so the bitmap says only what it covers.
  if (n & 7) out[bytes - 1] &= (1 << (n & 7)) - 1;
  return out;
}

/** How many of the first `n` bits of `bits` are clear. */
function zeroBits(bits: Uint8Array, n: number): number {
  let ones = 0;
  const whole = n >> 3;
  for (let i = 0; i < whole; i++) {
    let b = bits[i];
    b = b - ((b >> 1) & 0x55);
    b = (b & 0x33) + ((b >> 2) & 0x33);
    ones += (b + (b >> 4)) & 0x0f;
  }
  for (let i = whole << 3; i < n; i++) ones += (bits[i >> 3] >> (i & 7)) & 1;
  return n - ones;
}

/**
 * Rows `[from, to)` of a column as a column of its own, sharing the source's memory where it can: fixed-width
 * values and byte data are views, offsets are rebased to start at 0, bitmaps not starting on a byte boundary
 * are shifted, dictionaries are kept whole.
 */
function sliceColumn(col: ColumnData, from: number, to: number): ColumnData {
  const n = to - from;
  let validity: Uint8Array | null = null;
  let nullCount = 0;
  if (col.validity && col.nullCount > 0) {
    validity = sliceBits(col.validity, from, n);
    nullCount = zeroBits(validity, n);
    if (nullCount === 0) validity = null;
  }
  const base = { plan: col.plan, length: n, nullCount, validity, offsets: null, values: null, children: [], dictionary: col.dictionary };
  switch (col.plan.type) {
    case "struct":
      return { ...base, children: col.children.map((c) => sliceColumn(c, from, to)) };
    case "list":
    case "utf8":
    case "binary": {
      const off = col.offsets!;
      const at = off[from];
      const offsets = new Int32Array(n + 1);
      for (let i = 0; i <= n; i++) offsets[i] = off[from + i] - at;
      if (col.plan.type === "list") return { ...base, offsets, children: [sliceColumn(col.children[0], at, off[to])] };
      return { ...base, offsets, values: (col.values as Uint8Array).subarray(at, off[to]) };
    }
    case "bool":
      return { ...base, values: sliceBits(col.values as Uint8Array, from, n) };
    default:
      return { ...base, values: col.values!.subarray(from, to) };
  }
}

/** `col` under `plan` (same shape), so every node carries the new plan's types and dictionary ids. */
function replan(col: ColumnData, plan: ColumnPlan): ColumnData {
  return { ...col, plan, children: col.children.map((c, i) => replan(c, plan.children[i])) };
}

function rewriteFile(file: ChunkFile, info: ChunkReadInfo, change: ChunkRewrite, options: { compression?: Compression; level?: number }, raw?: Uint8Array): EncodedChunk {
  const { from, to } = change.range ? keyGroupRows(file, change.range) : { from: 0, to: file.rows };
  try {
    const plan = change.layout ? chunkPlan(change.layout, file.plan.delta) : file.plan;
    // Part of a chunk (a shard's or a rescale's key groups): its rows sliced column by column and written
    // from the buffers, with no apache-arrow vectors in between.
    if (to > from && (from > 0 || to < file.rows)) {
      const columns = file.columns.map((c, i) => {
        const col = sliceColumn(c, from, to);
        if (!change.layout) return col;
        return replan(i === plan.index.value && change.value ? mapValue(col, plan.columns[i], change.value) : col, plan.columns[i]);
      });
      const kg = file.plan.index.kg;
      const index = kg >= 0 ? buildKeyGroupIndex(columns[kg].values as Uint16Array, 0, to - from) : undefined;
      return writeChunkColumns(plan, columns, to - from, index, options);
    }
    // Fields renamed, dropped or reordered on the whole chunk: bytes move, columns are not rebuilt.
    if (raw && change.layout && from === 0 && to === file.rows && (options.compression ?? "none") === "none" && schemaOnly(file.plan, plan, change.value)) {
      return relabelChunk(raw, file, plan, change.value, constantColumn);
    }
    const fields = plan.columns.map(arrowField);
    const columns = file.columns.map((col, i) => (i === plan.index.value && change.layout ? (change.value ? mapValue(col, plan.columns[i], change.value) : { ...col, plan: plan.columns[i] }) : col));
    const datas = columns.map((col, i) => {
      const d = toArrowData(col, fields[i].type);
      return from === 0 && to === file.rows ? d : d.slice(from, to - from);
    });
    const kgIx = file.plan.index.kg;
    const index = kgIx >= 0 ? buildKeyGroupIndex(file.columns[kgIx].values as Uint16Array, from, to) : undefined;
    return finishChunk(plan, fields, datas, to - from, index, options);
  } catch (e) {
    if (e instanceof ArrowpointError || e instanceof TypeError) throw e;
    throw new SnapshotFormatError(`cannot rewrite chunk: ${(e as Error)?.message ?? String(e)}`, { path: info.path }, { cause: e });
  }
}

/**
 * A new chunk holding only the rows of key groups `range.start..range.end` (inclusive), made without
 * converting values to JS: the Arrow buffers are sliced and re-serialized (dictionaries are kept whole).
 * The layout, and whether the chunk is a delta, carry over; the result is checksummed and compressed as
 * `options` says (default `"none"`).
 *
 * @throws {SnapshotFormatError} / {ChecksumMismatchError} for bad input bytes, as `decodeChunk`.
 * @throws {TypeError} for operator-state chunks or a malformed range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { decodeChunk } from "./decode_chunk.ts";
 * import { sliceChunk } from "./chunk_slice.ts";
 * const c = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type: "utf8" } },
 *   { length: 3, keyGroups: [0, 64, 127], keys: ["a", "b", "c"], values: ["x", "y", "z"] });
 * const upper = sliceChunk(c.bytes, { start: 64, end: 127 });
 * assert.deepEqual(upper.keyGroupRange, { start: 64, end: 127 });
 * assert.deepEqual(decodeChunk(upper.bytes).keys, ["b", "c"]);
 * ```
 */
export function sliceChunk(
  bytes: Uint8Array,
  range: { start: number; end: number },
  info: ChunkReadInfo = {},
  options: { compression?: Compression; level?: number } = {},
): EncodedChunk {
  checkRange(range);
  return rewriteFile(openChunk(bytes, info), info, { range }, options);
}

/**
 * The gather of an 8-byte column as pairs of 32-bit words: reading a BigInt64Array element makes a BigInt,
 * and a float64 read and written back may not keep a NaN's payload.
 */
function gather64(cols: readonly ColumnData[], src: Uint32Array, row: Uint32Array, out: ColumnValues): ColumnValues {
  const n = row.length;
  const o = new Int32Array(out.buffer, out.byteOffset, 2 * n);
  const words = cols.map((c) => {
    const v = c.values!;
    return new Int32Array(v.buffer, v.byteOffset, 2 * v.length);
  });
  for (let i = 0; i < n;) {
    const s = src[i];
    const w = words[s];
    let j = i + 1;
    while (j < n && src[j] === s && row[j] === row[j - 1] + 1) j++;
    if (j - i >= 8) o.set(w.subarray(2 * row[i], 2 * (row[i] + j - i)), 2 * i);
    else {
      for (let k = i; k < j; k++) {
        const r = 2 * row[k];
        o[2 * k] = w[r];
        o[2 * k + 1] = w[r + 1];
      }
    }
    i = j;
  }
  return out;
}

/** A zeroed typed array of a column type's values, from `arena`. */
function arenaArrayOf(arena: Arena, type: string, n: number): ColumnValues {
  switch (type) {
    case "int8":
      return arena.array(Int8Array, n);
    case "int16":
      return arena.array(Int16Array, n);
    case "int32":
    case "dictionary":
      return arena.array(Int32Array, n);
    case "uint8":
      return arena.array(Uint8Array, n);
    case "uint16":
      return arena.array(Uint16Array, n);
    case "uint32":
      return arena.array(Uint32Array, n);
    case "float32":
      return arena.array(Float32Array, n);
    case "float64":
      return arena.array(Float64Array, n);
    case "int64":
    case "timestamp":
      return arena.array(BigInt64Array, n);
    case "uint64":
      return arena.array(BigUint64Array, n);
  }
  throw new TypeError(`Cannot make a typed array of ${type}`);
}

/**
 * Rows `row[i]` of sources `src[i]`, column by column (all sources of one column plan), into arrays of
 * `arena` (they live until the chunk file has copied them).
 */
function gatherColumn(cols: readonly ColumnData[], src: Uint32Array, row: Uint32Array, plan: ColumnPlan, arena: Arena): ColumnData {
  const n = row.length;
  let validity: Uint8Array | null = null;
  let nullCount = 0;
  // Per-source buffers in plain arrays: column objects come in several shapes, and a property load
  // across them per row is megamorphic.
  if (cols.some((c) => c.validity !== null)) {
    validity = arena.array(Uint8Array, Math.ceil(n / 8));
    const ALL = new Uint8Array(0);
    const bits = cols.map((c) => c.validity ?? ALL);
    for (let i = 0; i < n; i++) {
      const v = bits[src[i]];
      const r = row[i];
      if (v.length === 0 || ((v[r >> 3] >> (r & 7)) & 1) === 1) validity[i >> 3] |= 1 << (i & 7);
      else nullCount++;
    }
    if (nullCount === 0) validity = null;
  }
  const base = { plan, length: n, nullCount, validity, offsets: null, values: null, children: [], dictionary: null };
  switch (plan.type) {
    case "struct":
      return { ...base, children: plan.children.map((cp, j) => gatherColumn(cols.map((c) => c.children[j]), src, row, cp, arena)) };
    case "list": {
      const offs = cols.map((c) => c.offsets!);
      const offsets = arena.array(Int32Array, n + 1);
      for (let i = 0; i < n; i++) {
        const off = offs[src[i]];
        offsets[i + 1] = offsets[i] + off[row[i] + 1] - off[row[i]];
      }
      const csrc = arena.array(Uint32Array, offsets[n]);
      const crow = arena.array(Uint32Array, offsets[n]);
      for (let i = 0; i < n; i++) {
        const off = offs[src[i]];
        for (let k = off[row[i]], at = offsets[i]; k < off[row[i] + 1]; k++, at++) {
          csrc[at] = src[i];
          crow[at] = k;
        }
      }
      return { ...base, offsets, children: [gatherColumn(cols.map((c) => c.children[0]), csrc, crow, plan.children[0], arena)] };
    }
    case "utf8":
    case "binary": {
      const offs = cols.map((c) => c.offsets!);
      const datas = cols.map((c) => c.values as Uint8Array);
      const offsets = arena.array(Int32Array, n + 1);
      for (let i = 0; i < n; i++) {
        const off = offs[src[i]];
        offsets[i + 1] = offsets[i] + off[row[i] + 1] - off[row[i]];
      }
      const values = arena.array(Uint8Array, offsets[n]);
      // Runs of consecutive rows of one source copy their bytes in one call (short runs byte by byte: a
      // subarray per run costs more than the copy).
      for (let i = 0; i < n;) {
        const s = src[i];
        let j = i + 1;
        while (j < n && src[j] === s && row[j] === row[j - 1] + 1) j++;
        const off = offs[s];
        const from = off[row[i]];
        const to = off[row[j - 1] + 1];
        const data = datas[s];
        if (to - from >= 64) values.set(data.subarray(from, to), offsets[i]);
        else for (let k = from, at = offsets[i]; k < to; k++, at++) values[at] = data[k];
        i = j;
      }
      return { ...base, offsets, values };
    }
    case "bool": {
      const values = arena.array(Uint8Array, Math.ceil(n / 8));
      const bits = cols.map((c) => c.values as Uint8Array);
      for (let i = 0; i < n; i++) {
        const r = row[i];
        if ((bits[src[i]][r >> 3] >> (r & 7)) & 1) values[i >> 3] |= 1 << (i & 7);
      }
      return { ...base, values };
    }
    case "dictionary": {
      // One dictionary for the result: each source's words mapped once (dictionaries are small).
      const dec = new TextDecoder();
      const index = new Map<string, number>();
      const words: Uint8Array[] = [];
      const remap = cols.map((c) => {
        const d = c.dictionary!;
        const off = d.offsets!;
        const m = new Int32Array(d.length);
        for (let k = 0; k < d.length; k++) {
          const bytes = (d.values as Uint8Array).subarray(off[k], off[k + 1]);
          const w = dec.decode(bytes);
          let at = index.get(w);
          if (at === undefined) {
            index.set(w, (at = words.length));
            words.push(bytes);
          }
          m[k] = at;
        }
        return m;
      });
      const values = arena.array(Int32Array, n);
      const idx = cols.map((c) => c.values as Int32Array);
      const NONE = new Uint8Array(0);
      const bits = cols.map((c) => c.validity ?? NONE);
      for (let i = 0; i < n; i++) {
        const s = src[i];
        const r = row[i];
        const v = bits[s];
        if (v.length === 0 || ((v[r >> 3] >> (r & 7)) & 1) === 1) values[i] = remap[s][idx[s][r]];
      }
      const offsets = new Int32Array(words.length + 1);
      for (let k = 0; k < words.length; k++) offsets[k + 1] = offsets[k] + words[k].length;
      const bytes = new Uint8Array(offsets[words.length]);
      for (let k = 0; k < words.length; k++) bytes.set(words[k], offsets[k]);
      const dictionary = plainColumn({ name: "dictionary", type: "utf8", nullable: false, children: [] }, words.length, { offsets, values: bytes });
      return { ...base, values, dictionary };
    }
    default: {
      const out = arenaArrayOf(arena, plan.type, n) as Float64Array;
      if (out.BYTES_PER_ELEMENT === 8) return { ...base, values: gather64(cols, src, row, out) };
      const all = cols.map((c) => c.values as Float64Array);
      for (let i = 0; i < n;) {
        const s = src[i];
        const vals = all[s];
        let j = i + 1;
        while (j < n && src[j] === s && row[j] === row[j - 1] + 1) j++;
        if (j - i >= 16) out.set(vals.subarray(row[i], row[i] + (j - i)), i);
        else for (let k = i; k < j; k++) out[k] = vals[row[k]];
        i = j;
      }
      return { ...base, values: out };
    }
  }
}

/**
 * A new base chunk of `layout` made of rows picked from opened chunks of that layout (bases or deltas):
 * row `i` is row `row[i]` of `files[src[i]]`, gathered column by column with no value becoming a JS value
 * (dictionaries are merged into one). The picked rows must be sorted by key group and none a delete;
 * `options.keyGroups` gives them new key groups (a rekey), ascending.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { decodeChunk, openChunk } from "./decode_chunk.ts";
 * import { gatherChunk } from "./chunk_slice.ts";
 * const layout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: "utf8" } } as const;
 * const a = openChunk(encodeChunk(layout, { length: 2, keyGroups: [1, 4], keys: ["a", "b"], values: ["x", "y"] }).bytes);
 * const b = openChunk(encodeChunk(layout, { length: 1, keyGroups: [2], keys: ["c"], values: ["z"] }).bytes);
 * const out = gatherChunk(layout, [a, b], Uint32Array.of(0, 1, 0), Uint32Array.of(0, 0, 1));
 * assert.deepEqual(decodeChunk(out.bytes).keys, ["a", "c", "b"]);
 * ```
 */
export function gatherChunk(
  layout: StateLayout,
  files: readonly ChunkFile[],
  src: Uint32Array,
  row: Uint32Array,
  options: { compression?: Compression; level?: number; keyGroups?: Uint16Array } = {},
): EncodedChunk {
  const plan = chunkPlan(layout, false);
  const names = ["kg", "key", "ns", "ukey", "value"] as const;
  const arena = new Arena();
  const columns: ColumnData[] = new Array(plan.columns.length);
  for (const name of names) {
    const j = plan.index[name];
    if (j < 0) continue;
    if (name === "kg" && options.keyGroups) {
      columns[j] = plainColumn(plan.columns[j], row.length, { values: options.keyGroups });
      continue;
    }
    columns[j] = gatherColumn(files.map((f) => f.columns[f.plan.index[name]]), src, row, plan.columns[j], arena);
  }
  const kg = columns[plan.index.kg].values as Uint16Array;
  try {
    return writeChunkColumns(plan, columns, row.length, buildKeyGroupIndex(kg, 0, row.length), options);
  } finally {
    // The file holds copies of every gathered buffer (the key-group index is plain numbers).
    arena.release();
  }
}

/**
 * The key groups of picked rows of a key column under `maxParallelism`, hashed straight from the column
 * (Java `hashCode` + Flink's murmur, exactly as `assignKeyGroup`): utf8 keys from their bytes (a JS
 * string only for non-ASCII keys), int32 and int64 keys from their integer buffers, float64 keys from
 * their values. Undefined for key types hashed from JS values (bytes, msgpack). With `into` (one element
 * per pick), the key groups are written there and `into` is returned.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { openChunk } from "./decode_chunk.ts";
 * import { assignKeyGroup } from "./key_group.ts";
 * import { keyGroupsOfColumn } from "./chunk_slice.ts";
 * const f = openChunk(encodeChunk({ kind: "value", keyType: "string", value: { encoding: "msgpack" } }, { length: 1, keyGroups: [assignKeyGroup("a", 128)], keys: ["a"], values: [1] }).bytes);
 * assert.equal(keyGroupsOfColumn([f.columns[f.plan.index.key]], Uint32Array.of(0), Uint32Array.of(0), 512)![0] === assignKeyGroup("a", 512), true);
 * ```
 */
export function keyGroupsOfColumn(cols: readonly ColumnData[], src: Uint32Array, row: Uint32Array, maxParallelism: number, into?: Uint16Array): Uint16Array | undefined {
  const type = cols[0]?.plan.type;
  const n = row.length;
  if (into && into.length !== n) throw new RangeError(`keyGroupsOfColumn: into has ${into.length} elements for ${n} picks`);
  const out = into ?? new Uint16Array(n);
  if (cols.length === 0) return out;
  const kgOf = (hash: number) => keyGroupForHash(hash, maxParallelism);
  switch (type) {
    case "utf8": {
      const dec = new TextDecoder();
      // Per-source buffers in plain arrays (column objects come in several shapes).
      const offs = cols.map((c) => c.offsets!);
      const datas = cols.map((c) => c.values as Uint8Array);
      for (let i = 0; i < n; i++) {
        const s = src[i];
        const off = offs[s];
        const data = datas[s];
        const r = row[i];
        const e = off[r + 1];
        let h = 0;
        let ascii = true;
        for (let k = off[r]; k < e; k++) {
          const b = data[k];
          if (b >= 0x80) {
            ascii = false;
            break;
          }
          h = (Math.imul(h, 31) + b) | 0;
        }
        out[i] = murmurHash(ascii ? h : javaHashCode(dec.decode(data.subarray(off[r], e)))) % maxParallelism;
      }
      return out;
    }
    case "int32":
      {
        const all = cols.map((c) => c.values as Int32Array);
        for (let i = 0; i < n; i++) out[i] = kgOf(all[src[i]][row[i]]);
      }
      return out;
    case "int64": {
      const words = cols.map((c) => new Int32Array((c.values as BigInt64Array).buffer, (c.values as BigInt64Array).byteOffset, c.length * 2));
      for (let i = 0; i < n; i++) {
        const w = words[src[i]];
        out[i] = kgOf((w[2 * row[i]] ^ w[2 * row[i] + 1]) | 0); // Long.hashCode: low word ^ high word, in either order
      }
      return out;
    }
    case "float64":
      {
        const all = cols.map((c) => c.values as Float64Array);
        for (let i = 0; i < n; i++) out[i] = kgOf(javaHashCode(all[src[i]][row[i]]));
      }
      return out;
    default:
      return undefined;
  }
}
