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

/** Options of {@link compact}. */
export interface CompactOptions extends WriteOptions {
  /** Target parallelism: one number for every operator, or per uid (default: each operator's own). */
  parallelism?: number | Record<string, number>;
}

/**
 * Compacts a snapshot into a new savepoint: chains applied (bases reset, deltas upsert, tombstones
 * dropped), rows sorted by key group (and, within a key group, by key), one chunk per state per
 * subtask key-group range of the target parallelism (split at key-group boundaries past
 * `maxChunkRows` rows), relative paths only, the manifest written last. The source may be a checkpoint
 * root (its latest checkpoint), a `chk-<n>` folder or a savepoint (which gets the canonical layout).
 * Streams range by range: memory holds the chunks overlapping one key group and one chunk being written.
 *
 * @example
 * ```ts
 * import { compact } from "./compact.ts";
 * // const report = await compact("s3://bucket/job/chk-000042", "s3://bucket/job/savepoints/sp-42");
 * // console.log(report.rows, report.chunks);
 * ```
 */
export async function compact(checkpoint: string | Snapshot, savepoint: string | Storage, options: CompactOptions = {}): Promise<WriteReport> {
  return await withSnapshot(checkpoint, async (src) => {
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
