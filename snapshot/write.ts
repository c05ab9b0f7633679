/**
 * Writing snapshots: chunks first, the manifest last and only if absent, so a snapshot either exists whole
 * or not at all.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { joinPath } from "../backends/path.ts";
import { AlreadyExistsError } from "../format/errors.ts";
import type { EncodedChunk } from "../format/encode_chunk.ts";
import { type ChunkRef, type Manifest, writeManifest } from "../format/manifest.ts";
import { checkSnapshotPath, safeSegment } from "../format/snapshot_path.ts";
import { manifestPath } from "./layout.ts";

/** What the writer knows about a chunk beyond its bytes. */
export interface ChunkMeta {
  /** `base` holds every row of its range; `delta` upserts and deletes. */
  type: "base" | "delta";
  /** Apply order (the checkpoint id that wrote it). */
  order: number;
  /** Operator state: the subtask whose list it holds. */
  subtask?: number;
}

/**
 * Writes one encoded chunk at `path` (relative to `storage`) and returns its manifest entry. `refPath`
 * is the path the manifest records (relative to the snapshot's chunk root); it defaults to `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { encodeChunk } from "../format/encode_chunk.ts";
 * import { writeChunk } from "./write.ts";
 * const storage = await openStorage("memory:write-chunk-example");
 * const chunk = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "msgpack" } },
 *   { length: 1, keyGroups: [3], keys: ["a"], values: [1] });
 * const ref = await writeChunk(storage, "sp/counter/counts/kg-0-127.arrow", chunk, { type: "base", order: 0 }, "counter/counts/kg-0-127.arrow");
 * assert.equal(ref.rows, 1);
 * ```
 */
export async function writeChunk(storage: Storage, path: string, chunk: EncodedChunk, meta: ChunkMeta, refPath: string = path): Promise<ChunkRef> {
  checkSnapshotPath(refPath);
  await storage.put(path, chunk.bytes);
  const ref: ChunkRef = {
    path: refPath,
    rows: chunk.rows,
    bytes: chunk.bytes.length,
    checksum: chunk.checksum,
    compression: chunk.compression,
    type: meta.type,
    order: meta.order,
  };
  if (chunk.keyGroupRange) ref.keyGroupRange = { start: chunk.keyGroupRange.start, end: chunk.keyGroupRange.end };
  if (chunk.compression !== "none") ref.rawBytes = chunk.rawBytes;
  if (meta.subtask !== undefined) ref.subtask = meta.subtask;
  return ref;
}

/**
 * Commits a snapshot: validates and writes `dir/_manifest.json` only if no manifest is there. Call it after
 * every chunk is written. Throws {@link AlreadyExistsError} if another writer committed first (nothing is
 * overwritten) and `ManifestSchemaError` for an invalid manifest (nothing is written).
 *
 * @example
 * ```ts
 * import { openStorage } from "../backends/open.ts";
 * import { commitManifest } from "./write.ts";
 * const storage = await openStorage("memory:commit-example");
 * await commitManifest(storage, "savepoints/sp-1", {
 *   format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: new Date().toISOString(),
 *   writer: { name: "arrowpoint", version: "0.1.0" }, job: "demo", maxParallelism: 128,
 *   hash: "flink-murmur-java-hashcode", chunkRoot: ".", operators: [],
 * });
 * ```
 */
export async function commitManifest(storage: Storage, dir: string, manifest: Manifest): Promise<void> {
  const bytes = writeManifest(manifest);
  const path = manifestPath(dir);
  if (!(await storage.putIfAbsent(path, bytes))) throw new AlreadyExistsError(`${storage.uri.replace(/\/+$/, "")}/${path}`);
}

/**
 * The canonical relative path of a savepoint chunk: `<operator>/<state>/kg-<first>-<last>.arrow` for keyed
 * state, `<operator>/<state>/subtask-<i>.arrow` for operator state (names made file-safe).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { savepointChunkPath } from "./write.ts";
 * assert.equal(savepointChunkPath("counter", "counts", { start: 0, end: 63 }), "counter/counts/kg-0-63.arrow");
 * ```
 */
export function savepointChunkPath(uid: string, state: string, at: { start: number; end: number } | number): string {
  const file = typeof at === "number" ? `subtask-${at}.arrow` : `kg-${at.start}-${at.end}.arrow`;
  return joinPath(safeSegment(uid), safeSegment(state), file);
}

