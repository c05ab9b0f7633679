/**
 * Retention and garbage collection of a checkpoint root. Both free a chunk only when no retained manifest
 * references it, drop a checkpoint's manifest before its data (so no reader ever sees a checkpoint whose
 * chunks are gone), and never touch savepoints that have a manifest.
 *
 * @module
 */
import type { ObjectInfo, Storage } from "../backends/storage.ts";
import { MANIFEST_FILE } from "../format/manifest.ts";
import { manifestPath, parseCheckpointDirName, SAVEPOINTS_DIR, SHARED_DIR, checkpointDirName } from "./layout.ts";
import { chunkPath } from "./chunks.ts";
import { committedCheckpoints, openSnapshot } from "./read.ts";

/** Options of {@link applyRetention}. */
export interface RetentionOptions {
  /** How many of the newest completed checkpoints to keep (≥ 1). */
  retain: number;
  /**
   * Checkpoint ids never to delete, with everything they reference: the snapshot a job was restored from
   * in no-claim mode (Flink's default), which the job does not own.
   */
  protect?: Iterable<number>;
}

/** What {@link applyRetention} removed. */
export interface RetentionReport {
  /** Checkpoint ids whose manifests were removed. */
  deletedCheckpoints: number[];
  /** Storage paths of chunks and other files removed. */
  deletedChunks: string[];
}

async function referencedPaths(root: Storage, ids: Iterable<number>): Promise<Set<string>> {
  const refs = new Set<string>();
  for (const id of ids) {
    const dir = checkpointDirName(id);
    const snap = await openSnapshot(root, dir);
    refs.add(manifestPath(dir));
    for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) refs.add(chunkPath(snap, c));
  }
  return refs;
}

async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out;
}

/**
 * Keeps the newest `retain` completed checkpoints (plus protected ones) and deletes the rest: first their
 * manifests, then every chunk they referenced that no kept checkpoint references, and the rest of their
 * folders. Chunks of checkpoints still being written are never candidates: only what a dropped manifest
 * names, or what lies in a dropped checkpoint's own folder, is.
 *
 * @example
 * ```ts
 * import { openStorage } from "../backends/open.ts";
 * import { applyRetention } from "./retention.ts";
 * const root = await openStorage("memory:retention-example");
 * const report = await applyRetention(root, { retain: 3 });
 * console.log(report.deletedCheckpoints); // []
 * ```
 */
export async function applyRetention(root: Storage, options: RetentionOptions): Promise<RetentionReport> {
  if (!Number.isInteger(options.retain) || options.retain < 1) {
    throw new RangeError(`Cannot apply retention as retain must be an integer ≥ 1: current value is ${options.retain}`);
  }
  const ids = await committedCheckpoints(root);
  const protectedIds = new Set(options.protect ?? []);
  const keep = new Set([...ids.slice(-options.retain), ...ids.filter((id) => protectedIds.has(id))]);
  const drop = ids.filter((id) => !keep.has(id));
  if (drop.length === 0) return { deletedCheckpoints: [], deletedChunks: [] };
  const kept = await referencedPaths(root, keep);
  const candidates = new Set<string>();
  for (const id of drop) {
    const dir = checkpointDirName(id);
    const snap = await openSnapshot(root, dir);
    for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) candidates.add(chunkPath(snap, c));
  }
  // Manifests go first: from here on the dropped checkpoints no longer exist for any reader.
  await root.delete(drop.map((id) => manifestPath(checkpointDirName(id))));
  for (const id of drop) for (const o of await collect(root.list(checkpointDirName(id) + "/"))) candidates.add(o.path);
  const doomed = [...candidates].filter((p) => !kept.has(p)).sort();
  await root.delete(doomed);
  return { deletedCheckpoints: drop, deletedChunks: doomed };
}

/** Options of {@link gc}. */
export interface GcOptions {
  /** Report what would be deleted without deleting. */
  dryRun?: boolean;
  /** Unreferenced files younger than this are left alone: they may belong to a snapshot being written. Default 1 hour. */
  graceMs?: number;
  /** The current time (for tests). */
  now?: Date;
}

/** What {@link gc} found and removed. */
export interface GcReport {
  /** Paths deleted (or that would be, on a dry run). */
  deleted: string[];
  /** Bytes those paths held. */
  bytesFreed: number;
  /** Whether nothing was actually deleted. */
  dryRun: boolean;
  /** Referenced or young files left alone. */
  kept: number;
}

/**
 * Removes debris under a checkpoint root: chunks in `shared/` and `chk-<n>/` that no committed manifest
 * references, and folders without a manifest (interrupted checkpoints or savepoints), once older than the
 * grace period. Committed savepoints and anything outside `chk-*`, `shared/` and `savepoints/` are never
 * touched. A manifest that cannot be read stops the run (nothing is guessed, nothing deleted).
 *
 * @example
 * ```ts
 * import { openStorage } from "../backends/open.ts";
 * import { gc } from "./retention.ts";
 * const root = await openStorage("memory:gc-example");
 * console.log((await gc(root, { dryRun: true })).deleted); // []
 * ```
 */
export async function gc(root: Storage, options: GcOptions = {}): Promise<GcReport> {
  const dryRun = options.dryRun ?? false;
  const grace = options.graceMs ?? 60 * 60 * 1000;
  const now = (options.now ?? new Date()).getTime();
  const objects = await collect(root.list(""));
  const ids = await committedCheckpoints(root);
  const referenced = await referencedPaths(root, ids);
  const savepointsWithManifest = new Set(
    objects
      .map((o) => o.path.split("/"))
      .filter((p) => p.length === 3 && p[0] === SAVEPOINTS_DIR && p[2] === MANIFEST_FILE)
      .map((p) => p[1]),
  );
  const deleted: string[] = [];
  let bytesFreed = 0;
  let kept = 0;
  for (const o of objects) {
    const parts = o.path.split("/");
    const top = parts[0];
    const managed = top === SHARED_DIR || parseCheckpointDirName(top) !== undefined ||
      (top === SAVEPOINTS_DIR && parts.length >= 3 && !savepointsWithManifest.has(parts[1]));
    if (!managed || referenced.has(o.path)) {
      if (managed) kept++;
      continue;
    }
    if (now - o.modified.getTime() < grace) {
      kept++;
      continue;
    }
    deleted.push(o.path);
    bytesFreed += o.size;
  }
  if (!dryRun && deleted.length) await root.delete(deleted);
  return { deleted, bytesFreed, dryRun, kept };
}
