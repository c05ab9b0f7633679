/**
 * `ls`: the checkpoints and savepoints under a root, with sizes, ages and shared-chunk references.
 *
 * @module
 */
import { openStorage } from "../backends/open.ts";
import type { ObjectInfo, Storage } from "../backends/storage.ts";
import { ArrowpointError, NotFoundError } from "../format/errors.ts";
import { MANIFEST_FILE } from "../format/manifest.ts";
import { manifestPath } from "../snapshot/layout.ts";
import { DEFAULT_GC_GRACE_MS, findUnreferenced, type Unreferenced } from "../snapshot/retention.ts";
import { chunkPath } from "../snapshot/chunks.ts";
import { openSnapshot, type Snapshot } from "../snapshot/read.ts";
import { chainDepth } from "../snapshot/chain.ts";

/** One snapshot found by {@link ls}. */
export interface SnapshotEntry {
  /** Its folder relative to the root (`""` = the root itself). */
  path: string;
  /** Snapshot id (from the manifest; the folder name when the manifest cannot be read). */
  id: string;
  /** Checkpoint or savepoint (undefined when the manifest cannot be read). */
  kind?: "checkpoint" | "savepoint";
  /** Checkpoint number. */
  checkpointId?: number;
  /** Creation time (ISO-8601). */
  createdAt?: string;
  /** Milliseconds since creation. */
  ageMs?: number;
  /** Job name. */
  job?: string;
  /** Bytes of its manifest and every chunk it references. */
  bytes: number;
  /** Bytes of the chunks only it references (what deleting it alone would free). */
  ownBytes: number;
  /** Chunk files referenced. */
  chunks: number;
  /** Of those, chunks other listed snapshots reference too. */
  sharedChunks: number;
  /** Chunks listed in its manifest but absent from storage. */
  missingChunks: number;
  /** The longest incremental chain of any of its states. */
  chainDepth: number;
  /** Why the manifest could not be read, when it could not. */
  error?: string;
}

/** What {@link ls} returns. */
export interface Listing {
  /** The root listed. */
  root: string;
  /** Snapshots: checkpoints by id, then savepoints by creation time. */
  snapshots: SnapshotEntry[];
  /** Bytes of every object under the root. */
  totalBytes: number;
  /**
   * Bytes of the files `gc` counts as unreferenced: in `shared/`, `chk-<n>/` or an uncommitted
   * `savepoints/<id>/`, and named by no committed checkpoint (files of other tools are never counted).
   */
  unreferencedBytes: number;
  /** Of those, the bytes `gc` frees now: files older than its default grace period. */
  freeableBytes: number;
  /** `gc`'s default grace period, in milliseconds: younger unreferenced files may belong to a snapshot being written. */
  graceMs: number;
}

/**
 * Lists the snapshots under a root (a checkpoint root with `chk-*`, `shared/` and `savepoints/`, or any
 * folder holding snapshot folders): each with its kind, age, bytes, the bytes only it holds, and how many
 * of its chunks others share. A manifest that cannot be read is listed with its error, not thrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, ls } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:ls-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:ls-example/savepoints/sp-1");
 * const { snapshots } = await ls("memory:ls-example"); // or "s3://bucket/job"
 * assert.deepEqual(snapshots.map((s) => `${s.kind} ${s.path}`), ["checkpoint chk-000001", "savepoint savepoints/sp-1"]);
 * ```
 */
export async function ls(root: string | Storage, options: { now?: Date } = {}): Promise<Listing> {
  const storage = typeof root === "string" ? await openStorage(root) : root;
  try {
    const now = (options.now ?? new Date()).getTime();
    const objects = new Map<string, ObjectInfo>();
    for await (const o of storage.list("")) objects.set(o.path, o);
    const dirs = [...objects.keys()]
      .filter((p) => p === MANIFEST_FILE || p.endsWith("/" + MANIFEST_FILE))
      .map((p) => p.slice(0, Math.max(0, p.length - MANIFEST_FILE.length - 1)));
    const opened: { dir: string; snap?: Snapshot; error?: string }[] = [];
    for (const dir of dirs) {
      try {
        opened.push({ dir, snap: await openSnapshot(storage, dir) });
      } catch (e) {
        if (!(e instanceof ArrowpointError) || e instanceof NotFoundError) throw e;
        opened.push({ dir, error: e.message });
      }
    }
    const refCount = new Map<string, number>();
    const refsOf = opened.map(({ snap }) => {
      const refs = new Set<string>();
      if (snap) for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) refs.add(chunkPath(snap, c));
      for (const p of refs) refCount.set(p, (refCount.get(p) ?? 0) + 1);
      return refs;
    });
    const entries: SnapshotEntry[] = opened.map(({ dir, snap, error }, i) => {
      const refs = refsOf[i];
      let bytes = objects.get(manifestPath(dir))?.size ?? 0;
      let ownBytes = bytes;
      let shared = 0;
      let missing = 0;
      for (const p of refs) {
        const size = objects.get(p)?.size;
        if (size === undefined) missing++;
        bytes += size ?? 0;
        if ((refCount.get(p) ?? 0) > 1) shared++;
        else ownBytes += size ?? 0;
      }
      const name = dir.split("/").pop() || dir;
      const entry: SnapshotEntry = { path: dir, id: snap?.manifest.id ?? name, bytes, ownBytes, chunks: refs.size, sharedChunks: shared, missingChunks: missing, chainDepth: 0 };
      if (snap) {
        const m = snap.manifest;
        entry.kind = m.kind;
        if (m.checkpointId !== undefined) entry.checkpointId = m.checkpointId;
        entry.createdAt = m.createdAt;
        const t = Date.parse(m.createdAt);
        if (Number.isFinite(t)) entry.ageMs = Math.max(0, now - t);
        entry.job = m.job;
        entry.chainDepth = Math.max(0, ...m.operators.flatMap((o) => o.states.filter((s) => s.keyed).map((s) => chainDepth(s.chunks, m.maxParallelism))));
      }
      if (error) entry.error = error;
      return entry;
    });
    entries.sort((a, b) => {
      const ka = a.kind === "checkpoint" ? 0 : a.kind === "savepoint" ? 1 : 2;
      const kb = b.kind === "checkpoint" ? 0 : b.kind === "savepoint" ? 1 : 2;
      if (ka !== kb) return ka - kb;
      if (ka === 0) return (a.checkpointId ?? 0) - (b.checkpointId ?? 0);
      return (a.createdAt ?? "").localeCompare(b.createdAt ?? "") || a.path.localeCompare(b.path);
    });
    let totalBytes = 0;
    for (const o of objects.values()) totalBytes += o.size;
    // Unreferenced by gc's own rule, so that what ls reports is what gc frees (now or after the grace
    // period); a user's files beside the snapshots are not debris. A checkpoint manifest that cannot be read
    // is listed above with its error, and then nothing is called unreferenced.
    let unreferenced: Unreferenced = { old: [], young: [], referenced: 0 };
    try {
      unreferenced = await findUnreferenced(storage, [...objects.values()], { now: options.now });
    } catch (e) {
      if (!(e instanceof ArrowpointError) || !entries.some((x) => x.error)) throw e;
    }
    const sum = (list: ObjectInfo[]) => list.reduce((n, o) => n + o.size, 0);
    const freeableBytes = sum(unreferenced.old);
    return { root: storage.uri, snapshots: entries, totalBytes, unreferencedBytes: freeableBytes + sum(unreferenced.young), freeableBytes, graceMs: DEFAULT_GC_GRACE_MS };
  } finally {
    if (typeof root === "string") await storage.close();
  }
}
