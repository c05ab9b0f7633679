// Private: the one pipeline behind compact, rekey and migrate. It reads a snapshot state by state and
// writes a new savepoint, choosing per keyed state the cheapest correct path:
//
// 1. copy / slice: same maxParallelism, no key function, no value transform, source chunks are plain bases:
//    each target subtask range is filled with verbatim chunk copies or Arrow-level key-group slices
//    (`sliceChunk`), never materialising rows in JS;
// 2. sweep: same maxParallelism, rows merged (chain applied) and/or transformed batch by batch;
// 3. scatter / gather: new maxParallelism or key function: rows are re-hashed into target buckets, spilled
//    as sorted Arrow pieces to temporary storage, then each bucket is swept and written.
//
// Memory stays bounded by the chunks overlapping the current key group, one batch of rows and the
// chunk being written (at most `maxChunkRows` rows).
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { subStorage } from "../backends/sub.ts";
import { IncompatibleSnapshotError, SchemaViolationError } from "../format/errors.ts";
import { encodeChunk, type EncodedChunk } from "../format/encode_chunk.ts";
import { gatherChunk, keyGroupsOfColumn, rewriteChunk, sliceChunk, type ValueMap } from "../format/chunk_slice.ts";
import { assignKeyGroup, type Key, type KeyGroupRange, keyGroupRangeFor } from "../format/key_group.ts";
import type { ChunkRef, Manifest, OperatorSnapshot, StateSnapshot } from "../format/manifest.ts";
import type { KeyType, StateLayout } from "../format/state_layout.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { chunkLocation, readVerifiedChunk } from "../snapshot/chunks.ts";
import { isPlainBaseSet } from "../snapshot/chain.ts";
import { type KeyId, keyFits, keyText, rowIdentity } from "../format/key_identity.ts";
import { sameLayout } from "../format/state_layout.ts";
import { type ChunkInput, readOperatorItems, shapeOf, snapshotInputs, storageInput, sweep, sweepSelections } from "../snapshot/sweep.ts";
import type { ChunkFile } from "../format/chunk_ipc.ts";
import { COLUMN_REHASH_KEY_TYPES, type HashedPicks, IN_MEMORY_REHASH_BYTES, keepPicks, rehashKey, releasePicks, shardSourceChunk, sharedPicks, takePicks } from "./_shard_cache.ts";
import { type Lease, scratchFor } from "../format/_scratch.ts";
import { type KeyedStateWriter, layoutOf, SavepointWriter, stateEntry, type WriteOptions } from "./_sink.ts";
import { intersect, type RangeBatch, RowBuffer, type Rows, sameRange, sortByKeyGroup } from "../snapshot/rows.ts";
import { redistributeItems } from "./_redistribute.ts";
import { carriesOperatorState, type ShardReceipt, shardWindows } from "../snapshot/shards.ts";

/** A new key for a row: `(key, value, state) => newKey`. */
export type KeyFunction = (key: Key, value: unknown, state: string) => Key;
/** Combines the values of two rows whose new keys collide. */
export type MergeFunction = (a: unknown, b: unknown, info: { operator: string; state: string; key: Key }) => unknown;

/** What happens to one state. */
export interface StatePlan {
  /** The source state. */
  src: StateSnapshot;
  /** Output name. */
  name: string;
  /** Output layout. */
  layout: StateLayout;
  /** Output schema version. */
  schemaVersion: number;
  /** The same change as `transform`, as a column rewrite of each chunk's value, when the steps allow it. */
  columns?: ValueMap;
  /** Per-batch transform of keyed rows (may drop rows; keys and key groups must stay). */
  transform?: (rows: Rows) => Rows;
  /** Transform of one operator-state item; `undefined` drops it. */
  transformItem?: (value: unknown) => unknown;
}

/** What happens to one operator. */
export interface OperatorPlan {
  /** The source operator. */
  src: OperatorSnapshot;
  /** Output uid. */
  uid: string;
  /** Output parallelism. */
  parallelism: number;
  /** Its states (states left out are dropped). */
  states: StatePlan[];
  /** A new key function. */
  keyBy?: KeyFunction;
  /** The output key type when `keyBy` changes it. */
  keyType?: KeyType;
  /** Merge functions by state name (or `"*"`), for colliding new keys. */
  merge?: (state: string) => MergeFunction | undefined;
}

/** The whole rewrite. */
export interface RewritePlan {
  /** Which tool runs it (for metadata and messages). */
  tool: string;
  /** The source. */
  src: Snapshot;
  /** Output maxParallelism. */
  maxParallelism: number;
  /** The operators to write. */
  operators: OperatorPlan[];
  /** Whether several sliced chunks may fill one target range (rekey) or rows are merged (compact). */
  slices: boolean;
  /** In merged rows, sort each key group's rows by identity (canonical order). */
  canonical: boolean;
  /** Storage for spilled pieces (scatter/gather); default a fresh folder in the OS temp directory. */
  tempUri?: string;
  /** Rows buffered before spilling (default 65,536). */
  spillRows?: number;
  /** Arguments of the tool that shape the output beyond its options (a shard run's fingerprint). */
  args?: unknown;
}

/** What a writing tool did. */
export interface WriteReport {
  /** The new savepoint's id. */
  id: string;
  /** Where it was written. */
  destination: string;
  /** The committed manifest. */
  manifest: Manifest;
  /** Rows written. */
  rows: number;
  /** Chunk bytes written. */
  bytes: number;
  /** Chunk files written. */
  chunks: number;
  /** Wall time in milliseconds. */
  elapsedMs: number;
  /**
   * A shard run (`shard` option): the receipt it wrote. `manifest` is then the manifest of this shard's
   * part, not written: `commitShards` writes the savepoint's.
   */
  receipt?: ShardReceipt;
  /** A run in worker threads (`workers` > 1): which thread ran each shard, in shard order. */
  shards?: ShardRun[];
}

/** One shard of a run in worker threads, as {@link WriteReport.shards} lists it. */
export interface ShardRun {
  /** The shard's index. */
  index: number;
  /** The thread that ran it: 0 for the thread that called the tool, else the worker's thread id. */
  thread: number;
  /** Rows the shard wrote. */
  rows: number;
}

/** The subtask ranges of a parallelism. */
export function subtaskRanges(parallelism: number, maxParallelism: number): KeyGroupRange[] {
  return Array.from({ length: parallelism }, (_, i) => keyGroupRangeFor(i, parallelism, maxParallelism));
}

/** Runs a plan into `dst`: every chunk first, the manifest last. */
export async function rewrite(plan: RewritePlan, dst: string | Storage, opts: WriteOptions, metadata: Record<string, string> = {}): Promise<WriteReport> {
  const started = Date.now();
  const writer = await SavepointWriter.open(dst, plan.src, opts, { tool: plan.tool, maxParallelism: plan.maxParallelism, args: plan.args });
  let temp: { storage: Scratch; cleanup: () => Promise<void> } | undefined;
  try {
    writer.totalRows = plan.operators.reduce((n, op) => n + op.states.reduce((m, s) => m + s.src.chunks.reduce((k, c) => k + c.rows, 0), 0), 0);
    const operators: OperatorSnapshot[] = [];
    for (const op of plan.operators) {
      const states: StateSnapshot[] = [];
      for (const sp of op.states) {
        let chunks: ChunkRef[];
        const rehash = sp.src.keyed && (plan.maxParallelism !== plan.src.manifest.maxParallelism || op.keyBy !== undefined);
        if (!sp.src.keyed) chunks = carriesOperatorState(opts.shard) ? await writeOperatorState(plan, op, sp, writer) : [];
        else if (rehash) {
          temp ??= await openTemp(plan.tempUri);
          chunks = columnRehash(op, sp) ? await scatterColumns(plan, op, sp, writer, temp.storage, opts) : await scatterGather(plan, op, sp, writer, temp.storage, opts);
        } else chunks = await writeKeyedState(plan, op, sp, writer, opts);
        const keyType = sp.src.keyed ? (op.keyType ?? sp.layout.keyType) : undefined;
        states.push(stateEntry(sp.src, { ...sp.layout, keyType, name: sp.name, schemaVersion: sp.schemaVersion, chunks }));
      }
      const entry: OperatorSnapshot = { uid: op.uid, parallelism: op.parallelism, states };
      if (op.src.name !== undefined) entry.name = op.src.name;
      operators.push(entry);
    }
    writer.phase = "commit";
    const manifest = await writer.commit(plan.src.manifest, operators, {
      maxParallelism: plan.maxParallelism,
      metadata: { "arrowpoint.tool": plan.tool, "arrowpoint.source": plan.src.manifest.id, ...metadata },
    });
    writer.progress();
    return { id: manifest.id, destination: writer.storage.uri, manifest, rows: writer.rows, bytes: writer.bytes, chunks: writer.chunks, elapsedMs: Date.now() - started, ...(writer.receipt ? { receipt: writer.receipt } : {}) };
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    await temp?.cleanup();
    await writer.close();
  }
}

/**
 * Where spilled pieces go: only what the scatter needs. Pieces are scratch (a failed rewrite commits
 * nothing and starts over), so the local default writes plain files with no fsync, temp-file rename or
 * folder sync, which a durable `Storage.put` pays per piece.
 */
type Scratch = Pick<Storage, "uri" | "get" | "put" | "delete">;

async function openTemp(uri: string | undefined): Promise<{ storage: Scratch; cleanup: () => Promise<void> }> {
  const name = `arrowpoint-spill-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  if (uri !== undefined) {
    const root = await openStorage(uri);
    const storage = subStorage(root, name);
    return {
      storage,
      cleanup: async () => {
        const paths: string[] = [];
        for await (const o of storage.list("")) paths.push(o.path);
        await storage.delete(paths).catch(() => {});
        await root.close();
      },
    };
  }
  const dir = await mkdtemp(join(tmpdir(), name + "-"));
  // Piece paths are generated here (`<state>/b<n>/<seq>.arrow`): flattened to one file name each.
  const file = (path: string) => join(dir, path.replaceAll("/", "_"));
  const storage: Scratch = {
    uri: dir,
    put: (path, bytes) => writeFile(file(path), bytes),
    get: async (path) => {
      const b = await readFile(file(path));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
    delete: async (paths) => {
      for (const p of paths) await unlink(file(p)).catch(() => {});
    },
  };
  return { storage, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function writeOperatorState(plan: RewritePlan, op: OperatorPlan, sp: StatePlan, writer: SavepointWriter): Promise<ChunkRef[]> {
  const read = await readOperatorItems(plan.src, sp.src);
  let values = read.values;
  let subtasks = read.subtasks;
  if (sp.transformItem) {
    // Items keep the subtask they came from, so broadcast and union lists stay what they were.
    const kept: unknown[] = [];
    const from: number[] = [];
    for (let i = 0; i < values.length; i++) {
      const v = sp.transformItem(values[i]);
      if (v === undefined) continue;
      kept.push(v);
      from.push(subtasks[i]);
    }
    values = kept;
    subtasks = from;
  }
  // Same parallelism: every subtask keeps its own list. Otherwise redistribute by the state's mode.
  const lists = op.parallelism === op.src.parallelism
    ? ownLists(values, subtasks, op.parallelism)
    : redistributeItems(sp.src.redistribution ?? "split", values, subtasks, op.src.parallelism, op.parallelism);
  const refs: ChunkRef[] = [];
  for (let i = 0; i < lists.length; i++) {
    if (lists[i].length) refs.push(await writer.writeOperator(op.uid, sp.name, sp.layout, i, lists[i]));
  }
  return refs;
}

function ownLists(values: readonly unknown[], subtasks: readonly number[], parallelism: number): unknown[][] {
  const lists: unknown[][] = Array.from({ length: parallelism }, () => []);
  for (let i = 0; i < values.length; i++) lists[Math.min(subtasks[i], parallelism - 1)].push(values[i]);
  return lists;
}

function sweepOpts(sp: StatePlan, plan: RewritePlan, opts: WriteOptions) {
  return { ...shapeOf(sp.src), batchRows: opts.batchRows, canonical: plan.canonical, signal: opts.signal };
}

/** Same key groups: copy, slice or sweep into the target subtask ranges. */
async function writeKeyedState(plan: RewritePlan, op: OperatorPlan, sp: StatePlan, writer: SavepointWriter, opts: WriteOptions): Promise<ChunkRef[]> {
  const { windows } = shardWindows(op.parallelism, plan.maxParallelism, opts.shard);
  const inputs = snapshotInputs(plan.src, sp.src);
  const plain = isPlainBaseSet(sp.src.chunks);
  const out = writer.keyed(op.uid, sp.name, sp.layout);
  // Bytes move, rows don't: verbatim copies and Arrow-level slices, with the value column rewritten when
  // the migration steps are column operations.
  const columnar = plain && sp.columns !== undefined;
  const verbatim = !sp.transform && sameLayout(sp.layout, sp.src);
  const copyable = plain && (verbatim || columnar);
  // Fill each window; consecutive windows that need rows merged share one sweep (chunk cache kept).
  let pending: KeyGroupRange[] = [];
  const flushPending = async () => {
    if (!pending.length) return;
    const group = pending;
    pending = [];
    if (verbatim) return await gatherWindows(inputs, group, sp, plan, opts, out);
    let current = -1;
    for await (const batch of sweep(inputs, group, sweepOpts(sp, plan, opts))) {
      if (batch.window !== current) {
        if (current >= 0) await out.end();
        current = batch.window;
        out.begin(group[current]);
      }
      await out.add(sp.transform ? { range: batch.range, rows: sp.transform(batch.rows) } : batch);
    }
    if (current >= 0) await out.end();
  };
  // The source chunk being copied, in a scratch buffer: released once nothing reads it (the rewrites below
  // copy what they keep; a verbatim copy hands the buffer to its write).
  let lastBytes: { input: ChunkInput; bytes: Uint8Array; lease?: Lease } | undefined;
  for (const win of windows) {
    const overlapping = inputs.filter((c) => intersect(c.range, win)).sort((a, b) => a.range.start - b.range.start);
    const sliceable = copyable && (plan.slices || overlapping.length <= 1);
    if (!sliceable || overlapping.length === 0) {
      pending.push(win);
      continue;
    }
    await flushPending();
    out.begin(win);
    for (const c of overlapping) {
      const ref = c.ref!;
      const part = intersect(c.range, win)!;
      if (lastBytes?.input !== c) {
        lastBytes?.lease?.release();
        lastBytes = undefined;
        if (opts.shard) {
          // Shards run one after another here slice the same source chunk: read and verified once
          // (_shard_cache.ts), whose lease outlives this run while the next shard may want it.
          const key = `${plan.src.location}\n${ref.path}\n${ref.checksum}`;
          const lease = await shardSourceChunk(key, ref.bytes + 1, (into) => readVerifiedChunk(plan.src, ref, into));
          lastBytes = { input: c, bytes: lease.bytes, lease };
        } else {
          const lease = scratchFor(ref.bytes + 1);
          lastBytes = { input: c, bytes: await readVerifiedChunk(plan.src, ref, lease?.bytes), lease };
        }
      }
      let chunk: EncodedChunk;
      // No checksum: readVerifiedChunk has just checked these bytes.
      const info = { path: chunkLocation(plan.src, ref), compression: ref.compression, rawBytes: ref.rawBytes };
      if (!verbatim) {
        chunk = rewriteChunk(lastBytes.bytes, info, { range: sameRange(part, c.range) ? undefined : part, layout: sp.layout, value: sp.columns }, { compression: opts.compression ?? ref.compression });
      } else if (sameRange(part, c.range)) {
        // The whole chunk lies in this window (no other window reads it): its buffer goes with its write.
        chunk = { bytes: lastBytes.bytes, rows: ref.rows, keyGroupRange: part, checksum: ref.checksum, compression: ref.compression, rawBytes: ref.rawBytes ?? lastBytes.bytes.length, release: lastBytes.lease?.release };
        lastBytes = undefined;
      } else {
        chunk = sliceChunk(lastBytes.bytes, part, info, { compression: opts.compression ?? ref.compression });
      }
      await out.addEncoded(part, chunk);
    }
    await out.end();
  }
  lastBytes?.lease?.release();
  await flushPending();
  return await out.finish();
}

/**
 * Rows merged without a value transform: the chain is decided on the identity columns and each output
 * chunk gathered column by column from the source chunks (no value becomes a JS value). A chunk ends at a
 * batch boundary once it holds `maxChunkRows` rows, and covers every key group of its range.
 */
async function gatherWindows(inputs: ChunkInput[], windows: KeyGroupRange[], sp: StatePlan, plan: RewritePlan, opts: WriteOptions, out: KeyedStateWriter, mode?: "concat"): Promise<void> {
  const maxChunkRows = out.maxChunkRows;
  let files: ChunkFile[] = [];
  let index = new Map<ChunkFile, number>();
  let parts: { src: Uint32Array; row: Uint32Array; kg: Uint16Array }[] = [];
  // The batches gathered into the next chunk keep their source buffers out of the scratch pool until then.
  let held: (() => void)[] = [];
  let rows = 0;
  let from = -1;
  const emit = async (end: number) => {
    const src = new Uint32Array(rows);
    const row = new Uint32Array(rows);
    const keyGroups = new Uint16Array(rows);
    let at = 0;
    for (const p of parts) {
      src.set(p.src, at);
      row.set(p.row, at);
      keyGroups.set(p.kg, at);
      at += p.row.length;
    }
    const chunk = gatherChunk(sp.layout, files, src, row, { compression: opts.compression ?? "none", keyGroups });
    // The gathered chunk is a copy: the sources are read no more.
    for (const done of held) done();
    held = [];
    await out.addEncoded({ start: from, end }, chunk);
    files = [];
    index = new Map();
    parts = [];
    rows = 0;
    from = end + 1;
  };
  let current = -1;
  let begun = false;
  const sweepOptions = { ...sweepOpts(sp, plan, opts), mode, batchRows: Math.min(opts.batchRows ?? maxChunkRows, maxChunkRows), scratch: true };
  for await (const s of sweepSelections(inputs, windows, sweepOptions)) {
    if (s.window !== current) {
      if (begun) {
        await emit(windows[current].end);
        await out.end();
      }
      current = s.window;
      out.begin(windows[current]);
      begun = true;
      from = windows[current].start;
    }
    // After the emit above: that emit's release must not end this batch's retain.
    held.push(s.retain());
    const map = Uint32Array.from(s.files, (f) => {
      let i = index.get(f);
      if (i === undefined) index.set(f, (i = files.push(f) - 1));
      return i;
    });
    const src = s.src;
    for (let i = 0; i < src.length; i++) src[i] = map[src[i]];
    parts.push({ src, row: s.row, kg: s.keyGroups });
    rows += src.length;
    if (s.range.end === windows[current].end) {
      // The window is complete: written now, so its sources go back to the pool before the next window's
      // chunks are read (the sweep opens them as soon as it is asked for the next batch).
      await emit(s.range.end);
      await out.end();
      begun = false;
    } else if (rows >= maxChunkRows) await emit(s.range.end);
  }
  if (begun) {
    await emit(windows[current].end);
    await out.end();
  }
}

/** Whether a re-hash can run on columns: no key function, no value transform, a key type hashed from its buffer. */
function columnRehash(op: OperatorPlan, sp: StatePlan): boolean {
  return !op.keyBy && !sp.transform && sameLayout(sp.layout, sp.src) && COLUMN_REHASH_KEY_TYPES.includes(sp.src.keyType ?? "");
}

/**
 * New maxParallelism, as column operations: each merged source batch's new key groups are hashed from its
 * key column, its rows counting-sorted by new key group and gathered into one sorted piece per target
 * subtask (spilled to `temp`); then each target range gathers its pieces, interleaved by key group.
 */
async function scatterColumns(plan: RewritePlan, op: OperatorPlan, sp: StatePlan, writer: SavepointWriter, temp: Scratch, opts: WriteOptions): Promise<ChunkRef[]> {
  const sourceBytes = sp.src.chunks.reduce((n, c) => n + (c.rawBytes ?? c.bytes), 0);
  if (plan.spillRows === undefined && sourceBytes <= IN_MEMORY_REHASH_BYTES) return await rehashInMemory(plan, op, sp, writer, opts);
  const maxP = plan.maxParallelism;
  const { windows } = shardWindows(op.parallelism, maxP, opts.shard);
  const pieces: { path: string; range: KeyGroupRange; rows: number }[][] = windows.map(() => []);
  const stateDir = `${writer.chunks}-${Math.random().toString(36).slice(2, 8)}`;
  let seq = 0;
  let scattered = 0;
  writer.phase = "scatter";
  const batchRows = Math.max(1, plan.spillRows ?? 65_536);
  for await (const s of sweepSelections(snapshotInputs(plan.src, sp.src), [{ start: 0, end: plan.src.manifest.maxParallelism - 1 }], { ...sweepOpts(sp, plan, opts), canonical: false, batchRows })) {
    const n = s.row.length;
    if (n === 0) continue;
    const kgs = keyGroupsOfColumn(s.files.map((f) => f.columns[f.plan.index.key]), s.src, s.row, maxP)!;
    // Counting sort by new key group (stable): ≤ 32768 buckets.
    const counts = new Uint32Array(maxP + 1);
    for (let i = 0; i < n; i++) counts[kgs[i] + 1]++;
    for (let g = 1; g <= maxP; g++) counts[g] += counts[g - 1];
    const starts = counts.slice();
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[counts[kgs[i]]++] = i;
    for (let b = 0; b < windows.length; b++) {
      const from = starts[windows[b].start];
      const to = starts[windows[b].end + 1];
      if (from === to) continue;
      // Plain loops: TypedArray.from with a map function goes through the iterator protocol per element.
      const m = to - from;
      const src = new Uint32Array(m);
      const row = new Uint32Array(m);
      const keyGroups = new Uint16Array(m);
      for (let k = 0; k < m; k++) {
        const i = order[from + k];
        src[k] = s.src[i];
        row[k] = s.row[i];
        keyGroups[k] = kgs[i];
      }
      const chunk = gatherChunk(sp.layout, s.files, src, row, { keyGroups });
      const path = `${stateDir}/b${b}/${String(seq++).padStart(6, "0")}.arrow`;
      try {
        await temp.put(path, chunk.bytes);
      } finally {
        chunk.release?.();
      }
      pieces[b].push({ path, range: { start: keyGroups[0], end: keyGroups[keyGroups.length - 1] }, rows: keyGroups.length });
    }
    scattered += n;
    writer.progress({ phase: "scatter", rows: writer.rows + scattered });
  }
  writer.phase = "write";
  const out = writer.keyed(op.uid, sp.name, sp.layout);
  for (let b = 0; b < windows.length; b++) {
    const ins = pieces[b].map((pc, i) => storageInput(temp, pc.path, pc.range, pc.rows, i));
    await gatherWindows(ins, [windows[b]], sp, plan, opts, out, "concat");
    await temp.delete(pieces[b].map((pc) => pc.path));
  }
  return await out.finish();
}

/**
 * {@link scatterColumns} without spilling, for sources that fit {@link IN_MEMORY_REHASH_BYTES}: the merged
 * source's rows are picked (file, row), their new key groups hashed from the key columns, counting-sorted by
 * new key group (≤ 32768 buckets), and each target range gathered from the source chunks directly.
 */
async function rehashInMemory(plan: RewritePlan, op: OperatorPlan, sp: StatePlan, writer: SavepointWriter, opts: WriteOptions): Promise<ChunkRef[]> {
  const maxP = plan.maxParallelism;
  // A shard writes its own windows only (every row is still hashed: the key groups of the rest are unknown).
  const { windows } = shardWindows(op.parallelism, maxP, opts.shard);
  // Shards run one after another in this process share the first one's picks (migrate/_shard_cache.ts).
  const key = opts.shard && rehashKey(plan.src.location, op.src.uid, sp.src, maxP);
  // Only this run's key groups are sorted (a shard's slice; all of them for one run).
  const lo = windows.length ? windows[0].start : 0;
  const hi = windows.length ? windows[windows.length - 1].end : -1;
  // The threads of a run in workers hashed the source together, a chunk each (migrate/_shared_hash.ts);
  // their units own their buffers.
  const fromThreads = key ? await sharedPicks(key, lo, hi, maxP, plan.src, sp.src) : undefined;
  if (fromThreads) return await gatherPicks(op, sp, writer, opts, windows, fromThreads, [fromThreads.arena]);
  let hashed = key ? takePicks(key, opts.shard!) : undefined;
  // A run reads its sources into scratch buffers, handed back once every range is gathered; shared picks
  // outlive the run: their buffers go back once the cache lets them go and no shard gathers from them.
  const leases: Lease[] = [];
  if (!hashed) {
    hashed = await hashedPicks(plan, sp, writer, opts, leases);
    if (key) {
      // Sorted once for every shard of the run, each then takes its slice without a pass over all rows.
      const all = sortPicks(hashed, 0, maxP - 1, maxP, leases);
      hashed = { files: all.files, src: all.src, row: all.row, keyGroups: all.keyGroups, length: all.src.length, starts: all.starts };
      keepPicks(key, opts.shard!, hashed, leases);
    }
  }
  const shared = key ? hashed : undefined;
  try {
    const sorted = sortPicks(hashed, lo, hi, maxP, shared ? undefined : leases);
    hashed = undefined; // one run's unsorted picks are garbage from here
    return await gatherPicks(op, sp, writer, opts, windows, sorted, shared ? [] : leases);
  } finally {
    if (shared) releasePicks(shared);
  }
}

/** Writes a run's windows from picks sorted by new key group, then hands `leases` (or arenas) back. */
async function gatherPicks(op: OperatorPlan, sp: StatePlan, writer: SavepointWriter, opts: WriteOptions, windows: KeyGroupRange[], sorted: SortedPicks, leases: Pick<Lease, "release">[]): Promise<ChunkRef[]> {
  const { files, src: oSrc, row: oRow, keyGroups: oKg, starts } = sorted;
  writer.phase = "write";
  const out = writer.keyed(op.uid, sp.name, sp.layout);
  const maxChunkRows = out.maxChunkRows;
  for (const win of windows) {
    out.begin(win);
    let from = win.start;
    // Chunks of at most maxChunkRows rows where key groups allow (a key group is never split).
    while (from <= win.end) {
      let end = win.end;
      if (starts[win.end + 1] - starts[from] > maxChunkRows) {
        end = from;
        while (end < win.end && starts[end + 2] - starts[from] <= maxChunkRows) end++;
      }
      const a = starts[from];
      const b = starts[end + 1];
      opts.signal?.throwIfAborted();
      const chunk = gatherChunk(sp.layout, files, oSrc.subarray(a, b), oRow.subarray(a, b), { compression: opts.compression ?? "none", keyGroups: oKg.subarray(a, b) });
      await out.addEncoded({ start: from, end }, chunk);
      from = end + 1;
    }
    await out.end();
  }
  // Gathered chunks are copies: the sources and the picks are read no more.
  for (const l of leases) l.release();
  return await out.finish();
}

/** Picks sorted by new key group: `starts[g]` is the first pick of key group g. */
interface SortedPicks {
  files: ChunkFile[];
  src: Uint32Array;
  row: Uint32Array;
  keyGroups: Uint16Array;
  starts: Uint32Array;
}

/**
 * `n` elements of a picks array: from the scratch pool when `leases` is given (the lease is added there,
 * released with the run's sources), else a plain allocation. Contents are undefined: the caller writes
 * every element it reads. Picks of a run are allocated and dropped once per run (10 bytes per row): fresh
 * memory there is page faults and, in a process with a large heap, full collections.
 */
function picksArray<T extends Uint32Array | Uint16Array>(Type: { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; new (length: number): T; readonly BYTES_PER_ELEMENT: number }, n: number, leases?: Lease[]): T {
  const lease = leases ? scratchFor(n * Type.BYTES_PER_ELEMENT) : undefined;
  if (!lease) return new Type(n);
  leases!.push(lease);
  return new Type(lease.bytes.buffer as ArrayBuffer, lease.bytes.byteOffset, n);
}

/** Every source row of `sp` as a pick (file, row) with its new key group, in the source's order. */
async function hashedPicks(plan: RewritePlan, sp: StatePlan, writer: SavepointWriter, opts: WriteOptions, leases?: Lease[]): Promise<HashedPicks> {
  const maxP = plan.maxParallelism;
  const total = sp.src.chunks.reduce((n, c) => n + c.rows, 0);
  const files: ChunkFile[] = [];
  const index = new Map<ChunkFile, number>();
  // A manifest's row counts are untrusted: past the pool's sizes (or when a chain holds more rows than
  // counted, below) the arrays are plain allocations.
  let src = picksArray(Uint32Array, total, leases);
  let row = picksArray(Uint32Array, total, leases);
  let kgs = picksArray(Uint16Array, total, leases);
  let n = 0;
  writer.phase = "scatter";
  // Every source chunk stays open until the last target range is gathered (into `leases`' buffers if given).
  for await (const s of sweepSelections(snapshotInputs(plan.src, sp.src, leases), [{ start: 0, end: plan.src.manifest.maxParallelism - 1 }], { ...sweepOpts(sp, plan, opts), canonical: false, batchRows: 65_536 })) {
    const m = s.row.length;
    if (m === 0) continue;
    const map = Uint32Array.from(s.files, (f) => {
      let i = index.get(f);
      if (i === undefined) index.set(f, (i = files.push(f) - 1));
      return i;
    });
    if (n + m > src.length) {
      // More rows than the manifest counts (a chain's deltas add keys): grow.
      const grow = <T extends Uint32Array | Uint16Array>(a: T, make: (k: number) => T): T => {
        const b = make(Math.max(2 * a.length, n + m));
        b.set(a.subarray(0, n));
        return b;
      };
      src = grow(src, (k) => new Uint32Array(k));
      row = grow(row, (k) => new Uint32Array(k));
      kgs = grow(kgs, (k) => new Uint16Array(k));
    }
    // New key groups hashed straight into their place.
    keyGroupsOfColumn(s.files.map((f) => f.columns[f.plan.index.key]), s.src, s.row, maxP, kgs.subarray(n, n + m));
    for (let i = 0; i < m; i++) src[n + i] = map[s.src[i]];
    row.set(s.row, n);
    n += m;
    writer.progress({ phase: "scatter", rows: n });
  }
  return { files, src, row, keyGroups: kgs, length: n };
}

/**
 * The picks of new key groups `lo`–`hi`, counting-sorted by new key group (stable: rows of one key group
 * keep their order); `starts[g]` (for g in lo…hi + 1) is where key group g begins in the sorted picks.
 */
function sortPicks(h: HashedPicks, lo: number, hi: number, maxP: number, leases?: Lease[]): SortedPicks {
  if (h.starts) {
    // Already sorted (a shard's picks kept for the run): its slice, as views.
    const from = hi >= lo ? h.starts[lo] : 0;
    const to = hi >= lo ? h.starts[hi + 1] : 0;
    const starts = new Uint32Array(maxP + 1);
    for (let g = lo; g <= hi + 1 && g <= maxP; g++) starts[g] = h.starts[g] - from;
    return { files: h.files, src: h.src.subarray(from, to), row: h.row.subarray(from, to), keyGroups: h.keyGroups.subarray(from, to), starts };
  }
  const { src, row, keyGroups: kgs, length: n } = h;
  const counts = new Uint32Array(maxP + 1);
  for (let i = 0; i < n; i++) counts[kgs[i] + 1]++;
  for (let g = 1; g <= maxP; g++) counts[g] += counts[g - 1];
  const base = hi >= lo ? counts[lo] : 0;
  const m = hi >= lo ? counts[hi + 1] - base : 0;
  const starts = new Uint32Array(maxP + 1);
  for (let g = lo; g <= hi + 1 && g <= maxP; g++) starts[g] = counts[g] - base;
  // Every element below m is written: pooled arrays need no clearing.
  const oSrc = picksArray(Uint32Array, m, leases);
  const oRow = picksArray(Uint32Array, m, leases);
  const oKg = picksArray(Uint16Array, m, leases);
  for (let i = 0; i < n; i++) {
    const k = kgs[i];
    if (k < lo || k > hi) continue;
    const at = counts[k]++ - base;
    oSrc[at] = src[i];
    oRow[at] = row[i];
    oKg[at] = k;
  }
  return { files: h.files, src: oSrc, row: oRow, keyGroups: oKg, starts };
}

/** New maxParallelism or key function: re-hash every row, spill by target bucket, then write bucket by bucket. */
async function scatterGather(plan: RewritePlan, op: OperatorPlan, sp: StatePlan, writer: SavepointWriter, temp: Scratch, opts: WriteOptions): Promise<ChunkRef[]> {
  const maxP = plan.maxParallelism;
  const p = op.parallelism;
  const { first, windows } = shardWindows(p, maxP, opts.shard);
  const inputs = snapshotInputs(plan.src, sp.src);
  const namespaced = sp.src.namespaced === true;
  const map = sp.src.kind === "map";
  const keyType = op.keyType ?? sp.src.keyType!;
  const layout: StateLayout = { ...sp.layout, keyType };
  const where = `${op.src.uid}/${sp.src.name}`;
  const spillRows = Math.max(1, plan.spillRows ?? 65_536);
  const buckets = windows.map(() => new RowBuffer(namespaced, map));
  const pieces: { path: string; range: KeyGroupRange; rows: number }[][] = windows.map(() => []);
  let buffered = 0;
  let seq = 0;
  const stateDir = `${writer.chunks}-${Math.random().toString(36).slice(2, 8)}`;
  const spill = async () => {
    for (let b = 0; b < buckets.length; b++) {
      if (buckets[b].length === 0) continue;
      const rows = sortByKeyGroup(buckets[b].take());
      const kgs = rows.keyGroups!;
      const range = { start: kgs[0], end: kgs[kgs.length - 1] };
      const path = `${stateDir}/b${b}/${String(seq++).padStart(6, "0")}.arrow`;
      await temp.put(path, encodeChunk(layout, rows, { state: where }).bytes);
      pieces[b].push({ path, range, rows: rows.length });
    }
    buffered = 0;
  };
  writer.phase = "scatter";
  for await (const batch of sweep(inputs, [{ start: 0, end: plan.src.manifest.maxParallelism - 1 }], { ...sweepOpts(sp, plan, opts), canonical: false })) {
    const rows = sp.transform ? sp.transform(batch.rows) : batch.rows;
    for (let i = 0; i < rows.length; i++) {
      const oldKey = rows.keys![i] as Key;
      const value = rows.values[i];
      const key = op.keyBy ? op.keyBy(oldKey, value, sp.src.name) : oldKey;
      if (!keyFits(keyType, key)) {
        throw new SchemaViolationError(where, keyText(oldKey), `the new key ${keyText(key)} does not fit key type ${keyType}; give the operator's keyType`);
      }
      let kg: number;
      try {
        kg = assignKeyGroup(key, maxP);
      } catch (e) {
        throw new SchemaViolationError(where, keyText(oldKey), `the new key ${keyText(key)} cannot be hashed: ${(e as Error).message}`);
      }
      // A shard keeps the rows of its own subtasks only (every row is still hashed: its errors are every shard's).
      const b = Math.floor((kg * p) / maxP) - first;
      if (b >= 0 && b < buckets.length && kg >= windows[b].start && kg <= windows[b].end) buckets[b].push(kg, key, rows.namespaces?.[i], rows.userKeys?.[i], value);
    }
    buffered += rows.length;
    writer.progress({ phase: "scatter", rows: writer.rows + buffered });
    if (buffered >= spillRows) await spill();
  }
  await spill();
  writer.phase = "write";
  const out = writer.keyed(op.uid, sp.name, layout);
  for (let b = 0; b < windows.length; b++) {
    const ins = pieces[b].map((pc, i) => storageInput(temp, pc.path, pc.range, pc.rows, i));
    out.begin(windows[b]);
    for await (const batch of sweep(ins, [windows[b]], { mode: "concat", batchRows: opts.batchRows, namespaced, map, signal: opts.signal })) {
      await out.add(op.keyBy ? { range: batch.range, rows: await combine(batch, op, sp, plan, inputs) } : batch);
    }
    await out.end();
    await temp.delete(pieces[b].map((pc) => pc.path));
  }
  return await out.finish();
}

/** Combines rows whose new keys collide (within a batch, since equal keys share a key group). */
async function combine(batch: RangeBatch, op: OperatorPlan, sp: StatePlan, plan: RewritePlan, inputs: ChunkInput[]): Promise<Rows> {
  const rows = batch.rows;
  const namespaced = sp.src.namespaced === true;
  const map = sp.src.kind === "map";
  const index = new Map<KeyId, number>();
  const buf = new RowBuffer(namespaced, map);
  const values: unknown[] = [];
  const kept: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const id = rowIdentity(rows.keys![i], rows.namespaces?.[i], rows.userKeys?.[i], namespaced, map);
    const at = index.get(id);
    if (at === undefined) {
      index.set(id, kept.length);
      kept.push(i);
      values.push(rows.values[i]);
      continue;
    }
    const merge = op.merge?.(sp.src.name);
    if (!merge) {
      const origins = await findOrigins(plan, op, sp, inputs, id);
      throw new IncompatibleSnapshotError(
        `rekey of ${op.src.uid}/${sp.src.name}: ${origins.length >= 2 ? `keys ${origins.map((k) => keyText(k)).join(" and ")} both map` : "two rows map"} to the new key ${keyText(rows.keys![i])}` +
          `${namespaced ? ` (namespace ${JSON.stringify(rows.namespaces![i])})` : ""}; pass merge: { ${JSON.stringify(`${op.src.uid}/${sp.src.name}`)}: (a, b) => ... } to combine colliding values`,
      );
    }
    values[at] = merge(values[at], rows.values[i], { operator: op.src.uid, state: sp.src.name, key: rows.keys![i] as Key });
  }
  if (kept.length === rows.length) return rows;
  for (let j = 0; j < kept.length; j++) {
    const i = kept[j];
    buf.push(rows.keyGroups![i], rows.keys![i], rows.namespaces?.[i], rows.userKeys?.[i], values[j]);
  }
  return buf.take();
}

/** The first two source keys whose new key has identity `id` (for the collision message). */
async function findOrigins(plan: RewritePlan, op: OperatorPlan, sp: StatePlan, inputs: ChunkInput[], id: KeyId): Promise<unknown[]> {
  const found: unknown[] = [];
  const namespaced = sp.src.namespaced === true;
  const map = sp.src.kind === "map";
  for await (const batch of sweep(inputs, [{ start: 0, end: plan.src.manifest.maxParallelism - 1 }], { namespaced, map })) {
    const r = batch.rows;
    for (let i = 0; i < r.length; i++) {
      const key = op.keyBy!(r.keys![i] as Key, r.values[i], sp.src.name);
      if (rowIdentity(key, r.namespaces?.[i], r.userKeys?.[i], namespaced, map) === id) {
        found.push(r.keys![i]);
        if (found.length === 2) return found;
      }
    }
  }
  return found;
}
