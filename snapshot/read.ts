/**
 * Reading snapshots from storage: find and validate a manifest, read chunks with their checksums checked,
 * and merge a state's chain (bases then deltas, in order) into the rows it holds.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { joinPath } from "../backends/path.ts";
import { openStorage } from "../backends/open.ts";
import { IncompatibleSnapshotError, NotFoundError, SnapshotFormatError } from "../format/errors.ts";
import { type ChunkRef, findState, type Manifest, MAX_MANIFEST_BYTES, readManifest, type StateSnapshot } from "../format/manifest.ts";
import { checkLayout } from "../format/chunk_schema.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import { rangesOverlap } from "../format/key_group.ts";
import { type DecodedChunk, decodeChunk, readKeyGroupRange } from "../format/decode_chunk.ts";
import { verifyChecksum } from "../format/checksum.ts";
import { manifestPath, parentDir, parseCheckpointDirName } from "./layout.ts";

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

/** The rows of one state after its chain is applied: sorted by key group, deletes dropped. */
export interface StateRows {
  /** Number of rows. */
  readonly length: number;
  /** Key group per row (keyed state). */
  readonly keyGroups?: ArrayLike<number>;
  /** Key per row (keyed state). */
  readonly keys?: unknown[];
  /** Namespace per row, when the state is namespaced. */
  readonly namespaces?: string[];
  /** User key per row (map state). */
  readonly userKeys?: unknown[];
  /** Value per row (list state: the whole list). */
  readonly values: unknown[];
  /** Operator state: the subtask each item came from. */
  readonly subtasks?: number[];
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
    if (rest.length === 0 && file === "_manifest.json") {
      const id = parseCheckpointDirName(dir);
      if (id !== undefined) ids.push(id);
    }
  }
  return ids.sort((a, b) => a - b);
}

/**
 * Opens a snapshot and validates its manifest. `target` is a URI of a snapshot folder (a savepoint or a
 * `chk-<n>` folder), or of a checkpoint root (its latest committed checkpoint is opened), or a Storage
 * with `dir` the snapshot folder inside it.
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
  const direct = await loadManifest(storage, "");
  if (direct && direct.chunkRoot === ".") return make(storage, "", direct, target);
  if (!direct) {
    const latest = await latestCheckpoint(storage);
    if (latest !== undefined) return await openIn(storage, `chk-${String(latest).padStart(6, "0")}`, target);
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
 * The storage path of a chunk of a snapshot.
 *
 * @example
 * ```ts
 * import { chunkPath, type Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // chunkPath(snap, snap.manifest.operators[0].states[0].chunks[0])
 * ```
 */
export function chunkPath(snap: Snapshot, ref: ChunkRef): string {
  return joinPath(snap.chunkBase, ref.path);
}

/**
 * Reads one chunk's stored bytes and checks their size against the manifest (the checksum is checked by
 * the decoder, or by {@link readVerifiedChunk}).
 */
async function readChunkBytes(snap: Snapshot, ref: ChunkRef): Promise<Uint8Array> {
  const path = chunkPath(snap, ref);
  let bytes: Uint8Array;
  try {
    // One byte past the recorded size at most: an oversized file is refused without being read whole.
    bytes = await snap.storage.getRange(path, 0, Math.min(ref.bytes + 1, Number.MAX_SAFE_INTEGER));
  } catch (e) {
    if (e instanceof NotFoundError) {
      throw new SnapshotFormatError(`chunk listed in the manifest is missing; the snapshot is incomplete`, { path: `${snap.location} → ${ref.path}` }, { cause: e });
    }
    throw e;
  }
  if (bytes.length !== ref.bytes) {
    throw new SnapshotFormatError(`chunk is ${bytes.length} bytes but the manifest records ${ref.bytes}; it is truncated or was replaced`, { path: `${snap.location} → ${ref.path}` });
  }
  return bytes;
}

/**
 * Reads and decodes one chunk of a snapshot (checksum verified), optionally only a key-group range.
 *
 * @example
 * ```ts
 * import { readChunk, type Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const rows = await readChunk(snap, snap.manifest.operators[0].states[0].chunks[0]);
 * ```
 */
export async function readChunk(snap: Snapshot, ref: ChunkRef, range?: KeyGroupRange): Promise<DecodedChunk> {
  const bytes = await readChunkBytes(snap, ref);
  const info = { path: `${snap.location} → ${ref.path}`, checksum: ref.checksum, compression: ref.compression, rawBytes: ref.rawBytes };
  const r = ref.keyGroupRange;
  const partial = range !== undefined && r !== undefined && (range.start > r.start || range.end < r.end);
  let decoded: DecodedChunk;
  try {
    decoded = partial ? readKeyGroupRange(bytes, range, info) : decodeChunk(bytes, info);
  } catch (e) {
    // readKeyGroupRange's TypeError for a chunk without key groups: here the bytes contradict the manifest.
    if (e instanceof TypeError) throw new SnapshotFormatError("chunk holds operator state but the manifest lists it as keyed state", { path: info.path }, { cause: e });
    throw e;
  }
  checkRows(decoded, ref, info.path);
  if (!partial && decoded.length !== ref.rows) {
    throw new SnapshotFormatError(`chunk holds ${decoded.length} rows but the manifest records ${ref.rows}`, { path: info.path });
  }
  return decoded;
}

/**
 * Reads a chunk's stored bytes with size and checksum verified, without decoding (for copying).
 *
 * @example
 * ```ts
 * import { readVerifiedChunk, type Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const bytes = await readVerifiedChunk(snap, snap.manifest.operators[0].states[0].chunks[0]);
 * ```
 */
export async function readVerifiedChunk(snap: Snapshot, ref: ChunkRef): Promise<Uint8Array> {
  const bytes = await readChunkBytes(snap, ref);
  verifyChecksum(bytes, ref.checksum, `${snap.location} → ${ref.path}`);
  return bytes;
}

function checkRows(decoded: DecodedChunk, ref: ChunkRef, path: string): void {
  if ((decoded.layout.kind === "operator-list") !== (ref.keyGroupRange === undefined)) {
    throw new SnapshotFormatError(`chunk holds ${decoded.layout.kind} state, which contradicts its manifest entry`, { path });
  }
  if (ref.type === "base" && decoded.ops) throw new SnapshotFormatError("chunk is a delta (it has an op column) but the manifest records a base", { path });
  const r = ref.keyGroupRange;
  const kgs = decoded.keyGroups;
  if (r && kgs && kgs.length > 0 && (kgs[0] < r.start || kgs[kgs.length - 1] > r.end)) {
    throw new SnapshotFormatError(`chunk holds key groups ${kgs[0]}..${kgs[kgs.length - 1]} outside its manifest range [${r.start}, ${r.end}]`, { path });
  }
}

/** The column layout a state's chunks must have (value JSON Schemas aside: they may change without a rewrite). */
function layoutKey(layout: unknown): string {
  const l = checkLayout(layout).layout;
  if (!l) return "invalid";
  return JSON.stringify([l.kind, l.keyType, l.userKeyType, l.namespaced === true, l.value.encoding, l.value.encoding === "arrow" ? l.value.type : null]);
}

async function readStateChunk(snap: Snapshot, st: StateSnapshot, ref: ChunkRef, range?: KeyGroupRange): Promise<DecodedChunk> {
  const d = await readChunk(snap, ref, range);
  if (layoutKey(d.layout) !== layoutKey(st)) {
    throw new SnapshotFormatError(`chunk layout ${JSON.stringify(d.layout)} differs from its state's descriptor in the manifest`, { path: `${snap.location} → ${ref.path}` });
  }
  return d;
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
 * A stable text identity of a key, namespace or user key, for merging chains and finding collisions:
 * equal values give equal text whatever their object identity.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyIdentity } from "./read.ts";
 * assert.equal(keyIdentity(new Uint8Array([1, 255])) === keyIdentity(new Uint8Array([1, 255])), true);
 * ```
 */
export function keyIdentity(v: unknown): string {
  switch (typeof v) {
    case "string":
      return "s" + v;
    case "number":
      return "n" + v;
    case "bigint":
      return "b" + v;
    case "boolean":
      return v ? "t" : "f";
    case "undefined":
      return "_";
  }
  if (v === null) return "_";
  if (v instanceof Uint8Array) {
    let s = "u";
    for (let i = 0; i < v.length; i++) s += v[i].toString(16).padStart(2, "0");
    return s;
  }
  if (Array.isArray(v)) return "a" + v.map(keyIdentity).join("\u0001") + "\u0002";
  return "j" + JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));
}

interface Row {
  key: unknown;
  ns?: string;
  ukey?: unknown;
  value: unknown;
}

function chunksFor(st: StateSnapshot, range?: KeyGroupRange): ChunkRef[] {
  return st.chunks
    .filter((c) => !range || !c.keyGroupRange || rangesOverlap(c.keyGroupRange, range))
    .sort((a, b) => a.order - b.order);
}

function isPlainBaseSet(chunks: ChunkRef[]): boolean {
  if (chunks.some((c) => c.type !== "base")) return false;
  const sorted = [...chunks].sort((a, b) => a.keyGroupRange!.start - b.keyGroupRange!.start);
  for (let i = 1; i < sorted.length; i++) if (sorted[i].keyGroupRange!.start <= sorted[i - 1].keyGroupRange!.end) return false;
  return true;
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
export async function readState(snap: Snapshot, uid: string, state: string, range?: KeyGroupRange): Promise<StateRows> {
  const st = requireState(snap, uid, state);
  if (!st.keyed) return await readOperatorState(snap, st);
  const chunks = chunksFor(st, range);
  if (isPlainBaseSet(chunks)) return await concatBases(snap, st, chunks, range);
  return await mergeChain(snap, st, chunks, range);
}

async function readOperatorState(snap: Snapshot, st: StateSnapshot): Promise<StateRows> {
  const values: unknown[] = [];
  const subtasks: number[] = [];
  const chunks = [...st.chunks].sort((a, b) => (a.subtask! - b.subtask!) || a.order - b.order);
  for (const ref of chunks) {
    const d = await readStateChunk(snap, st, ref);
    for (let i = 0; i < d.length; i++) {
      values.push(d.values[i]);
      subtasks.push(ref.subtask!);
    }
  }
  return { length: values.length, values, subtasks };
}

async function concatBases(snap: Snapshot, st: StateSnapshot, chunks: ChunkRef[], range?: KeyGroupRange): Promise<StateRows> {
  const sorted = [...chunks].sort((a, b) => a.keyGroupRange!.start - b.keyGroupRange!.start);
  const parts: DecodedChunk[] = [];
  for (const ref of sorted) parts.push(await readStateChunk(snap, st, ref, range));
  if (parts.length === 1) {
    const p = parts[0];
    return { length: p.length, keyGroups: p.keyGroups, keys: p.keys, namespaces: p.namespaces, userKeys: p.userKeys, values: p.values };
  }
  const length = parts.reduce((n, p) => n + p.length, 0);
  const keyGroups = new Uint16Array(length);
  let at = 0;
  for (const p of parts) {
    keyGroups.set(p.keyGroups!, at);
    at += p.length;
  }
  const cat = <T>(pick: (p: DecodedChunk) => T[] | undefined): T[] | undefined => {
    if (!parts.some((p) => pick(p))) return undefined;
    const out: T[] = [];
    for (const p of parts) {
      const col = pick(p) ?? [];
      for (let i = 0; i < col.length; i++) out.push(col[i]);
    }
    return out;
  };
  return {
    length,
    keyGroups,
    keys: cat((p) => p.keys),
    namespaces: st.namespaced ? cat((p) => p.namespaces) : undefined,
    userKeys: st.kind === "map" ? cat((p) => p.userKeys) : undefined,
    values: cat((p) => p.values) ?? [],
  };
}

async function mergeChain(snap: Snapshot, st: StateSnapshot, chunks: ChunkRef[], range?: KeyGroupRange): Promise<StateRows> {
  const groups = new Map<number, Map<string, Row>>();
  for (const ref of chunks) {
    const d = await readStateChunk(snap, st, ref, range);
    if (ref.type === "base") {
      const r = ref.keyGroupRange!;
      for (const kg of [...groups.keys()]) if (kg >= r.start && kg <= r.end) groups.delete(kg);
    }
    const kgs = d.keyGroups!;
    for (let i = 0; i < d.length; i++) {
      const kg = kgs[i];
      if (range && (kg < range.start || kg > range.end)) continue;
      let g = groups.get(kg);
      if (!g) groups.set(kg, (g = new Map()));
      const key = d.keys![i];
      const ns = d.namespaces?.[i];
      const ukey = d.userKeys?.[i];
      const id = keyIdentity(key) + (ns !== undefined ? "\u0000" + ns : "") + (d.userKeys ? "\u0000" + keyIdentity(ukey) : "");
      if (d.ops && d.ops[i] === 1) g.delete(id);
      else g.set(id, { key, ns, ukey, value: d.values[i] });
    }
  }
  const order = [...groups.keys()].sort((a, b) => a - b);
  const keyGroups: number[] = [];
  const keys: unknown[] = [];
  const namespaces: string[] = [];
  const userKeys: unknown[] = [];
  const values: unknown[] = [];
  for (const kg of order) {
    for (const row of groups.get(kg)!.values()) {
      keyGroups.push(kg);
      keys.push(row.key);
      if (st.namespaced) namespaces.push(row.ns ?? "");
      if (st.kind === "map") userKeys.push(row.ukey);
      values.push(row.value);
    }
  }
  return {
    length: keys.length,
    keyGroups: Uint16Array.from(keyGroups),
    keys,
    namespaces: st.namespaced ? namespaces : undefined,
    userKeys: st.kind === "map" ? userKeys : undefined,
    values,
  };
}
