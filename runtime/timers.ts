/**
 * Timers of a keyed subtask: event-time timers fire when the watermark passes them, processing-time
 * timers when the clock does. Each timer is a row of the reserved keyed state `_timers` (key group, key,
 * namespace `e:<ts>` or `p:<ts>`, value `{ timestamp, domain }`): it is written to checkpoints
 * incrementally, restored with its key group at any parallelism, and moved by `rekey`, like any state.
 * The state is the truth; a min-heap per domain only orders what to look at next (a deleted timer stays
 * in the heap and is skipped when popped), so a timer fires at most once per registration.
 *
 * @module
 */
import type { KeyedStateBackend } from "./keyed_backend.ts";
import { type KeyId, keyIdentity } from "../format/key_identity.ts";
import { type NamespacedTable, namespacedTable } from "./namespaced_state.ts";
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
 * import { TimeDomain } from "./timers.ts";
 * console.log(TimeDomain.EVENT, TimeDomain.PROCESSING); // "event" "processing"
 * ```
 */
export const TimeDomain = { EVENT: "event", PROCESSING: "processing" } as const;
/** `event` or `processing`. */
export type TimeDomain = typeof TimeDomain[keyof typeof TimeDomain];

const TIMER_VALUE: ValueEncoding = {
  encoding: "arrow",
  type: { struct: [{ name: "timestamp", type: "timestamp" }, { name: "domain", type: "dictionary" }] },
};
const TIMERS = valueState<{ timestamp: number; domain: TimeDomain }>(TIMERS_STATE, { value: TIMER_VALUE });

interface HeapItem {
  ts: number;
  seq: number;
  g: number;
  keyId: KeyId;
  key: unknown;
}

/** A binary min-heap by (timestamp, registration order). */
class TimerHeap {
  private a: HeapItem[] = [];
  get size(): number {
    return this.a.length;
  }
  peek(): HeapItem | undefined {
    return this.a[0];
  }
  push(x: HeapItem): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a[i], a[p])) break;
      const t = a[i];
      a[i] = a[p];
      a[p] = t;
      i = p;
    }
  }
  pop(): HeapItem | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l], a[m])) m = l;
        if (r < a.length && less(a[r], a[m])) m = r;
        if (m === i) break;
        const t = a[i];
        a[i] = a[m];
        a[m] = t;
        i = m;
      }
    }
    return top;
  }
}

function less(x: HeapItem, y: HeapItem): boolean {
  return x.ts < y.ts || (x.ts === y.ts && x.seq < y.seq);
}

function nsOf(domain: TimeDomain, ts: number): string {
  return (domain === "event" ? "e:" : "p:") + ts;
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
  private table: NamespacedTable | undefined;
  private readonly heaps = { event: new TimerHeap(), processing: new TimerHeap() };
  private seq = 0;
  watermark = -Infinity;

  constructor(private readonly b: KeyedStateBackend, private readonly now: () => number, private readonly where: string) {
    // Timers restored from a snapshot are registered at once (a job that never registers one still fires them).
    if (b.pendingRestored().includes(TIMERS_STATE)) this.ensure();
  }

  private ensure(): NamespacedTable {
    if (this.table) return this.table;
    const t = (this.table = namespacedTable(this.b, TIMERS as ReturnType<typeof valueState<unknown>>));
    for (const r of t.rows()) {
      const v = r.value as { timestamp: number; domain: TimeDomain };
      this.heaps[v.domain === "processing" ? "processing" : "event"].push({ ts: v.timestamp, seq: this.seq++, g: r.g, keyId: keyIdentity(r.key), key: r.key });
    }
    return t;
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
    const t = this.ensure();
    const ns = nsOf(domain, ts);
    if (t.has(b.kgi, b.keyId, ns)) return;
    t.putIn(b.kgi, b.keyId, b.key, ns, { timestamp: ts, domain });
    this.heaps[domain].push({ ts, seq: this.seq++, g: b.kgi, keyId: b.keyId, key: b.key });
  }

  /** Deletes a timer of the current key. */
  delete(domain: TimeDomain, ts: number): void {
    const b = this.b;
    b.checkKey();
    this.table?.removeIn(b.kgi, b.keyId, nsOf(domain, ts));
  }

  /** The earliest pending processing-time timer (possibly deleted since), or Infinity. */
  nextProcessingTime(): number {
    return this.heaps.processing.peek()?.ts ?? Infinity;
  }

  /**
   * Fires, in time order, every timer of `domain` at or before `upTo`: removes it from state, sets its key
   * current and calls `fire(ts, key)` (which may register more timers; due ones fire in the same call).
   */
  fire(domain: TimeDomain, upTo: number, fire: (ts: number, key: unknown) => void): void {
    const heap = this.heaps[domain];
    const t = this.table;
    if (t === undefined) return;
    const b = this.b;
    const start = b.range.start;
    for (;;) {
      const top = heap.peek();
      if (top === undefined || top.ts > upTo) break;
      heap.pop();
      const ns = nsOf(domain, top.ts);
      if (!t.has(top.g, top.keyId, ns)) continue; // deleted (or fired already after a re-registration)
      b.setCurrentKey(top.key, start + top.g);
      t.removeIn(top.g, top.keyId, ns);
      fire(top.ts, top.key);
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
