/**
 * `inspect`: what a snapshot holds, from its manifest and its chunks' key-group indexes (no row is decoded).
 *
 * @module
 */
import { openChunk } from "../format/decode_chunk.ts";
import type { Redistribution, StateKind, ValueEncoding } from "../format/state_layout.ts";
import type { KeyType } from "../format/state_layout.ts";
import { operatorIndexFor } from "../format/key_group.ts";
import { readState, type Snapshot } from "../snapshot/read.ts";
import { chunkLocation, readVerifiedChunk } from "../snapshot/chunks.ts";
import { chainDepth, rowDensity } from "../snapshot/chain.ts";
import { withSnapshot } from "./_open.ts";
import type { Progress } from "./progress.ts";

/** Options of {@link inspect}. */
export interface InspectOptions {
  /**
   * Read every keyed chunk's key-group index for per-key-group row counts (default true). Each chunk is
   * fetched and its checksum verified, but no row is decoded. `false` uses the manifest only.
   */
  keyGroups?: boolean;
  /** Called after each chunk read. */
  onProgress?: (p: Progress) => void;
  /** Cancels between chunks. */
  signal?: AbortSignal;
}

/** Row-count skew over subtasks or key groups. */
export interface Skew {
  /** Smallest count. */
  min: number;
  /** Largest count. */
  max: number;
  /** Mean count. */
  mean: number;
  /** `max / mean` (1 = perfectly even; 0 when empty). */
  ratio: number;
}

/** One state, as {@link inspect} reports it. */
export interface StateInfo {
  /** State name. */
  name: string;
  /** State kind. */
  kind: StateKind;
  /** Keyed or operator state. */
  keyed: boolean;
  /** Key type (keyed state). */
  keyType?: KeyType;
  /** User-key type (map state). */
  userKeyType?: KeyType;
  /** Whether rows carry a namespace. */
  namespaced: boolean;
  /** Value encoding and schema. */
  value: ValueEncoding;
  /** Schema version. */
  schemaVersion: number;
  /** Redistribution mode (operator state). */
  redistribution?: Redistribution;
  /** Rows stored in base chunks (the state's rows for a savepoint). */
  rows: number;
  /** Rows stored in delta chunks (upserts and deletes not yet compacted). */
  deltaRows: number;
  /** Stored bytes. */
  bytes: number;
  /** Chunk files. */
  chunks: number;
  /** Delta chunk files. */
  deltaChunks: number;
  /** Chunks in `shared/` (referenced by several checkpoints). */
  sharedChunks: number;
  /** The most chunks any key group is read from (1 for a compacted state; 0 when empty). */
  chainDepth: number;
  /** Base rows per subtask of the operator's parallelism (operator state: items per subtask). */
  subtaskRows: number[];
  /** Base rows per key group (keyed state, when key-group indexes were read). */
  keyGroupRows?: number[];
  /** Skew over subtasks. */
  subtaskSkew: Skew;
  /** Skew over key groups (when key-group indexes were read). */
  keyGroupSkew?: Skew;
  /** Pending timers per domain (the reserved state `_timers`, unless `keyGroups: false`). */
  timers?: TimerCounts;
}

/** Pending timers of one domain. */
export interface TimerSummary {
  /** Number of timers. */
  count: number;
  /** The earliest timer (ms; absent when there is none). */
  earliest?: number;
  /** The latest timer (ms; absent when there is none). */
  latest?: number;
}

/** Pending timers of an operator's `_timers` state, per time domain. */
export interface TimerCounts {
  /** Event-time timers (namespace `e:<ts>`). */
  event: TimerSummary;
  /** Processing-time timers (namespace `p:<ts>`). */
  processing: TimerSummary;
}

/** The runtime's reserved state of timers (not imported: tools do not depend on the runtime). */
const TIMERS_STATE = "_timers";

/** Counts timers by their namespace (`e:<ts>` / `p:<ts>`), the part of the row the format keeps as text. */
async function timerCounts(snap: Snapshot, uid: string): Promise<TimerCounts> {
  const rows = await readState(snap, uid, TIMERS_STATE);
  const event: TimerSummary = { count: 0 };
  const processing: TimerSummary = { count: 0 };
  for (const ns of rows.namespaces ?? []) {
    const d = ns.startsWith("e:") ? event : ns.startsWith("p:") ? processing : undefined;
    const ts = Number(ns.slice(2));
    if (d === undefined || !Number.isFinite(ts)) continue;
    d.count++;
    if (d.earliest === undefined || ts < d.earliest) d.earliest = ts;
    if (d.latest === undefined || ts > d.latest) d.latest = ts;
  }
  return { event, processing };
}

/** One operator, as {@link inspect} reports it. */
export interface OperatorInfo {
  /** Stable uid. */
  uid: string;
  /** Display name. */
  name?: string;
  /** Parallelism. */
  parallelism: number;
  /** Its states. */
  states: StateInfo[];
  /** Rows over its states. */
  rows: number;
  /** Bytes over its states. */
  bytes: number;
}

/** What {@link inspect} returns. */
export interface SnapshotInfo {
  /** Where the snapshot is. */
  location: string;
  /** Snapshot id. */
  id: string;
  /** Checkpoint or savepoint. */
  kind: "checkpoint" | "savepoint";
  /** Checkpoint number. */
  checkpointId?: number;
  /** Creation time (ISO-8601). */
  createdAt: string;
  /** Software that wrote it. */
  writer: { name: string; version: string };
  /** Job name. */
  job: string;
  /** Format version. */
  formatVersion: number;
  /** Number of key groups. */
  maxParallelism: number;
  /** Key hash function. */
  hash: string;
  /** Manifest metadata. */
  metadata: Record<string, string>;
  /** Operators. */
  operators: OperatorInfo[];
  /** Rows over all states. */
  rows: number;
  /** Chunk bytes over all states. */
  bytes: number;
  /** Chunk files. */
  chunks: number;
  /** The longest incremental chain of any state. */
  chainDepth: number;
}

function skew(counts: readonly number[]): Skew {
  if (counts.length === 0) return { min: 0, max: 0, mean: 0, ratio: 0 };
  let min = Infinity;
  let max = 0;
  let sum = 0;
  for (const c of counts) {
    if (c < min) min = c;
    if (c > max) max = c;
    sum += c;
  }
  const mean = sum / counts.length;
  return { min, max, mean, ratio: mean > 0 ? max / mean : 0 };
}

/**
 * Describes a snapshot: operators, parallelism, maxParallelism, states with kinds, schema versions, rows,
 * bytes, chunk counts, incremental chain depth, and per subtask / per key group row counts (skew).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, inspect } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:inspect-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:inspect-example/savepoints/sp-1");
 * const info = await inspect(sp.location); // or "s3://bucket/job/savepoints/sp-17"
 * assert.deepEqual(info.operators.map((op) => `${op.uid} ×${op.parallelism}: ${op.states.map((s) => s.name)}`), ["events ×1: positions", "counter ×1: counts", "out ×1: pending-commits"]);
 * assert.ok(info.operators[1].rows <= 10); // at most one count per user
 * ```
 */
export async function inspect(uri: string | Snapshot, options: InspectOptions = {}): Promise<SnapshotInfo> {
  return await withSnapshot(uri, async (snap) => {
    const m = snap.manifest;
    const maxP = m.maxParallelism;
    const started = Date.now();
    let readRows = 0;
    let readBytes = 0;
    const operators: OperatorInfo[] = [];
    for (const op of m.operators) {
      const states: StateInfo[] = [];
      for (const st of op.states) {
        const bases = st.chunks.filter((c) => c.type === "base");
        const deltas = st.chunks.filter((c) => c.type === "delta");
        const subtaskRows = new Array<number>(op.parallelism).fill(0);
        let keyGroupRows: number[] | undefined;
        let depth = 0;
        if (st.keyed) {
          depth = chainDepth(st.chunks, maxP);
          if (options.keyGroups !== false) {
            keyGroupRows = new Array<number>(maxP).fill(0);
            for (const c of bases) {
              options.signal?.throwIfAborted();
              const bytes = await readVerifiedChunk(snap, c);
              const file = openChunk(bytes, { path: chunkLocation(snap, c), compression: c.compression, rawBytes: c.rawBytes });
              const ix = file.keyGroupIndex;
              if (ix) for (let i = 0; i < ix.keyGroups.length; i++) keyGroupRows[ix.keyGroups[i]] += ix.offsets[i + 1] - ix.offsets[i];
              readRows += c.rows;
              readBytes += c.bytes;
              options.onProgress?.({ phase: "inspect", rows: readRows, bytes: readBytes, elapsedMs: Date.now() - started });
            }
            for (let g = 0; g < maxP; g++) subtaskRows[operatorIndexFor(g, op.parallelism, maxP)] += keyGroupRows[g];
          } else {
            // Manifest only: spread each base chunk's rows evenly over its key groups.
            const spread = rowDensity(bases, maxP);
            for (let g = 0; g < maxP; g++) subtaskRows[operatorIndexFor(g, op.parallelism, maxP)] += spread[g];
            for (let i = 0; i < subtaskRows.length; i++) subtaskRows[i] = Math.round(subtaskRows[i]);
          }
        } else {
          for (const c of st.chunks) if (c.subtask! < subtaskRows.length) subtaskRows[c.subtask!] += c.rows;
          depth = st.chunks.length ? 1 : 0;
        }
        const info: StateInfo = {
          name: st.name,
          kind: st.kind,
          keyed: st.keyed,
          namespaced: st.namespaced === true,
          value: st.value,
          schemaVersion: st.schemaVersion,
          rows: bases.reduce((n, c) => n + c.rows, 0),
          deltaRows: deltas.reduce((n, c) => n + c.rows, 0),
          bytes: st.chunks.reduce((n, c) => n + c.bytes, 0),
          chunks: st.chunks.length,
          deltaChunks: deltas.length,
          sharedChunks: st.chunks.filter((c) => m.chunkRoot === ".." && c.path.startsWith("shared/")).length,
          chainDepth: depth,
          subtaskRows,
          subtaskSkew: skew(subtaskRows),
        };
        if (st.keyType) info.keyType = st.keyType;
        if (st.userKeyType) info.userKeyType = st.userKeyType;
        if (st.redistribution) info.redistribution = st.redistribution;
        if (keyGroupRows) {
          info.keyGroupRows = keyGroupRows;
          info.keyGroupSkew = skew(keyGroupRows);
        }
        if (st.name === TIMERS_STATE && st.keyed && st.namespaced === true && options.keyGroups !== false) {
          options.signal?.throwIfAborted();
          info.timers = await timerCounts(snap, op.uid);
        }
        states.push(info);
      }
      const o: OperatorInfo = { uid: op.uid, parallelism: op.parallelism, states, rows: states.reduce((n, s) => n + s.rows, 0), bytes: states.reduce((n, s) => n + s.bytes, 0) };
      if (op.name !== undefined) o.name = op.name;
      operators.push(o);
    }
    const info: SnapshotInfo = {
      location: snap.location,
      id: m.id,
      kind: m.kind,
      createdAt: m.createdAt,
      writer: m.writer,
      job: m.job,
      formatVersion: m.formatVersion,
      maxParallelism: maxP,
      hash: m.hash,
      metadata: m.metadata ?? {},
      operators,
      rows: operators.reduce((n, o) => n + o.rows, 0),
      bytes: operators.reduce((n, o) => n + o.bytes, 0),
      chunks: m.operators.reduce((n, o) => n + o.states.reduce((k, s) => k + s.chunks.length, 0), 0),
      chainDepth: Math.max(0, ...operators.flatMap((o) => o.states.map((s) => s.chainDepth))),
    };
    if (m.checkpointId !== undefined) info.checkpointId = m.checkpointId;
    return info;
  });
}
