/**
 * runtime.records and runtime.records.checkpointing: events per second through a keyed job
 * (source → keyBy → counter+sum state → sink) at parallelism 4, without and with incremental checkpoints
 * every second to the filesystem. runtime.windows.tumbling / runtime.windows.session: the same job shape with
 * the keyed function replaced by an event-time window (1 event per ms of event time, watermarks bounded by
 * 1 s) counting and summing per key. checkpoint.timers.write: a full checkpoint of a keyed operator holding
 * one pending event-time timer per row (compare with checkpoint.full.write).
 *
 * @module
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import {
  boundedOutOfOrderness,
  eventTimeSessionWindows,
  generatorSource,
  Job,
  type Sink,
  tumblingEventTimeWindows,
  valueState,
  type WindowAssigner,
} from "../runtime/mod.ts";
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

/** The shape of the keyed job: what a worker thread needs to build it again. */
export interface KeyedJobShape {
  events: number;
  keys: number;
  checkpointDir?: string;
  /** Worker threads for the keyed subtasks (0: all on the main thread). */
  workers?: number;
}

/** The job of runtime.records, built by the bench and, with workers, by each worker thread. */
export function keyedJob(shape: KeyedJobShape): Job {
  return keyedJobAndCounter(shape).job;
}

function keyedJobAndCounter(shape: KeyedJobShape): { job: Job; counter: { n: number } } {
  const { events, keys, checkpointDir, workers = 0 } = shape;
  const counter = { n: 0 };
  const job = new Job("bench-runtime", {
    maxParallelism: 128,
    checkpoints: checkpointDir ? { storage: checkpointDir, intervalMs: 1000 } : undefined,
    workers,
    definition: workers > 0 ? { module: import.meta.url, export: "keyedJob", args: shape } : undefined,
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

interface TimedEvent {
  user: string;
  amount: number;
  ts: number;
}

function windowJob(events: number, keys: number, assigner: WindowAssigner) {
  const counter = { n: 0 };
  const job = new Job("bench-windows", { maxParallelism: 128 });
  job.fromSource(generatorSource<TimedEvent>({ count: events, seed: 1, make: (i, rng) => ({ user: `user-${String(i % keys).padStart(6, "0")}`, amount: rng.int(1000), ts: i + rng.int(1000) }) }), {
    uid: "events",
    watermarks: boundedOutOfOrderness<TimedEvent>(1000, (e) => e.ts),
  })
    .keyBy((e) => e.user)
    .window(assigner, { timestampOf: (e) => e.ts })
    .aggregate({
      createAccumulator: () => ({ count: 0, sum: 0 }),
      add: (e, acc) => {
        acc.count++;
        acc.sum += e.amount;
        return acc;
      },
      merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum }),
      getResult: (acc) => acc.count,
    }, { uid: "totals", parallelism: 4 })
    .map((w) => w.value)
    .sinkTo(countingSink(counter), { uid: "out" });
  return { job, counter };
}

/** A job whose keyed operator registers one far-future event-time timer per distinct key it sees. */
function timersJob(rows: number, dir: string) {
  let processed = 0;
  const job = new Job("bench-timers", { maxParallelism: 128, checkpoints: { storage: dir, incremental: false } });
  // After its rows the source waits (the job stays up with every timer pending) until released.
  let release!: () => void;
  const released = new Promise<number>((r) => (release = () => r(-1)));
  job.fromSource<number>({
    name: "keys",
    splits: () => [{ id: "0" }],
    reader(_s, position) {
      let i = typeof position === "number" ? position : 0;
      return {
        read(out, max) {
          if (i >= rows) return released;
          const start = i;
          const end = Math.min(rows, i + max);
          while (i < end) out.push(i++);
          return end - start;
        },
        position: () => i,
      };
    },
  }, { uid: "keys" })
    .keyBy((i) => `key-${i}`)
    .process<number>({
      processElement(i, ctx) {
        ctx.timerService().registerEventTimeTimer(1_000_000_000 + i);
        processed++;
      },
      onTimer() {},
    }, { uid: "timers", parallelism: 4 })
    .sinkTo(countingSink({ n: 0 }), { uid: "out" });
  return { job, processed: () => processed, release };
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
 * assert.deepEqual(list.map((c) => c.name), ["runtime.records", "runtime.records.workers2", "runtime.records.checkpointing", "runtime.windows.tumbling", "runtime.windows.session", "checkpoint.timers.write"]);
 * ```
 */
export function cases(ctx: BenchContext): BenchCase[] {
  const events = ctx.data.rows * 5;
  const keys = Math.max(1, Math.floor(ctx.data.rows / 2));
  const dir = join(ctx.dir, "runtime-ckpt");
  const make = (name: string, withCheckpoints: boolean, workers = 0): BenchCase => ({
    name,
    what: `events through source → keyBy → counter+sum state → sink, parallelism 4${withCheckpoints ? ", incremental checkpoints every second to the filesystem" : ", checkpoints off"}${workers > 0 ? `, keyed subtasks on ${workers} worker threads` : ""}`,
    group: "arrowpoint",
    rows: events,
    bytes: () => 0,
    iterations: 5,
    run: async () => {
      const { job, counter } = keyedJobAndCounter({ events, keys, checkpointDir: withCheckpoints ? dir : undefined, workers });
      await job.run();
      if (counter.n !== events) throw new Error(`${name}: ${counter.n} of ${events} events reached the sink`);
    },
    afterEach: () => rmSync(dir, { recursive: true, force: true }),
  });
  const windows = (name: string, assigner: WindowAssigner): BenchCase => ({
    name,
    what: `events through source → keyBy → ${assigner.kind} event-time window (count+sum) → sink, parallelism 4, checkpoints off`,
    group: "arrowpoint",
    rows: events,
    bytes: () => 0,
    iterations: 5,
    run: async () => {
      const { job, counter } = windowJob(events, keys, assigner);
      await job.run();
      if (counter.n === 0) throw new Error(`${name}: no window reached the sink`);
    },
  });
  const timersDir = join(ctx.dir, "timers-ckpt");
  let timers: ReturnType<typeof timersJob> | undefined;
  let timerBytes = 0;
  const timerCase: BenchCase = {
    name: "checkpoint.timers.write",
    what: "a full checkpoint of one pending event-time timer per row (the _timers state), filesystem, parallelism 4",
    group: "arrowpoint",
    rows: ctx.data.rows,
    bytes: () => timerBytes,
    beforeAll: async () => {
      timers = timersJob(ctx.data.rows, timersDir);
      await timers.job.start();
      while (timers.processed() < ctx.data.rows) await new Promise((r) => setTimeout(r, 2));
    },
    run: async () => {
      const info = await timers!.job.triggerCheckpoint();
      timerBytes = info.newBytes;
      if (info.newRows < ctx.data.rows) throw new Error(`timer checkpoint wrote ${info.newRows} rows`);
    },
    afterAll: async () => {
      await timers!.job.cancel();
      rmSync(timersDir, { recursive: true, force: true });
    },
  };
  return [
    make("runtime.records", false),
    make("runtime.records.workers2", false, 2),
    make("runtime.records.checkpointing", true),
    windows("runtime.windows.tumbling", tumblingEventTimeWindows(60_000)),
    windows("runtime.windows.session", eventTimeSessionWindows(30_000)),
    timerCase,
  ];
}
