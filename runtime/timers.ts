/**
 * Timers of a keyed subtask: event-time timers fire when the watermark passes them, processing-time
 * timers when the clock does. Each timer is a row of the reserved keyed state `_timers` (key group, key,
 * namespace `e:<ts>` or `p:<ts>`, value `{ timestamp, domain }`): it is written to checkpoints
 * incrementally, restored with its key group at any parallelism, and moved by `rekey`, like any state.
 * In memory the timers are kept compactly (typed-array rows, keys interned once, one indexed min-heap per
 * domain, no object per timer), since a window operator registers and fires about one timer per window;
 * a timer fires at most once per registration.
 *
 * @module
 */
import type { KeyedStateBackend } from "./keyed_backend.ts";
import { NamespacedRows, namespacedTable, TABLE, type TableDescriptor } from "./namespaced_state.ts";
import { valueState } from "./state.ts";
import type { ValueEncoding } from "../format/state_layout.ts";

/** @internal The key of the runtime's late-record counter on a keyed context (windows count late records). */
export const COUNT_LATE: unique symbol = Symbol("countLate");

/** The name of the keyed state holding an operator's timers. */
export const TIMERS_STATE = "_timers";

/**
 * Which clock a timer follows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TimeDomain } from "./timers.ts";
 * assert.equal(TimeDomain.EVENT, "event");
 * assert.equal(TimeDomain.PROCESSING, "processing");
 * ```
 */
export const TimeDomain = { EVENT: "event", PROCESSING: "processing" } as const;
/** `event` or `processing`. */
export type TimeDomain = typeof TimeDomain[keyof typeof TimeDomain];

const TIMER_VALUE: ValueEncoding = {
  encoding: "arrow",
  type: { struct: [{ name: "timestamp", type: "timestamp" }, { name: "domain", type: "dictionary" }] },
};
const TIMERS: TableDescriptor<unknown> = {
  ...valueState<unknown>(TIMERS_STATE, { value: TIMER_VALUE }),
  [TABLE]: (b, desc, layout) => new TimerTable(b, desc, layout),
};

/**
 * The reserved `_timers` state: rows of the namespaced row table (namespace = time and domain, no object
 * per timer, keys interned in the subtask's key slots shared with window contents), ordered by one
 * indexed min-heap per domain on (timestamp, registration). To tools and snapshots it is an ordinary
 * namespaced value state: captures produce the rows `(key group, key, "e:<ts>" | "p:<ts>", { timestamp, domain })`.
 */
class TimerTable extends NamespacedRows {
  readonly handle: undefined = undefined;
  private seq = new Float64Array(64);
  private heapPos = new Int32Array(64);
  private seqNext = 0;
  private readonly heaps: [Int32Array, Int32Array] = [new Int32Array(64), new Int32Array(64)];
  private readonly heapLen = [0, 0];

  protected override growRows(n: number): void {
    this.seq = grow(this.seq, n);
    this.heapPos = grow(this.heapPos, n);
  }

  protected nsText(ts: number, d: number): string {
    return (d === 0 ? "e:" : "p:") + ts;
  }

  protected parseNs(): void {
    // The timestamp and domain are read from the value (restoreRow).
  }

  protected override storedValue(r: number): { timestamp: number; domain: TimeDomain } {
    // Made on the row's first capture and kept (the value column is otherwise unused by timers).
    return (this.v[r] ??= { timestamp: this.a[r], domain: DOMAINS[this.b[r]] }) as { timestamp: number; domain: TimeDomain };
  }

  protected override restoreRow(s: number, value: unknown): void {
    const v = value as { timestamp: number; domain: TimeDomain };
    this.add(s, v.domain === "processing" ? 1 : 0, Number(v.timestamp), -1);
  }

  /** Adds a timer of slot `s` unless pending; returns whether it was added. */
  add(s: number, d: number, t: number, born?: number): boolean {
    if (this.findRow(s, t, d) !== -1) return false;
    const r = this.addRow(s, t, d, undefined, undefined, born);
    this.seq[r] = this.seqNext++;
    this.heapPush(d, r);
    return true;
  }

  /** Removes a pending timer of slot `s` (no-op if absent). */
  remove(s: number, d: number, t: number): void {
    const r = this.findRow(s, t, d);
    if (r !== -1) {
      this.heapRemove(d, this.heapPos[r]);
      this.removeRow(r);
    }
  }

  /** The earliest row of a domain, or -1. */
  peek(d: number): number {
    return this.heapLen[d] === 0 ? -1 : this.heaps[d][0];
  }

  /** Removes the earliest row of a domain (after `peek`). */
  pop(d: number): void {
    const r = this.heaps[d][0];
    this.heapRemove(d, 0);
    this.removeRow(r);
  }

  // A heap entry is a row; its timestamp is kept beside it (heapTs), so a comparison reads the row's
  // registration number only when two timestamps are equal.
  private heapTs: [Float64Array, Float64Array] = [new Float64Array(64), new Float64Array(64)];

  private heapPush(d: number, r: number): void {
    let h = this.heaps[d];
    let k = this.heapTs[d];
    const n = this.heapLen[d]++;
    if (n >= h.length) {
      h = this.heaps[d] = grow(h, h.length * 2);
      k = this.heapTs[d] = grow(k, k.length * 2);
    }
    this.up(h, k, n, r, this.a[r]);
  }

  private heapRemove(d: number, i: number): void {
    const h = this.heaps[d];
    const k = this.heapTs[d];
    const n = --this.heapLen[d];
    this.heapPos[h[i]] = -1;
    if (i === n) return;
    const last = h[n];
    const t = k[n];
    if (i > 0 && (t < k[(i - 1) >> 1] || (t === k[(i - 1) >> 1] && this.seq[last] < this.seq[h[(i - 1) >> 1]]))) this.up(h, k, i, last, t);
    else this.down(h, k, i, n, last, t);
  }

  /** Moves row `x` (timestamp `t`) from slot `i` up to its place. */
  private up(h: Int32Array, k: Float64Array, i: number, x: number, t: number): void {
    const seq = this.seq;
    const pos = this.heapPos;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = k[p];
      if (pt < t || (pt === t && seq[h[p]] < seq[x])) break;
      h[i] = h[p];
      k[i] = pt;
      pos[h[i]] = i;
      i = p;
    }
    h[i] = x;
    k[i] = t;
    pos[x] = i;
  }

  /** Moves row `x` (timestamp `t`) from slot `i` down to its place among the first `n`. */
  private down(h: Int32Array, k: Float64Array, i: number, n: number, x: number, t: number): void {
    const seq = this.seq;
    const pos = this.heapPos;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let m = l;
      const r = l + 1;
      if (r < n && (k[r] < k[l] || (k[r] === k[l] && seq[h[r]] < seq[h[l]]))) m = r;
      const mt = k[m];
      if (t < mt || (t === mt && seq[x] < seq[h[m]])) break;
      h[i] = h[m];
      k[i] = mt;
      pos[h[i]] = i;
      i = m;
    }
    h[i] = x;
    k[i] = t;
    pos[x] = i;
  }
}

const DOMAINS: readonly TimeDomain[] = ["event", "processing"];

function grow<A extends Int32Array | Float64Array>(a: A, n: number): A {
  const b = new (a.constructor as new (n: number) => A)(n);
  b.set(a);
  return b;
}

/**
 * Registers and deletes timers of the current key.
 *
 * @example
 * ```ts
 * import type { TimerService } from "./timers.ts";
 * function remindInAMinute(timers: TimerService, eventTime: number): void {
 *   timers.registerEventTimeTimer(eventTime + 60_000);
 * }
 * ```
 */
export interface TimerService {
  /** The operator's current watermark (`-Infinity` before the first one). */
  currentWatermark(): number;
  /** Processing time of the job's clock. */
  currentProcessingTime(): number;
  /** Fires `onTimer` once the watermark is ≥ `timestamp` (one timer per key and time). */
  registerEventTimeTimer(timestamp: number): void;
  /** Fires `onTimer` once the processing-time clock is ≥ `timestamp`. */
  registerProcessingTimeTimer(timestamp: number): void;
  /** Deletes an event-time timer of the current key (no-op if absent). */
  deleteEventTimeTimer(timestamp: number): void;
  /** Deletes a processing-time timer of the current key. */
  deleteProcessingTimeTimer(timestamp: number): void;
}

/** The timers of one keyed subtask. */
export class Timers {
  private table: TimerTable | undefined;
  watermark = -Infinity;

  constructor(private readonly b: KeyedStateBackend, private readonly now: () => number, private readonly where: string) {
    // Timers restored from a snapshot are registered at once (a job that never registers one still fires them).
    if (b.pendingRestored().includes(TIMERS_STATE)) this.ensure();
  }

  private ensure(): TimerTable {
    if (this.table) return this.table;
    const b = this.b;
    return (this.table = namespacedTable(b, TIMERS) as TimerTable);
  }

  /** Number of pending timers (both domains). */
  size(): number {
    return this.table?.size() ?? 0;
  }

  /** Registers a timer for the current key. */
  register(domain: TimeDomain, ts: number): void {
    const b = this.b;
    b.checkKey();
    if (!Number.isSafeInteger(ts)) throw new RangeError(`Cannot register a ${domain}-time timer in ${this.where} as its timestamp must be an integer number of ms: current value is ${ts}`);
    const t = this.table ?? this.ensure();
    t.add(t.slots.intern(), domain === "event" ? 0 : 1, ts);
  }

  /** Deletes a timer of the current key. */
  delete(domain: TimeDomain, ts: number): void {
    const b = this.b;
    b.checkKey();
    const t = this.table;
    if (t !== undefined) t.remove(t.slots.find(), domain === "event" ? 0 : 1, ts);
  }

  /** The earliest pending processing-time timer, or Infinity. */
  nextProcessingTime(): number {
    const t = this.table;
    if (t === undefined) return Infinity;
    const r = t.peek(1);
    return r === -1 ? Infinity : t.a[r];
  }

  /**
   * Fires, in time order, every timer of `domain` at or before `upTo`: removes it from state, sets its key
   * current and calls `fire(ts, key)` (which may register more timers; due ones fire in the same call).
   */
  fire(domain: TimeDomain, upTo: number, fire: (ts: number, key: unknown) => void): void {
    const t = this.table;
    if (t === undefined) return;
    const d = domain === "event" ? 0 : 1;
    const b = this.b;
    const start = b.range.start;
    const slots = t.slots;
    for (;;) {
      const r = t.peek(d);
      if (r === -1) break;
      const ts = t.a[r];
      if (ts > upTo) break;
      const s = t.slot[r];
      const key = slots.keys[s];
      t.pop(d);
      // The slot stays valid (slots are swept only when a new key is interned), so the key's other
      // namespaced rows (its windows) are found without hashing the key again.
      b.setCurrentKey(key, start + slots.group[s]);
      slots.setCurrent(s);
      fire(ts, key);
    }
    b.clearCurrentKey();
  }
  /** The service handed to user code. */
  service(): TimerService {
    return {
      currentWatermark: () => this.watermark,
      currentProcessingTime: this.now,
      registerEventTimeTimer: (ts) => this.register("event", ts),
      registerProcessingTimeTimer: (ts) => this.register("processing", ts),
      deleteEventTimeTimer: (ts) => this.delete("event", ts),
      deleteProcessingTimeTimer: (ts) => this.delete("processing", ts),
    };
  }
}
