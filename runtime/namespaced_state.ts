/**
 * Namespaced keyed state: one value per (key, namespace). Windows keep their contents here (namespace =
 * the window) and timers their entries (namespace = domain and time), so both are ordinary keyed state in
 * snapshots (the chunk's `ns` column) and every tool (rekey, validate, export, diff) handles them as such.
 *
 * In memory, every namespaced state of a subtask is a {@link NamespacedRows} table: rows in typed arrays
 * (no object per row), the keys interned once per subtask in {@link KeySlots} shared by all these tables
 * (so a window operator hashes a record's key once for its window and its timer), and a namespace held
 * as two numbers (a window's start and end, a timer's time and domain) or, for user code, a string. The
 * namespace text of the snapshot's `ns` column is made only when a checkpoint captures the row.
 *
 * @module
 */
import { type CapturedRows, keyedLayout, type KeyedStateBackend, refused, type RestoredRows, StateTable, valueCheckOf } from "./keyed_backend.ts";
import { type KeyId, keyIdentity } from "../format/key_identity.ts";
import type { StateLayout } from "../format/state_layout.ts";
import type { ValueCheck } from "../format/value_check.ts";
import { valueState, type StateOptions, type ValueStateDescriptor } from "./state.ts";

/** No row, no slot. */
const NONE = -1;

/** Typed arrays grow by doubling; `fill` is the value of the new part. */
function grow<A extends Int32Array | Float64Array | Uint8Array>(a: A, n: number, fill = 0): A {
  const b = new (a.constructor as new (n: number) => A)(n);
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}

/**
 * The keys of one subtask that have namespaced rows (window contents, timers, user namespaced state),
 * interned in dense slots with a reference count per slot. The slot of the current key is looked up
 * once per record (cached until the key changes), however many namespaced tables the record touches.
 * A slot whose rows are all gone stays (its key often comes back soon) until a sweep finds it unused
 * for a whole sweep interval (a second chance), so a key that recurs costs no hash insert each time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedStateBackend } from "./keyed_backend.ts";
 * import { keySlotsOf } from "./namespaced_state.ts";
 * const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
 * const slots = keySlotsOf(b);
 * b.setCurrentKey("a", 3);
 * assert.equal(slots.find(), -1);
 * const s = slots.intern();
 * assert.equal(slots.keys[s], "a");
 * assert.equal(slots.group[s], 3);
 * ```
 */
export class KeySlots {
  private readonly ids = new Map<KeyId, number>();
  /** Key per slot. */
  readonly keys: unknown[] = [];
  private readonly kids: KeyId[] = [];
  /** Key group index (key group − range start) per slot. */
  group: Int32Array = new Int32Array(64);
  /** Rows per slot, over all tables. */
  private refs = new Int32Array(64);
  /** 1: found unused by the last sweep (freed by the next one unless used again). */
  private idle = new Uint8Array(64);
  private readonly free: number[] = [];
  /** Slots that became unused since the last sweep. */
  private unusedSinceSweep = 0;
  /**
   * A sweep runs once this many slots became unused: at least as many as the slots kept by the last one,
   * so sweeps cost O(1) per slot freed and a slot is freed only if unused through a whole interval.
   */
  private sweepEvery = 4096;
  private seq = -1;
  private cur = NONE;

  constructor(private readonly b: KeyedStateBackend) {}

  /** Slot capacity (tables size their per-slot arrays by it). */
  get capacity(): number {
    return this.group.length;
  }

  /** The slot of the current key, or -1 when it has no rows. */
  find(): number {
    const b = this.b;
    if (this.seq === b.keySeq) return this.cur;
    const s = this.ids.get(b.keyId);
    this.seq = b.keySeq;
    return (this.cur = s === undefined ? NONE : s);
  }

  /** The slot of the current key, interned if new. */
  intern(): number {
    const s = this.find();
    if (s !== NONE) return s;
    const b = this.b;
    return (this.cur = this.add(b.keyId, b.key, b.kgi));
  }

  /** The slot of a key identity, or -1. */
  lookup(keyId: KeyId): number {
    return this.ids.get(keyId) ?? NONE;
  }

  /** The slot of a key, interned if new (restore). */
  internKey(keyId: KeyId, key: unknown, g: number): number {
    return this.ids.get(keyId) ?? this.add(keyId, key, g);
  }

  /** Makes `s` the current key's slot (the runtime set the current key to the slot's key). */
  setCurrent(s: number): void {
    this.seq = this.b.keySeq;
    this.cur = s;
  }

  /** A row of slot `s` was created. */
  ref(s: number): void {
    if (this.refs[s]++ === 0) this.idle[s] = 0;
  }

  /** A row of slot `s` is gone (the slot stays until a sweep frees it). */
  unref(s: number): void {
    if (--this.refs[s] === 0) this.unusedSinceSweep++;
  }

  private add(keyId: KeyId, key: unknown, g: number): number {
    // Sweeps run only here, when a key is interned: a slot handed out earlier in this record stays valid.
    if (this.unusedSinceSweep > this.sweepEvery) this.sweep();
    let s = this.free.pop();
    if (s === undefined) {
      s = this.keys.length;
      if (s >= this.group.length) {
        const n = this.group.length * 2;
        this.group = grow(this.group, n);
        this.refs = grow(this.refs, n);
        this.idle = grow(this.idle, n);
      }
      this.keys.push(key);
      this.kids.push(keyId);
    } else {
      this.keys[s] = key;
      this.kids[s] = keyId;
    }
    this.group[s] = g;
    this.refs[s] = 0;
    this.idle[s] = 0;
    this.ids.set(keyId, s);
    return s;
  }

  /** Frees the slots unused since the previous sweep; marks the now unused ones for the next. */
  private sweep(): void {
    for (let s = 0; s < this.keys.length; s++) {
      if (this.refs[s] !== 0 || this.kids[s] === undefined) continue;
      if (this.idle[s] === 0) this.idle[s] = 1;
      else {
        this.ids.delete(this.kids[s]);
        this.keys[s] = undefined;
        this.kids[s] = undefined as unknown as KeyId;
        this.free.push(s);
      }
    }
    this.unusedSinceSweep = 0;
    this.sweepEvery = Math.max(4096, this.ids.size);
    this.seq = -1;
  }
}

const SLOTS = new WeakMap<KeyedStateBackend, KeySlots>();

/**
 * The key slots shared by the namespaced tables of a backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedStateBackend } from "./keyed_backend.ts";
 * import { keySlotsOf } from "./namespaced_state.ts";
 * const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", false);
 * assert.equal(keySlotsOf(b), keySlotsOf(b));
 * ```
 */
export function keySlotsOf(b: KeyedStateBackend): KeySlots {
  let s = SLOTS.get(b);
  if (s === undefined) SLOTS.set(b, (s = new KeySlots(b)));
  return s;
}

/**
 * A namespaced state's rows: per row a key slot, a namespace (two numbers `a`, `b` and, for string
 * namespaces, a string), a value, and its change bookkeeping, in typed arrays; the rows of a slot form a
 * linked list (a key has one to a few). Changes are tracked like value state's: a row changed since the
 * last capture is on the dirty list once; a removed row that a capture wrote becomes a delete, and a row
 * born and gone between two captures writes nothing. Subclasses say how a namespace is written in the
 * snapshot (`nsText`/`parseNs`) and what a row's value is there (`storedValue`).
 */
export abstract class NamespacedRows extends StateTable {
  /** The key slots (shared by the backend's namespaced tables). */
  readonly slots: KeySlots;
  /** First row per slot. */
  private head: Int32Array = new Int32Array(64).fill(NONE);
  /** Namespace numbers per row. */
  a: Float64Array = new Float64Array(64);
  b: Float64Array = new Float64Array(64);
  /** String namespace per row (string-namespaced tables only). */
  readonly s: (string | undefined)[] = [];
  /** Value per row. */
  readonly v: unknown[] = [];
  /**
   * The snapshot's namespace text per row, made on its first capture and kept (a pending timer or an open
   * window is captured by every base while it lives).
   */
  private readonly text: (string | undefined)[] = [];
  /** Next row of the same slot. */
  next: Int32Array = new Int32Array(64);
  /** Slot per row (-1: free row). */
  slot: Int32Array = new Int32Array(64).fill(NONE);
  /** Change epoch in which the row was put on the dirty list (-1: not on it). */
  private dirtyEpoch = new Int32Array(64);
  /** Change epoch in which the row got its namespace (-1: restored). */
  private born = new Int32Array(64);
  private readonly freeRows: number[] = [];
  private rowsUsed = 0;
  private live = 0;
  private readonly track: boolean;
  private epoch = 0;
  private dirtyRows: number[] = [];
  // Deletes for the next delta: the identity of each removed row that a capture had written.
  private removedKeys: unknown[] = [];
  private removedG: number[] = [];
  private removedA: number[] = [];
  private removedB: number[] = [];
  private removedS: (string | undefined)[] = [];
  /** The namespace `parseNs` read. */
  protected parsed: { a: number; b: number; s: string | undefined } = { a: 0, b: 0, s: undefined };

  constructor(protected readonly backend: KeyedStateBackend, desc: ValueStateDescriptor<unknown>, layout: StateLayout) {
    super(desc, layout);
    this.slots = keySlotsOf(backend);
    this.track = backend.trackChanges;
  }

  /** The snapshot's namespace text of a row's namespace. */
  protected abstract nsText(a: number, b: number, s: string | undefined): string;
  /** Reads a snapshot's namespace text into {@link NamespacedRows.parsed}. */
  protected abstract parseNs(ns: string): void;
  /** A row's value as the snapshot stores it. */
  protected storedValue(r: number): unknown {
    return this.v[r];
  }
  /** Loads one restored row of slot `s` (the namespace is in {@link NamespacedRows.parsed}). */
  protected restoreRow(s: number, value: unknown): void {
    const p = this.parsed;
    this.addRow(s, p.a, p.b, p.s, value, -1);
  }
  /** Row columns of subclasses grow with the base's. */
  protected growRows(_n: number): void {}

  /** The first row of a slot, or -1. */
  first(s: number): number {
    return s < this.head.length ? this.head[s] : NONE;
  }

  /** The row of (slot, namespace), or -1. */
  findRow(s: number, a: number, b: number, str?: string): number {
    if (s === NONE || s >= this.head.length) return NONE;
    const A = this.a;
    const B = this.b;
    const next = this.next;
    for (let r = this.head[s]; r !== NONE; r = next[r]) if (A[r] === a && B[r] === b && this.s[r] === str) return r;
    return NONE;
  }

  /** Adds a row (its namespace must be absent from the slot); `born` -1 for restored rows. */
  addRow(s: number, a: number, b: number, str: string | undefined, value: unknown, born = this.epoch): number {
    let r = this.freeRows.pop();
    if (r === undefined) {
      r = this.rowsUsed++;
      if (r >= this.a.length) {
        const n = this.a.length * 2;
        this.a = grow(this.a, n);
        this.b = grow(this.b, n);
        this.next = grow(this.next, n);
        this.slot = grow(this.slot, n, NONE);
        this.dirtyEpoch = grow(this.dirtyEpoch, n);
        this.born = grow(this.born, n);
        this.growRows(n);
      }
    }
    if (s >= this.head.length) this.head = grow(this.head, this.slots.capacity, NONE);
    this.a[r] = a;
    this.b[r] = b;
    this.s[r] = str;
    this.v[r] = value;
    this.text[r] = undefined;
    this.slot[r] = s;
    this.next[r] = this.head[s];
    this.head[s] = r;
    this.born[r] = born;
    this.dirtyEpoch[r] = NONE;
    this.slots.ref(s);
    this.live++;
    if (born >= 0) this.markDirty(r);
    return r;
  }

  /** Sets a row's value (marking it changed). */
  setValue(r: number, value: unknown): void {
    this.v[r] = value;
    this.markDirty(r);
  }

  /** Marks a row changed (after an in-place change of its value). */
  markDirty(r: number): void {
    if (this.track && this.dirtyEpoch[r] !== this.epoch) {
      this.dirtyEpoch[r] = this.epoch;
      this.dirtyRows.push(r);
    }
  }

  /** Gives a row another namespace in place (a session window that grew): a delete of the old one and a put. */
  moveRow(r: number, a: number, b: number): void {
    this.forget(r);
    this.a[r] = a;
    this.b[r] = b;
    this.text[r] = undefined;
    this.born[r] = this.epoch;
    this.markDirty(r);
  }

  /** Removes a row. */
  removeRow(r: number): void {
    const s = this.slot[r];
    let p = this.head[s];
    if (p === r) this.head[s] = this.next[r];
    else {
      while (this.next[p] !== r) p = this.next[p];
      this.next[p] = this.next[r];
    }
    this.forget(r);
    this.slot[r] = NONE;
    this.v[r] = undefined;
    this.s[r] = undefined;
    this.text[r] = undefined;
    this.dirtyEpoch[r] = NONE;
    this.freeRows.push(r);
    this.live--;
    this.slots.unref(s);
  }

  /** Records the delete of a row's current identity if a capture (or the restore) wrote it. */
  private forget(r: number): void {
    if (!this.track || this.born[r] >= this.epoch) return;
    const slots = this.slots;
    const s = this.slot[r];
    this.removedKeys.push(slots.keys[s]);
    this.removedG.push(slots.group[s]);
    this.removedA.push(this.a[r]);
    this.removedB.push(this.b[r]);
    this.removedS.push(this.s[r]);
  }

  size(): number {
    return this.live;
  }

  dirtySize(): number {
    return this.captureDirty(0).length;
  }

  /** Rows `0..n` in key-group order (a counting sort over the owned groups). */
  private sorted(n: number, gOf: (i: number) => number): Int32Array {
    const groups = this.backend.groups;
    const counts = new Int32Array(groups + 1);
    for (let i = 0; i < n; i++) counts[gOf(i) + 1]++;
    for (let g = 0; g < groups; g++) counts[g + 1] += counts[g];
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[counts[gOf(i)]++] = i;
    return order;
  }

  captureAll(start: number): CapturedRows {
    const rows: number[] = [];
    for (let r = 0; r < this.rowsUsed; r++) if (this.slot[r] !== NONE) rows.push(r);
    const group = this.slots.group;
    const order = this.sorted(rows.length, (i) => group[this.slot[rows[i]]]);
    const n = rows.length;
    const keyGroups: number[] = new Array(n);
    const keys: unknown[] = new Array(n);
    const namespaces: string[] = new Array(n);
    const values: unknown[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const r = rows[order[j]];
      const s = this.slot[r];
      keyGroups[j] = start + group[s];
      keys[j] = this.slots.keys[s];
      namespaces[j] = this.text[r] ??= this.nsText(this.a[r], this.b[r], this.s[r]);
      values[j] = this.storedValue(r);
    }
    return { length: n, keyGroups, keys, namespaces, values };
  }

  captureDirty(start: number): CapturedRows {
    // Upserts: rows changed since the last capture and still there, each once (a freed row may be
    // reused and listed again).
    const puts: number[] = [];
    for (const r of this.dirtyRows) {
      if (this.dirtyEpoch[r] !== this.epoch || this.slot[r] === NONE) continue;
      this.dirtyEpoch[r] = -3; // taken (restored below)
      puts.push(r);
    }
    for (const r of puts) this.dirtyEpoch[r] = this.epoch;
    // Deletes: removed identities not present again, each once.
    const dels: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < this.removedKeys.length; i++) {
      const kid = keyIdentity(this.removedKeys[i]);
      if (this.findRow(this.slots.lookup(kid), this.removedA[i], this.removedB[i], this.removedS[i]) !== NONE) continue;
      const id = `${this.removedG[i]}|${this.removedA[i]}|${this.removedB[i]}|${this.removedS[i]}|${typeof kid}|${String(kid)}`;
      if (seen.has(id)) continue;
      seen.add(id);
      dels.push(i);
    }
    const group = this.slots.group;
    const np = puts.length;
    const n = np + dels.length;
    const order = this.sorted(n, (i) => (i < np ? group[this.slot[puts[i]]] : this.removedG[dels[i - np]]));
    const keyGroups: number[] = new Array(n);
    const keys: unknown[] = new Array(n);
    const namespaces: string[] = new Array(n);
    const values: unknown[] = new Array(n);
    const ops = new Uint8Array(n);
    for (let j = 0; j < n; j++) {
      const i = order[j];
      if (i < np) {
        const r = puts[i];
        const s = this.slot[r];
        keyGroups[j] = start + group[s];
        keys[j] = this.slots.keys[s];
        namespaces[j] = this.text[r] ??= this.nsText(this.a[r], this.b[r], this.s[r]);
        values[j] = this.storedValue(r);
      } else {
        const x = dels[i - np];
        keyGroups[j] = start + this.removedG[x];
        keys[j] = this.removedKeys[x];
        namespaces[j] = this.nsText(this.removedA[x], this.removedB[x], this.removedS[x]);
        values[j] = null;
        ops[j] = 1;
      }
    }
    return { length: n, keyGroups, keys, namespaces, values, ops };
  }

  clearDirty(): void {
    this.epoch++;
    this.dirtyRows = [];
    this.removedKeys = [];
    this.removedG = [];
    this.removedA = [];
    this.removedB = [];
    this.removedS = [];
  }

  restore(start: number, end: number, rows: RestoredRows): void {
    const kgs = rows.keyGroups!;
    const keys = rows.keys!;
    const ns = rows.namespaces ?? [];
    for (let i = 0; i < rows.length; i++) {
      const kg = kgs[i];
      if (kg < start || kg > end) continue;
      this.parseNs(ns[i] ?? "");
      this.restoreRow(this.slots.internKey(keyIdentity(keys[i]), keys[i], kg - start), rows.values[i]);
    }
  }
}

/**
 * The state of the current key across namespaces.
 *
 * @example
 * ```ts
 * import type { NamespacedValueState } from "./namespaced_state.ts";
 * function total(s: NamespacedValueState<number>): number {
 *   let n = 0;
 *   for (const [, v] of s.entries()) n += v;
 *   return n;
 * }
 * ```
 */
export interface NamespacedValueState<T> {
  /** The value in a namespace. */
  get(ns: string): T | undefined;
  /** Sets the value in a namespace. */
  put(ns: string, value: T): void;
  /** Removes a namespace's value. */
  remove(ns: string): void;
  /** The namespaces and values of the current key. */
  entries(): [string, T][];
}

/**
 * Declares a namespaced value state (a value state whose rows carry a namespace).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { namespacedValueState } from "./namespaced_state.ts";
 * const contents = namespacedValueState<number>("window-contents");
 * assert.equal(contents.kind, "value");
 * ```
 */
export function namespacedValueState<T>(name: string, options: StateOptions = {}): ValueStateDescriptor<T> {
  return valueState<T>(name, options);
}

/** Namespaced state with string namespaces (what user code gets from `getNamespacedState`). */
export class NamespacedTable extends NamespacedRows {
  readonly handle: NamespacedValueState<unknown>;
  private readonly check: ValueCheck | null;

  constructor(b: KeyedStateBackend, desc: ValueStateDescriptor<unknown>, layout: StateLayout) {
    super(b, desc, layout);
    this.check = valueCheckOf(desc);
    const slots = this.slots;
    this.handle = {
      get: (ns) => {
        b.checkKey();
        const r = this.findRow(slots.find(), 0, 0, ns);
        return r === NONE ? undefined : this.v[r];
      },
      put: (ns, value) => {
        b.checkKey();
        if (value === undefined || value === null) return this.handle.remove(ns);
        if (this.check !== null && !this.check(value)) throw refused(b, desc, "put()", value);
        const s = slots.intern();
        const r = this.findRow(s, 0, 0, ns);
        if (r === NONE) this.addRow(s, 0, 0, ns, value);
        else this.setValue(r, value);
      },
      remove: (ns) => {
        b.checkKey();
        const r = this.findRow(slots.find(), 0, 0, ns);
        if (r !== NONE) this.removeRow(r);
      },
      entries: () => {
        b.checkKey();
        const out: [string, unknown][] = [];
        for (let r = this.first(slots.find()); r !== NONE; r = this.next[r]) out.push([this.s[r]!, this.v[r]]);
        return out;
      },
    };
  }

  protected nsText(_a: number, _b: number, s: string | undefined): string {
    return s ?? "";
  }

  protected parseNs(ns: string): void {
    this.parsed.s = ns;
  }
}

/** How a descriptor brings its own table implementation (the window operator's contents). */
export const TABLE: unique symbol = Symbol("namespacedTable");

/** A namespaced descriptor with its own table class. */
export type TableDescriptor<T> = ValueStateDescriptor<T> & {
  [TABLE]?: (b: KeyedStateBackend, desc: ValueStateDescriptor<unknown>, layout: StateLayout) => NamespacedRows;
};

/**
 * The namespaced state of a descriptor in a backend (registered on first use, restored like any state).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedStateBackend } from "./keyed_backend.ts";
 * import { namespacedTable, namespacedValueState } from "./namespaced_state.ts";
 * const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
 * const t = namespacedTable(b, namespacedValueState<number>("w"));
 * b.setCurrentKey("a", 3);
 * (t.handle as { put(ns: string, v: number): void }).put("0:60000", 2);
 * assert.deepEqual(t.captureDirty(0).namespaces, ["0:60000"]);
 * ```
 */
export function namespacedTable(b: KeyedStateBackend, desc: TableDescriptor<unknown>): NamespacedRows {
  const existing = b.table(desc.name);
  if (existing instanceof NamespacedRows) return existing;
  const make = desc[TABLE] ?? ((b, d, layout) => new NamespacedTable(b, d, layout));
  return b.registerTable(desc, { ...keyedLayout(desc, b.keyType), namespaced: true }, (layout) => make(b, desc, layout));
}
