/**
 * Event time: the clock seam, watermark strategies of sources, and how watermarks are generated per split
 * and combined over inputs.
 *
 * A source subtask tracks one generator per split; its watermark is the minimum over its active splits
 * (a finished split counts as `Infinity`, an idle one is left out). An operator's watermark is the minimum
 * over its input channels (ended and idle channels left out). Generator state is kept with the split's
 * position in checkpoints, so a restored job resumes the same watermarks.
 *
 * @module
 */
import { Watermark } from "./channel.ts";

/**
 * Processing time: wall-clock milliseconds, and a wake-up at a given time. Inject a {@link ManualClock} in
 * tests so processing-time timers and idle timeouts never depend on real time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock, type Clock } from "./watermark.ts";
 * const clock: Clock = systemClock;
 * assert.equal(typeof clock.now(), "number");
 * ```
 */
export interface Clock {
  /** Milliseconds. */
  now(): number;
  /** Calls `cb` once `now() >= at` (soon after, for a real clock); returns a cancel function. */
  wakeAt(at: number, cb: () => void): () => void;
}

const MAX_TIMEOUT = 2 ** 31 - 1;

/**
 * The wall clock (`Date.now()`, `setTimeout`).
 *
 * @example
 * ```ts
 * import { systemClock } from "./watermark.ts";
 * const cancel = systemClock.wakeAt(systemClock.now() + 60_000, () => {});
 * cancel();
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  wakeAt(at, cb) {
    // setTimeout takes at most 2^31 − 1 ms (longer fires at once); waking early only re-arms the wake-up.
    const t = setTimeout(cb, Math.min(MAX_TIMEOUT, Math.max(0, at - Date.now())));
    return () => clearTimeout(t);
  },
};

/**
 * A clock that moves only when told: `advance`/`set` run the wake-ups that became due, synchronously.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./watermark.ts";
 * const clock = new ManualClock(1000);
 * let woke = 0;
 * clock.wakeAt(1500, () => woke++);
 * clock.advance(499);
 * clock.advance(1);
 * assert.equal(clock.now(), 1500);
 * assert.equal(woke, 1);
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  #waiters: { at: number; cb: () => void }[] = [];

  /** Starts at `start` ms (default 0). */
  constructor(start = 0) {
    this.#now = start;
  }

  /** The current time. */
  now(): number {
    return this.#now;
  }

  /** Registers a wake-up (run at once if due). */
  wakeAt(at: number, cb: () => void): () => void {
    if (at <= this.#now) {
      cb();
      return () => {};
    }
    const w = { at, cb };
    this.#waiters.push(w);
    return () => {
      const i = this.#waiters.indexOf(w);
      if (i >= 0) this.#waiters.splice(i, 1);
    };
  }

  /** Moves the clock forward by `ms` and runs due wake-ups. */
  advance(ms: number): void {
    this.set(this.#now + ms);
  }

  /** Sets the time (never backwards) and runs due wake-ups. */
  set(t: number): void {
    if (!(t >= this.#now)) throw new RangeError(`Cannot set a ManualClock to ${t} as it is at ${this.#now}: time does not go backwards`);
    this.#now = t;
    const due = this.#waiters.filter((w) => w.at <= t);
    this.#waiters = this.#waiters.filter((w) => w.at > t);
    for (const w of due) w.cb();
  }
}

/**
 * Tracks event time of one split: sees every record of the split in order, says the current watermark.
 * `state()` is kept in checkpoints (msgpack-serialisable) and handed back to `createGenerator` on restore.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WatermarkGenerator } from "./watermark.ts";
 * let max = -Infinity;
 * const ascending: WatermarkGenerator<{ ts: number }> = {
 *   onEvent: (_e, ts) => { if (ts > max) max = ts; },
 *   current: () => max - 1,
 *   state: () => (max === -Infinity ? null : max),
 * };
 * ascending.onEvent({ ts: 10 }, 10);
 * assert.equal(ascending.current(), 9);
 * ```
 */
export interface WatermarkGenerator<T> {
  /** Called per record of the split, in order. */
  onEvent(record: T, timestamp: number): void;
  /** The watermark: every later record of the split with a timestamp ≤ it is late. */
  current(): number;
  /** What to keep in a checkpoint (msgpack-serialisable). */
  state(): unknown;
}

/**
 * How a source assigns event time and watermarks: the timestamp of a record, a generator per split, and
 * an optional idle timeout (processing-time ms without records after which a split no longer holds the
 * watermark back).
 *
 * @example A custom strategy: the watermark is the largest timestamp seen minus one
 * ```ts
 * import assert from "node:assert/strict";
 * import type { WatermarkStrategy } from "./watermark.ts";
 * const ascending: WatermarkStrategy<{ ts: number }> = {
 *   timestampOf: (e) => e.ts,
 *   createGenerator(restored) {
 *     let max = typeof restored === "number" ? restored : -Infinity;
 *     return { onEvent: (_e, ts) => { if (ts > max) max = ts; }, current: () => max - 1, state: () => (max === -Infinity ? null : max) };
 *   },
 * };
 * assert.equal(ascending.timestampOf({ ts: 3 }), 3);
 * ```
 */
export interface WatermarkStrategy<T> {
  /** Event-time milliseconds of a record. */
  timestampOf(record: T): number;
  /** A generator for one split (`restored`: its `state()` from a checkpoint, else undefined). */
  createGenerator(restored: unknown): WatermarkGenerator<T>;
  /** A split without records for this many processing-time ms is idle (default: never). */
  readonly idleTimeoutMs?: number;
  /**
   * Records a source subtask reads between two watermarks it emits (default 2048; 1 = after every read).
   * Watermarks are also emitted before each barrier, when a split ends and while the source waits.
   */
  readonly emitEvery?: number;
}

/**
 * Watermarks for records at most `maxDelayMs` out of order: the watermark trails the largest timestamp
 * seen by `maxDelayMs + 1` ms (Flink's `forBoundedOutOfOrderness`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { boundedOutOfOrderness } from "./watermark.ts";
 * const strategy = boundedOutOfOrderness<{ ts: number }>(5_000, (e) => e.ts, { idleTimeoutMs: 30_000 });
 * const g = strategy.createGenerator(undefined);
 * g.onEvent({ ts: 10_000 }, 10_000);
 * assert.equal(g.current(), 4999);
 * ```
 */
export function boundedOutOfOrderness<T>(maxDelayMs: number, timestampOf: (record: T) => number, options: { idleTimeoutMs?: number; emitEvery?: number } = {}): WatermarkStrategy<T> {
  if (!(maxDelayMs >= 0) || !Number.isFinite(maxDelayMs)) throw new RangeError(`Cannot create a watermark strategy as maxDelayMs must be a finite number ≥ 0: current value is ${maxDelayMs}`);
  const idle = options.idleTimeoutMs;
  if (idle !== undefined && !(idle > 0)) throw new RangeError(`Cannot create a watermark strategy as idleTimeoutMs must be > 0: current value is ${idle}`);
  return {
    timestampOf,
    idleTimeoutMs: idle,
    emitEvery: options.emitEvery,
    createGenerator(restored: unknown): WatermarkGenerator<T> {
      let max = typeof restored === "number" ? restored : -Infinity;
      return {
        onEvent(_record, ts) {
          if (ts > max) max = ts;
        },
        current: () => max - maxDelayMs - 1,
        state: () => (max === -Infinity ? null : max),
      };
    },
  };
}

/** Records between two watermarks a source emits while it reads, by default. */
const EMIT_EVERY = 2048;

/** One split's event-time bookkeeping in a source subtask. */
export interface SplitTime {
  generator: WatermarkGenerator<unknown>;
  /** Processing time of the last record (or of the start). */
  lastActive: number;
  idle: boolean;
}

/**
 * The watermarks of one source subtask: one generator per split, the minimum over active splits, and when
 * to emit (monotonic, every `emitEvery` records, forced before barriers, at split ends and while waiting).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { boundedOutOfOrderness, ManualClock, SourceWatermarks } from "./watermark.ts";
 * const w = new SourceWatermarks(boundedOutOfOrderness<number>(0, (n) => n) as never, new ManualClock());
 * const a = { time: w.split(undefined), done: false };
 * w.onRecords(a.time, [10, 20]);
 * assert.equal(w.poll([a], true)?.timestamp, 19);
 * ```
 */
export class SourceWatermarks {
  private emitted = -Infinity;
  private emittedIdle = false;
  private since = 0;
  readonly idleMs: number;
  private readonly every: number;

  constructor(readonly strategy: WatermarkStrategy<unknown>, private readonly clock: Clock) {
    this.idleMs = strategy.idleTimeoutMs ?? Infinity;
    this.every = strategy.emitEvery ?? EMIT_EVERY;
    if (!Number.isSafeInteger(this.every) || this.every < 1) throw new RangeError(`Cannot use a watermark strategy as emitEvery must be a positive integer: current value is ${strategy.emitEvery}`);
  }

  /** Bookkeeping for a split (restored generator state or fresh). */
  split(restored: unknown): SplitTime {
    return { generator: this.strategy.createGenerator(restored ?? undefined), lastActive: this.clock.now(), idle: false };
  }

  /** Feeds the records just read from a split. */
  onRecords(s: SplitTime, records: readonly unknown[]): void {
    const g = s.generator;
    const ts = this.strategy.timestampOf;
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      g.onEvent(r, ts(r));
    }
    s.lastActive = this.clock.now();
    s.idle = false;
    this.since += records.length;
  }

  /** The next time a split may turn idle (Infinity when none can). */
  nextIdleAt(splits: readonly { time?: SplitTime; done: boolean }[]): number {
    if (this.idleMs === Infinity) return Infinity;
    let at = Infinity;
    for (const s of splits) if (!s.done && s.time && !s.time.idle) at = Math.min(at, s.time.lastActive + this.idleMs);
    return at;
  }

  /**
   * The watermark to emit now, or undefined. `force`: ignore the record spacing (barrier, wait, split end).
   */
  poll(splits: readonly { time?: SplitTime; done: boolean }[], force: boolean): Watermark | undefined {
    if (!force && this.since < this.every) return undefined;
    this.since = 0;
    const now = this.clock.now();
    let min = Infinity;
    let active = false;
    for (const s of splits) {
      if (s.done) continue;
      const t = s.time;
      if (!t) {
        // not opened yet: it holds the watermark back (its records may be the oldest)
        active = true;
        min = -Infinity;
        continue;
      }
      if (!t.idle && now - t.lastActive >= this.idleMs) t.idle = true;
      if (t.idle) continue;
      active = true;
      const c = t.generator.current();
      if (c < min) min = c;
    }
    if (!active && splits.some((s) => !s.done)) {
      if (this.emittedIdle) return undefined;
      this.emittedIdle = true;
      return new Watermark(this.emitted, true);
    }
    if (min > this.emitted || (this.emittedIdle && active)) {
      if (min > this.emitted) this.emitted = min;
      this.emittedIdle = false;
      return new Watermark(this.emitted, false);
    }
    return undefined;
  }
}

/**
 * The watermark of an operator subtask: the minimum over its input channels, leaving out ended and idle
 * ones; monotonic.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InputWatermarks } from "./watermark.ts";
 * import { Watermark } from "./channel.ts";
 * const w = new InputWatermarks(2);
 * assert.equal(w.update(0, new Watermark(10, false)), undefined); // input 1 is still at -Infinity
 * assert.equal(w.update(1, new Watermark(7, false)), 7);
 * assert.equal(w.update(1, new Watermark(5, true)), 10); // input 1 is idle
 * ```
 */
export class InputWatermarks {
  /** The operator's current watermark. */
  current = -Infinity;
  private readonly wm: Float64Array;
  private readonly idle: Uint8Array;
  private readonly ended: Uint8Array;
  /** Whether the operator told its consumers it is idle. */
  idleSent = false;

  /** Tracks `n` inputs. */
  constructor(n: number) {
    this.wm = new Float64Array(n).fill(-Infinity);
    this.idle = new Uint8Array(n);
    this.ended = new Uint8Array(n);
  }

  /** A watermark arrived on input `i`: returns the new operator watermark if it advanced. */
  update(i: number, w: Watermark): number | undefined {
    if (w.idle) this.idle[i] = 1;
    else {
      this.idle[i] = 0;
      if (w.timestamp > this.wm[i]) this.wm[i] = w.timestamp;
    }
    return this.recompute();
  }

  /** Input `i` ended: returns the new operator watermark if it advanced. */
  end(i: number): number | undefined {
    this.ended[i] = 1;
    return this.recompute();
  }

  /** Whether every input that has not ended is idle (and at least one has not ended). */
  allIdle(): boolean {
    let open = false;
    for (let i = 0; i < this.wm.length; i++) {
      if (this.ended[i]) continue;
      open = true;
      if (!this.idle[i]) return false;
    }
    return open;
  }

  private recompute(): number | undefined {
    let min = Infinity;
    let any = false;
    let open = false;
    for (let i = 0; i < this.wm.length; i++) {
      if (this.ended[i]) continue;
      open = true;
      if (this.idle[i]) continue;
      any = true;
      if (this.wm[i] < min) min = this.wm[i];
    }
    if (!any && open) return undefined; // all idle: hold
    if (min > this.current) {
      this.current = min;
      return min;
    }
    return undefined;
  }
}
