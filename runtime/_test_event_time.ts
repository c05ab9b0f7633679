/**
 * Test helpers for event time: the job of examples/event_time_windows.ts (its out-of-order clicks, session
 * windows and per-minute counts) with a timer function beside the windows, whose output is a pure
 * function of the input when no record is late (so a crashed-and-restored run must equal a failure-free
 * one).
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { Job, type FaultPlan, type JobOptions, type RestoreOptions } from "./job.ts";
import { CollectingSink, type Sink } from "./sinks.ts";
import type { Source } from "./sources.ts";
import { mapState } from "./state.ts";
import type { KeyedProcessFunction } from "./stream.ts";
import { type Click, clicks, clickWatermarks, clickWindows } from "../examples/event_time_windows.ts";

export { type Click, clicks, MAX_DELAY } from "../examples/event_time_windows.ts";

const BUCKETS = mapState<number, number>("buckets", { userKeyType: "int32", value: { encoding: "arrow", type: "float64" } });

/**
 * Sums pages per user per 10 s bucket with an event-time timer per bucket; a page divisible by 7
 * cancels its bucket (deletes the timer and the sum), so deleted timers must never fire.
 */
export function bucketTimers(): KeyedProcessFunction<string, Click, string> {
  return {
    open(ctx) {
      ctx.getMapState(BUCKETS);
    },
    processElement(e, ctx) {
      const buckets = ctx.getMapState(BUCKETS);
      const b = Math.floor(e.ts / 10_000);
      const end = (b + 1) * 10_000 - 1;
      if (e.page % 7 === 0) {
        buckets.remove(b);
        ctx.timerService().deleteEventTimeTimer(end);
        return;
      }
      buckets.put(b, (buckets.get(b) ?? 0) + e.page);
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
  source: Source<Click>;
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
  /** The job's event hook (a kill test's child reports committed checkpoints through it). */
  onEvent?: JobOptions["onEvent"];
}

/** What a worker needs to build the event-time job's operators. */
export interface EventTimeJobShape {
  parallelism: number;
}

/** The event-time job's operators for a worker thread (its source and sink are never used there). */
export function eventTimeJobShape(shape: EventTimeJobShape): Job {
  return eventTimeJob({ source: clicks(0), sink: new CollectingSink<string>(), ...shape });
}

/** source → keyBy(user) → {the example's session windows and per-minute counts, bucket timers} → sink. */
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
    onEvent: o.onEvent,
  });
  const keyed = job.fromSource(o.source, { uid: "events", parallelism: o.sourceParallelism ?? 2, watermarks: clickWatermarks(64) })
    .keyBy((e) => e.user);
  const timers = keyed.process(bucketTimers, { uid: "buckets", parallelism: o.parallelism });
  clickWindows(keyed, o.parallelism).union(timers).sinkTo(o.sink, { uid: "out", parallelism: Math.max(1, o.parallelism - 1) });
  return job;
}
