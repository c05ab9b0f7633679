/**
 * Writing snapshots: chunks first, the manifest last and only if absent, so a snapshot either exists whole
 * or not at all.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { AlreadyExistsError } from "../format/errors.ts";
import type { EncodedChunk } from "../format/encode_chunk.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import { type ChunkRef, FORMAT_VERSION, HASH_FUNCTION, type Manifest, type OperatorSnapshot, writeManifest } from "../format/manifest.ts";
import { VERSION } from "../format/version.ts";
import { checkSnapshotPath } from "../format/snapshot_path.ts";
import { manifestPath } from "./layout.ts";

/** What the writer knows about a chunk beyond its bytes. */
export interface ChunkMeta {
  /** `base` holds every row of its range; `delta` upserts and deletes. */
  type: "base" | "delta";
  /** Apply order (the checkpoint id that wrote it). */
  order: number;
  /** Operator state: the subtask whose list it holds. */
  subtask?: number;
  /**
   * The key groups the chunk stands for, when more than its rows' (a base resets every key group of its
   * range, empty ones included). Default: the range of its rows; none for operator state.
   */
  keyGroupRange?: KeyGroupRange;
  /**
   * Write with the storage's `putDeferred` when it has one: the chunk is durable only after
   * {@link syncChunks}, which the writer then calls before its commit (one sync pass for every chunk).
   */
  deferSync?: boolean;
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
  if (meta.deferSync && storage.putDeferred) await storage.putDeferred(path, chunk.bytes);
  else await storage.put(path, chunk.bytes);
  const ref: ChunkRef = {
    path: refPath,
    rows: chunk.rows,
    bytes: chunk.bytes.length,
    checksum: chunk.checksum,
    compression: chunk.compression,
    type: meta.type,
    order: meta.order,
  };
  const range = meta.keyGroupRange ?? chunk.keyGroupRange;
  if (range && meta.subtask === undefined) ref.keyGroupRange = { start: range.start, end: range.end };
  if (chunk.compression !== "none") ref.rawBytes = chunk.rawBytes;
  if (meta.subtask !== undefined) ref.subtask = meta.subtask;
  return ref;
}

/**
 * Makes chunks written with `deferSync` durable (a no-op on storages without deferred writes, whose `put`
 * is durable already): their bytes and names, or only one part (`"bytes"` early per chunk, `"names"` once
 * for all of them). Call it after the last chunk write and before {@link commitManifest}: the manifest is
 * the commit point, so every chunk it names is durable before it exists.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { encodeChunk } from "../format/encode_chunk.ts";
 * import { syncChunks, writeChunk } from "./write.ts";
 * const storage = await openStorage("memory:sync-chunks-example");
 * const chunk = encodeChunk({ kind: "value", keyType: "string", value: { encoding: "msgpack" } },
 *   { length: 1, keyGroups: [3], keys: ["a"], values: [1] });
 * await writeChunk(storage, "counter/counts/kg-0-127.arrow", chunk, { type: "base", order: 0, deferSync: true });
 * await syncChunks(storage, ["counter/counts/kg-0-127.arrow"]);
 * assert.equal(await storage.exists("counter/counts/kg-0-127.arrow"), true);
 * ```
 */
export async function syncChunks(storage: Storage, paths: readonly string[], only?: "bytes" | "names"): Promise<void> {
  if (paths.length && storage.syncDeferred) await storage.syncDeferred(paths, only === undefined ? {} : { only });
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

/** What a manifest says about its snapshot, beyond the operators (see {@link buildManifest}). */
export interface ManifestHeader {
  /** `checkpoint` (chunks relative to the checkpoint root) or `savepoint` (self-contained). */
  readonly kind: "checkpoint" | "savepoint";
  /** The snapshot id. */
  readonly id: string;
  /** The checkpoint id it was taken at, when a job took it. */
  readonly checkpointId?: number;
  /** The job name. */
  readonly job: string;
  /** Key groups. */
  readonly maxParallelism: number;
  /** The key hash function (default Flink's). */
  readonly hash?: string;
  /** Free-form metadata. */
  readonly metadata?: Record<string, string>;
}

/**
 * The one manifest assembly: a new manifest of the newest format version, written by this arrowpoint,
 * now, with the chunk root its kind implies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildManifest } from "./write.ts";
 * const m = buildManifest({ kind: "savepoint", id: "sp-1", job: "j", maxParallelism: 128 }, []);
 * assert.equal(m.chunkRoot, ".");
 * assert.equal(m.formatVersion, 1);
 * ```
 */
export function buildManifest(header: ManifestHeader, operators: OperatorSnapshot[]): Manifest {
  const manifest: Manifest = {
    format: "arrowpoint",
    formatVersion: FORMAT_VERSION,
    kind: header.kind,
    id: header.id,
    createdAt: new Date().toISOString(),
    writer: { name: "arrowpoint", version: VERSION },
    job: header.job,
    maxParallelism: header.maxParallelism,
    hash: header.hash ?? HASH_FUNCTION,
    chunkRoot: header.kind === "checkpoint" ? ".." : ".",
    operators,
  };
  if (header.checkpointId !== undefined) manifest.checkpointId = header.checkpointId;
  if (header.metadata && Object.keys(header.metadata).length) manifest.metadata = header.metadata;
  return manifest;
}
