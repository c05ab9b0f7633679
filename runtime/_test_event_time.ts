/**
 * Test helpers for event time: a generated stream of timestamped events (out of order within a bound),
 * and a job with session windows, tumbling windows and a timer function, whose output is a pure function
 * of the input when no record is late (so a crashed-and-restored run must equal a failure-free one).
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { Job, type FaultPlan, type RestoreOptions } from "./job.ts";
import { CollectingSink, type Sink } from "./sinks.ts";
import { generatorSource, type Source } from "./sources.ts";
import { mapState } from "./state.ts";
import type { KeyedProcessFunction } from "./stream.ts";
import { boundedOutOfOrderness } from "./watermark.ts";
import { eventTimeSessionWindows, tumblingEventTimeWindows } from "./windows.ts";

/** A timestamped event. */
export interface TimedEvent {
  user: string;
  amount: number;
  ts: number;
}

/** The out-of-orderness bound of {@link timedEvents}. */
export const MAX_DELAY = 5_000;

/**
 * Events 250 ms apart on average, each up to {@link MAX_DELAY} ms early or late; every user belongs to one
 * split (so each key's order does not depend on parallelism).
 */
export function timedEvents(count: number, seed: number, splits = 4, users = 40, ratePerSecond?: number): Source<TimedEvent> {
  return generatorSource<TimedEvent>({
    count,
    splits,
    seed,
    ratePerSecond: ratePerSecond === undefined ? undefined : ratePerSecond / splits,
    make: (i, rng, split) => ({ user: `u${rng.int(users) * splits + split}`, amount: rng.int(100), ts: i * 250 + rng.int(MAX_DELAY) }),
  });
}

const BUCKETS = mapState<number, number>("buckets", { userKeyType: "int32", value: { encoding: "arrow", type: "float64" } });

/**
 * Sums amounts per user per 10 s bucket with an event-time timer per bucket; an amount divisible by 7
 * cancels its bucket (deletes the timer and the sum), so deleted timers must never fire.
 */
export function bucketTimers(): KeyedProcessFunction<string, TimedEvent, string> {
  return {
    open(ctx) {
      ctx.getMapState(BUCKETS);
    },
    processElement(e, ctx) {
      const buckets = ctx.getMapState(BUCKETS);
      const b = Math.floor(e.ts / 10_000);
      const end = (b + 1) * 10_000 - 1;
      if (e.amount % 7 === 0) {
        buckets.remove(b);
        ctx.timerService().deleteEventTimeTimer(end);
        return;
      }
      buckets.put(b, (buckets.get(b) ?? 0) + e.amount);
      ctx.timerService().registerEventTimeTimer(end);
    },
    onTimer(ts, ctx) {
      if (ctx.currentWatermark() < ts) throw new Error(`timer ${ts} fired at watermark ${ctx.currentWatermark()}`);
      const buckets = ctx.getMapState(BUCKETS);
      const b = Math.floor(ts / 10_000);
      const sum = buckets.get(b);
      if (sum === undefined) throw new Error(`timer ${ts} of ${ctx.currentKey} fired for a cancelled bucket`);
      buckets.remove(b);
      ctx.collect(`timer|${ctx.currentKey}|${b}|${sum}`);
    },
  };
}

/** Options of {@link eventTimeJob}. */
export interface EventTimeJobOptions {
  source: Source<TimedEvent>;
  sink: Sink<string, unknown>;
  parallelism: number;
  sourceParallelism?: number;
  storage?: Storage | string;
  restore?: RestoreOptions;
  faults?: FaultPlan;
  maxParallelism?: number;
  /** Periodic checkpoints (ms), besides those triggered. */
  intervalMs?: number;
  /** Run the keyed subtasks in this many worker threads (built there by {@link eventTimeJobShape}). */
  workers?: number;
}

/** What a worker needs to build the event-time job's operators. */
export interface EventTimeJobShape {
  parallelism: number;
}

/** The event-time job's operators for a worker thread (its source and sink are never used there). */
export function eventTimeJobShape(shape: EventTimeJobShape): Job {
  return eventTimeJob({ source: timedEvents(0, 0), sink: new CollectingSink<string>(), ...shape });
}

/** source → keyBy(user) → {session windows (30 s gap), per-minute tumbling counts, bucket timers} → sink. */
export function eventTimeJob(o: EventTimeJobOptions): Job {
  const job = new Job("event-time", {
    maxParallelism: o.maxParallelism,
    checkpoints: o.storage === undefined ? undefined : { storage: o.storage, retain: 2, fullEvery: 4, intervalMs: o.intervalMs },
    restore: o.restore,
    faults: o.faults,
    batchSize: 32,
    channelCapacity: 2,
    workers: o.workers,
    definition: o.workers ? { module: import.meta.url, export: "eventTimeJobShape", args: { parallelism: o.parallelism } satisfies EventTimeJobShape } : undefined,
  });
  const keyed = job.fromSource(o.source, { uid: "events", parallelism: o.sourceParallelism ?? 2, watermarks: boundedOutOfOrderness<TimedEvent>(MAX_DELAY, (e) => e.ts, { emitEvery: 64 }) })
    .keyBy((e) => e.user);
  const sessions = keyed.window(eventTimeSessionWindows(30_000), { timestampOf: (e) => e.ts })
    .aggregate({ createAccumulator: () => [0, 0] as [number, number], add: (e, [n, s]) => [n + 1, s + e.amount] as [number, number], getResult: (a) => a, merge: (a, b) => [a[0] + b[0], a[1] + b[1]] as [number, number] }, { uid: "sessions", parallelism: o.parallelism })
    .map((r) => `session|${r.key}|${r.start}|${r.end}|${r.value[0]}|${r.value[1]}`);
  const minutes = keyed.window(tumblingEventTimeWindows(60_000), { timestampOf: (e) => e.ts })
    .reduce((a, b) => ({ ...a, amount: a.amount + b.amount }), { uid: "minutes", parallelism: o.parallelism })
    .map((r) => `minute|${r.key}|${r.start}|${r.value.amount}`);
  const timers = keyed.process(bucketTimers, { uid: "buckets", parallelism: o.parallelism });
  sessions.union(minutes, timers).sinkTo(o.sink, { uid: "out", parallelism: Math.max(1, o.parallelism - 1) });
  return job;
}
