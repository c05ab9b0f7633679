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
import type { DataStream, KeyedOpenContext, KeyedProcessContext, KeyedProcessFunction, KeyedStream, OperatorOptions } from "./stream.ts";
import type { Key } from "../format/key_group.ts";
import { SnapshotFormatError } from "../format/errors.ts";
import type { AggregateFunction } from "./state.ts";
import { NamespacedRows, namespacedValueState, TABLE, type TableDescriptor } from "./namespaced_state.ts";
import { COUNT_LATE, type TimerService } from "./timers.ts";

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

/** Built-in session assigners carry their gap under this key (a record's window without an allocation). */
const GAP: unique symbol = Symbol("sessionGap");

function floorTo(ts: number, size: number, offset: number): number {
  return ts - (((ts - offset) % size) + size) % size;
}

/** Windows of `size` starting every `slide` ms (tumbling: slide = size). */
function fixedWindows(kind: "tumbling" | "sliding", size: number, slide: number, offset: number): WindowAssigner {
  checkMs(size, "sizeMs", 1);
  checkMs(slide, "slideMs", 1);
  checkMs(offset, "offsetMs", 0);
  const assigner: WindowAssigner & { [FIXED]: Fixed } = {
    kind,
    merging: false,
    [FIXED]: { size, slide, offset },
    assign(ts) {
      const out: TimeWindow[] = [];
      for (let start = floorTo(ts, slide, offset); start > ts - size; start -= slide) out.push({ start, end: start + size });
      return out;
    },
  };
  return assigner;
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
  return fixedWindows("tumbling", sizeMs, sizeMs, offsetMs);
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
  return fixedWindows("sliding", sizeMs, slideMs, offsetMs);
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
  const assigner: WindowAssigner & { [GAP]: number } = { kind: "session", merging: true, [GAP]: gapMs, assign: (ts) => [{ start: ts, end: ts + gapMs }] };
  return assigner;
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

/**
 * The window contents of one subtask: a row per (key, window) whose namespace is the window's start and
 * end as numbers (the snapshot's `ns` column reads `<start>:<end>`), value the accumulator.
 */
class WindowTable extends NamespacedRows {
  readonly handle: WindowTable = this;

  protected nsText(start: number, end: number): string {
    return `${start}:${end}`;
  }

  protected parseNs(ns: string): void {
    const i = ns.indexOf(":");
    const start = Number(ns.slice(0, i));
    const end = Number(ns.slice(i + 1));
    if (i < 0 || !Number.isSafeInteger(start) || !Number.isSafeInteger(end)) {
      throw new SnapshotFormatError(`window state ${JSON.stringify(this.desc.name)} holds the namespace ${JSON.stringify(ns)}, not a window "<start>:<end>" in ms; restore it into the operator that wrote it`);
    }
    this.parsed.a = start;
    this.parsed.b = end;
  }
}

const CONTENTS: TableDescriptor<unknown> = {
  ...namespacedValueState<unknown>("window-contents"),
  [TABLE]: (b, desc, layout) => new WindowTable(b, desc, layout),
};

interface Folding<T, ACC, OUT> {
  add(acc: ACC | undefined, v: T): ACC;
  merge: ((a: ACC, b: ACC) => ACC) | undefined;
  result(acc: ACC): OUT;
}

/** What every window function shares: late records, emitting, registering the timers that close a window. */
class WindowCore<K, T, ACC, OUT> {
  readonly lateness: number;
  readonly timestampOf: (v: T) => number;
  table!: WindowTable;
  timers!: TimerService;
  ctx!: KeyedProcessContext<K, unknown>;
  private readonly emitLate: boolean;

  constructor(options: WindowOptions<T>, readonly f: Folding<T, ACC, OUT>) {
    this.lateness = options.allowedLatenessMs ?? 0;
    checkMs(this.lateness, "allowedLatenessMs", 0);
    this.emitLate = options.lateRecords === "emit";
    this.timestampOf = options.timestampOf;
  }

  open(ctx: KeyedOpenContext): void {
    this.table = ctx.getNamespacedState(CONTENTS) as unknown as WindowTable;
  }

  /** The event time of a record. */
  time(v: T, ctx: KeyedProcessContext<K, unknown>): number {
    // The timer service is taken on the first record: a window function has onTimer, so it exists.
    if (this.ctx !== ctx) {
      this.ctx = ctx;
      this.timers = ctx.timerService();
    }
    const ts = this.timestampOf(v);
    if (typeof ts !== "number" || !Number.isFinite(ts)) throw new TypeError(`Cannot assign a window as timestampOf returned ${String(ts)}: it must return event-time ms as a finite number`);
    return ts;
  }

  emit(ctx: KeyedProcessContext<K, unknown>, start: number, end: number, acc: ACC): void {
    ctx.collect({ kind: "window", key: ctx.currentKey, start, end, value: this.f.result(acc) });
  }

  /** Registers what closes a new window ending at `end`: its firing timer and, with lateness, its cleanup. */
  arm(end: number, wm: number): void {
    if (end - 1 > wm) this.timers.registerEventTimeTimer(end - 1);
    if (this.lateness > 0) this.timers.registerEventTimeTimer(end - 1 + this.lateness);
  }

  /** Deletes what closes a window ending at `end` (merged into another). */
  disarm(end: number): void {
    this.timers.deleteEventTimeTimer(end - 1);
    if (this.lateness > 0) this.timers.deleteEventTimeTimer(end - 1 + this.lateness);
  }

  late(v: T, ts: number, ctx: KeyedProcessContext<K, unknown>): void {
    (ctx as unknown as { [COUNT_LATE]?: () => void })[COUNT_LATE]?.();
    if (this.emitLate) ctx.collect({ kind: "late", value: v, timestamp: ts });
  }

  /** Fires the windows of the current key that end at `ts + 1` and drops those whose lateness ended at `ts`. */
  fireScan(ts: number, ctx: KeyedProcessContext<K, unknown>): void {
    const t = this.table;
    for (let r = t.first(t.slots.find()); r !== -1;) {
      const next = t.next[r];
      const end = t.b[r];
      if (end - 1 === ts) this.emit(ctx, t.a[r], end, t.v[r] as ACC);
      if (end - 1 + this.lateness === ts) t.removeRow(r);
      r = next;
    }
  }
}

function windowFunction<K, T, ACC, OUT>(assigner: WindowAssigner, options: WindowOptions<T>, f: Folding<T, ACC, OUT>): KeyedProcessFunction<K, T, unknown> {
  if (assigner.merging && f.merge === undefined) throw new TypeError("Cannot aggregate session windows as the aggregate function has no merge(a, b): session windows combine when they meet");
  const core = new WindowCore<K, T, ACC, OUT>(options, f);
  const fixed = (assigner as { [FIXED]?: Fixed })[FIXED];
  if (fixed !== undefined) return fixedWindowFunction(core, fixed);
  if (assigner.merging) return sessionWindowFunction(core, assigner);
  return {
    open: (ctx) => core.open(ctx),
    processElement(v, ctx) {
      const ts = core.time(v, ctx);
      const wm = ctx.currentWatermark();
      const t = core.table;
      let taken = false;
      for (const w of assigner.assign(ts)) {
        if (w.end - 1 + core.lateness <= wm) continue;
        taken = true;
        const s = t.slots.intern();
        const r = t.findRow(s, w.start, w.end);
        const acc = f.add(r === -1 ? undefined : t.v[r] as ACC, v);
        if (r === -1) t.addRow(s, w.start, w.end, undefined, acc);
        else t.setValue(r, acc);
        if (w.end - 1 <= wm) emitLateFiring(core, ctx, w.start, w.end, acc, r === -1);
        else if (r === -1) core.arm(w.end, wm);
      }
      if (!taken) core.late(v, ts, ctx);
    },
    onTimer: (ts, ctx) => core.fireScan(ts, ctx),
  };
}

/** A record for a window past its end, within the allowed lateness: the window fires again, updated. */
function emitLateFiring<K, T, ACC, OUT>(core: WindowCore<K, T, ACC, OUT>, ctx: KeyedProcessContext<K, unknown>, start: number, end: number, acc: ACC, created: boolean): void {
  core.emit(ctx, start, end, acc);
  if (created) core.timers.registerEventTimeTimer(end - 1 + core.lateness); // its cleanup
}

/**
 * Session windows, merged in place: a record's window `[ts, ts + gap)` is folded into the first of the
 * key's windows it meets (which grows), and any other window it meets is merged into that one and
 * removed, with its timers; a record that meets none opens a window. No window object per record.
 */
function sessionWindowFunction<K, T, ACC, OUT>(core: WindowCore<K, T, ACC, OUT>, assigner: WindowAssigner): KeyedProcessFunction<K, T, unknown> {
  const f = core.f;
  const merge = f.merge!;
  // Ends of the windows merged away by one record (reused: merges are rare next to records).
  const mergedEnds: number[] = [];
  const gap = (assigner as { [GAP]?: number })[GAP];
  return {
    open: (ctx) => core.open(ctx),
    processElement(v, ctx) {
      const ts = core.time(v, ctx);
      const wm = ctx.currentWatermark();
      let start = ts;
      let end = ts + (gap ?? 0);
      if (gap === undefined) {
        const w = assigner.assign(ts)[0];
        start = w.start;
        end = w.end;
      }
      if (end - 1 + core.lateness <= wm) return core.late(v, ts, ctx);
      const t = core.table;
      const s = t.slots.intern();
      let into = -1;
      let acc: ACC | undefined;
      mergedEnds.length = 0;
      for (let r = t.first(s); r !== -1;) {
        const next = t.next[r];
        const os = t.a[r];
        const oe = t.b[r];
        if (os <= end && oe >= start) {
          mergedEnds.push(oe);
          if (into === -1) {
            into = r;
            acc = t.v[r] as ACC;
          } else {
            acc = merge(acc!, t.v[r] as ACC);
            t.removeRow(r);
          }
          if (os < start) start = os;
          if (oe > end) end = oe;
        }
        r = next;
      }
      acc = f.add(acc, v);
      if (into === -1) t.addRow(s, start, end, undefined, acc);
      else {
        if (t.a[into] !== start || t.b[into] !== end) t.moveRow(into, start, end);
        t.setValue(into, acc);
      }
      if (end - 1 <= wm) core.emit(ctx, start, end, acc);
      core.arm(end, wm);
      for (let i = 0; i < mergedEnds.length; i++) if (mergedEnds[i] !== end) core.disarm(mergedEnds[i]);
    },
    onTimer: (ts, ctx) => core.fireScan(ts, ctx),
  };
}

/**
 * The window operator for fixed-size windows (tumbling, sliding): a record's windows and a timer's window
 * are computed, not looked up, so nothing is allocated per record beyond the accumulator and the results.
 */
function fixedWindowFunction<K, T, ACC, OUT>(core: WindowCore<K, T, ACC, OUT>, fixed: Fixed): KeyedProcessFunction<K, T, unknown> {
  const { size, slide, offset } = fixed;
  const f = core.f;
  const lateness = core.lateness;
  return {
    open: (ctx) => core.open(ctx),
    processElement(v, ctx) {
      const ts = core.time(v, ctx);
      const wm = ctx.currentWatermark();
      const t = core.table;
      let taken = false;
      for (let start = floorTo(ts, slide, offset); start > ts - size; start -= slide) {
        const end = start + size;
        if (end - 1 + lateness <= wm) continue;
        taken = true;
        const s = t.slots.intern();
        const r = t.findRow(s, start, end);
        if (r === -1) {
          const acc = f.add(undefined, v);
          t.addRow(s, start, end, undefined, acc);
          // The window is new: register what closes it (an existing one has its timers already).
          if (end - 1 <= wm) emitLateFiring(core, ctx, start, end, acc, true);
          else core.arm(end, wm);
        } else {
          const acc = f.add(t.v[r] as ACC, v);
          t.setValue(r, acc); // also when changed in place: it marks the row changed for the next checkpoint
          if (end - 1 <= wm) core.emit(ctx, start, end, acc);
        }
      }
      if (!taken) core.late(v, ts, ctx);
    },
    onTimer(ts, ctx) {
      // The window this timer fires (end − 1 = ts) and the one it cleans up (end − 1 + lateness = ts).
      const t = core.table;
      const s = t.slots.find();
      const end = ts + 1;
      const r = t.findRow(s, end - size, end);
      if (r !== -1) {
        core.emit(ctx, end - size, end, t.v[r] as ACC);
        if (lateness === 0) t.removeRow(r);
      }
      if (lateness > 0) {
        const gone = end - lateness;
        const g = t.findRow(s, gone - size, gone);
        if (g !== -1) t.removeRow(g);
      }
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
