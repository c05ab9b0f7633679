/**
 * A strict, bounds-checked reader of chunk files (Arrow IPC file format) for untrusted bytes.
 *
 * It reads the footer, the schema's metadata and the layout first, derives the exact schema that layout
 * must have (chunk_schema.ts), and then parses only that: every flatbuffer offset, vector length, buffer
 * region, node length, null count, offset array and dictionary index is checked before anything is
 * materialized, so work and memory stay proportional to the real byte size and any defect surfaces as a
 * {@link SnapshotFormatError} (or {@link UnsupportedFormatVersionError}). The result is a set of
 * zero-copy typed-array views ({@link ColumnData}) that decode_chunk.ts turns into JS values and
 * chunk_slice.ts re-serializes.
 *
 * Accepted: Arrow metadata V4/V5, little-endian, no IPC body compression, no delta dictionaries, at most
 * one record batch, exactly one dictionary batch per dictionary id of the layout.
 *
 * @module
 */
import { SnapshotFormatError, UnsupportedFormatVersionError } from "./errors.ts";
import {
  CHUNK_FORMAT_VERSION,
  checkLayout,
  type ChunkPlan,
  chunkPlan,
  type ColumnPlan,
  type KeyGroupIndex,
  MAX_KEY_GROUP,
  META_FORMAT_VERSION,
  META_KEY_GROUP_INDEX,
  META_LAYOUT,
  parseKeyGroupIndex,
} from "./chunk_schema.ts";

/** A typed-array view of a column's data buffer. */
export type ColumnValues =
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/**
 * One column of a chunk, validated, as views into the file's bytes.
 *
 * - fixed-width types: `values` has exactly `length` elements (timestamp: a BigInt64Array of ms);
 * - `bool`: `values` is the bit-packed Uint8Array (LSB first), at least `ceil(length / 8)` bytes;
 * - `utf8`/`binary`: `offsets` has `length + 1` entries, non-negative, non-decreasing, the last within `values`
 *   (the Uint8Array data buffer);
 * - `dictionary`: `values` is the Int32Array of indices, each valid one in `[0, dictionary.length)`;
 * - `list`: `offsets` as above, the last within `children[0].length`;
 * - `struct`: `children` each of the same length.
 */
export interface ColumnData {
  /** What the column is. */
  readonly plan: ColumnPlan;
  /** Number of slots. */
  readonly length: number;
  /** Number of null slots. */
  readonly nullCount: number;
  /** Validity bitmap (bit i, LSB first, set = valid); null when there are no nulls. */
  readonly validity: Uint8Array | null;
  /** Offsets for `utf8`, `binary` and `list`. */
  readonly offsets: Int32Array | null;
  /** The data buffer (see above); null for `struct` and `list`. */
  readonly values: ColumnValues | null;
  /** Struct fields or the list element. */
  readonly children: readonly ColumnData[];
  /** The `utf8` dictionary of a `dictionary` column. */
  readonly dictionary: ColumnData | null;
}

/** A validated chunk file. */
export interface ChunkFile {
  /** The chunk's columns as its layout metadata says. */
  readonly plan: ChunkPlan;
  /** Number of rows. */
  readonly rows: number;
  /** Columns in schema order (`plan.columns`). */
  readonly columns: readonly ColumnData[];
  /** The key-group index (keyed state), checked against the `kg` column. */
  readonly keyGroupIndex: KeyGroupIndex | undefined;
}

const MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // "ARROW1"
const TWO32 = 4294967296;
const utf8Fatal = new TextDecoder("utf-8", { fatal: true });

// Flatbuffer type ids (Schema.fbs `Type` union) and message headers (Message.fbs).
const T_INT = 2, T_FLOAT = 3, T_BINARY = 4, T_UTF8 = 5, T_BOOL = 6, T_TIMESTAMP = 10, T_LIST = 12, T_STRUCT = 13;
const H_DICTIONARY_BATCH = 2, H_RECORD_BATCH = 3;

class Fail extends Error {
  constructor(message: string, readonly field?: string) {
    super(message);
  }
}

function fail(message: string, field?: string): never {
  throw new Fail(message, field);
}

/** Bounds-checked reads of one flatbuffer: the region `[start, end)` of the file. */
class Fb {
  constructor(readonly dv: DataView, readonly start: number, readonly end: number, readonly what: string) {}
  need(p: number, n: number): void {
    if (!(p >= this.start && p + n <= this.end)) fail(`${this.what}: flatbuffer reference out of bounds`);
  }
  u8(p: number): number {
    this.need(p, 1);
    return this.dv.getUint8(p);
  }
  i16(p: number): number {
    this.need(p, 2);
    return this.dv.getInt16(p, true);
  }
  u16(p: number): number {
    this.need(p, 2);
    return this.dv.getUint16(p, true);
  }
  i32(p: number): number {
    this.need(p, 4);
    return this.dv.getInt32(p, true);
  }
  u32(p: number): number {
    this.need(p, 4);
    return this.dv.getUint32(p, true);
  }
  /** A non-negative int64 that must be a safe integer. */
  i64(p: number, what: string): number {
    this.need(p, 8);
    const lo = this.dv.getUint32(p, true);
    const hi = this.dv.getInt32(p + 4, true);
    if (hi < 0 || hi >= 0x200000) fail(`${this.what}: ${what} ${hi < 0 ? "is negative" : "is too large"}`);
    return hi * TWO32 + lo;
  }
  /** The table a uoffset at `p` points to. */
  ind(p: number): number {
    const t = p + this.u32(p);
    this.need(t, 4);
    return t;
  }
  root(): number {
    return this.ind(this.start);
  }
  /** Position of field `slot` of table `t`, or 0 when absent. */
  field(t: number, slot: number): number {
    const vt = t - this.i32(t);
    const vtLen = this.u16(vt);
    if (vtLen < 4 || vtLen % 2 !== 0) fail(`${this.what}: bad flatbuffer vtable`);
    this.need(vt, vtLen);
    const at = 4 + 2 * slot;
    if (at >= vtLen) return 0;
    const off = this.u16(vt + at);
    return off === 0 ? 0 : t + off;
  }
  table(t: number, slot: number): number {
    const p = this.field(t, slot);
    return p === 0 ? 0 : this.ind(p);
  }
  /** A vector field: position of the first element and the element count, bounds-checked. */
  vector(t: number, slot: number, elemSize: number): { pos: number; len: number } {
    const p = this.field(t, slot);
    if (p === 0) return { pos: 0, len: 0 };
    const v = p + this.u32(p);
    const len = this.u32(v);
    if (len * elemSize > this.end - (v + 4)) fail(`${this.what}: flatbuffer vector longer than its buffer`);
    return { pos: v + 4, len };
  }
  string(t: number, slot: number): string | null {
    const p = this.field(t, slot);
    if (p === 0) return null;
    const v = p + this.u32(p);
    const len = this.u32(v);
    if (len > this.end - (v + 4)) fail(`${this.what}: flatbuffer string longer than its buffer`);
    try {
      return utf8Fatal.decode(new Uint8Array(this.dv.buffer, this.dv.byteOffset + v + 4, len));
    } catch {
      return fail(`${this.what}: a name or metadata string is not valid UTF-8`);
    }
  }
  bool(t: number, slot: number): boolean {
    const p = this.field(t, slot);
    return p !== 0 && this.u8(p) !== 0;
  }
  scalarI16(t: number, slot: number, dflt: number): number {
    const p = this.field(t, slot);
    return p === 0 ? dflt : this.i16(p);
  }
  u8OrZero(t: number, slot: number): number {
    const p = this.field(t, slot);
    return p === 0 ? 0 : this.u8(p);
  }
  i32Field(t: number, slot: number, dflt: number): number {
    const p = this.field(t, slot);
    return p === 0 ? dflt : this.i32(p);
  }
}

interface Block {
  offset: number;
  metaLength: number;
  bodyLength: number;
}

interface BatchMeta {
  length: number;
  nodes: { length: number; nullCount: number }[];
  buffers: { offset: number; length: number }[];
  bodyStart: number;
  what: string;
}

/** Expected flatbuffer type of a plan column. */
function checkFieldType(fb: Fb, f: number, c: ColumnPlan, where: string): void {
  const typeType = fb.u8OrZero(f, 2);
  const type = fb.table(f, 3);
  const dict = fb.table(f, 4);
  const bad = (what: string): never => fail(`column ${where} should be ${describe(c)} but the file says ${what}`, where);
  if (c.type === "dictionary") {
    if (dict === 0) bad("it is not dictionary-encoded");
    const idAt = fb.field(dict, 0); // absent = the flatbuffer default, 0
    const id = idAt === 0 ? 0 : fb.i64(idAt, "dictionary id");
    if (id !== c.dictionaryId) bad(`dictionary id ${id} (expected ${c.dictionaryId})`);
    const it = fb.table(dict, 1);
    if (it === 0 || fb.i32Field(it, 0, 0) !== 32 || !fb.bool(it, 1)) bad("dictionary indices other than Int32");
    if (fb.scalarI16(dict, 3, 0) !== 0) bad("a dictionary kind other than dense");
    if (typeType !== T_UTF8) bad(`dictionary values of type id ${typeType}`);
    return;
  }
  if (dict !== 0) bad("a dictionary-encoded column");
  const expectInt = (bits: number, signed: boolean): void => {
    if (typeType !== T_INT || type === 0) bad(`type id ${typeType}`);
    if (fb.i32Field(type, 0, 0) !== bits || fb.bool(type, 1) !== signed) bad(`Int(${fb.i32Field(type, 0, 0)}, ${fb.bool(type, 1) ? "signed" : "unsigned"})`);
  };
  switch (c.type) {
    case "bool":
      if (typeType !== T_BOOL) bad(`type id ${typeType}`);
      return;
    case "int8":
      return expectInt(8, true);
    case "int16":
      return expectInt(16, true);
    case "int32":
      return expectInt(32, true);
    case "int64":
      return expectInt(64, true);
    case "uint8":
      return expectInt(8, false);
    case "uint16":
      return expectInt(16, false);
    case "uint32":
      return expectInt(32, false);
    case "uint64":
      return expectInt(64, false);
    case "float32":
    case "float64":
      if (typeType !== T_FLOAT || type === 0) bad(`type id ${typeType}`);
      if (fb.scalarI16(type, 0, 0) !== (c.type === "float32" ? 1 : 2)) bad("another float precision");
      return;
    case "utf8":
      if (typeType !== T_UTF8) bad(`type id ${typeType}`);
      return;
    case "binary":
      if (typeType !== T_BINARY) bad(`type id ${typeType}`);
      return;
    case "timestamp":
      if (typeType !== T_TIMESTAMP || type === 0) bad(`type id ${typeType}`);
      if (fb.scalarI16(type, 0, 0) !== 1) bad("a timestamp unit other than milliseconds");
      if (fb.string(type, 1) !== "UTC") bad("a timestamp time zone other than UTC");
      return;
    case "struct":
      if (typeType !== T_STRUCT) bad(`type id ${typeType}`);
      return;
    case "list":
      if (typeType !== T_LIST) bad(`type id ${typeType}`);
      return;
  }
}

function describe(c: ColumnPlan): string {
  return `${c.nullable ? "nullable " : ""}${c.type}${c.msgpack ? " (msgpack)" : ""}`;
}

function checkFields(fb: Fb, vec: { pos: number; len: number }, plans: readonly ColumnPlan[], prefix: string): void {
  if (vec.len !== plans.length) fail(`${prefix || "schema"} has ${vec.len} fields, the layout needs ${plans.length} (${plans.map((p) => p.name).join(", ")})`, prefix || undefined);
  for (let i = 0; i < plans.length; i++) {
    const c = plans[i];
    const f = fb.ind(vec.pos + 4 * i);
    const name = fb.string(f, 0) ?? "";
    const where = prefix ? `${prefix}.${c.name}` : c.name;
    if (name !== c.name) fail(`field ${i} of ${prefix || "the schema"} is ${JSON.stringify(name)}, the layout needs ${JSON.stringify(c.name)}`, where);
    if (fb.bool(f, 1) !== c.nullable) fail(`column ${where} should be ${c.nullable ? "nullable" : "non-nullable"}`, where);
    checkFieldType(fb, f, c, where);
    checkFields(fb, fb.vector(f, 5, 4), c.children, where);
  }
}

function readMetadata(fb: Fb, schema: number): Map<string, string> {
  const vec = fb.vector(schema, 2, 4);
  const out = new Map<string, string>();
  for (let i = 0; i < vec.len; i++) {
    const kv = fb.ind(vec.pos + 4 * i);
    const k = fb.string(kv, 0) ?? "";
    const v = fb.string(kv, 1) ?? "";
    if (out.has(k)) fail(`schema metadata key ${JSON.stringify(k)} appears twice`);
    out.set(k, v);
  }
  return out;
}

/** The reader state of one file. */
class FileReader {
  readonly dv: DataView;
  footerStart = 0;
  constructor(readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  blocks(fb: Fb, footer: number, slot: number): Block[] {
    const vec = fb.vector(footer, slot, 24);
    const out: Block[] = [];
    for (let i = 0; i < vec.len; i++) {
      const p = vec.pos + 24 * i;
      out.push({ offset: fb.i64(p, "block offset"), metaLength: fb.i32(p + 8), bodyLength: fb.i64(p + 16, "block body length") });
    }
    return out;
  }

  message(block: Block, expectHeader: number, what: string): { fb: Fb; header: number; bodyStart: number; bodyLength: number } {
    const { offset, metaLength, bodyLength } = block;
    if (offset < 8 || metaLength < 8 || offset + metaLength + bodyLength > this.footerStart) fail(`${what}: block outside the file`);
    let fbStart: number;
    let fbLen: number;
    if (this.dv.getUint32(offset, true) === 0xffffffff) {
      fbLen = this.dv.getInt32(offset + 4, true);
      fbStart = offset + 8;
    } else {
      fbLen = this.dv.getInt32(offset, true);
      fbStart = offset + 4;
    }
    if (fbLen <= 0 || fbStart + fbLen > offset + metaLength) fail(`${what}: message metadata outside its block`);
    const fb = new Fb(this.dv, fbStart, fbStart + fbLen, what);
    const msg = fb.root();
    const version = fb.scalarI16(msg, 0, 0);
    if (version !== 3 && version !== 4) fail(`${what}: unsupported Arrow metadata version ${version}`);
    if (fb.u8OrZero(msg, 1) !== expectHeader) fail(`${what}: unexpected message type ${fb.u8OrZero(msg, 1)}`);
    const header = fb.table(msg, 2);
    if (header === 0) fail(`${what}: message without header`);
    const declared = fb.field(msg, 3) === 0 ? 0 : fb.i64(fb.field(msg, 3), "body length");
    if (declared !== bodyLength) fail(`${what}: body length ${declared} differs from the footer's ${bodyLength}`);
    return { fb, header, bodyStart: offset + metaLength, bodyLength };
  }

  batch(fb: Fb, rb: number, bodyStart: number, bodyLength: number, what: string): BatchMeta {
    const length = fb.field(rb, 0) === 0 ? 0 : fb.i64(fb.field(rb, 0), "batch length");
    if (length > 0x7fffffff) fail(`${what}: more than 2^31-1 rows`);
    const nv = fb.vector(rb, 1, 16);
    const bv = fb.vector(rb, 2, 16);
    if (fb.table(rb, 3) !== 0) fail(`${what}: IPC body compression is not used by arrowpoint chunks`);
    if (fb.vector(rb, 4, 8).len !== 0) fail(`${what}: variadic buffers are not used by arrowpoint chunks`);
    const nodes = [];
    for (let i = 0; i < nv.len; i++) {
      const p = nv.pos + 16 * i;
      nodes.push({ length: fb.i64(p, "node length"), nullCount: fb.i64(p + 8, "null count") });
    }
    const buffers = [];
    for (let i = 0; i < bv.len; i++) {
      const p = bv.pos + 16 * i;
      const offset = fb.i64(p, "buffer offset");
      const len = fb.i64(p + 8, "buffer length");
      if (offset + len > bodyLength) fail(`${what}: buffer ${i} lies outside the message body`);
      // The IPC format aligns buffers to 8 bytes and never shares bytes between them; a file that does
      // either was not written by an Arrow writer, and apache-arrow's writer (used to slice chunks)
      // re-serializes such views into a corrupt file.
      if ((bodyStart + offset) % 8 !== 0) fail(`${what}: buffer ${i} is not 8-byte aligned`);
      buffers.push({ offset, length: len });
    }
    const used = buffers.filter((b) => b.length > 0).sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < used.length; i++) if (used[i].offset < used[i - 1].offset + used[i - 1].length) fail(`${what}: two buffers overlap`);
    return { length, nodes, buffers, bodyStart, what };
  }

  /** A typed view of `count` elements at absolute `pos` (copied if misaligned). */
  view<A extends ColumnValues>(
    Ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): A; new (length: number): A; readonly BYTES_PER_ELEMENT: number },
    pos: number,
    count: number,
  ): A {
    const at = this.bytes.byteOffset + pos;
    if (at % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(this.bytes.buffer, at, count);
    const copy = new Ctor(count);
    new Uint8Array(copy.buffer).set(this.bytes.subarray(pos, pos + count * Ctor.BYTES_PER_ELEMENT));
    return copy;
  }
}

const WIDTH: Record<string, [number, { new (buffer: ArrayBufferLike, byteOffset: number, length: number): ColumnValues; new (length: number): ColumnValues; readonly BYTES_PER_ELEMENT: number }]> = {
  int8: [1, Int8Array],
  int16: [2, Int16Array],
  int32: [4, Int32Array],
  int64: [8, BigInt64Array],
  uint8: [1, Uint8Array],
  uint16: [2, Uint16Array],
  uint32: [4, Uint32Array],
  uint64: [8, BigUint64Array],
  float32: [4, Float32Array],
  float64: [8, Float64Array],
  timestamp: [8, BigInt64Array],
  dictionary: [4, Int32Array],
};

class BatchLoader {
  node = 0;
  buffer = 0;
  constructor(readonly r: FileReader, readonly b: BatchMeta) {}

  nextBuffer(where: string): { pos: number; length: number } {
    const buf = this.b.buffers[this.buffer++];
    if (!buf) fail(`${this.b.what}: too few buffers for column ${where}`, where);
    return { pos: this.b.bodyStart + buf.offset, length: buf.length };
  }

  offsets(length: number, where: string): Int32Array {
    const buf = this.nextBuffer(where);
    if (length === 0 && buf.length === 0) return new Int32Array(1);
    if (buf.length < (length + 1) * 4) fail(`column ${where}: offsets buffer too short`, where);
    const off = this.r.view(Int32Array, buf.pos, length + 1);
    if (off[0] < 0) fail(`column ${where}: negative offset`, where);
    for (let i = 0; i < length; i++) if (off[i + 1] < off[i]) fail(`column ${where}: offsets decrease at row ${i}`, where);
    return off;
  }

  /** Loads one column; `exact` is its required length, or -(min+1) for a list child of at least `min`. */
  column(c: ColumnPlan, where: string, exact: number, dictionaries: readonly (ColumnData | undefined)[]): ColumnData {
    const node = this.b.nodes[this.node++];
    if (!node) fail(`${this.b.what}: too few field nodes for column ${where}`, where);
    const { length, nullCount } = node;
    if (exact >= 0 ? length !== exact : length < -exact - 1) fail(`column ${where}: length ${length} does not match its parent`, where);
    if (length > 0x7fffffff) fail(`column ${where}: more than 2^31-1 slots`, where);
    if (nullCount > length) fail(`column ${where}: null count ${nullCount} exceeds length ${length}`, where);
    if (nullCount > 0 && !c.nullable) fail(`column ${where} is non-nullable but has ${nullCount} nulls`, where);
    const vb = this.nextBuffer(where);
    let validity: Uint8Array | null = null;
    if (nullCount > 0) {
      if (vb.length < Math.ceil(length / 8)) fail(`column ${where}: validity bitmap too short`, where);
      validity = this.r.bytes.subarray(vb.pos, vb.pos + Math.ceil(length / 8));
    }
    const base = { plan: c, length, nullCount, validity };
    switch (c.type) {
      case "struct": {
        const children = c.children.map((ch) => this.column(ch, `${where}.${ch.name}`, length, dictionaries));
        return { ...base, offsets: null, values: null, children, dictionary: null };
      }
      case "list": {
        const offsets = this.offsets(length, where);
        const child = this.column(c.children[0], `${where}[]`, -(offsets[length] + 1), dictionaries);
        return { ...base, offsets, values: null, children: [child], dictionary: null };
      }
      case "utf8":
      case "binary": {
        const offsets = this.offsets(length, where);
        const db = this.nextBuffer(where);
        if (offsets[length] > db.length) fail(`column ${where}: offsets point past the data buffer`, where);
        const values = this.r.bytes.subarray(db.pos, db.pos + offsets[length]);
        return { ...base, offsets, values, children: [], dictionary: null };
      }
      case "bool": {
        const db = this.nextBuffer(where);
        const n = Math.ceil(length / 8);
        if (db.length < n) fail(`column ${where}: data buffer too short`, where);
        return { ...base, offsets: null, values: this.r.bytes.subarray(db.pos, db.pos + n), children: [], dictionary: null };
      }
      default: {
        const [width, Ctor] = WIDTH[c.type];
        const db = this.nextBuffer(where);
        if (db.length < length * width) fail(`column ${where}: data buffer too short`, where);
        const values = this.r.view(Ctor, db.pos, length);
        let dictionary: ColumnData | null = null;
        if (c.type === "dictionary") {
          dictionary = dictionaries[c.dictionaryId!] ?? fail(`column ${where}: dictionary ${c.dictionaryId} missing`, where);
          const idx = values as Int32Array;
          const size = dictionary.length;
          for (let i = 0; i < length; i++) {
            const k = idx[i];
            if ((k < 0 || k >= size) && (validity === null || (validity[i >> 3] >> (i & 7)) & 1)) {
              fail(`column ${where}: dictionary index ${k} at slot ${i} is outside the dictionary of ${size}`, where);
            }
          }
        }
        return { ...base, offsets: null, values, children: [], dictionary };
      }
    }
  }

  finish(): void {
    if (this.node !== this.b.nodes.length || this.buffer !== this.b.buffers.length) {
      fail(`${this.b.what}: ${this.b.nodes.length} field nodes and ${this.b.buffers.length} buffers, the layout needs ${this.node} and ${this.buffer}`);
    }
  }
}

const DICTIONARY_PLAN: ColumnPlan = { name: "dictionary", type: "utf8", nullable: false, children: [] };

function parseFormatVersion(v: string | undefined, path: string | undefined): void {
  if (v === undefined) fail(`schema metadata lacks ${META_FORMAT_VERSION}: not an arrowpoint chunk`);
  if (!/^[0-9]{1,9}$/.test(v)) fail(`${META_FORMAT_VERSION} ${JSON.stringify(v)} is not a version number`);
  const n = Number(v);
  if (n > CHUNK_FORMAT_VERSION) throw new UnsupportedFormatVersionError(n, CHUNK_FORMAT_VERSION, path);
  if (n < 1) fail(`${META_FORMAT_VERSION} ${n} is not a version number`);
}

/**
 * Reads and validates an uncompressed chunk file. Views point into `input` (or into one aligned copy of it
 * when `input` is not 8-byte aligned), so keep `input` unchanged while using the result.
 *
 * @throws {SnapshotFormatError} for anything not a valid chunk; {@link UnsupportedFormatVersionError} for a
 * chunk written by a newer format version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeChunk } from "./encode_chunk.ts";
 * import { readChunkFile } from "./chunk_ipc.ts";
 * const { bytes } = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "arrow", type: "float64" } },
 *   { length: 2, keyGroups: [1, 4], keys: ["a", "b"], values: [0.5, 2] });
 * const file = readChunkFile(bytes);
 * assert.equal(file.rows, 2);
 * assert.deepEqual(file.columns.map((c) => c.plan.name), ["kg", "key", "value"]);
 * ```
 */
export function readChunkFile(input: Uint8Array, path?: string): ChunkFile {
  try {
    return readUnchecked(input, path);
  } catch (e) {
    if (e instanceof Fail) throw new SnapshotFormatError(e.message, { path, field: e.field });
    if (e instanceof SnapshotFormatError) throw e;
    // Anything else (a RangeError from a typed-array view we failed to foresee, stack overflow) is still a
    // format problem of these bytes: never let a bare built-in error escape.
    throw new SnapshotFormatError(`invalid Arrow chunk: ${(e as Error)?.message ?? String(e)}`, { path }, { cause: e });
  }
}

function readUnchecked(input: Uint8Array, path: string | undefined): ChunkFile {
  const bytes = input.byteOffset % 8 === 0 ? input : input.slice();
  const n = bytes.length;
  if (n < 8 + 10 + 8) fail(`too short for an Arrow IPC file (${n} bytes)`);
  for (let i = 0; i < 6; i++) {
    if (bytes[i] !== MAGIC[i] || bytes[n - 6 + i] !== MAGIC[i]) fail("not an Arrow IPC file (missing ARROW1 magic at start or end; truncated?)");
  }
  const r = new FileReader(bytes);
  const footerLen = r.dv.getInt32(n - 10, true);
  if (footerLen <= 0 || footerLen > n - 18) fail("Arrow footer length out of range");
  r.footerStart = n - 10 - footerLen;
  const fb = new Fb(r.dv, r.footerStart, n - 10, "footer");
  const footer = fb.root();
  const version = fb.scalarI16(footer, 0, 0);
  if (version !== 3 && version !== 4) fail(`unsupported Arrow metadata version ${version}`);
  const schema = fb.table(footer, 1);
  if (schema === 0) fail("Arrow footer has no schema");
  if (fb.scalarI16(schema, 0, 0) !== 0) fail("big-endian Arrow data is not supported");
  const metadata = readMetadata(fb, schema);
  parseFormatVersion(metadata.get(META_FORMAT_VERSION), path);
  const layoutText = metadata.get(META_LAYOUT);
  if (layoutText === undefined) fail(`schema metadata lacks ${META_LAYOUT}`);
  let layoutJson: unknown;
  try {
    layoutJson = JSON.parse(layoutText);
  } catch {
    fail(`${META_LAYOUT} is not JSON`, META_LAYOUT);
  }
  const checked = checkLayout(layoutJson);
  if (checked.problem !== undefined) fail(`${META_LAYOUT} is invalid: ${checked.problem}`, META_LAYOUT);
  const fields = fb.vector(schema, 1, 4);
  let plan = chunkPlan(checked.layout, false);
  if (fields.len === plan.columns.length + 1) plan = chunkPlan(checked.layout, true);
  checkFields(fb, fields, plan.columns, "");

  const dictBlocks = r.blocks(fb, footer, 2);
  const batchBlocks = r.blocks(fb, footer, 3);
  if (dictBlocks.length !== plan.dictionaries) fail(`${dictBlocks.length} dictionary batches, the layout needs ${plan.dictionaries}`);
  if (batchBlocks.length > 1) fail(`${batchBlocks.length} record batches; an arrowpoint chunk has at most one`);

  const dictionaries: (ColumnData | undefined)[] = new Array(plan.dictionaries);
  for (let i = 0; i < dictBlocks.length; i++) {
    const what = `dictionary batch ${i}`;
    const m = r.message(dictBlocks[i], H_DICTIONARY_BATCH, what);
    const idField = m.fb.field(m.header, 0);
    const id = idField === 0 ? 0 : m.fb.i64(idField, "dictionary id");
    if (id >= plan.dictionaries || dictionaries[id] !== undefined) fail(`${what}: unexpected or repeated dictionary id ${id}`);
    if (m.fb.bool(m.header, 2)) fail(`${what}: delta dictionaries are not used by arrowpoint chunks`);
    const data = m.fb.table(m.header, 1);
    if (data === 0) fail(`${what}: no data`);
    const meta = r.batch(m.fb, data, m.bodyStart, m.bodyLength, what);
    const loader = new BatchLoader(r, meta);
    dictionaries[id] = loader.column(DICTIONARY_PLAN, `dictionary ${id}`, meta.length, []);
    loader.finish();
  }

  let rows = 0;
  let columns: ColumnData[];
  if (batchBlocks.length === 1) {
    const m = r.message(batchBlocks[0], H_RECORD_BATCH, "record batch");
    const meta = r.batch(m.fb, m.header, m.bodyStart, m.bodyLength, "record batch");
    rows = meta.length;
    const loader = new BatchLoader(r, meta);
    columns = plan.columns.map((c) => loader.column(c, c.name, rows, dictionaries));
    loader.finish();
  } else {
    columns = plan.columns.map((c) => emptyColumn(c, dictionaries));
  }

  let keyGroupIndex: KeyGroupIndex | undefined;
  if (plan.keyed) {
    const kg = columns[plan.index.kg].values as Uint16Array;
    for (let i = 0; i < rows; i++) {
      if (kg[i] > MAX_KEY_GROUP) fail(`key group ${kg[i]} at row ${i} is beyond ${MAX_KEY_GROUP}`, "kg");
      if (i > 0 && kg[i] < kg[i - 1]) fail(`rows are not sorted by key group (row ${i})`, "kg");
    }
    const text = metadata.get(META_KEY_GROUP_INDEX);
    if (text === undefined) fail(`schema metadata lacks ${META_KEY_GROUP_INDEX}`, META_KEY_GROUP_INDEX);
    const parsed = parseKeyGroupIndex(text, rows);
    if (typeof parsed === "string") fail(parsed, META_KEY_GROUP_INDEX);
    const g = parsed.keyGroups;
    const o = parsed.offsets;
    for (let i = 0; i < g.length; i++) {
      if (kg[o[i]] !== g[i] || kg[o[i + 1] - 1] !== g[i]) fail("key-group index does not match the kg column", META_KEY_GROUP_INDEX);
    }
    keyGroupIndex = parsed;
  }
  if (plan.delta) {
    const ops = columns[plan.index.op].values as Uint8Array;
    for (let i = 0; i < rows; i++) if (ops[i] > 1) fail(`op ${ops[i]} at row ${i} is neither 0 (upsert) nor 1 (delete)`, "op");
  }
  return { plan, rows, columns, keyGroupIndex };
}

function emptyColumn(c: ColumnPlan, dictionaries: readonly (ColumnData | undefined)[]): ColumnData {
  const base = { plan: c, length: 0, nullCount: 0, validity: null };
  switch (c.type) {
    case "struct":
      return { ...base, offsets: null, values: null, children: c.children.map((ch) => emptyColumn(ch, dictionaries)), dictionary: null };
    case "list":
      return { ...base, offsets: new Int32Array(1), values: null, children: [emptyColumn(c.children[0], dictionaries)], dictionary: null };
    case "utf8":
    case "binary":
      return { ...base, offsets: new Int32Array(1), values: new Uint8Array(0), children: [], dictionary: null };
    case "bool":
      return { ...base, offsets: null, values: new Uint8Array(0), children: [], dictionary: null };
    default: {
      const Ctor = WIDTH[c.type][1];
      const dictionary = c.type === "dictionary" ? dictionaries[c.dictionaryId!] ?? fail(`dictionary ${c.dictionaryId} missing`) : null;
      return { ...base, offsets: null, values: new Ctor(0), children: [], dictionary };
    }
  }
}
