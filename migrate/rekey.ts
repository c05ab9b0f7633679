/**
 * `rekey`: rescale a snapshot to a new parallelism or maxParallelism, or re-key operators with a new key
 * function, writing a new savepoint.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { IncompatibleSnapshotError, KeyGroupError } from "../format/errors.ts";
import { UPPER_BOUND_MAX_PARALLELISM } from "../format/key_group.ts";
import type { OperatorSnapshot } from "../format/manifest.ts";
import { KEY_TYPES, type KeyType } from "../format/state_layout.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { layoutOf, type WriteOptions } from "./_sink.ts";
import { type KeyFunction, type MergeFunction, type OperatorPlan, rewrite, type WriteReport } from "./_rewrite.ts";
import { withSnapshot } from "./_open.ts";
import { anySignal, viaWorkers } from "./_workers.ts";

export type { KeyFunction, MergeFunction, WriteReport } from "./_rewrite.ts";

/** Options of {@link rekey}. */
export interface RekeyOptions extends WriteOptions {
  /** New parallelism: one number for every operator (or those in `operators`), or per uid. */
  parallelism?: number | Record<string, number>;
  /** New maxParallelism (number of key groups) for the whole job: every key is re-hashed. */
  maxParallelism?: number;
  /** Limit a single-number `parallelism` to these operator uids (others keep theirs). */
  operators?: readonly string[];
  /** New key functions per operator uid: every row of its keyed states gets `keyBy(key, value, state)`. */
  keyBy?: Record<string, KeyFunction>;
  /** The key type of the new keys per operator uid, when `keyBy` changes it (default: unchanged). */
  keyTypes?: Record<string, KeyType>;
  /**
   * How to combine values whose new keys collide, by `"uid/state"` or `"uid"`. Without one, a collision
   * stops the run naming the keys.
   */
  merge?: Record<string, MergeFunction>;
  /** Storage URI for spilled pieces while re-hashing (default: a fresh folder in the OS temp directory). */
  tempUri?: string;
  /** Rows buffered in memory before spilling while re-hashing (default 65,536). */
  spillRows?: number;
}

/**
 * The target parallelism of an operator under a `parallelism` option.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parallelismFor } from "./rekey.ts";
 * const op = { uid: "counter", parallelism: 4, states: [] };
 * assert.equal(parallelismFor(op, 7, 128), 7);
 * assert.equal(parallelismFor(op, { other: 2 }, 128), 4);
 * ```
 */
export function parallelismFor(op: OperatorSnapshot, parallelism: number | Record<string, number> | undefined, maxParallelism: number, only?: readonly string[]): number {
  let p = op.parallelism;
  if (typeof parallelism === "number") {
    if (!only || only.includes(op.uid)) p = parallelism;
  } else if (parallelism && Object.hasOwn(parallelism, op.uid)) p = parallelism[op.uid];
  if (!Number.isInteger(p) || p < 1 || p > maxParallelism) {
    throw new KeyGroupError(`Cannot use parallelism ${p} for operator ${JSON.stringify(op.uid)} as it must be an integer in 1..maxParallelism (${maxParallelism}); give a smaller parallelism or a larger maxParallelism`);
  }
  return p;
}

function checkUids(snap: Snapshot, uids: Iterable<string>, what: string): void {
  const known = snap.manifest.operators.map((o) => o.uid);
  for (const uid of uids) {
    if (!known.includes(uid)) {
      throw new IncompatibleSnapshotError(`${what} names operator ${JSON.stringify(uid)}, which snapshot ${snap.location} does not have (operators: ${known.join(", ") || "none"})`);
    }
  }
}

/**
 * Rescales or re-keys a snapshot into a new savepoint:
 * - new parallelism only: whole key groups move; chunks are copied verbatim or cut into key-group slices
 *   at the Arrow level (`sliceChunk`) without decoding rows; a target subtask may get several chunks;
 * - new maxParallelism: every key is re-hashed (Flink's `KeyGroupRangeAssignment`) and rows re-sorted;
 * - new key function per operator: rows re-keyed; colliding keys are combined with `merge` or the run
 *   fails naming them;
 * - operator state is redistributed by its mode (`split` round-robin, `union` kept once for every subtask
 *   to receive, `broadcast` copied).
 * Re-hashing spills sorted Arrow pieces to temporary storage so memory stays bounded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, inspect, rekey } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:rekey-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:rekey-example/savepoints/sp-1");
 * // Rescale every operator to 7 subtasks (whole key groups move, no row is decoded):
 * const p7 = await rekey(sp.location, "memory:rekey-example/savepoints/p7", { parallelism: 7 });
 * assert.deepEqual(p7.manifest.operators.map((o) => o.parallelism), [7, 7, 7]);
 * // Change the number of key groups (every key is re-hashed):
 * const m512 = await rekey(sp.location, "memory:rekey-example/savepoints/m512", { maxParallelism: 512 });
 * assert.equal(m512.manifest.maxParallelism, 512);
 * // Key by something else ("user-7" → "odd"), summing the counts that now collide:
 * await rekey(sp.location, "memory:rekey-example/savepoints/parity", {
 *   keyBy: { counter: (k) => (Number(String(k).slice(5)) % 2 ? "odd" : "even") },
 *   merge: { counter: (a, b) => (a as number) + (b as number) },
 * });
 * const parity = await inspect("memory:rekey-example/savepoints/parity");
 * assert.ok(parity.operators[1].rows <= 2);
 * ```
 */
export async function rekey(src: string | Snapshot, dst: string | Storage, options: RekeyOptions = {}): Promise<WriteReport> {
  return await withSnapshot(src, async (snap) => {
    const maxP = options.maxParallelism ?? snap.manifest.maxParallelism;
    if (!Number.isInteger(maxP) || maxP < 1 || maxP > UPPER_BOUND_MAX_PARALLELISM) {
      throw new KeyGroupError(`Cannot use maxParallelism as it must be an integer in 1..${UPPER_BOUND_MAX_PARALLELISM}: current value is ${maxP}`);
    }
    if (options.operators) checkUids(snap, options.operators, "--operator");
    if (options.keyBy) checkUids(snap, Object.keys(options.keyBy), "keyBy");
    if (options.keyTypes) {
      checkUids(snap, Object.keys(options.keyTypes), "keyTypes");
      for (const [uid, t] of Object.entries(options.keyTypes)) {
        if (!KEY_TYPES.includes(t)) throw new TypeError(`Cannot use key type for ${uid} as it must be one of ${KEY_TYPES.join(", ")}: current value is ${JSON.stringify(t)}`);
      }
    }
    if (typeof options.parallelism === "object") checkUids(snap, Object.keys(options.parallelism), "parallelism");
    const threaded = await viaWorkers("rekey", src, dst, snap, options, undefined, (shard, onProgress, signal) => rekey(snap, dst, { ...options, workers: undefined, shard, onProgress, signal: anySignal(options.signal, signal) }), options.keyBy !== undefined || (maxP !== snap.manifest.maxParallelism && { snapshot: snap, maxParallelism: maxP }));
    if (threaded) return threaded;
    const operators: OperatorPlan[] = snap.manifest.operators.map((op) => {
      const keyBy = options.keyBy && Object.hasOwn(options.keyBy, op.uid) ? options.keyBy[op.uid] : undefined;
      if (keyBy !== undefined && typeof keyBy !== "function") throw new TypeError(`Cannot re-key operator ${op.uid} as keyBy must be a function: current value is ${typeof keyBy}`);
      if (keyBy && !op.states.some((s) => s.keyed)) throw new IncompatibleSnapshotError(`keyBy names operator ${JSON.stringify(op.uid)}, which has no keyed state`);
      const merge = options.merge;
      return {
        src: op,
        uid: op.uid,
        parallelism: parallelismFor(op, options.parallelism, maxP, options.operators),
        keyBy,
        keyType: options.keyTypes?.[op.uid],
        merge: merge ? (state: string) => merge[`${op.uid}/${state}`] ?? merge[op.uid] : undefined,
        states: op.states.map((st) => ({ src: st, name: st.name, layout: layoutOf(st), schemaVersion: st.schemaVersion })),
      };
    });
    return await rewrite(
      { tool: "rekey", src: snap, maxParallelism: maxP, operators, slices: true, canonical: false, tempUri: options.tempUri, spillRows: options.spillRows },
      dst,
      options,
    );
  });
}
