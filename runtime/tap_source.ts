/**
 * `tapSource`: let a job act at positions it reaches (checkpoint every N records, stop with a savepoint
 * at record M, simulate a crash) instead of at times, which vary with the machine and its load.
 *
 * @module
 */
import type { Source, SplitReader } from "./sources.ts";

/**
 * Called by {@link tapSource} after every read that returned records, with the number of records the
 * source has read so far in this run (every split and subtask of it in this process together). It may
 * return a promise: until it settles, no reader of the source reads further.
 *
 * @example
 * ```ts
 * import type { SourceTap } from "./tap_source.ts";
 * const log: SourceTap = (records) => {
 *   if (records % 10_000 < 512) console.log(`${records} records read`);
 * };
 * log(10_240);
 * ```
 */
export type SourceTap = (records: number) => void | PromiseLike<unknown>;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === "object" || typeof v === "function") && v !== null && typeof (v as PromiseLike<unknown>).then === "function";
}

/**
 * Wraps a source so that `tap(records)` is called after every read that returned records, with the
 * records read so far by all the source's readers. When the tap returns a promise, every reader of the
 * source holds its next read until the promise settles (fulfilled or rejected alike: the hold observes
 * a rejection, the job reports a failed checkpoint itself); while reads are held the job still takes
 * checkpoints and savepoints, and they find every split where the hold left it.
 *
 * So a job acts at positions it reaches, the same on an idle laptop and on a loaded CI machine:
 * `job.triggerCheckpoint()` returned from the tap checkpoints exactly there, `job.stopWithSavepoint()`
 * called from it stops there (the sources read nothing after the call), and `job.kill()` crashes there.
 *
 * The count starts at 0 for each `tapSource` call and is not saved in snapshots: a job restored from a
 * snapshot counts from 0 again (add the snapshot's positions to get stream positions).
 *
 * @example A checkpoint every 1,000 records, each completed before reading on
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, tapSource } from "./mod.ts";
 * const sink = new CollectingSink<number>();
 * const job = new Job("paced", { checkpoints: { storage: "memory:tap-example" } });
 * let next = 1_000;
 * const source = tapSource(generatorSource({ count: 5_000, make: (i) => i }), (records) => {
 *   if (records < next) return;
 *   next += 1_000;
 *   return job.triggerCheckpoint();
 * });
 * job.fromSource(source, { uid: "numbers" }).sinkTo(sink, { uid: "out" });
 * const result = await job.run();
 * assert.equal(result.snapshots.length, 6); // one at each of the 5 marks, and the final one
 * assert.equal(sink.committed.length, 5000);
 * ```
 */
export function tapSource<T>(source: Source<T>, tap: SourceTap): Source<T> {
  let records = 0;
  let hold: Promise<void> | undefined;
  const after = (n: number): number => {
    if (n > 0) {
      records += n;
      const r = tap(records);
      if (isThenable(r)) {
        let held: Promise<void> | undefined;
        const release = () => {
          if (hold === held) hold = undefined;
        };
        held = hold = Promise.resolve(r).then(release, release);
      }
    }
    return n;
  };
  return {
    name: source.name,
    splits: () => source.splits(),
    async reader(split, position): Promise<SplitReader<T>> {
      const inner = await source.reader(split, position);
      return {
        read(out, max) {
          // A held read resolves with 0 records and touches neither `out` nor the position, as the
          // contract of a pending read asks; the job reads again once it resolved.
          if (hold) return hold.then(() => 0);
          const n = inner.read(out, max);
          return typeof n === "number" ? after(n) : n.then(after);
        },
        position: () => inner.position(),
        close: () => inner.close?.(),
      };
    },
    close: source.close && (() => source.close!()),
  };
}
