/**
 * Decoding chunks into JS values, whole or one key-group range, from untrusted bytes.
 *
 * The file is verified (checksum if given), decompressed with a cap, and validated by the strict reader in
 * chunk_ipc.ts before any value is made; then columns are read, never rows: typed-array views, UTF-8 decoded
 * 64 KiB at a time and cut with `substring` when ASCII, dictionaries decoded once per entry used, and struct
 * objects built by a small generated function per struct shape (object literals with the fields' reads
 * inlined; a generic loop where code generation is not allowed).
 *
 * @module
 */
import { Decoder as MsgpackDecoder } from "@msgpack/msgpack";
import { codegen, compileFunction } from "./_chunk_codegen.ts";
import { verifyChecksum } from "./checksum.ts";
import { type ChunkFile, type ColumnData, readChunkFile } from "./chunk_ipc.ts";
import { rowsOfKeyGroups } from "./chunk_schema.ts";
import { type Compression, decompress } from "./compression.ts";
import { ArrowpointError, SnapshotFormatError } from "./errors.ts";
import type { StateLayout } from "./state_layout.ts";

/**
 * A decoded chunk (or key-group range of one), column-wise, as JS values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { decodeChunk } from "./decode_chunk.ts";
 * const d = decodeChunk(encodeChunk({ kind: "value", keyType: "int32", value: { encoding: "arrow", type: "bool" } },
 *   { length: 2, keyGroups: [0, 3], keys: [7, 8], ops: Uint8Array.of(0, 1), values: [true, null] }).bytes);
 * assert.deepEqual(d.keyGroups, new Uint16Array([0, 3]));
 * assert.deepEqual(d.keys, [7, 8]);
 * assert.deepEqual(d.ops, new Uint8Array([0, 1]));
 * assert.deepEqual(d.values, [true, null]);
 * assert.equal(d.layout.kind, "value");
 * ```
 */
export interface DecodedChunk {
  /** Number of rows. */
  readonly length: number;
  /** Key group of each row (keyed state), ascending. */
  readonly keyGroups?: Uint16Array;
  /** Keys (keyed state): string, number, bigint (int64), Uint8Array (bytes) or the msgpack-decoded value. */
  readonly keys?: unknown[];
  /** Namespaces (namespaced state). */
  readonly namespaces?: string[];
  /** User keys (map state). */
  readonly userKeys?: unknown[];
  /** 0 upsert, 1 delete (delta chunks). */
  readonly ops?: Uint8Array;
  /** Values; `null` on delete rows. */
  readonly values: unknown[];
  /** The layout the chunk's metadata declares. */
  readonly layout: StateLayout;
}

/**
 * What the manifest says about a chunk file; every field optional.
 *
 * @example
 * ```ts
 * import type { ChunkReadInfo } from "./decode_chunk.ts";
 * const info: ChunkReadInfo = { path: "sp-1/op/s/kg-0-127.arrow", checksum: "crc32:1a2b3c4d", compression: "deflate", rawBytes: 4096 };
 * ```
 */
export interface ChunkReadInfo {
  /** The file, for error messages. */
  path?: string;
  /** Verified against the stored bytes when given. */
  checksum?: string;
  /** The file's compression; detected from its bytes when absent. */
  compression?: Compression;
  /** Uncompressed size: the decompression cap. */
  rawBytes?: number;
}

const utf8Fatal = new TextDecoder("utf-8", { fatal: true });
const STRING_BLOCK = 64 * 1024;

/** Context of one decode call. */
interface Dctx {
  readonly path: string | undefined;
  readonly dataBytes: number;
  msgpack?: MsgpackDecoder;
}

function formatError(ctx: Dctx, col: string, message: string, cause?: unknown): SnapshotFormatError {
  return new SnapshotFormatError(`column ${col}: ${message}`, { path: ctx.path, field: col }, cause === undefined ? {} : { cause });
}

function isValid(validity: Uint8Array | null, i: number): boolean {
  return validity === null || ((validity[i >> 3] >> (i & 7)) & 1) === 1;
}

function decodeStrings(col: ColumnData, from: number, to: number, ctx: Dctx, name: string): (string | null)[] {
  const off = col.offsets!;
  const data = col.values as Uint8Array;
  const validity = col.validity;
  const out = new Array<string | null>(to - from);
  try {
    let i = from;
    while (i < to) {
      const start = off[i];
      let j = i + 1;
      while (j < to && off[j + 1] - start <= STRING_BLOCK) j++;
      const end = off[j];
      const block = utf8Fatal.decode(data.subarray(start, end));
      if (block.length === end - start) {
        // All ASCII: byte offsets are character offsets.
        for (let k = i; k < j; k++) out[k - from] = block.substring(off[k] - start, off[k + 1] - start);
      } else {
        for (let k = i; k < j; k++) out[k - from] = utf8Fatal.decode(data.subarray(off[k], off[k + 1]));
      }
      i = j;
    }
  } catch (e) {
    throw formatError(ctx, name, "invalid UTF-8", e);
  }
  if (validity !== null) for (let i = from; i < to; i++) if (!isValid(validity, i)) out[i - from] = null;
  return out;
}

/**
 * Deepest msgpack nesting a reader accepts. msgpack decodes any depth iteratively, but key hashing, merging,
 * printing and re-encoding recurse (and the encoder stops at 100): deeper values are hostile.
 */
const MAX_MSGPACK_DEPTH = 128;

/** Whether arrays/maps nest deeper than `max` levels (iterative: safe for any depth). */
function nestsDeeper(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (typeof x !== "object" || x === null || ArrayBuffer.isView(x)) continue;
    if (depth >= max) return true;
    for (const v of Array.isArray(x) ? x : Object.values(x)) if (typeof v === "object" && v !== null) stack.push([v, depth + 1]);
  }
  return false;
}

function msgpackDecoder(ctx: Dctx): MsgpackDecoder {
  // Every limit bounded by the file size: a blob cannot describe more items than it has bytes.
  const max = Math.max(16, ctx.dataBytes);
  return (ctx.msgpack ??= new MsgpackDecoder({
    useBigInt64: true,
    maxStrLength: max,
    maxBinLength: max,
    maxArrayLength: max,
    maxMapLength: max,
    maxExtLength: max,
  }));
}

/** Decodes slots `[from, to)` of a column into JS values. */
function decodeColumn(col: ColumnData, from: number, to: number, ctx: Dctx, name: string): unknown[] {
  const n = to - from;
  const validity = col.validity;
  const plan = col.plan;
  switch (plan.type) {
    case "utf8":
      return decodeStrings(col, from, to, ctx, name);
    case "binary": {
      const off = col.offsets!;
      const data = col.values as Uint8Array;
      const out = new Array<unknown>(n);
      if (plan.msgpack) {
        const dec = msgpackDecoder(ctx);
        for (let i = from; i < to; i++) {
          if (!isValid(validity, i)) {
            out[i - from] = null;
            continue;
          }
          const blob = data.subarray(off[i], off[i + 1]);
          try {
            out[i - from] = dec.decode(blob);
          } catch (e) {
            throw formatError(ctx, name, `invalid msgpack at slot ${i}: ${(e as Error).message}`, e);
          }
          // Nesting needs a byte per level, so only long blobs can be too deep for recursive consumers.
          if (blob.length > MAX_MSGPACK_DEPTH && nestsDeeper(out[i - from], MAX_MSGPACK_DEPTH)) {
            throw formatError(ctx, name, `msgpack value at slot ${i} nests deeper than ${MAX_MSGPACK_DEPTH} levels (writers stop at 100)`);
          }
        }
      } else {
        for (let i = from; i < to; i++) out[i - from] = isValid(validity, i) ? data.slice(off[i], off[i + 1]) : null;
      }
      return out;
    }
    case "bool": {
      const bits = col.values as Uint8Array;
      const out = new Array<boolean | null>(n);
      for (let i = from; i < to; i++) out[i - from] = isValid(validity, i) ? ((bits[i >> 3] >> (i & 7)) & 1) === 1 : null;
      return out;
    }
    case "timestamp": {
      const v = col.values as BigInt64Array;
      const w = new Int32Array(v.buffer, v.byteOffset, v.length * 2);
      const out = new Array<number | null>(n);
      for (let i = from; i < to; i++) out[i - from] = isValid(validity, i) ? w[2 * i + 1] * 4294967296 + (w[2 * i] >>> 0) : null;
      return out;
    }
    case "dictionary": {
      const idx = col.values as Int32Array;
      const words = dictionaryWords(col, from, to, ctx, name);
      const out = new Array<string | null>(n);
      for (let i = from; i < to; i++) out[i - from] = isValid(validity, i) ? words[idx[i]] : null;
      return out;
    }
    case "list": {
      const off = col.offsets!;
      const base = off[from];
      const items = decodeColumn(col.children[0], base, off[to], ctx, name + "[]");
      const out = new Array<unknown>(n);
      for (let i = from; i < to; i++) out[i - from] = isValid(validity, i) ? items.slice(off[i] - base, off[i + 1] - base) : null;
      return out;
    }
    case "struct":
      return decodeStruct(col, from, to, ctx, name);
    default: {
      // int8..uint64, float32/64: a typed array of exactly `length` elements.
      const v = col.values as ArrayLike<unknown>;
      const out = new Array<unknown>(n);
      if (validity === null) for (let i = from; i < to; i++) out[i - from] = v[i];
      else for (let i = from; i < to; i++) out[i - from] = isValid(validity, i) ? v[i] : null;
      return out;
    }
  }
}

/** The dictionary strings used by slots `[from, to)`, decoded once each (a sparse array by index). */
function dictionaryWords(col: ColumnData, from: number, to: number, ctx: Dctx, name: string): string[] {
  const dict = col.dictionary!;
  const idx = col.values as Int32Array;
  if (dict.length <= 2 * (to - from)) return decodeStrings(dict, 0, dict.length, ctx, name + " dictionary") as string[];
  const words = new Array<string>(dict.length);
  const off = dict.offsets!;
  const data = dict.values as Uint8Array;
  try {
    for (let i = from; i < to; i++) {
      const k = idx[i];
      if (isValid(col.validity, i) && words[k] === undefined) words[k] = utf8Fatal.decode(data.subarray(off[k], off[k + 1]));
    }
  } catch (e) {
    throw formatError(ctx, name + " dictionary", "invalid UTF-8", e);
  }
  return words;
}

// ---- struct assembly ------------------------------------------------------------------------------------

/** How a generated struct assembler reads one field. */
type FieldRead = "num" | "ts" | "bool" | "dict" | "arr";

function fieldRead(c: ColumnData): FieldRead {
  switch (c.plan.type) {
    case "int8":
    case "int16":
    case "int32":
    case "int64":
    case "uint8":
    case "uint16":
    case "uint32":
    case "uint64":
    case "float32":
    case "float64":
      return "num";
    case "timestamp":
      return "ts";
    case "bool":
      return "bool";
    case "dictionary":
      return "dict";
    default:
      return c.plan.msgpack ? "arr" : "arr";
  }
}

type Assembler = (
  cols: readonly unknown[],
  vals: readonly (Uint8Array | null)[],
  dicts: readonly (string[] | null)[],
  from: number,
  to: number,
  sv: Uint8Array | null,
) => unknown[];

const assemblers = new Map<string, Assembler>();

function generateAssembler(names: readonly string[], reads: readonly FieldRead[], nullable: readonly boolean[]): Assembler | null {
  if (!codegen.enabled) return null; // code generation disallowed: the generic loop below
  const key = JSON.stringify([names, reads, nullable]);
  const cached = assemblers.get(key);
  if (cached) return cached;
  const decl: string[] = [];
  const props: string[] = [];
  for (let j = 0; j < names.length; j++) {
    decl.push(`c${j} = cols[${j}]`, `v${j} = vals[${j}]`, `d${j} = dicts[${j}]`);
    let e: string;
    switch (reads[j]) {
      case "num":
        e = `c${j}[i]`;
        break;
      case "ts":
        e = `c${j}[2 * i + 1] * 4294967296 + (c${j}[2 * i] >>> 0)`;
        break;
      case "bool":
        e = `((c${j}[i >> 3] >> (i & 7)) & 1) === 1`;
        break;
      case "dict":
        e = `d${j}[c${j}[i]]`;
        break;
      case "arr":
        e = `c${j}[i - from]`;
        break;
    }
    if (nullable[j] && reads[j] !== "arr") e = `(v${j} === null || ((v${j}[i >> 3] >> (i & 7)) & 1) === 1 ? ${e} : null)`;
    props.push(`${JSON.stringify(names[j])}: ${e}`);
  }
  const body = `"use strict";
const out = new Array(to - from);
const ${decl.join(", ")};
if (sv === null) {
  for (let i = from; i < to; i++) out[i - from] = {${props.join(", ")}};
} else {
  for (let i = from; i < to; i++) out[i - from] = ((sv[i >> 3] >> (i & 7)) & 1) === 1 ? {${props.join(", ")}} : null;
}
return out;`;
  const fn = compileFunction<Assembler>(["cols", "vals", "dicts", "from", "to", "sv"], body);
  if (!fn) return null;
  if (assemblers.size > 1000) assemblers.clear();
  assemblers.set(key, fn);
  return fn;
}

function decodeStruct(col: ColumnData, from: number, to: number, ctx: Dctx, name: string): unknown[] {
  const kids = col.children;
  const names = kids.map((k) => k.plan.name);
  const reads = kids.map(fieldRead);
  const fn = generateAssembler(names, reads, kids.map((k) => k.plan.nullable));
  if (fn) {
    const cols: unknown[] = [];
    const dicts: (string[] | null)[] = [];
    for (let j = 0; j < kids.length; j++) {
      const k = kids[j];
      const childName = `${name}.${names[j]}`;
      dicts.push(reads[j] === "dict" ? dictionaryWords(k, from, to, ctx, childName) : null);
      if (reads[j] === "arr") cols.push(decodeColumn(k, from, to, ctx, childName));
      else if (reads[j] === "ts") {
        const v = k.values as BigInt64Array;
        cols.push(new Int32Array(v.buffer, v.byteOffset, v.length * 2));
      } else cols.push(k.values);
    }
    return fn(cols, kids.map((k) => k.validity), dicts, from, to, col.validity);
  }
  const columns = kids.map((k, j) => decodeColumn(k, from, to, ctx, `${name}.${names[j]}`));
  const out = new Array<unknown>(to - from);
  for (let i = from; i < to; i++) {
    if (!isValid(col.validity, i)) {
      out[i - from] = null;
      continue;
    }
    const o: Record<string, unknown> = {};
    for (let j = 0; j < names.length; j++) o[names[j]] = columns[j][i - from];
    out[i - from] = o;
  }
  return out;
}

// ---- public API ---------------------------------------------------------------------------------------

/**
 * Verifies (checksum), decompresses (capped) and validates a chunk's bytes, returning the validated column
 * views without making any JS value. The building block of {@link decodeChunk}, {@link readKeyGroupRange}
 * and `sliceChunk`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { openChunk } from "./decode_chunk.ts";
 * const c = encodeChunk({ kind: "operator-list", value: { encoding: "msgpack" } }, { length: 1, values: [{ offset: 7 }] });
 * assert.equal(openChunk(c.bytes, { checksum: c.checksum }).rows, 1);
 * ```
 */
export function openChunk(bytes: Uint8Array, info: ChunkReadInfo = {}): ChunkFile {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`Cannot read chunk as bytes must be a Uint8Array: current value is ${typeof bytes}`);
  if (info.checksum !== undefined) verifyChecksum(bytes, info.checksum, info.path ?? "chunk");
  const raw = decompress(bytes, { compression: info.compression, rawBytes: info.rawBytes, path: info.path });
  return readChunkFile(raw, info.path);
}

/**
 * Decodes rows `[from, to)` of an opened chunk file (see {@link openChunk}, {@link keyGroupRows}): a file
 * opened once is decoded range by range without being parsed again. `withValues: false` leaves the value
 * column undecoded (`values` empty).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { decodeRows, openChunk } from "./decode_chunk.ts";
 * const c = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "msgpack" } },
 *   { length: 3, keyGroups: [1, 5, 9], keys: ["a", "b", "c"], values: [1, 2, 3] });
 * assert.deepEqual(decodeRows(openChunk(c.bytes), 1, 3).keys, ["b", "c"]);
 * ```
 */
export function decodeRows(file: ChunkFile, from: number, to: number, info: ChunkReadInfo = {}, withValues = true): DecodedChunk {
  const { plan, columns } = file;
  const ctx: Dctx = { path: info.path, dataBytes: columns.reduce((s, c) => s + ((c.values as Uint8Array | null)?.byteLength ?? 0), 0) };
  try {
    const out: {
      length: number;
      keyGroups?: Uint16Array;
      keys?: unknown[];
      namespaces?: string[];
      userKeys?: unknown[];
      ops?: Uint8Array;
      values: unknown[];
      layout: StateLayout;
    } = { length: to - from, values: [], layout: plan.layout };
    const ix = plan.index;
    if (ix.kg >= 0) out.keyGroups = (columns[ix.kg].values as Uint16Array).slice(from, to);
    if (ix.key >= 0) out.keys = decodeColumn(columns[ix.key], from, to, ctx, "key");
    if (ix.ns >= 0) out.namespaces = decodeColumn(columns[ix.ns], from, to, ctx, "ns") as string[];
    if (ix.ukey >= 0) out.userKeys = decodeColumn(columns[ix.ukey], from, to, ctx, "ukey");
    if (ix.op >= 0) out.ops = (columns[ix.op].values as Uint8Array).slice(from, to);
    // Without values: the row identities only (a column merge gathers the values without decoding them).
    out.values = withValues ? decodeColumn(columns[ix.value], from, to, ctx, "value") : [];
    return out;
  } catch (e) {
    if (e instanceof ArrowpointError) throw e;
    throw new SnapshotFormatError(`cannot decode chunk: ${(e as Error)?.message ?? String(e)}`, { path: info.path }, { cause: e });
  }
}

/**
 * Whether every JS value {@link decodeRows} makes from chunks of `layout` is a copy of the chunk's bytes
 * (strings, numbers, bigints, `slice`d binaries), so that the buffer a chunk was read into may be reused
 * once its rows are decoded. Not with msgpack keys, user keys or values: msgpack `bin` items decode as
 * views of the bytes they were read from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodesToCopies } from "./decode_chunk.ts";
 * assert.equal(decodesToCopies({ keyType: "string", value: { encoding: "arrow", type: "binary" } }), true);
 * assert.equal(decodesToCopies({ keyType: "string", value: { encoding: "msgpack" } }), false);
 * ```
 */
export function decodesToCopies(layout: Pick<StateLayout, "keyType" | "userKeyType" | "value">): boolean {
  return layout.value.encoding === "arrow" && layout.keyType !== "msgpack" && layout.userKeyType !== "msgpack";
}

/**
 * Decodes a whole chunk. The layout comes from the chunk's own metadata.
 *
 * @throws {ChecksumMismatchError} if `info.checksum` does not match.
 * @throws {SnapshotFormatError} for corrupt, truncated, hostile or foreign bytes (never a bare TypeError).
 * @throws {UnsupportedFormatVersionError} for a chunk from a newer format version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { decodeChunk } from "./decode_chunk.ts";
 * const c = encodeChunk({ kind: "value", keyType: "int64", value: { encoding: "arrow", type: "utf8" } },
 *   { length: 2, keyGroups: [0, 0], keys: [1n, 2n], values: ["x", "y"] });
 * const d = decodeChunk(c.bytes, { path: "a.arrow", checksum: c.checksum });
 * assert.deepEqual(d.keys, [1n, 2n]);
 * assert.deepEqual(d.values, ["x", "y"]);
 * ```
 */
export function decodeChunk(bytes: Uint8Array, info: ChunkReadInfo = {}): DecodedChunk {
  const file = openChunk(bytes, info);
  return decodeRows(file, 0, file.rows, info);
}

/**
 * Decodes only the rows whose key group is in `range` (inclusive, `{ start, end }`); no other row becomes a
 * JS value. Rows are found through the key-group index (a binary search), checked against the `kg` column.
 *
 * @throws {TypeError} for operator-state chunks (they have no key groups) or a malformed range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { readKeyGroupRange } from "./decode_chunk.ts";
 * const c = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type: "int32" } },
 *   { length: 3, keyGroups: [1, 5, 9], keys: ["a", "b", "c"], values: [1, 2, 3] });
 * assert.deepEqual(readKeyGroupRange(c.bytes, { start: 2, end: 9 }).keys, ["b", "c"]);
 * ```
 */
export function readKeyGroupRange(bytes: Uint8Array, range: { start: number; end: number }, info: ChunkReadInfo = {}): DecodedChunk {
  checkRange(range);
  const file = openChunk(bytes, info);
  const { from, to } = keyGroupRows(file, range);
  return decodeRows(file, from, to, info);
}

/**
 * Checks a key-group range argument.
 *
 * @example
 * ```ts
 * import { checkRange } from "./decode_chunk.ts";
 * checkRange({ start: 0, end: 127 }); // ok
 * ```
 */
export function checkRange(range: { start: number; end: number }): void {
  if (
    typeof range !== "object" || range === null || !Number.isInteger(range.start) || !Number.isInteger(range.end) ||
    range.start < 0
  ) {
    throw new TypeError(`Cannot read a key-group range as it must be { start, end } with integers start ≥ 0: current value is ${JSON.stringify(range)}`);
  }
}

/**
 * The rows `[from, to)` of a validated chunk file that hold key groups `range.start..range.end`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { keyGroupRows, openChunk } from "./decode_chunk.ts";
 * const c = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "msgpack" } },
 *   { length: 3, keyGroups: [1, 5, 9], keys: ["a", "b", "c"], values: [1, 2, 3] });
 * assert.deepEqual(keyGroupRows(openChunk(c.bytes), { start: 5, end: 5 }), { from: 1, to: 2 });
 * ```
 */
export function keyGroupRows(file: ChunkFile, range: { start: number; end: number }): { from: number; to: number } {
  if (!file.keyGroupIndex) throw new TypeError("Cannot read a key-group range as the chunk holds operator state: it has no key groups");
  return rowsOfKeyGroups(file.keyGroupIndex, range.start, range.end);
}
