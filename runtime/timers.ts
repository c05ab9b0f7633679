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
import { type CapturedRows, type KeyedStateBackend, type RestoredRows, StateTable } from "./keyed_backend.ts";
import { type KeyId, keyIdentity } from "../format/key_identity.ts";
import { valueState, type ValueStateDescriptor } from "./state.ts";
import type { StateLayout, ValueEncoding } from "../format/state_layout.ts";

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
const TIMERS = valueState<{ timestamp: number; domain: TimeDomain }>(TIMERS_STATE, { value: TIMER_VALUE });

/** Where a timer is in neither heap. */
const NONE = -1;

/**
 * The reserved `_timers` state, stored compactly: timers are rows of typed arrays (no object per timer),
 * the keys that have timers are interned once in slots, and one indexed min-heap per domain orders the
 * timers by (timestamp, registration). To tools and snapshots it is an ordinary namespaced value state:
 * captures produce the rows `(key group, key, "e:<ts>" | "p:<ts>", { timestamp, domain })`.
 */
class TimerTable extends StateTable {
  readonly handle: undefined = undefined;
  // Key slots: a key's timers form a linked list from slotHead.
  private readonly slotOf = new Map<KeyId, number>();
  private slotKey: unknown[] = [];
  private slotKid: KeyId[] = [];
  private slotG = new Int32Array(64);
  private slotHead = new Int32Array(64);
  private slotCount = new Int32Array(64);
  private readonly freeSlots: number[] = [];
  /** Slots with no timer left, kept (a key often registers again soon) until they outnumber the rest 4 to 1. */
  private idleSlots = 0;
  // Timer rows.
  private ts = new Float64Array(64);
  private seq = new Float64Array(64);
  private slot = new Int32Array(64);
  private next = new Int32Array(64);
  private domain = new Uint8Array(64);
  private heapPos = new Int32Array(64);
  /** Change epoch in which the row was put on the dirty list. */
  private dirtyEpoch = new Int32Array(64);
  /** Change epoch in which the row was registered (-1: restored), so rows born and gone between two captures write nothing. */
  private born = new Int32Array(64);
  private readonly freeRows: number[] = [];
  private rowsUsed = 0;
  private live = 0;
  private seqNext = 0;
  private readonly heaps: [Int32Array, Int32Array] = [new Int32Array(64), new Int32Array(64)];
  private readonly heapLen = [0, 0];
  // Changes since the last capture: rows registered (by index) and rows removed that a capture had written.
  private epoch = 0;
  private dirtyRows: number[] = [];
  private removedKeys: unknown[] = [];
  private removedG: number[] = [];
  private removedTs: number[] = [];
  private removedDomain: number[] = [];

  constructor(private readonly b: KeyedStateBackend, desc: ValueStateDescriptor<unknown>, layout: StateLayout) {
    super(desc, layout);
  }

  private growSlots(): void {
    const n = this.slotG.length * 2;
    this.slotG = grow(this.slotG, n);
    this.slotHead = grow(this.slotHead, n);
    this.slotCount = grow(this.slotCount, n);
  }

  private growRows(): void {
    const n = this.ts.length * 2;
    this.ts = grow(this.ts, n);
    this.seq = grow(this.seq, n);
    this.slot = grow(this.slot, n);
    this.next = grow(this.next, n);
    this.domain = grow(this.domain, n);
    this.heapPos = grow(this.heapPos, n);
    this.dirtyEpoch = grow(this.dirtyEpoch, n);
    this.born = grow(this.born, n);
  }

  /** The slot of a key, interned on first use. */
  private slotFor(g: number, keyId: KeyId, key: unknown): number {
    let s = this.slotOf.get(keyId);
    if (s !== undefined) {
      if (this.slotCount[s] === 0) this.idleSlots--;
      return s;
    }
    s = this.freeSlots.pop();
    if (s === undefined) {
      s = this.slotKey.length;
      if (s >= this.slotG.length) this.growSlots();
      this.slotKey.push(key);
      this.slotKid.push(keyId);
    } else {
      this.slotKey[s] = key;
      this.slotKid[s] = keyId;
    }
    this.slotG[s] = g;
    this.slotHead[s] = NONE;
    this.slotCount[s] = 0;
    this.slotOf.set(keyId, s);
    return s;
  }

  /** The row of (key, domain, ts), or NONE. */
  private find(keyId: KeyId, d: number, t: number): number {
    const s = this.slotOf.get(keyId);
    if (s === undefined) return NONE;
    for (let r = this.slotHead[s]; r !== NONE; r = this.next[r]) if (this.ts[r] === t && this.domain[r] === d) return r;
    return NONE;
  }

  /** Whether a timer is pending. */
  has(keyId: KeyId, d: number, t: number): boolean {
    return this.find(keyId, d, t) !== NONE;
  }

  /** Adds a timer unless pending; returns whether it was added. */
  add(g: number, keyId: KeyId, key: unknown, d: number, t: number, born: number): boolean {
    const known = this.slotOf.get(keyId);
    if (known !== undefined) for (let x = this.slotHead[known]; x !== NONE; x = this.next[x]) if (this.ts[x] === t && this.domain[x] === d) return false;
    const s = known !== undefined && this.slotCount[known] !== 0 ? known : this.slotFor(g, keyId, key);
    let r = this.freeRows.pop();
    if (r === undefined) {
      r = this.rowsUsed++;
      if (r >= this.ts.length) this.growRows();
    }
    this.ts[r] = t;
    this.seq[r] = this.seqNext++;
    this.domain[r] = d;
    this.slot[r] = s;
    this.next[r] = this.slotHead[s];
    this.slotHead[s] = r;
    this.slotCount[s]++;
    this.born[r] = born;
    this.dirtyEpoch[r] = -1;
    this.live++;
    this.heapPush(d, r);
    if (born >= 0 && this.b.trackChanges) {
      this.dirtyEpoch[r] = this.epoch;
      this.dirtyRows.push(r);
    }
    return true;
  }

  /** Removes a pending timer (no-op if absent). */
  remove(keyId: KeyId, d: number, t: number): void {
    const r = this.find(keyId, d, t);
    if (r !== NONE) {
      this.heapRemove(d, this.heapPos[r]);
      this.release(r);
    }
  }

  /** Unlinks a row from its key and frees it (it is out of the heap already). */
  private release(r: number): void {
    const s = this.slot[r];
    let p = this.slotHead[s];
    if (p === r) this.slotHead[s] = this.next[r];
    else {
      while (this.next[p] !== r) p = this.next[p];
      this.next[p] = this.next[r];
    }
    this.live--;
    if (this.b.trackChanges && this.born[r] < this.epoch) {
      // A capture wrote it (or it was restored): the next delta must delete it.
      this.removedKeys.push(this.slotKey[s]);
      this.removedG.push(this.slotG[s]);
      this.removedTs.push(this.ts[r]);
      this.removedDomain.push(this.domain[r]);
    }
    this.dirtyEpoch[r] = -1;
    this.freeRows.push(r);
    if (--this.slotCount[s] === 0 && ++this.idleSlots > 4096 && this.idleSlots > 4 * (this.slotOf.size - this.idleSlots)) this.sweepSlots();
  }

  private sweepSlots(): void {
    for (let s = 0; s < this.slotKey.length; s++) {
      if (this.slotCount[s] !== 0 || this.slotHead[s] === -2) continue;
      this.slotOf.delete(this.slotKid[s]);
      this.slotKey[s] = undefined;
      this.slotHead[s] = -2; // free
      this.freeSlots.push(s);
    }
    this.idleSlots = 0;
  }

  /** The earliest row of a domain, or NONE. */
  peek(d: number): number {
    return this.heapLen[d] === 0 ? NONE : this.heaps[d][0];
  }

  /** Timestamp of a row. */
  timeOf(r: number): number {
    return this.ts[r];
  }

  /** Key and key group index of a row. */
  keyOf(r: number): unknown {
    return this.slotKey[this.slot[r]];
  }
  groupOf(r: number): number {
    return this.slotG[this.slot[r]];
  }

  /** Removes the earliest row of a domain (after `peek`). */
  pop(d: number): void {
    const r = this.heaps[d][0];
    this.heapRemove(d, 0);
    this.release(r);
  }

  private less(x: number, y: number): boolean {
    const a = this.ts[x];
    const b = this.ts[y];
    return a < b || (a === b && this.seq[x] < this.seq[y]);
  }

  private heapPush(d: number, r: number): void {
    let h = this.heaps[d];
    const n = this.heapLen[d]++;
    if (n >= h.length) h = this.heaps[d] = grow(h, h.length * 2);
    h[n] = r;
    this.heapPos[r] = n;
    this.up(h, n);
  }

  private heapRemove(d: number, i: number): void {
    const h = this.heaps[d];
    const n = --this.heapLen[d];
    const gone = h[i];
    this.heapPos[gone] = NONE;
    if (i === n) return;
    const last = h[n];
    h[i] = last;
    this.heapPos[last] = i;
    if (i > 0 && this.less(last, h[(i - 1) >> 1])) this.up(h, i);
    else this.down(h, i, n);
  }

  private up(h: Int32Array, i: number): void {
    const x = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      const y = h[p];
      if (!this.less(x, y)) break;
      h[i] = y;
      this.heapPos[y] = i;
      i = p;
    }
    h[i] = x;
    this.heapPos[x] = i;
  }

  private down(h: Int32Array, i: number, n: number): void {
    const x = h[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && this.less(h[r], h[l]) ? r : l;
      if (!this.less(h[m], x)) break;
      h[i] = h[m];
      this.heapPos[h[i]] = i;
      i = m;
    }
    h[i] = x;
    this.heapPos[x] = i;
  }

  size(): number {
    return this.live;
  }

  dirtySize(): number {
    return this.captureDirty(0).length;
  }

  /** Rows in key-group order (a counting sort over the owned groups). */
  private rowsOf(start: number, n: number, gOf: (i: number) => number, emit: (i: number, kg: number) => void): void {
    const counts = new Int32Array(this.b.groups + 1);
    for (let i = 0; i < n; i++) counts[gOf(i) + 1]++;
    for (let g = 0; g < this.b.groups; g++) counts[g + 1] += counts[g];
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[counts[gOf(i)]++] = i;
    for (let j = 0; j < n; j++) emit(order[j], start + gOf(order[j]));
  }

  private value(r: number): { timestamp: number; domain: TimeDomain } {
    return { timestamp: this.ts[r], domain: DOMAINS[this.domain[r]] };
  }

  captureAll(start: number): CapturedRows {
    const rows: number[] = [];
    for (let d = 0; d < 2; d++) {
      const h = this.heaps[d];
      for (let i = 0; i < this.heapLen[d]; i++) rows.push(h[i]);
    }
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const namespaces: string[] = [];
    const values: unknown[] = [];
    this.rowsOf(start, rows.length, (i) => this.slotG[this.slot[rows[i]]], (i, kg) => {
      const r = rows[i];
      keyGroups.push(kg);
      keys.push(this.slotKey[this.slot[r]]);
      namespaces.push(nsOf(DOMAINS[this.domain[r]], this.ts[r]));
      values.push(this.value(r));
    });
    return { length: keys.length, keyGroups, keys, namespaces, values };
  }

  captureDirty(start: number): CapturedRows {
    // Upserts: rows registered since the last capture and still pending (each once).
    const puts: number[] = [];
    for (const r of this.dirtyRows) {
      if (this.dirtyEpoch[r] !== this.epoch || this.heapPos[r] === NONE) continue;
      this.dirtyEpoch[r] = -3; // taken (restored below)
      puts.push(r);
    }
    for (const r of puts) this.dirtyEpoch[r] = this.epoch;
    // Deletes: removed rows a capture had written and not registered again (each once).
    const dels: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < this.removedKeys.length; i++) {
      const key = this.removedKeys[i];
      const kid = keyIdentity(key);
      if (this.has(kid, this.removedDomain[i], this.removedTs[i])) continue;
      const id = `${this.removedG[i]}|${this.removedDomain[i]}|${this.removedTs[i]}|${typeof kid}|${String(kid)}`;
      if (seen.has(id)) continue;
      seen.add(id);
      dels.push(i);
    }
    const n = puts.length + dels.length;
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const namespaces: string[] = [];
    const values: unknown[] = [];
    const ops = new Uint8Array(n);
    let j = 0;
    this.rowsOf(start, n, (i) => (i < puts.length ? this.slotG[this.slot[puts[i]]] : this.removedG[dels[i - puts.length]]), (i, kg) => {
      keyGroups.push(kg);
      if (i < puts.length) {
        const r = puts[i];
        keys.push(this.slotKey[this.slot[r]]);
        namespaces.push(nsOf(DOMAINS[this.domain[r]], this.ts[r]));
        values.push(this.value(r));
      } else {
        const x = dels[i - puts.length];
        keys.push(this.removedKeys[x]);
        namespaces.push(nsOf(DOMAINS[this.removedDomain[x]], this.removedTs[x]));
        values.push(null);
        ops[j] = 1;
      }
      j++;
    });
    return { length: n, keyGroups, keys, namespaces, values, ops };
  }

  clearDirty(): void {
    this.epoch++;
    this.dirtyRows = [];
    this.removedKeys = [];
    this.removedG = [];
    this.removedTs = [];
    this.removedDomain = [];
  }

  restore(start: number, end: number, rows: RestoredRows): void {
    const kgs = rows.keyGroups!;
    const keys = rows.keys!;
    for (let i = 0; i < rows.length; i++) {
      const kg = kgs[i];
      if (kg < start || kg > end) continue;
      const v = rows.values[i] as { timestamp: number; domain: TimeDomain };
      this.add(kg - start, keyIdentity(keys[i]), keys[i], v.domain === "processing" ? 1 : 0, Number(v.timestamp), -1);
    }
  }
}

const DOMAINS: readonly TimeDomain[] = ["event", "processing"];

function nsOf(domain: TimeDomain, ts: number): string {
  return (domain === "event" ? "e:" : "p:") + ts;
}

function grow<A extends Int32Array | Float64Array | Uint8Array>(a: A, n: number): A {
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
    const desc = TIMERS as ValueStateDescriptor<unknown>;
    return (this.table = b.registerTable(desc, { kind: "value", keyType: b.keyType, namespaced: true, value: desc.value }, (layout) => new TimerTable(b, desc, layout)));
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
    t.add(b.kgi, b.keyId, b.key, domain === "event" ? 0 : 1, ts, 0);
  }

  /** Deletes a timer of the current key. */
  delete(domain: TimeDomain, ts: number): void {
    const b = this.b;
    b.checkKey();
    this.table?.remove(b.keyId, domain === "event" ? 0 : 1, ts);
  }

  /** The earliest pending processing-time timer, or Infinity. */
  nextProcessingTime(): number {
    const t = this.table;
    if (t === undefined) return Infinity;
    const r = t.peek(1);
    return r === -1 ? Infinity : t.timeOf(r);
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
    for (;;) {
      const r = t.peek(d);
      if (r === -1) break;
      const ts = t.timeOf(r);
      if (ts > upTo) break;
      const key = t.keyOf(r);
      b.setCurrentKey(key, start + t.groupOf(r));
      t.pop(d);
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
