// Private: the Arrow-level key-group slice of a chunk. Uses the codec's `sliceChunk` (no row becomes a JS
// value); until a codec without it is gone, falls back to decoding the slice and encoding it again.
import * as decode from "../format/decode_chunk.ts";
import { type EncodedChunk, encodeChunk } from "../format/encode_chunk.ts";
import type { ChunkCompression } from "../format/manifest.ts";
import type { KeyGroupRange } from "../format/key_group.ts";

type SliceFn = (
  bytes: Uint8Array,
  range: KeyGroupRange,
  info?: decode.ChunkReadInfo,
  options?: { compression?: ChunkCompression },
) => EncodedChunk;

const native = (decode as unknown as Record<string, unknown>).sliceChunk as SliceFn | undefined;

/** Whether slicing runs without materialising rows. */
export const NATIVE_SLICE: boolean = typeof native === "function";

/** The rows of key groups `range` of a chunk, as a new chunk. */
export function sliceChunk(bytes: Uint8Array, range: KeyGroupRange, info: decode.ChunkReadInfo, options: { compression?: ChunkCompression; state?: string }): EncodedChunk {
  if (native) return native(bytes, range, info, { compression: options.compression });
  const part = decode.readKeyGroupRange(bytes, range, info);
  return encodeChunk(part.layout, part, { compression: options.compression, state: options.state });
}
