/**
 * Slicing a chunk to a key-group range at the Arrow level, for rescaling: the validated column buffers are
 * wrapped as apache-arrow `Data` (zero-copy), sliced and re-serialized, so no value becomes a JS value.
 *
 * @module
 */
import { type Data, type DataType, makeData, makeVector } from "apache-arrow";
import type { ColumnData } from "./chunk_ipc.ts";
import { arrowField, buildKeyGroupIndex } from "./chunk_schema.ts";
import type { Compression } from "./compression.ts";
import { type ChunkReadInfo, checkRange, keyGroupRows, openChunk } from "./decode_chunk.ts";
import { type EncodedChunk, finishChunk } from "./encode_chunk.ts";
import { ArrowpointError, SnapshotFormatError } from "./errors.ts";

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
  const file = openChunk(bytes, info);
  const { from, to } = keyGroupRows(file, range);
  try {
    const fields = file.plan.columns.map(arrowField);
    const datas = file.columns.map((col, i) => toArrowData(col, fields[i].type).slice(from, to - from));
    const kg = file.columns[file.plan.index.kg].values as Uint16Array;
    return finishChunk(file.plan, fields, datas, to - from, buildKeyGroupIndex(kg, from, to), options);
  } catch (e) {
    if (e instanceof ArrowpointError) throw e;
    throw new SnapshotFormatError(`cannot slice chunk: ${(e as Error)?.message ?? String(e)}`, { path: info.path }, { cause: e });
  }
}
