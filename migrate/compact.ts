/**
 * `compact`: a checkpoint (with its incremental chain) becomes a self-contained, canonical savepoint.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import type { Snapshot } from "../snapshot/read.ts";
import type { WriteOptions } from "./_sink.ts";
import { layoutOf } from "./_sink.ts";
import { parallelismFor } from "./rekey.ts";
import { rewrite, type WriteReport } from "./_rewrite.ts";
import { withSnapshot } from "./_open.ts";
import { anySignal, viaWorkers } from "./_workers.ts";

/** Options of {@link compact}. */
export interface CompactOptions extends WriteOptions {
  /** Target parallelism: one number for every operator, or per uid (default: each operator's own). */
  parallelism?: number | Record<string, number>;
}

/**
 * Compacts a snapshot into a new savepoint: chains applied (bases reset, deltas upsert, tombstones
 * dropped), rows sorted by key group (within a key group in no promised order: docs/format.md §6), one chunk per state per
 * subtask key-group range of the target parallelism (split at key-group boundaries past
 * `maxChunkRows` rows), relative paths only, the manifest written last. The source may be a checkpoint
 * root (its latest checkpoint), a `chk-<n>` folder or a savepoint (which gets the canonical layout).
 * Streams range by range: memory holds the chunks overlapping one key group and one chunk being written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, compact } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:compact-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:compact-example/savepoints/sp-1");
 * // The checkpoint root's latest checkpoint → a self-contained savepoint (any storage URI: s3://bucket/job …)
 * const report = await compact("memory:compact-example", "memory:compact-example/savepoints/compacted");
 * assert.equal(report.destination, "memory:compact-example/savepoints/compacted");
 * assert.equal(report.manifest.kind, "savepoint");
 * ```
 */
export async function compact(checkpoint: string | Snapshot, savepoint: string | Storage, options: CompactOptions = {}): Promise<WriteReport> {
  return await withSnapshot(checkpoint, async (src) => {
    const threaded = await viaWorkers("compact", checkpoint, savepoint, src, options, undefined, (shard, onProgress, signal) => compact(src, savepoint, { ...options, workers: undefined, shard, onProgress, signal: anySignal(options.signal, signal) }));
    if (threaded) return threaded;
    const maxP = src.manifest.maxParallelism;
    const operators = src.manifest.operators.map((op) => ({
      src: op,
      uid: op.uid,
      parallelism: parallelismFor(op, options.parallelism, maxP),
      states: op.states.map((st) => ({ src: st, name: st.name, layout: layoutOf(st), schemaVersion: st.schemaVersion })),
    }));
    return await rewrite({ tool: "compact", src, maxParallelism: maxP, operators, slices: false, canonical: true }, savepoint, options);
  });
}
