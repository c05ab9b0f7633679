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
import { SHARDS_DIR } from "./shards.ts";

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
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { applyRetention } from "./retention.ts";
 * const root = await openStorage("memory:retention-example");
 * const report = await applyRetention(root, { retain: 3 });
 * assert.deepEqual(report.deletedCheckpoints, []);
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

/** How long `gc` leaves an unreferenced file alone by default: it may belong to a snapshot being written. */
export const DEFAULT_GC_GRACE_MS = 60 * 60 * 1000;

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
  /** Of those, unreferenced files left alone only because they are younger than the grace period. */
  young: number;
  /** Bytes those young files hold. */
  youngBytes: number;
  /** The grace period applied, in milliseconds. */
  graceMs: number;
}

/** The files under a root that no snapshot needs, by the one rule {@link gc} deletes by and `ls` reports. */
export interface Unreferenced {
  /** Unreferenced files older than the grace period: what `gc` deletes. */
  old: ObjectInfo[];
  /** Unreferenced files younger than the grace period, which `gc` leaves for now. */
  young: ObjectInfo[];
  /** Files in the places arrowpoint manages that a committed checkpoint references. */
  referenced: number;
}

/**
 * Sorts the files listed under a checkpoint root by the rule of {@link gc}: a file is unreferenced when it
 * lies where arrowpoint writes (`shared/`, `chk-<n>/`, a `savepoints/<id>/` folder without a manifest, or
 * the shard receipts `_shards/` of a sharded run, in a savepoint folder or at the root) and no committed
 * checkpoint's manifest names it. Anything else (committed savepoints, a user's own files
 * beside them) is never unreferenced. A manifest that cannot be read throws: nothing is guessed.
 *
 * @example
 * ```ts
 * import { openStorage } from "../backends/open.ts";
 * import type { ObjectInfo } from "../backends/storage.ts";
 * import { findUnreferenced } from "./retention.ts";
 * const root = await openStorage("memory:unreferenced-example");
 * await root.put("shared/orphan.arrow", new Uint8Array(8));
 * await root.put("notes.txt", new Uint8Array(3));
 * const objects: ObjectInfo[] = [];
 * for await (const o of root.list("")) objects.push(o);
 * const { young } = await findUnreferenced(root, objects, { graceMs: 60_000 });
 * console.log(young.map((o) => o.path)); // ["shared/orphan.arrow"]
 * ```
 */
export async function findUnreferenced(root: Storage, objects: readonly ObjectInfo[], options: { graceMs?: number; now?: Date } = {}): Promise<Unreferenced> {
  const grace = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const now = (options.now ?? new Date()).getTime();
  const ids: number[] = [];
  const savepointsWithManifest = new Set<string>();
  for (const o of objects) {
    const p = o.path.split("/");
    if (p.length === 2 && p[1] === MANIFEST_FILE) {
      const id = parseCheckpointDirName(p[0]);
      if (id !== undefined) ids.push(id);
    }
    if (p.length === 3 && p[0] === SAVEPOINTS_DIR && p[2] === MANIFEST_FILE) savepointsWithManifest.add(p[1]);
  }
  const referenced = await referencedPaths(root, ids.sort((a, b) => a - b));
  const out: Unreferenced = { old: [], young: [], referenced: 0 };
  for (const o of objects) {
    const parts = o.path.split("/");
    const top = parts[0];
    // Shard receipts are never referenced: a sharded attempt's leftovers, committed or abandoned.
    const receipt = (top === SAVEPOINTS_DIR && parts.length >= 4 && parts[2] === SHARDS_DIR) || (top === SHARDS_DIR && parts.length >= 2);
    const managed = top === SHARED_DIR || parseCheckpointDirName(top) !== undefined || receipt ||
      (top === SAVEPOINTS_DIR && parts.length >= 3 && !savepointsWithManifest.has(parts[1]));
    if (!managed) continue;
    if (referenced.has(o.path)) out.referenced++;
    else if (now - o.modified.getTime() < grace) out.young.push(o);
    else out.old.push(o);
  }
  return out;
}

/**
 * Removes debris under a checkpoint root: chunks in `shared/` and `chk-<n>/` that no committed manifest
 * references, and folders without a manifest (interrupted checkpoints or savepoints), once older than the
 * grace period (the rule of {@link findUnreferenced}). Committed savepoints and anything outside `chk-*`,
 * `shared/` and `savepoints/` are never touched. A manifest that cannot be read stops the run (nothing is
 * guessed, nothing deleted). The report counts what the grace period alone kept (`young`, `youngBytes`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { gc } from "./retention.ts";
 * const root = await openStorage("memory:gc-example");
 * assert.deepEqual((await gc(root, { dryRun: true })).deleted, []);
 * ```
 */
export async function gc(root: Storage, options: GcOptions = {}): Promise<GcReport> {
  const dryRun = options.dryRun ?? false;
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const objects = await collect(root.list(""));
  const u = await findUnreferenced(root, objects, { graceMs, now: options.now });
  const deleted = u.old.map((o) => o.path);
  const bytesFreed = u.old.reduce((n, o) => n + o.size, 0);
  if (!dryRun && deleted.length) await root.delete(deleted);
  return { deleted, bytesFreed, dryRun, kept: u.referenced + u.young.length, young: u.young.length, youngBytes: u.young.reduce((n, o) => n + o.size, 0), graceMs };
}
