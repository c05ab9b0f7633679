/**
 * Opening snapshots: find and validate a manifest, resolve where its chunks are, and read a whole state
 * (through the sweep of sweep.ts, the one chain reader).
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { joinPath } from "../backends/path.ts";
import { openStorage } from "../backends/open.ts";
import { IncompatibleSnapshotError, NotFoundError, SnapshotFormatError } from "../format/errors.ts";
import { findState, type Manifest, MANIFEST_FILE, MAX_MANIFEST_BYTES, readManifest, type StateSnapshot } from "../format/manifest.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import { checkpointDirName, manifestPath, parentDir, parseCheckpointDirName } from "./layout.ts";
import { RowBuffer, type Rows } from "./rows.ts";
import { type ChunkInput, readOperatorItems, shapeOf, snapshotInputs, sweep } from "./sweep.ts";
import { openStateChunk } from "./chunks.ts";
import { decodesToCopies } from "../format/decode_chunk.ts";
import { type Lease, scratchFor } from "../format/_scratch.ts";

/** An opened, validated snapshot: its manifest and where its chunks are. */
export interface Snapshot {
  /** The validated manifest. */
  readonly manifest: Manifest;
  /** The storage holding the snapshot (and, for checkpoints, the checkpoint root). */
  readonly storage: Storage;
  /** The snapshot's folder, relative to `storage` (`""` = its root). */
  readonly dir: string;
  /** The folder chunk paths are relative to, relative to `storage`. */
  readonly chunkBase: string;
  /** A URI naming the snapshot, for messages. */
  readonly location: string;
}

/**
 * Splits a storage URI into its parent URI and last segment, so a snapshot folder can be opened from its
 * parent (checkpoints reference chunks beside them).
 */
export function splitUri(uri: string): { parent: string; name: string } {
  const trimmed = uri.length > 1 ? uri.replace(/\/+$/, "") : uri;
  let head = -1; // the last index at which a split may not happen
  if (trimmed.startsWith("s3://")) {
    head = trimmed.indexOf("/", 5) - 1; // the bucket is never split off
    if (head < 0) return { parent: trimmed, name: "" };
  } else if (trimmed.startsWith("file://")) head = 6;
  else if (trimmed.startsWith("memory:")) head = 6;
  const i = trimmed.lastIndexOf("/");
  if (i <= head) return head >= 0 ? { parent: trimmed, name: "" } : { parent: ".", name: trimmed };
  const parent = trimmed.slice(0, i);
  const name = trimmed.slice(i + 1);
  if (parent === "") return { parent: "/", name };
  if (parent === "file://") return { parent: "file:///", name };
  return { parent, name };
}

async function loadManifest(storage: Storage, dir: string): Promise<Manifest | undefined> {
  let bytes: Uint8Array;
  try {
    // One byte past the limit at most: an oversized manifest is refused without being read whole.
    bytes = await storage.getRange(manifestPath(dir), 0, MAX_MANIFEST_BYTES + 1);
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
  return readManifest(bytes, `${storage.uri.replace(/\/+$/, "")}/${manifestPath(dir)}`);
}

/**
 * The highest checkpoint id under a checkpoint root that has a committed manifest, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { latestCheckpoint } from "./read.ts";
 * const root = await openStorage("memory:latest-example");
 * assert.equal(await latestCheckpoint(root), undefined); // nothing committed yet
 * ```
 */
export async function latestCheckpoint(root: Storage, prefix = ""): Promise<number | undefined> {
  const ids = await committedCheckpoints(root, prefix);
  return ids.length ? ids[ids.length - 1] : undefined;
}

/**
 * Every checkpoint id under a root that has a committed manifest, ascending.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { committedCheckpoints } from "./read.ts";
 * assert.deepEqual(await committedCheckpoints(await openStorage("memory:ids-example")), []);
 * ```
 */
export async function committedCheckpoints(root: Storage, prefix = ""): Promise<number[]> {
  const ids: number[] = [];
  for await (const o of root.list(joinPath(prefix, "chk-"))) {
    const rel = prefix ? o.path.slice(prefix.length + 1) : o.path;
    const [dir, file, ...rest] = rel.split("/");
    if (rest.length === 0 && file === MANIFEST_FILE) {
      const id = parseCheckpointDirName(dir);
      if (id !== undefined) ids.push(id);
    }
  }
  return ids.sort((a, b) => a - b);
}

/**
 * Opens a snapshot and validates its manifest. `target` is a URI of a snapshot folder (a savepoint or a
 * `chk-<n>` folder), or of a checkpoint root (its latest committed checkpoint is opened); with `dir`, the
 * snapshot folder `dir` inside `target` (a URI or a Storage).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, openSnapshot } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:open-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:open-example/savepoints/sp-1");
 * const snap = await openSnapshot(sp.location); // or the checkpoint root: its latest checkpoint
 * assert.deepEqual(snap.manifest.operators.map((o) => o.uid), ["events", "counter", "out"]);
 * ```
 */
export async function openSnapshot(target: string | Storage, dir = ""): Promise<Snapshot> {
  if (typeof target !== "string") return await openIn(target, dir, target.uri);
  const storage = await openStorage(target);
  if (dir !== "") {
    try {
      return await openIn(storage, dir, `${target.replace(/\/+$/, "")}/${dir}`);
    } catch (e) {
      await storage.close();
      throw e;
    }
  }
  const direct = await loadManifest(storage, "");
  if (direct && direct.chunkRoot === ".") return make(storage, "", direct, target);
  if (!direct) {
    const latest = await latestCheckpoint(storage);
    if (latest !== undefined) return await openIn(storage, checkpointDirName(latest), target);
    await storage.close();
    throw new NotFoundError(
      "open snapshot",
      target,
      "no _manifest.json there and no committed checkpoint (chk-<n>/_manifest.json) under it; a folder without a manifest is not a snapshot",
    );
  }
  // A checkpoint's chunks live beside it: open its parent.
  await storage.close();
  const { parent, name } = splitUri(target);
  if (!name) throw new SnapshotFormatError("a checkpoint manifest references its parent folder, but the URI has none", { path: target });
  const root = await openStorage(parent);
  return await openIn(root, name, target);
}

async function openIn(storage: Storage, dir: string, location: string): Promise<Snapshot> {
  const manifest = await loadManifest(storage, dir);
  if (!manifest) throw new NotFoundError("open snapshot", `${storage.uri}/${manifestPath(dir)}`, "the snapshot has no committed manifest");
  if (manifest.chunkRoot === ".." && dir === "") {
    throw new SnapshotFormatError("a checkpoint manifest references its parent folder; open it through its checkpoint root", { path: location });
  }
  return make(storage, dir, manifest, location);
}

function make(storage: Storage, dir: string, manifest: Manifest, location: string): Snapshot {
  return { manifest, storage, dir, chunkBase: manifest.chunkRoot === "." ? dir : parentDir(dir), location };
}

/**
 * The state descriptor of an operator in a snapshot; `IncompatibleSnapshotError` naming what exists
 * when it is not there.
 *
 * @example
 * ```ts
 * import { requireState, type Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const st = requireState(snap, "counter", "counts");
 * ```
 */
export function requireState(snap: Snapshot, uid: string, state: string): StateSnapshot {
  const st = findState(snap.manifest, uid, state);
  if (st) return st;
  const op = snap.manifest.operators.find((o) => o.uid === uid);
  const known = op ? `states of ${uid}: ${op.states.map((s) => s.name).join(", ") || "none"}` : `operators: ${snap.manifest.operators.map((o) => o.uid).join(", ") || "none"}`;
  throw new IncompatibleSnapshotError(`snapshot ${snap.location} has no state ${JSON.stringify(state)} in operator ${JSON.stringify(uid)} (${known})`);
}

/**
 * The rows of one state, with its chain applied (bases reset their key-group range, deltas upsert and
 * delete in `order`), sorted by key group. `range` restricts keyed state to key groups in it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, openSnapshot, readState } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:read-state-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:read-state-example/savepoints/sp-1");
 * const rows = await readState(await openSnapshot(sp.location), "counter", "counts");
 * assert.ok(rows.length <= 10 && rows.keys!.every((k) => String(k).startsWith("user-")));
 * ```
 */
export async function readState(snap: Snapshot, uid: string, state: string, range?: KeyGroupRange): Promise<Rows> {
  const st = requireState(snap, uid, state);
  if (!st.keyed) {
    const { values, subtasks } = await readOperatorItems(snap, st);
    return { length: values.length, values, subtasks };
  }
  const window = range ?? { start: 0, end: snap.manifest.maxParallelism - 1 };
  const inputs = snapshotInputs(snap, st).filter((c) => c.range.start <= window.end && window.start <= c.range.end);
  const buf = new RowBuffer(st.namespaced === true, st.kind === "map");
  let only: Rows | undefined;
  let batches = 0;
  // Batches as large as the window: one batch (no copy) unless the window holds more rows than that.
  for await (const b of sweep(inputs, [window], { ...shapeOf(st), batchRows: 1 << 22 })) {
    if (batches++ === 0) only = b.rows;
    else {
      if (only) {
        buf.append(only);
        only = undefined;
      }
      buf.append(b.rows);
    }
  }
  return only ?? buf.take();
}

/** Sweep inputs whose chunks are read into scratch buffers, with the hand-back of those buffers. */
export interface ScratchInputs {
  /** The chunks of the state, as sweep inputs. */
  readonly inputs: ChunkInput[];
  /**
   * Hands back the buffers of chunks that end before key group `kg`: call it once the sweep has yielded a
   * batch starting at `kg` or later and nothing reads rows of earlier batches as chunk bytes any more.
   */
  passed(kg: number): void;
  /** Hands back every buffer, once each read in flight has settled (a sweep that failed may leave some). */
  release(): Promise<void>;
}

/**
 * The chunks of keyed state `st` as sweep inputs that read into reused scratch buffers, each handed back
 * as soon as the sweep has passed its key groups, so a sweep holds the chunks of its current key groups
 * and no chunk-sized garbage: fresh chunk-sized buffers cost their first touch, and each one left to the
 * collector counts as external memory until a full collection. Buffers are used only where every decoded
 * value is a copy of the chunk's bytes ({@link decodesToCopies}); otherwise these are the plain inputs.
 *
 * @example
 * ```ts
 * import { scratchInputs, type Snapshot } from "./read.ts";
 * import { shapeOf, sweep } from "./sweep.ts";
 * declare const snap: Snapshot;
 * // const { inputs, passed, release } = scratchInputs(snap, st);
 * // try { for await (const b of sweep(inputs, windows, shapeOf(st))) { use(b.rows); passed(b.range.end + 1); } }
 * // finally { await release(); }
 * ```
 */
export function scratchInputs(snap: Snapshot, st: StateSnapshot): ScratchInputs {
  const plain = snapshotInputs(snap, st);
  if (!decodesToCopies(st)) return { inputs: plain, passed() {}, release: async () => {} };
  const held: { end: number; lease: Lease; read: Promise<unknown> }[] = [];
  const inputs = plain.map((c): ChunkInput => ({
    ...c,
    open: () => {
      const lease = scratchFor(c.ref!.bytes + 1);
      const read = openStateChunk(snap, st, c.ref!, lease?.bytes);
      if (lease) held.push({ end: c.range.end, lease, read: read.catch(() => {}) });
      return read;
    },
  }));
  return {
    inputs,
    passed(kg) {
      for (let i = held.length - 1; i >= 0; i--) {
        if (held[i].end < kg) held.splice(i, 1)[0].lease.release();
      }
    },
    async release() {
      const all = held.splice(0);
      await Promise.all(all.map((h) => h.read));
      for (const h of all) h.lease.release();
    },
  };
}
