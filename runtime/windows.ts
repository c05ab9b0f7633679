/**
 * Event-time windows on keyed streams: tumbling, sliding and session (merging) windows with reduce or
 * aggregate functions and allowed lateness, built on event-time timers and namespaced keyed state.
 *
 * The window operator is an ordinary keyed process function: its accumulators are the keyed state
 * `window-contents` whose namespace is the window (`<start>:<end>`, ms, end exclusive), and its timers
 * the reserved state `_timers`, so windows are checkpointed, restored at any parallelism, rekeyed,
 * inspected and exported like any other state.
 *
 * @module
 */
import type { DataStream, KeyedProcessContext, KeyedProcessFunction, KeyedStream, OperatorOptions } from "./stream.ts";
import type { Key } from "../format/key_group.ts";
import type { AggregateFunction } from "./state.ts";
import { type NamespacedValueState, namespacedValueState } from "./namespaced_state.ts";
import { COUNT_LATE } from "./timers.ts";

/**
 * A window of event time: `[start, end)` in ms.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { TimeWindow } from "./windows.ts";
 * const minute: TimeWindow = { start: 60_000, end: 120_000 };
 * assert.equal(minute.end - minute.start, 60_000);
 * ```
 */
export interface TimeWindow {
  /** First ms in the window. */
  readonly start: number;
  /** First ms after the window. */
  readonly end: number;
}

/**
 * Puts records in windows by their event time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tumblingEventTimeWindows } from "./windows.ts";
 * assert.deepEqual(tumblingEventTimeWindows(60_000).assign(61_000), [{ start: 60000, end: 120000 }]);
 * ```
 */
export interface WindowAssigner {
  /** What the assigner is (for messages). */
  readonly kind: "tumbling" | "sliding" | "session";
  /** Whether windows merge (sessions). */
  readonly merging: boolean;
  /** The windows of a timestamp (before merging). */
  assign(timestamp: number): TimeWindow[];
}

function checkMs(v: number, name: string, min: number): void {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`Cannot create windows as ${name} must be an integer number of ms ≥ ${min}: current value is ${v}`);
}

/**
 * Built-in assigners of fixed-size windows carry their geometry under this key, so the operator computes a
 * record's windows (and a timer's window) without allocating; custom assigners go through `assign`.
 */
const FIXED: unique symbol = Symbol("fixedWindows");
interface Fixed {
  size: number;
  slide: number;
  offset: number;
}

function floorTo(ts: number, size: number, offset: number): number {
  return ts - (((ts - offset) % size) + size) % size;
}

/**
 * Fixed-size, non-overlapping windows `[k·size + offset, (k+1)·size + offset)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tumblingEventTimeWindows } from "./windows.ts";
 * const perMinute = tumblingEventTimeWindows(60_000);
 * assert.equal(perMinute.assign(59_999)[0].end, 60000);
 * ```
 */
export function tumblingEventTimeWindows(sizeMs: number, offsetMs = 0): WindowAssigner {
  checkMs(sizeMs, "sizeMs", 1);
  checkMs(offsetMs, "offsetMs", 0);
  const fixed: Fixed = { size: sizeMs, slide: sizeMs, offset: offsetMs };
  const assigner: WindowAssigner & { [FIXED]: Fixed } = {
    kind: "tumbling",
    merging: false,
    [FIXED]: fixed,
    assign(ts) {
      const start = floorTo(ts, sizeMs, offsetMs);
      return [{ start, end: start + sizeMs }];
    },
  };
  return assigner;
}

/**
 * Windows of `sizeMs` starting every `slideMs` (a record is in `sizeMs / slideMs` windows).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { slidingEventTimeWindows } from "./windows.ts";
 * assert.deepEqual(slidingEventTimeWindows(10_000, 5_000).assign(7_000).map((w) => w.start), [5000, 0]);
 * ```
 */
export function slidingEventTimeWindows(sizeMs: number, slideMs: number, offsetMs = 0): WindowAssigner {
  checkMs(sizeMs, "sizeMs", 1);
  checkMs(slideMs, "slideMs", 1);
  checkMs(offsetMs, "offsetMs", 0);
  const fixed: Fixed = { size: sizeMs, slide: slideMs, offset: offsetMs };
  const assigner: WindowAssigner & { [FIXED]: Fixed } = {
    kind: "sliding",
    merging: false,
    [FIXED]: fixed,
    assign(ts) {
      const out: TimeWindow[] = [];
      for (let start = floorTo(ts, slideMs, offsetMs); start > ts - sizeMs; start -= slideMs) out.push({ start, end: start + sizeMs });
      return out;
    },
  };
  return assigner;
}

/**
 * Session windows: a record opens `[ts, ts + gapMs)`, and windows of a key that overlap or touch merge,
 * so a session closes after `gapMs` of event time without records of its key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventTimeSessionWindows } from "./windows.ts";
 * assert.deepEqual(eventTimeSessionWindows(30_000).assign(1_000), [{ start: 1000, end: 31000 }]);
 * ```
 */
export function eventTimeSessionWindows(gapMs: number): WindowAssigner {
  checkMs(gapMs, "gapMs", 1);
  return { kind: "session", merging: true, assign: (ts) => [{ start: ts, end: ts + gapMs }] };
}

/**
 * How a window operator reads event time and treats late records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WindowOptions } from "./windows.ts";
 * const options: WindowOptions<{ ts: number }> = { timestampOf: (e) => e.ts, allowedLatenessMs: 10_000, lateRecords: "emit" };
 * assert.equal(options.allowedLatenessMs, 10000);
 * ```
 */
export interface WindowOptions<T> {
  /** Event-time ms of a record (usually the source's `WatermarkStrategy.timestampOf`). */
  timestampOf(record: T): number;
  /**
   * How long after the watermark passed a window's end it still takes records (default 0): each such
   * record emits the window's result again, updated. After that, its state is dropped.
   */
  allowedLatenessMs?: number;
  /**
   * Records whose every window is past its lateness: `drop` (default; counted in `job.lateRecords`) or
   * `emit` them downstream as {@link LateRecord}s (also counted).
   */
  lateRecords?: "drop" | "emit";
}

/**
 * The result of one window of one key.
 *
 * @example
 * ```ts
 * import type { WindowResult } from "./windows.ts";
 * const r: WindowResult<string, number> = { kind: "window", key: "u1", start: 0, end: 60_000, value: 3 };
 * console.log(`${r.key} [${r.start}, ${r.end}): ${r.value}`);
 * ```
 */
export interface WindowResult<K, V> {
  /** Tells results from late records. */
  readonly kind: "window";
  /** The key. */
  readonly key: K;
  /** Window start (ms, inclusive). */
  readonly start: number;
  /** Window end (ms, exclusive). */
  readonly end: number;
  /** The reduced or aggregated value. */
  readonly value: V;
}

/**
 * A record that came after every window it belongs to was closed (with `lateRecords: "emit"`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { LateRecord } from "./windows.ts";
 * const isLate = (x: { kind: string }): x is LateRecord<unknown> => x.kind === "late";
 * assert.equal(isLate({ kind: "late" }), true);
 * ```
 */
export interface LateRecord<T> {
  /** Tells late records from results. */
  readonly kind: "late";
  /** The record. */
  readonly value: T;
  /** Its event time. */
  readonly timestamp: number;
}

/**
 * An aggregate function for windows; session windows also need `merge` (windows that meet combine).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WindowAggregate } from "./windows.ts";
 * const count: WindowAggregate<unknown, number, number> = { createAccumulator: () => 0, add: (_v, n) => n + 1, getResult: (n) => n, merge: (a, b) => a + b };
 * assert.equal(count.merge!(2, 3), 5);
 * ```
 */
export interface WindowAggregate<IN, ACC, OUT> extends AggregateFunction<IN, ACC, OUT> {
  /** Combines two accumulators (required by session windows). */
  merge?(a: ACC, b: ACC): ACC;
}

const CONTENTS = namespacedValueState<unknown>("window-contents");

function nsOf(w: TimeWindow): string {
  return `${w.start}:${w.end}`;
}

function parseNs(ns: string): TimeWindow {
  const i = ns.indexOf(":");
  return { start: Number(ns.slice(0, i)), end: Number(ns.slice(i + 1)) };
}

interface Folding<T, ACC, OUT> {
  add(acc: ACC | undefined, v: T): ACC;
  merge: ((a: ACC, b: ACC) => ACC) | undefined;
  result(acc: ACC): OUT;
}

function windowFunction<K, T, ACC, OUT>(assigner: WindowAssigner, options: WindowOptions<T>, f: Folding<T, ACC, OUT>): KeyedProcessFunction<K, T, unknown> {
  const lateness = options.allowedLatenessMs ?? 0;
  checkMs(lateness, "allowedLatenessMs", 0);
  const emitLate = options.lateRecords === "emit";
  const timestampOf = options.timestampOf;
  if (assigner.merging && f.merge === undefined) throw new TypeError("Cannot aggregate session windows as the aggregate function has no merge(a, b): session windows combine when they meet");
  const emit = (ctx: KeyedProcessContext<K, unknown>, w: TimeWindow, acc: ACC) => ctx.collect({ kind: "window", key: ctx.currentKey, start: w.start, end: w.end, value: f.result(acc) });
  // Registers what closes a window: the firing timer (end − 1) and, with lateness, the cleanup timer.
  const arm = (ctx: KeyedProcessContext<K, unknown>, w: TimeWindow, wm: number) => {
    const timers = ctx.timerService();
    if (w.end - 1 > wm) timers.registerEventTimeTimer(w.end - 1);
    if (lateness > 0) timers.registerEventTimeTimer(w.end - 1 + lateness);
  };
  const late = (v: T, ts: number, ctx: KeyedProcessContext<K, unknown>) => {
    (ctx as unknown as { [COUNT_LATE]?: () => void })[COUNT_LATE]?.();
    if (emitLate) ctx.collect({ kind: "late", value: v, timestamp: ts });
  };
  // One function object per subtask (the operator is built from a factory), so the handle can live here.
  let state!: NamespacedValueState<ACC>;
  const fixed = (assigner as { [FIXED]?: Fixed })[FIXED];
  // Records come roughly in time order, so consecutive ones mostly fall in the same window: its
  // namespace string is made once, not per record.
  let lastStart = NaN;
  let lastEnd = NaN;
  let lastNs = "";
  const nsFor = (start: number, end: number): string => {
    if (start !== lastStart || end !== lastEnd) {
      lastStart = start;
      lastEnd = end;
      lastNs = `${start}:${end}`;
    }
    return lastNs;
  };
  if (fixed !== undefined) return fixedWindowFunction(fixed, lateness, timestampOf, f, emit, late, nsFor);
  return {
    open(ctx) {
      state = ctx.getNamespacedState(CONTENTS) as NamespacedValueState<ACC>;
    },
    processElement(v, ctx) {
      const ts = timestampOf(v);
      if (typeof ts !== "number" || !Number.isFinite(ts)) throw new TypeError(`Cannot assign a window as timestampOf returned ${String(ts)}: it must return event-time ms as a finite number`);
      const wm = ctx.currentWatermark();
      const windows = assigner.assign(ts);
      let taken = false;
      if (!assigner.merging) {
        for (const w of windows) {
          if (w.end - 1 + lateness <= wm) continue;
          taken = true;
          const ns = nsOf(w);
          const acc = f.add(state.get(ns), v);
          state.put(ns, acc);
          if (w.end - 1 <= wm) emit(ctx, w, acc); // a late firing within the allowed lateness
          else arm(ctx, w, wm);
        }
      } else {
        let w = windows[0];
        if (w.end - 1 + lateness > wm) {
          taken = true;
          let acc: ACC | undefined;
          const merged: TimeWindow[] = [];
          for (const [ns, a] of state.entries()) {
            const o = parseNs(ns);
            if (o.start > w.end || o.end < w.start) continue;
            merged.push(o);
            w = { start: Math.min(w.start, o.start), end: Math.max(w.end, o.end) };
            acc = acc === undefined ? a : f.merge!(acc, a);
          }
          acc = f.add(acc, v);
          // The merged window is put and armed before the old ones go, so the key's entries are not dropped
          // and re-created on every record of a session.
          const ns = nsOf(w);
          state.put(ns, acc);
          if (w.end - 1 <= wm) emit(ctx, w, acc);
          arm(ctx, w, wm);
          const timers = ctx.timerService();
          for (const o of merged) {
            const old = nsOf(o);
            if (old === ns) continue;
            state.remove(old);
            if (o.end !== w.end) {
              timers.deleteEventTimeTimer(o.end - 1);
              if (lateness > 0) timers.deleteEventTimeTimer(o.end - 1 + lateness);
            }
          }
        }
      }
      if (!taken) late(v, ts, ctx);
    },
    onTimer(ts, ctx) {
      for (const [ns, acc] of state.entries()) {
        const w = parseNs(ns);
        if (w.end - 1 === ts) emit(ctx, w, acc);
        if (w.end - 1 + lateness === ts) state.remove(ns);
      }
    },
  };
}

/**
 * The window operator for fixed-size windows (tumbling, sliding): a record's windows and a timer's window
 * are computed, not looked up, so nothing is allocated per record beyond the accumulator and the results.
 */
function fixedWindowFunction<K, T, ACC, OUT>(
  fixed: Fixed,
  lateness: number,
  timestampOf: (v: T) => number,
  f: Folding<T, ACC, OUT>,
  emit: (ctx: KeyedProcessContext<K, unknown>, w: TimeWindow, acc: ACC) => void,
  late: (v: T, ts: number, ctx: KeyedProcessContext<K, unknown>) => void,
  nsFor: (start: number, end: number) => string,
): KeyedProcessFunction<K, T, unknown> {
  const { size, slide, offset } = fixed;
  let state!: NamespacedValueState<ACC>;
  const window = { start: 0, end: 0 };
  return {
    open(ctx) {
      state = ctx.getNamespacedState(CONTENTS) as NamespacedValueState<ACC>;
    },
    processElement(v, ctx) {
      const ts = timestampOf(v);
      if (typeof ts !== "number" || !Number.isFinite(ts)) throw new TypeError(`Cannot assign a window as timestampOf returned ${String(ts)}: it must return event-time ms as a finite number`);
      const wm = ctx.currentWatermark();
      let taken = false;
      for (let start = floorTo(ts, slide, offset); start > ts - size; start -= slide) {
        const end = start + size;
        if (end - 1 + lateness <= wm) continue;
        taken = true;
        const ns = nsFor(start, end);
        const prev = state.get(ns);
        const acc = f.add(prev, v);
        state.put(ns, acc); // also when mutated in place: the put marks it changed for the next checkpoint
        if (end - 1 <= wm) {
          window.start = start;
          window.end = end;
          emit(ctx, window, acc); // a late firing within the allowed lateness
          if (prev === undefined) ctx.timerService().registerEventTimeTimer(end - 1 + lateness); // its cleanup
        } else if (prev === undefined) {
          // The window is new: register what closes it (an existing one has its timers already).
          const timers = ctx.timerService();
          timers.registerEventTimeTimer(end - 1);
          if (lateness > 0) timers.registerEventTimeTimer(end - 1 + lateness);
        }
      }
      if (!taken) late(v, ts, ctx);
    },
    onTimer(ts, ctx) {
      // The window this timer fires (end − 1 = ts) and the one it cleans up (end − 1 + lateness = ts).
      const end = ts + 1;
      const ns = nsFor(end - size, end);
      const acc = state.get(ns);
      if (acc !== undefined) {
        window.start = end - size;
        window.end = end;
        emit(ctx, window, acc);
      }
      const gone = end - lateness;
      if (lateness === 0) {
        if (acc !== undefined) state.remove(ns);
      } else state.remove(nsFor(gone - size, gone));
    },
  };
}

/**
 * A keyed stream cut into windows (from `KeyedStream.window`); `L` is the type of late records emitted
 * (`never` unless `lateRecords: "emit"`).
 *
 * @example Per-minute counts per user
 * ```ts
 * import assert from "node:assert/strict";
 * import { Job, arraySource, CollectingSink } from "./mod.ts";
 * import { boundedOutOfOrderness } from "./watermark.ts";
 * import { tumblingEventTimeWindows, type WindowResult } from "./windows.ts";
 * type Click = { user: string; ts: number };
 * const clicks: Click[] = [{ user: "a", ts: 1_000 }, { user: "a", ts: 30_000 }, { user: "b", ts: 61_000 }, { user: "a", ts: 70_000 }];
 * const job = new Job("per-minute");
 * const sink = new CollectingSink<WindowResult<string, number>>();
 * job.fromSource(arraySource(clicks), { uid: "clicks", watermarks: boundedOutOfOrderness<Click>(5_000, (c) => c.ts) })
 *   .keyBy((c) => c.user)
 *   .window(tumblingEventTimeWindows(60_000), { timestampOf: (c) => c.ts })
 *   .aggregate({ createAccumulator: () => 0, add: (_c, n: number) => n + 1, getResult: (n) => n }, { uid: "counts" })
 *   .sinkTo(sink, { uid: "out" });
 * await job.run();
 * assert.deepEqual(sink.committed.map((r) => `${r.key}@${r.start}=${r.value}`).sort(), ["a@0=2", "a@60000=1", "b@60000=1"]);
 * ```
 */
export class WindowedStream<K extends Key, T, L> {
  /** @internal */
  constructor(private readonly keyed: KeyedStream<K, T>, private readonly assigner: WindowAssigner, private readonly options: WindowOptions<T>) {}

  /** Reduces each window's records with `fn` (state: the reduced value). */
  reduce(fn: (a: T, b: T) => T, options?: OperatorOptions): DataStream<WindowResult<K, T> | L> {
    const f: Folding<T, T, T> = { add: (acc, v) => (acc === undefined ? v : fn(acc, v)), merge: fn, result: (acc) => acc };
    return this.keyed.process<WindowResult<K, T> | L>(() => windowFunction(this.assigner, this.options, f) as KeyedProcessFunction<K, T, WindowResult<K, T> | L>, { name: `${this.assigner.kind}-window`, ...options });
  }

  /** Aggregates each window's records (state: the accumulator; session windows need `merge`). */
  aggregate<ACC, OUT>(agg: WindowAggregate<T, ACC, OUT>, options?: OperatorOptions): DataStream<WindowResult<K, OUT> | L> {
    const f: Folding<T, ACC, OUT> = {
      add: (acc, v) => agg.add(v, acc === undefined ? agg.createAccumulator() : acc),
      merge: agg.merge?.bind(agg),
      result: (acc) => agg.getResult(acc),
    };
    windowFunction(this.assigner, this.options, f); // validate now, not at start
    return this.keyed.process<WindowResult<K, OUT> | L>(() => windowFunction(this.assigner, this.options, f) as KeyedProcessFunction<K, T, WindowResult<K, OUT> | L>, { name: `${this.assigner.kind}-window`, ...options });
  }
}
