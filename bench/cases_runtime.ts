/**
 * runtime.records and runtime.records.checkpointing: events per second through a keyed job
 * (source → keyBy → counter+sum state → sink) at parallelism 4, without and with incremental checkpoints
 * every second to the filesystem.
 *
 * @module
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { generatorSource, Job, type Sink, valueState } from "../runtime/mod.ts";
import type { BenchCase } from "./harness.ts";
import type { BenchContext } from "./cases_baseline.ts";

const TOTALS = valueState<{ count: bigint; sum: number }>("totals", {
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "sum", type: "float64" }] } },
});

/** A sink that counts what it is given and commits nothing (the cost under test is the runtime's). */
function countingSink(counter: { n: number }): Sink<number, number> {
  return {
    name: "count",
    createWriter: () => ({
      write(values) {
        counter.n += values.length;
      },
      prepareCommit: () => undefined,
    }),
    commit: async () => {},
  };
}

function keyedJob(events: number, keys: number, checkpointDir?: string) {
  const counter = { n: 0 };
  const job = new Job("bench-runtime", {
    maxParallelism: 128,
    checkpoints: checkpointDir ? { storage: checkpointDir, intervalMs: 1000 } : undefined,
  });
  job.fromSource(generatorSource({ count: events, seed: 1, make: (i, rng) => ({ user: `user-${String(i % keys).padStart(6, "0")}`, amount: rng.int(1000) }) }), { uid: "events" })
    .keyBy((e) => e.user)
    .process<number>({
      open(ctx) {
        ctx.getState(TOTALS);
      },
      processElement(e, ctx) {
        const s = ctx.getState(TOTALS);
        const t = s.value();
        s.update(t ? { count: t.count + 1n, sum: t.sum + e.amount } : { count: 1n, sum: e.amount });
        ctx.collect(e.amount);
      },
    }, { uid: "totals", parallelism: 4 })
    .sinkTo(countingSink(counter), { uid: "out" });
  return { job, counter };
}

/**
 * The runtime cases. Events = five times the run's rows (so a run lasts long enough for several
 * one-second checkpoints); keys = the run's rows / 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cases } from "./cases_runtime.ts";
 * import type { BenchContext } from "./cases_baseline.ts";
 * import { generateData } from "./data.ts";
 * const ctx: BenchContext = { data: generateData(100), dir: ".", snapshotBytes: () => new Uint8Array(0) };
 * const list = cases(ctx);
 * assert.deepEqual(list.map((c) => c.name), ["runtime.records", "runtime.records.checkpointing"]);
 * ```
 */
export function cases(ctx: BenchContext): BenchCase[] {
  const events = ctx.data.rows * 5;
  const keys = Math.max(1, Math.floor(ctx.data.rows / 2));
  const dir = join(ctx.dir, "runtime-ckpt");
  const make = (name: string, withCheckpoints: boolean): BenchCase => ({
    name,
    what: `events through source → keyBy → counter+sum state → sink, parallelism 4${withCheckpoints ? ", incremental checkpoints every second to the filesystem" : ", checkpoints off"}`,
    group: "arrowpoint",
    rows: events,
    bytes: () => 0,
    iterations: 5,
    run: async () => {
      const { job, counter } = keyedJob(events, keys, withCheckpoints ? dir : undefined);
      await job.run();
      if (counter.n !== events) throw new Error(`${name}: ${counter.n} of ${events} events reached the sink`);
    },
    afterEach: () => rmSync(dir, { recursive: true, force: true }),
  });
  return [make("runtime.records", false), make("runtime.records.checkpointing", true)];
}
