// Private: Arrow IPC files written from buffers, with apache-arrow only encoding the metadata messages
// (schema, record batch and dictionary headers, footer):
// - relabelChunk: a chunk whose value column changes only in its schema — struct fields renamed, dropped or
//   reordered, scalar constants added — rewritten without rebuilding columns: every kept buffer is copied
//   as bytes into one output buffer. Rows are untouched, so the key-group index carries over.
// - writeChunkColumns: a chunk from column buffers (gathered rows), each copied once into the output.
import { Footer, FileBlock } from "apache-arrow/ipc/metadata/file";
import { BufferRegion, DictionaryBatch, FieldNode, Message, RecordBatch as BatchHeader } from "apache-arrow/ipc/metadata/message";
import { MetadataVersion } from "apache-arrow";
import type { ChunkFile, ColumnData } from "./chunk_ipc.ts";
import { arrowField, arrowSchema, type ChunkPlan, type ColumnPlan, type KeyGroupIndex } from "./chunk_schema.ts";
import { compress, type Compression } from "./compression.ts";
import type { ValueMap } from "./chunk_slice.ts";
import { checksumOf } from "./checksum.ts";
import type { EncodedChunk } from "./encode_chunk.ts";
import { type Lease, leaseBytes } from "./_scratch.ts";

const MAGIC = Uint8Array.of(0x41, 0x52, 0x52, 0x4f, 0x57, 0x31);

/** Field nodes and buffers a column (with its children) takes in a record batch, in pre-order. */
function span(c: ColumnPlan): { nodes: number; buffers: number } {
  let nodes = 1;
  let buffers = c.type === "struct" ? 1 : c.type === "utf8" || c.type === "binary" ? 3 : 2;
  for (const ch of c.children) {
    const s = span(ch);
    nodes += s.nodes;
    buffers += s.buffers;
  }
  return { nodes, buffers };
}

/** Scalar types whose constant column is plain buffers (no dictionary batch, no children). */
const CONSTANT_TYPES = new Set(["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "timestamp", "utf8", "binary"]);

/**
 * Whether `map` only renames, drops or reorders the fields of a struct value, or adds constant fields of
 * plain scalar types: no existing column is rebuilt.
 */
export function schemaOnly(oldPlan: ChunkPlan, newPlan: ChunkPlan, map: ValueMap | undefined): boolean {
  const ov = oldPlan.columns[oldPlan.index.value];
  const nv = newPlan.columns[newPlan.index.value];
  if (!ov || !nv || ov.type !== "struct" || nv.type !== "struct" || oldPlan.delta !== newPlan.delta) return false;
  if (oldPlan.columns.length !== newPlan.columns.length) return false;
  for (let i = 0; i < oldPlan.columns.length; i++) {
    if (i !== oldPlan.index.value && JSON.stringify(oldPlan.columns[i]) !== JSON.stringify(newPlan.columns[i])) return false;
  }
  const fields: readonly ({ from: string; to?: unknown } | { constant: unknown })[] | undefined = map === undefined ? nv.children.map((c) => ({ from: c.name })) : "fields" in map ? map.fields : undefined;
  if (!fields || fields.length !== nv.children.length) return false;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (!("from" in f)) {
      const c = nv.children[i];
      if (!CONSTANT_TYPES.has(c.type) || c.msgpack) return false;
      continue;
    }
    if (f.to !== undefined) return false;
    const old = ov.children.find((c) => c.name === f.from);
    if (!old || !sameType(old, nv.children[i])) return false;
  }
  return true;
}

function sameType(a: ColumnPlan, b: ColumnPlan): boolean {
  if (a.type !== b.type || a.nullable !== b.nullable || a.msgpack !== b.msgpack || a.children.length !== b.children.length) return false;
  return a.children.every((c, i) => sameType(c, b.children[i]));
}

/** Dictionary ids of a column's subtree, pre-order. */
function dictionaryIds(c: ColumnPlan, out: number[] = []): number[] {
  if (c.dictionaryId !== undefined) out.push(c.dictionaryId);
  for (const ch of c.children) dictionaryIds(ch, out);
  return out;
}

/** The header of the message of `block` (after its continuation marker and length prefix). */
function messageAt(bytes: Uint8Array, dv: DataView, block: FileBlock): Message {
  const skip = dv.getInt32(block.offset, true) === -1 ? 8 : 4;
  const len = dv.getInt32(block.offset + skip - 4, true);
  return Message.decode(bytes.subarray(block.offset + skip, block.offset + skip + len));
}

function frame(message: Message, parts: Uint8Array[]): number {
  const fb = Message.encode(message);
  const aligned = (fb.byteLength + 8 + 7) & ~7;
  const head = new Uint8Array(aligned);
  const dv = new DataView(head.buffer);
  dv.setInt32(0, -1, true);
  dv.setInt32(4, aligned - 8, true);
  head.set(fb, 8);
  parts.push(head);
  return aligned;
}

/**
 * The chunk of `file` (opened and validated from `bytes`) under `newPlan`, whose value struct takes its
 * fields from the old one by name as `map` says ({@link schemaOnly} must hold).
 */
export function relabelChunk(
  bytes: Uint8Array,
  file: ChunkFile,
  newPlan: ChunkPlan,
  map: ValueMap | undefined,
  constant: (plan: ColumnPlan, value: unknown, length: number) => ColumnData,
): EncodedChunk {
  const oldPlan = file.plan;
  const n = bytes.length;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const footerLength = dv.getInt32(n - 10, true);
  const footer = Footer.decode(bytes.subarray(n - 10 - footerLength, n - 10));
  const ov = oldPlan.columns[oldPlan.index.value];
  const nv = newPlan.columns[newPlan.index.value];
  const fields = map === undefined ? nv.children.map((c) => ({ from: c.name })) : (map as { fields: readonly ({ from: string } | { constant: unknown })[] }).fields;

  // Old record-batch positions (node, buffer) of every column, then the new order of them.
  const spans: { node: number; buffer: number; nodes: number; buffers: number }[] = [];
  const childSpans = new Map<string, { node: number; buffer: number; nodes: number; buffers: number }>();
  let node = 0;
  let buffer = 0;
  for (const c of oldPlan.columns) {
    const s = span(c);
    spans.push({ node, buffer, ...s });
    if (c === ov) {
      let cn = node + 1;
      let cb = buffer + 1;
      for (const ch of c.children) {
        const k = span(ch);
        childSpans.set(ch.name, { node: cn, buffer: cb, ...k });
        cn += k.nodes;
        cb += k.buffers;
      }
    }
    node += s.nodes;
    buffer += s.buffers;
  }
  type Piece = { node: number; buffer: number; nodes: number; buffers: number } | { column: ColumnData };
  const order: Piece[] = [];
  for (let i = 0; i < oldPlan.columns.length; i++) {
    if (i !== oldPlan.index.value) order.push(spans[i]);
    else {
      order.push({ node: spans[i].node, buffer: spans[i].buffer, nodes: 1, buffers: 1 }); // the struct itself
      fields.forEach((f, k) => order.push("from" in f ? childSpans.get(f.from)! : { column: constant(nv.children[k], f.constant, file.rows) }));
    }
  }
  // Which old dictionary each new one is (pre-order ids on both sides).
  const oldIds = oldPlan.columns.flatMap((c) => (c === ov ? [] : dictionaryIds(c)));
  const newIds = newPlan.columns.flatMap((c) => (c === nv ? [] : dictionaryIds(c)));
  const dictFrom = new Map<number, number>();
  oldIds.forEach((id, i) => dictFrom.set(newIds[i], id));
  const byName = new Map(ov.children.map((c) => [c.name, c]));
  nv.children.forEach((c, i) => {
    const f = fields[i];
    if (!("from" in f)) return;
    const o = dictionaryIds(byName.get(f.from)!);
    dictionaryIds(c).forEach((id, k) => dictFrom.set(id, o[k]));
  });

  const parts: Uint8Array[] = [MAGIC, new Uint8Array(2)];
  let pos = 8;
  const schema = arrowSchema(newPlan, file.keyGroupIndex, newPlan.columns.map(arrowField));
  pos += frame(Message.from(schema), parts);
  const oldDicts = [...footer.dictionaryBatches()];
  const oldDictById = new Map<number, FileBlock>();
  for (const b of oldDicts) {
    const m = messageAt(bytes, dv, b);
    oldDictById.set(Number((m.header() as DictionaryBatch).id), b);
  }
  const dictBlocks: FileBlock[] = [];
  for (let id = 0; id < newPlan.dictionaries; id++) {
    const b = oldDictById.get(dictFrom.get(id)!)!;
    const h = messageAt(bytes, dv, b).header() as DictionaryBatch;
    const at = pos;
    const meta = frame(Message.from(new DictionaryBatch(h.data, id, h.isDelta), Number(b.bodyLength)), parts);
    parts.push(bytes.subarray(b.offset + b.metaDataLength, b.offset + b.metaDataLength + Number(b.bodyLength)));
    pos += meta + Number(b.bodyLength);
    dictBlocks.push(new FileBlock(meta, b.bodyLength, at));
  }
  const batchBlocks: FileBlock[] = [];
  for (const b of footer.recordBatches()) {
    const h = messageAt(bytes, dv, b).header() as BatchHeader;
    const bodyStart = b.offset + b.metaDataLength;
    const nodes: FieldNode[] = [];
    const regions: BufferRegion[] = [];
    const body: Uint8Array[] = [];
    let bodyLength = 0;
    const add = (b: Uint8Array) => {
      const len = b.byteLength;
      regions.push(new BufferRegion(bodyLength, len));
      if (len > 0) body.push(b);
      const padded = (len + 7) & ~7;
      if (padded > len) body.push(new Uint8Array(padded - len));
      bodyLength += padded;
    };
    for (const s of order) {
      if ("column" in s) {
        const c = s.column;
        nodes.push(new FieldNode(c.length, c.nullCount));
        add(c.nullCount > 0 && c.validity ? c.validity : new Uint8Array(0));
        if (c.offsets) add(new Uint8Array(c.offsets.buffer, c.offsets.byteOffset, c.offsets.byteLength));
        const v = c.values!;
        add(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        continue;
      }
      for (let k = 0; k < s.nodes; k++) nodes.push(h.nodes[s.node + k]);
      for (let k = 0; k < s.buffers; k++) {
        const r = h.buffers[s.buffer + k];
        add(bytes.subarray(bodyStart + Number(r.offset), bodyStart + Number(r.offset) + Number(r.length)));
      }
    }
    const at = pos;
    const meta = frame(Message.from(new BatchHeader(h.length, nodes, regions, null), bodyLength), parts);
    parts.push(...body);
    pos += meta + bodyLength;
    batchBlocks.push(new FileBlock(meta, bodyLength, at));
  }
  const out = closeFile(parts, schema, batchBlocks, dictBlocks);
  const result: EncodedChunk = { bytes: out.bytes, rows: file.rows, checksum: checksumOf(out.bytes), compression: "none", rawBytes: out.bytes.length, release: out.release };
  const ix = file.keyGroupIndex;
  if (ix && ix.keyGroups.length > 0) result.keyGroupRange = { start: ix.keyGroups[0], end: ix.keyGroups[ix.keyGroups.length - 1] };
  return result;
}

/** Appends `b` to a body as one 8-byte-aligned buffer. */
class Body {
  readonly parts: Uint8Array[] = [];
  readonly regions: BufferRegion[] = [];
  readonly nodes: FieldNode[] = [];
  length = 0;

  add(b: Uint8Array): void {
    const len = b.byteLength;
    this.regions.push(new BufferRegion(this.length, len));
    if (len > 0) this.parts.push(b);
    const padded = (len + 7) & ~7;
    if (padded > len) this.parts.push(new Uint8Array(padded - len));
    this.length += padded;
  }

  column(c: ColumnData, dictionaries: ColumnData[]): void {
    const n = c.length;
    this.nodes.push(new FieldNode(n, c.nullCount));
    this.add(c.nullCount > 0 && c.validity ? c.validity.subarray(0, (n + 7) >> 3) : EMPTY);
    switch (c.plan.type) {
      case "struct":
        for (const ch of c.children) this.column(ch, dictionaries);
        return;
      case "list":
        this.add(bytesOf(c.offsets!, n + 1));
        this.column(c.children[0], dictionaries);
        return;
      case "utf8":
      case "binary":
        this.add(bytesOf(c.offsets!, n + 1));
        this.add((c.values as Uint8Array).subarray(0, c.offsets![n]));
        return;
      case "bool":
        this.add((c.values as Uint8Array).subarray(0, (n + 7) >> 3));
        return;
      default:
        if (c.plan.type === "dictionary") dictionaries[c.plan.dictionaryId!] = c.dictionary!;
        this.add(bytesOf(c.values!, n));
    }
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Ends an Arrow IPC file (end-of-stream marker, footer, its length, magic) and joins its parts into one
 * buffer, leased from the scratch pool (every byte of it is written here: padding is among the parts).
 */
function closeFile(parts: Uint8Array[], schema: Parameters<typeof Footer.encode>[0]["schema"], batchBlocks: FileBlock[], dictBlocks: FileBlock[]): Lease {
  parts.push(new Uint8Array(Int32Array.of(-1, 0).buffer));
  const footerBytes = Footer.encode(new Footer(schema, MetadataVersion.V5, batchBlocks, dictBlocks));
  parts.push(footerBytes, new Uint8Array(Int32Array.of(footerBytes.byteLength).buffer), MAGIC);
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const lease = leaseBytes(total);
  const out = lease.bytes;
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return lease;
}

function bytesOf(a: Exclude<ColumnData["values"], null> | Int32Array, count: number): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, count * a.BYTES_PER_ELEMENT);
}

/**
 * An Arrow IPC file of `columns` (one per column of `plan`, as the chunk reader returns them): the metadata
 * messages encoded with apache-arrow, every buffer copied once into the output (no intermediate Arrow
 * vectors, no joined copy), then checksummed and compressed as `options` says.
 */
export function writeChunkColumns(
  plan: ChunkPlan,
  columns: readonly ColumnData[],
  rows: number,
  keyGroupIndex: KeyGroupIndex | undefined,
  options: { compression?: Compression; level?: number } = {},
): EncodedChunk {
  const parts: Uint8Array[] = [MAGIC, new Uint8Array(2)];
  let pos = 8;
  const schema = arrowSchema(plan, keyGroupIndex, plan.columns.map(arrowField));
  pos += frame(Message.from(schema), parts);
  const batch = new Body();
  const dictionaries: ColumnData[] = [];
  for (const c of columns) batch.column(c, dictionaries);
  const dictBlocks: FileBlock[] = [];
  for (let id = 0; id < plan.dictionaries; id++) {
    const d = new Body();
    const dict = dictionaries[id];
    d.column(dict, []);
    const at = pos;
    const meta = frame(Message.from(new DictionaryBatch(new BatchHeader(dict.length, d.nodes, d.regions, null), id), d.length), parts);
    parts.push(...d.parts);
    pos += meta + d.length;
    dictBlocks.push(new FileBlock(meta, d.length, at));
  }
  const at = pos;
  const meta = frame(Message.from(new BatchHeader(rows, batch.nodes, batch.regions, null), batch.length), parts);
  parts.push(...batch.parts);
  pos += meta + batch.length;
  const batchBlocks = [new FileBlock(meta, batch.length, at)];
  const raw = closeFile(parts, schema, batchBlocks, dictBlocks);
  const compression = options.compression ?? "none";
  const bytes = compress(raw.bytes, compression, options.level);
  const out: EncodedChunk = { bytes, rows, checksum: checksumOf(bytes), compression, rawBytes: raw.bytes.length };
  if (bytes === raw.bytes) out.release = raw.release;
  else raw.release();
  if (keyGroupIndex && keyGroupIndex.keyGroups.length > 0) {
    out.keyGroupRange = { start: keyGroupIndex.keyGroups[0], end: keyGroupIndex.keyGroups[keyGroupIndex.keyGroups.length - 1] };
  }
  return out;
}
