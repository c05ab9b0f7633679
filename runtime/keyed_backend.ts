/**
 * The in-memory keyed state backend of one subtask: per state, one `Map` per key group of the subtask's
 * range, plus what changed since the last checkpoint (upserts and deletes) per key group, so an
 * incremental checkpoint costs in proportion to the change, not to the state size.
 *
 * @module
 */
import type { Key, KeyGroupRange } from "../format/key_group.ts";
import { type FieldType, type KeyType, sameLayout, type StateLayout } from "../format/state_layout.ts";
import { type KeyId, keyIdentity, keyText } from "../format/key_identity.ts";
import { IncompatibleSnapshotError, SchemaViolationError, SnapshotFormatError } from "../format/errors.ts";
import { compileValueCheck, explainValue, keyCheck, keyFieldType, type ValueCheck } from "../format/value_check.ts";
import type {
  AggregatingState,
  AggregatingStateDescriptor,
  KeyedStateDescriptor,
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  ReducingState,
  ReducingStateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from "./state.ts";

/** Rows captured from a state for one chunk, in the shape the chunk encoder takes. */
export interface CapturedRows {
  /** Number of rows. */
  length: number;
  /** Key group per row, ascending. */
  keyGroups: number[];
  /** Key per row. */
  keys: unknown[];
  /** Namespace per row (namespaced state: windows, timers). */
  namespaces?: string[];
  /** User key per row (map state). */
  userKeys?: unknown[];
  /** 0 upsert / 1 delete per row (delta chunks). */
  ops?: Uint8Array;
  /** Value per row (null on deletes). */
  values: unknown[];
}

interface Entry {
  key: unknown;
  value: unknown;
  /** The change epoch in which the entry was last put on a dirty list (-1: never). */
  epoch: number;
  /** False once removed from its table (it then stands for a delete on the dirty list). */
  live: boolean;
  /**
   * The capture generation whose copy-on-access already gave this entry a value of its own (0: none):
   * see {@link StateTable.holdCaptured}.
   */
  copied: number;
}

interface MapEntry {
  key: unknown;
  map: Map<KeyId, { ukey: unknown; value: unknown }>;
}

interface DirtyMapKey {
  key: unknown;
  ukeys: Map<KeyId, unknown>;
}

/** Per-state bookkeeping of the incremental chain this subtask writes. */
export interface ChainInfo {
  /** Chunks of the last snapshot (restored or written) that overlap this subtask's range. */
  chainLength: number;
  /** Checkpoints since this subtask last wrote a base for the state. */
  sinceBase: number;
  /** The next checkpoint must write a base (after a failed checkpoint or a restore from elsewhere). */
  forceBase: boolean;
}

/**
 * One registered keyed state of a backend: its entries per key group, what changed, and its chain.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedStateBackend } from "./keyed_backend.ts";
 * import { valueState } from "./state.ts";
 * const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
 * b.getState(valueState<number>("n"));
 * const table = b.table("n")!;
 * assert.equal(table.size(), 0);
 * assert.equal(table.layout.kind, "value");
 * ```
 */
export abstract class StateTable {
  /** The descriptor. */
  readonly desc: KeyedStateDescriptor;
  /** The chunk layout. */
  readonly layout: StateLayout;
  /** Chain bookkeeping. */
  readonly chain: ChainInfo = { chainLength: 0, sinceBase: 0, forceBase: false };
  /** The handle given to user code. */
  abstract readonly handle: unknown;

  constructor(desc: KeyedStateDescriptor, layout: StateLayout) {
    this.desc = desc;
    this.layout = layout;
  }

  /** Number of entries (rows a base would hold). */
  abstract size(): number;
  /** Number of changed rows since the last capture. */
  abstract dirtySize(): number;
  /** Every row, sorted by key group. */
  abstract captureAll(start: number): CapturedRows;
  /**
   * Makes rows just captured by reference safe to encode later, if this table can do it without copying
   * them now: from here on it gives user code a copy (`copy`) of a captured value on its first access,
   * instead of the capture copying every value at the barrier. Returns the release to call once the
   * captured rows are encoded (or dropped), or null: the table cannot, the capture must copy the values.
   */
  holdCaptured(_copy: (v: unknown) => unknown): (() => void) | null {
    return null;
  }
  /** The changed rows (upserts and deletes), sorted by key group. */
  abstract captureDirty(start: number): CapturedRows;
  /** Forgets what changed. */
  abstract clearDirty(): void;
  /** Loads restored rows (replacing nothing: the table is empty). */
  abstract restore(start: number, end: number, rows: RestoredRows): void;
  /** Takes the entries of a restore loaded before registration (replacing nothing: the table is empty). */
  adopt(restored: RestoredTables): void {
    throw new TypeError(`Cannot restore ${this.desc.kind} state ${JSON.stringify(this.desc.name)} from prebuilt ${restored.map ? "map" : "single-value"} tables: only plain (not namespaced) states are loaded before registration`);
  }
}

/** Loads rows into per-key-group tables of one entry per key (value, list, reducing, aggregating state). */
function fillSingle(tables: (Map<KeyId, Entry> | undefined)[], start: number, end: number, rows: RestoredRows, list: boolean): void {
  const kgs = rows.keyGroups!;
  const keys = rows.keys!;
  const values = rows.values;
  for (let i = 0; i < rows.length; i++) {
    const kg = kgs[i];
    if (kg < start || kg > end) continue;
    const g = kg - start;
    const m = (tables[g] ??= new Map());
    const v = values[i];
    m.set(keyIdentity(keys[i]), { key: keys[i], value: list && Array.isArray(v) ? v.slice() : v, epoch: -1, live: true, copied: 0 });
  }
}

/** Loads rows into per-key-group tables of one user-key map per key (map state). */
function fillMap(tables: (Map<KeyId, MapEntry> | undefined)[], start: number, end: number, rows: RestoredRows, name: string): void {
  const kgs = rows.keyGroups!;
  const keys = rows.keys!;
  const ukeys = rows.userKeys;
  if (!ukeys && rows.length === 0) return; // a state whose manifest entry lists no chunks (emptied everywhere)
  if (!ukeys) throw new SnapshotFormatError(`map state ${JSON.stringify(name)} was restored without user keys`);
  for (let i = 0; i < rows.length; i++) {
    const kg = kgs[i];
    if (kg < start || kg > end) continue;
    const g = kg - start;
    const m = (tables[g] ??= new Map());
    const id = keyIdentity(keys[i]);
    let e = m.get(id);
    if (e === undefined) {
      e = { key: keys[i], map: new Map() };
      m.set(id, e);
    }
    e.map.set(keyIdentity(ukeys[i]), { ukey: ukeys[i], value: rows.values[i] });
  }
}

/**
 * A plain keyed state's restored entries, built batch by batch while the snapshot is read, before the job's
 * code registers the state: the rows of a batch become entries and the batch is dropped, so a restore
 * holds one batch of decoded rows beyond the state itself, not every row of the subtask's range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedStateBackend, RestoredTables } from "./keyed_backend.ts";
 * import { valueState } from "./state.ts";
 * const restored = new RestoredTables({ start: 0, end: 127 }, "value", "n");
 * restored.add({ length: 2, keyGroups: [3, 9], keys: ["a", "b"], values: [1, 2] });
 * const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
 * b.stageRestored("n", { kind: "value", keyType: "string", value: { encoding: "msgpack" } }, 1, restored, 0, false);
 * b.getState(valueState<number>("n"));
 * assert.equal(b.table("n")!.size(), 2);
 * ```
 */
export class RestoredTables {
  /** Whether the entries are map state's (one user-key map per key). */
  readonly map: boolean;
  /** Entries per key group of the range (index: key group − range start). */
  readonly tables: (Map<KeyId, Entry> | Map<KeyId, MapEntry> | undefined)[];
  readonly #range: KeyGroupRange;
  readonly #list: boolean;
  readonly #name: string;

  /** Empty tables for the key groups of `range`, for a state of `kind` named `name`. */
  constructor(range: KeyGroupRange, kind: StateLayout["kind"], name: string) {
    this.#range = range;
    this.map = kind === "map";
    this.#list = kind === "list";
    this.#name = name;
    this.tables = new Array(range.end - range.start + 1).fill(undefined);
  }

  /** Adds a batch of restored rows (sorted by key group, deletes applied; rows outside the range skipped). */
  add(rows: RestoredRows): void {
    const { start, end } = this.#range;
    if (this.map) fillMap(this.tables as (Map<KeyId, MapEntry> | undefined)[], start, end, rows, this.#name);
    else fillSingle(this.tables as (Map<KeyId, Entry> | undefined)[], start, end, rows, this.#list);
  }
}

/** Restored rows of one state (sorted by key group, deletes applied). */
export interface RestoredRows {
  readonly length: number;
  readonly keyGroups?: ArrayLike<number>;
  readonly keys?: readonly unknown[];
  readonly namespaces?: readonly string[];
  readonly userKeys?: readonly unknown[];
  readonly values: readonly unknown[];
}

function emptyRows(delta: boolean): CapturedRows {
  return delta ? { length: 0, keyGroups: [], keys: [], values: [], ops: new Uint8Array(0) } : { length: 0, keyGroups: [], keys: [], values: [] };
}

/** The check of a state's values (list state: of one element), or null when any value goes (msgpack). */
export function valueCheckOf(desc: KeyedStateDescriptor): ValueCheck | null {
  return desc.value.encoding === "arrow" ? compileValueCheck(desc.value.type) : null;
}

/**
 * The error for a value a typed state cannot hold, raised where user code stores it: a checkpoint could
 * not encode it later, and a job without checkpoints would keep it silently.
 */
export function refused(b: KeyedStateBackend, desc: KeyedStateDescriptor, call: string, value: unknown, what = "value"): SchemaViolationError {
  const type = what === "user key" ? keyFieldType((desc as MapStateDescriptor<unknown, unknown>).userKeyType)! : (desc.value as { type: FieldType }).type;
  const why = explainValue(type, value, false, what) ?? `${what} does not fit ${JSON.stringify(type)}`;
  return new SchemaViolationError(
    desc.name,
    keyText(b.key),
    `${call} was given a ${what} its schema cannot hold: ${why}. Store a ${what} of the declared type, or change the state's schema (the \`${what === "user key" ? "userKeyType" : "value"}\` option of its descriptor) and migrate existing snapshots`,
  );
}

/**
 * Value, list, reducing and aggregating state: one row per key. Changes are tracked by epoch: an entry
 * changed for the first time since the last capture goes on its key group's dirty list (a removed entry
 * stays there as a delete), so repeated updates of a hot key cost one comparison, not a hash lookup.
 */
class SingleTable extends StateTable {
  readonly tables: (Map<KeyId, Entry> | undefined)[];
  dirty: (Entry[] | undefined)[] | null;
  readonly handle: unknown;
  /** The check of a stored value (list state: of one element); null for msgpack values. */
  readonly check: ValueCheck | null;
  private readonly b: KeyedStateBackend;
  private epoch = 0;
  /** The backend's `keySeq` when {@link SingleTable.cached} was looked up (-1: nothing cached). */
  private cachedSeq = -1;
  private cached: Entry | undefined = undefined;
  /**
   * Copy-on-access while captured rows may still be encoded (as Flink's copy-on-write state map): the
   * copier, or null when no captured rows hold this table's values by reference. `holdGen` numbers the
   * captures; an entry whose `copied` is not the current one still shares its value with the capture.
   */
  private hold: ((v: unknown) => unknown) | null = null;
  private holdGen = 0;

  constructor(b: KeyedStateBackend, desc: KeyedStateDescriptor, layout: StateLayout) {
    super(desc, layout);
    this.b = b;
    this.tables = new Array(b.groups).fill(undefined);
    this.dirty = b.trackChanges ? new Array(b.groups).fill(undefined) : null;
    this.check = valueCheckOf(desc);
    switch (desc.kind) {
      case "value":
        this.handle = new ValueHandle(b, this);
        break;
      case "list":
        this.handle = new ListHandle(b, this);
        break;
      case "reducing":
        this.handle = new ReducingHandle(b, this, desc.reduce);
        break;
      case "aggregating":
        this.handle = new AggregatingHandle(b, this, desc.aggregate);
        break;
      default:
        throw new TypeError(`Cannot create a single-value table for ${desc.kind} state`);
    }
  }

  /**
   * The current key's entry. A record's state access reads and then writes the same key; the entry
   * found is kept until the key changes, so the write costs no second hash lookup of the key (string
   * keys are fresh strings per record, hashed and compared on every Map lookup).
   */
  entry(): Entry | undefined {
    const e = this.find();
    // Every way user code reaches a stored value goes through here: one still shared with captured rows
    // is replaced by a copy first, so changing it in place cannot change the snapshot being encoded.
    if (e !== undefined && this.hold !== null && e.copied !== this.holdGen) {
      e.value = this.hold(e.value);
      e.copied = this.holdGen;
    }
    return e;
  }

  /** The current key's entry as stored, for writes that replace or remove its value (nothing to copy). */
  private find(): Entry | undefined {
    const b = this.b;
    if (this.cachedSeq === b.keySeq) return this.cached;
    const m = this.tables[b.kgi];
    const e = m === undefined ? undefined : m.get(b.keyId);
    this.cachedSeq = b.keySeq;
    this.cached = e;
    return e;
  }

  override holdCaptured(copy: (v: unknown) => unknown): () => void {
    const gen = ++this.holdGen;
    this.hold = copy;
    return () => {
      if (this.holdGen === gen) this.hold = null;
    };
  }

  get(): unknown {
    const e = this.entry();
    return e === undefined ? undefined : e.value;
  }

  set(value: unknown): void {
    const b = this.b;
    // A new value replaces the captured one, which stays the snapshot's: no copy of it is needed.
    let e = this.find();
    if (e !== undefined) {
      e.value = value;
      e.copied = this.holdGen;
    } else {
      let m = this.tables[b.kgi];
      if (m === undefined) m = this.tables[b.kgi] = new Map();
      e = { key: b.key, value, epoch: -1, live: true, copied: this.holdGen };
      m.set(b.keyId, e);
      this.cached = e;
    }
    if (this.dirty !== null && e.epoch !== this.epoch) this.mark(e);
  }

  /** Marks an entry changed (after an in-place change of its value). */
  touch(e: Entry): void {
    if (this.dirty !== null && e.epoch !== this.epoch) this.mark(e);
  }

  private mark(e: Entry): void {
    e.epoch = this.epoch;
    const g = this.b.kgi;
    const list = this.dirty![g];
    if (list === undefined) this.dirty![g] = [e];
    else list.push(e);
  }

  remove(): void {
    const b = this.b;
    const e = this.find();
    if (e === undefined) return;
    this.tables[b.kgi]!.delete(b.keyId);
    this.cached = undefined;
    e.live = false;
    if (this.dirty !== null && e.epoch !== this.epoch) this.mark(e);
  }

  size(): number {
    let n = 0;
    for (const m of this.tables) if (m) n += m.size;
    return n;
  }

  dirtySize(): number {
    let n = 0;
    if (this.dirty) {
      for (let g = 0; g < this.dirty.length; g++) {
        const list = this.dirty[g];
        if (list) for (const e of list) if (e.live || !this.tables[g]?.has(keyIdentity(e.key))) n++;
      }
    }
    return n;
  }

  captureAll(start: number): CapturedRows {
    const n = this.size();
    const keyGroups: number[] = new Array(n);
    const keys: unknown[] = new Array(n);
    const values: unknown[] = new Array(n);
    let i = 0;
    const tables = this.tables;
    for (let g = 0; g < tables.length; g++) {
      const m = tables[g];
      if (m === undefined || m.size === 0) continue;
      const kg = start + g;
      for (const e of m.values()) {
        keyGroups[i] = kg;
        keys[i] = e.key;
        values[i] = e.value;
        i++;
      }
    }
    return { length: n, keyGroups, keys, values };
  }

  captureDirty(start: number): CapturedRows {
    const dirty = this.dirty;
    if (dirty === null) return emptyRows(true);
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const values: unknown[] = [];
    const opList: number[] = [];
    for (let g = 0; g < dirty.length; g++) {
      const list = dirty[g];
      if (list === undefined) continue;
      const m = this.tables[g];
      const kg = start + g;
      for (const e of list) {
        if (e.live) {
          keyGroups.push(kg);
          keys.push(e.key);
          values.push(e.value);
          opList.push(0);
        } else if (m === undefined || !m.has(keyIdentity(e.key))) {
          // removed and not re-created (a re-created key has its own live entry on the list)
          keyGroups.push(kg);
          keys.push(e.key);
          values.push(null);
          opList.push(1);
        }
      }
    }
    return { length: keys.length, keyGroups, keys, values, ops: Uint8Array.from(opList) };
  }

  clearDirty(): void {
    if (this.dirty) this.dirty.fill(undefined);
    this.epoch++;
  }

  restore(start: number, end: number, rows: RestoredRows): void {
    this.cachedSeq = -1;
    fillSingle(this.tables, start, end, rows, this.desc.kind === "list");
  }

  override adopt(restored: RestoredTables): void {
    if (restored.map) super.adopt(restored);
    this.cachedSeq = -1;
    const from = restored.tables as (Map<KeyId, Entry> | undefined)[];
    for (let g = 0; g < from.length; g++) if (from[g] !== undefined) this.tables[g] = from[g];
  }
}

class ValueHandle<T> implements ValueState<T> {
  private readonly check: ValueCheck | null;
  constructor(private readonly b: KeyedStateBackend, private readonly t: SingleTable) {
    this.check = t.check;
  }
  value(): T | undefined {
    this.b.checkKey();
    return this.t.get() as T | undefined;
  }
  update(value: T | undefined | null): void {
    this.b.checkKey();
    if (value === undefined || value === null) this.t.remove();
    else {
      if (this.check !== null && !this.check(value)) throw refused(this.b, this.t.desc, "update()", value);
      this.t.set(value);
    }
  }
  clear(): void {
    this.b.checkKey();
    this.t.remove();
  }
}

const NO_ITEMS: readonly never[] = Object.freeze([]);

class ListHandle<T> implements ListState<T> {
  constructor(private readonly b: KeyedStateBackend, private readonly t: SingleTable) {}
  get(): readonly T[] {
    this.b.checkKey();
    return (this.t.get() as T[] | undefined) ?? NO_ITEMS;
  }
  add(value: T): void {
    this.b.checkKey();
    const check = this.t.check;
    if (check !== null && !check(value)) throw refused(this.b, this.t.desc, "add()", value, "list element");
    const e = this.t.entry();
    if (e === undefined) this.t.set([value]);
    else {
      (e.value as T[]).push(value);
      this.t.touch(e);
    }
  }
  addAll(values: readonly T[]): void {
    this.b.checkKey();
    if (values.length === 0) return;
    this.checkAll("addAll()", values);
    const e = this.t.entry();
    if (e === undefined) this.t.set(values.slice());
    else {
      for (const v of values) (e.value as T[]).push(v);
      this.t.touch(e);
    }
  }
  update(values: readonly T[]): void {
    this.b.checkKey();
    if (values.length === 0) this.t.remove();
    else {
      this.checkAll("update()", values);
      this.t.set(values.slice());
    }
  }
  private checkAll(call: string, values: readonly T[]): void {
    const check = this.t.check;
    if (check === null) return;
    for (let i = 0; i < values.length; i++) if (!check(values[i])) throw refused(this.b, this.t.desc, call, values[i], "list element");
  }
  clear(): void {
    this.b.checkKey();
    this.t.remove();
  }
}

class ReducingHandle<T> implements ReducingState<T> {
  constructor(private readonly b: KeyedStateBackend, private readonly t: SingleTable, private readonly reduce: (a: T, v: T) => T) {}
  get(): T | undefined {
    this.b.checkKey();
    return this.t.get() as T | undefined;
  }
  add(value: T): void {
    this.b.checkKey();
    const cur = this.t.get() as T | undefined;
    const next = cur === undefined ? value : this.reduce(cur, value);
    const check = this.t.check;
    if (check !== null && !check(next)) throw refused(this.b, this.t.desc, cur === undefined ? "add()" : "add() (the result of reduce)", next);
    this.t.set(next);
  }
  clear(): void {
    this.b.checkKey();
    this.t.remove();
  }
}

class AggregatingHandle<IN, ACC, OUT> implements AggregatingState<IN, OUT> {
  constructor(
    private readonly b: KeyedStateBackend,
    private readonly t: SingleTable,
    private readonly agg: { createAccumulator(): ACC; add(v: IN, acc: ACC): ACC; getResult(acc: ACC): OUT },
  ) {}
  get(): OUT | undefined {
    this.b.checkKey();
    const acc = this.t.get() as ACC | undefined;
    return acc === undefined ? undefined : this.agg.getResult(acc);
  }
  add(value: IN): void {
    this.b.checkKey();
    const cur = this.t.get() as ACC | undefined;
    const acc = this.agg.add(value, cur === undefined ? this.agg.createAccumulator() : cur);
    const check = this.t.check;
    if (check !== null && !check(acc)) throw refused(this.b, this.t.desc, "add() (the accumulator)", acc, "accumulator");
    this.t.set(acc);
  }
  clear(): void {
    this.b.checkKey();
    this.t.remove();
  }
}

/** Map state: one row per (key, user key). */
class MapTable extends StateTable {
  readonly tables: (Map<KeyId, MapEntry> | undefined)[];
  dirty: (Map<KeyId, DirtyMapKey> | undefined)[] | null;
  readonly handle: unknown;
  /** The check of a value; null for msgpack values. */
  readonly check: ValueCheck | null;
  /** The check of a user key; null for msgpack user keys. */
  readonly checkUserKey: ValueCheck | null;
  private readonly b: KeyedStateBackend;

  constructor(b: KeyedStateBackend, desc: MapStateDescriptor<unknown, unknown>, layout: StateLayout) {
    super(desc, layout);
    this.b = b;
    this.tables = new Array(b.groups).fill(undefined);
    this.dirty = b.trackChanges ? new Array(b.groups).fill(undefined) : null;
    this.check = valueCheckOf(desc);
    this.checkUserKey = keyCheck(desc.userKeyType) ?? null;
    this.handle = new MapHandle(b, this);
  }

  current(): MapEntry | undefined {
    const m = this.tables[this.b.kgi];
    return m === undefined ? undefined : m.get(this.b.keyId);
  }

  currentOrNew(): MapEntry {
    const b = this.b;
    let m = this.tables[b.kgi];
    if (m === undefined) m = this.tables[b.kgi] = new Map();
    let e = m.get(b.keyId);
    if (e === undefined) {
      e = { key: b.key, map: new Map() };
      m.set(b.keyId, e);
    }
    return e;
  }

  dropIfEmpty(e: MapEntry): void {
    if (e.map.size === 0) this.tables[this.b.kgi]?.delete(this.b.keyId);
  }

  touch(ukid: KeyId, ukey: unknown): void {
    const dirty = this.dirty;
    if (dirty === null) return;
    const b = this.b;
    let d = dirty[b.kgi];
    if (d === undefined) d = dirty[b.kgi] = new Map();
    let k = d.get(b.keyId);
    if (k === undefined) {
      k = { key: b.key, ukeys: new Map() };
      d.set(b.keyId, k);
    }
    k.ukeys.set(ukid, ukey);
  }

  size(): number {
    let n = 0;
    for (const m of this.tables) if (m) for (const e of m.values()) n += e.map.size;
    return n;
  }

  dirtySize(): number {
    let n = 0;
    if (this.dirty) for (const d of this.dirty) if (d) for (const k of d.values()) n += k.ukeys.size;
    return n;
  }

  captureAll(start: number): CapturedRows {
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const userKeys: unknown[] = [];
    const values: unknown[] = [];
    for (let g = 0; g < this.tables.length; g++) {
      const m = this.tables[g];
      if (m === undefined) continue;
      const kg = start + g;
      for (const e of m.values()) {
        for (const u of e.map.values()) {
          keyGroups.push(kg);
          keys.push(e.key);
          userKeys.push(u.ukey);
          values.push(u.value);
        }
      }
    }
    return { length: keys.length, keyGroups, keys, userKeys, values };
  }

  captureDirty(start: number): CapturedRows {
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const userKeys: unknown[] = [];
    const values: unknown[] = [];
    const opList: number[] = [];
    if (this.dirty) {
      for (let g = 0; g < this.dirty.length; g++) {
        const d = this.dirty[g];
        if (d === undefined) continue;
        const m = this.tables[g];
        const kg = start + g;
        for (const [id, k] of d) {
          const e = m?.get(id);
          for (const [ukid, ukey] of k.ukeys) {
            const u = e?.map.get(ukid);
            keyGroups.push(kg);
            keys.push(k.key);
            userKeys.push(ukey);
            if (u === undefined) {
              opList.push(1);
              values.push(null);
            } else {
              opList.push(0);
              values.push(u.value);
            }
          }
        }
      }
    }
    return { length: keys.length, keyGroups, keys, userKeys, values, ops: Uint8Array.from(opList) };
  }

  clearDirty(): void {
    if (this.dirty) this.dirty.fill(undefined);
  }

  restore(start: number, end: number, rows: RestoredRows): void {
    fillMap(this.tables, start, end, rows, this.desc.name);
  }

  override adopt(restored: RestoredTables): void {
    if (!restored.map) super.adopt(restored);
    const from = restored.tables as (Map<KeyId, MapEntry> | undefined)[];
    for (let g = 0; g < from.length; g++) if (from[g] !== undefined) this.tables[g] = from[g];
  }
}

class MapHandle<UK, V> implements MapState<UK, V> {
  constructor(private readonly b: KeyedStateBackend, private readonly t: MapTable) {}
  get(userKey: UK): V | undefined {
    this.b.checkKey();
    return this.t.current()?.map.get(keyIdentity(userKey))?.value as V | undefined;
  }
  put(userKey: UK, value: V): void {
    this.b.checkKey();
    if (userKey === undefined || userKey === null) throw new TypeError("Cannot put into map state as the user key is null or undefined");
    const t = this.t;
    if (t.checkUserKey !== null && !t.checkUserKey(userKey)) throw refused(this.b, t.desc, "put()", userKey, "user key");
    if (t.check !== null && !t.check(value)) throw refused(this.b, t.desc, "put()", value);
    const e = this.t.currentOrNew();
    const id = keyIdentity(userKey);
    const u = e.map.get(id);
    if (u) u.value = value;
    else e.map.set(id, { ukey: userKey, value });
    this.t.touch(id, userKey);
  }
  remove(userKey: UK): void {
    this.b.checkKey();
    const e = this.t.current();
    if (!e) return;
    const id = keyIdentity(userKey);
    if (e.map.delete(id)) {
      this.t.touch(id, userKey);
      this.t.dropIfEmpty(e);
    }
  }
  contains(userKey: UK): boolean {
    this.b.checkKey();
    return this.t.current()?.map.has(keyIdentity(userKey)) ?? false;
  }
  *entries(): IterableIterator<[UK, V]> {
    this.b.checkKey();
    const e = this.t.current();
    if (e) for (const u of [...e.map.values()]) yield [u.ukey as UK, u.value as V];
  }
  *keys(): IterableIterator<UK> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }
  size(): number {
    this.b.checkKey();
    return this.t.current()?.map.size ?? 0;
  }
  isEmpty(): boolean {
    return this.size() === 0;
  }
  clear(): void {
    this.b.checkKey();
    const e = this.t.current();
    if (!e) return;
    for (const [id, u] of e.map) this.t.touch(id, u.ukey);
    e.map.clear();
    this.t.dropIfEmpty(e);
  }
}

/**
 * The layout of a keyed state's chunks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyedLayout } from "./keyed_backend.ts";
 * import { mapState } from "./state.ts";
 * assert.equal(keyedLayout(mapState<string, number>("m"), "string").userKeyType, "string");
 * ```
 */
export function keyedLayout(desc: KeyedStateDescriptor, keyType: KeyType): StateLayout {
  return desc.kind === "map"
    ? { kind: "map", keyType, userKeyType: desc.userKeyType, value: desc.value }
    : { kind: desc.kind, keyType, value: desc.value };
}

/**
 * The keyed state of one subtask: the key-group range it owns, its registered states, and the current key
 * (set by the runtime before each record).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedStateBackend } from "./keyed_backend.ts";
 * import { valueState } from "./state.ts";
 * const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
 * const count = b.getState(valueState<number>("count"));
 * b.setCurrentKey("user-1", 5);
 * count.update((count.value() ?? 0) + 1);
 * assert.equal(count.value(), 1);
 * assert.equal(b.table("count")!.dirtySize(), 1);
 * ```
 */
export class KeyedStateBackend {
  /** The key groups owned. */
  readonly range: KeyGroupRange;
  /** Number of key groups owned. */
  readonly groups: number;
  /** The key type of the stream. */
  readonly keyType: KeyType;
  /** Whether changes are tracked (incremental checkpoints on). */
  readonly trackChanges: boolean;
  /** Current key group index (key group − range start). */
  kgi = -1;
  /** Current key's map identity. */
  keyId: KeyId = "";
  /** Current key. */
  key: unknown = undefined;
  /** Changes whenever the current key does: tables cache the current key's entry under it. */
  keySeq = 0;
  private readonly tables = new Map<string, StateTable>();
  private readonly restored = new Map<string, { layout: StateLayout; schemaVersion: number; rows: RestoredRows | RestoredTables; chainLength: number; forceBase: boolean }>();

  /** Creates an empty backend for a key-group range. */
  constructor(range: KeyGroupRange, keyType: KeyType, trackChanges: boolean) {
    this.range = range;
    this.groups = range.end - range.start + 1;
    this.keyType = keyType;
    this.trackChanges = trackChanges;
  }

  /** Sets the key of the record about to be processed. */
  setCurrentKey(key: unknown, keyGroup: number): void {
    this.keySeq++;
    this.key = key;
    this.kgi = keyGroup - this.range.start;
    const t = typeof key;
    this.keyId = t === "string" || t === "number" ? (key as string | number) : keyIdentity(key);
  }

  /** Forgets the current key (state access outside a record is an error). */
  clearCurrentKey(): void {
    this.keySeq++;
    this.kgi = -1;
  }

  /** Throws unless a key is current. */
  checkKey(): void {
    if (this.kgi < 0) throw new TypeError("Cannot access keyed state as no key is current: keyed state is readable only while processing a record");
  }

  /** A registered state by name. */
  table(name: string): StateTable | undefined {
    return this.tables.get(name);
  }

  /** All registered states. */
  all(): IterableIterator<StateTable> {
    return this.tables.values();
  }

  /** Names restored but not (yet) registered. */
  pendingRestored(): string[] {
    return [...this.restored.keys()];
  }

  /**
   * Stages a state's restored rows, or its entries already built ({@linkcode RestoredTables}, plain states
   * only); they are loaded when the state is registered.
   */
  stageRestored(name: string, layout: StateLayout, schemaVersion: number, rows: RestoredRows | RestoredTables, chainLength: number, forceBase: boolean): void {
    this.restored.set(name, { layout, schemaVersion, rows, chainLength, forceBase });
  }

  /** Drops staged restored rows that were not registered. */
  dropPendingRestored(): void {
    this.restored.clear();
  }

  private register(desc: KeyedStateDescriptor): StateTable {
    // Hot path (user code calls getState per record): no allocation when the state is registered.
    const existing = this.tables.get(desc.name);
    if (existing !== undefined && existing.desc.kind === desc.kind && existing.layout.namespaced !== true) return existing;
    return this.registerTable(desc, keyedLayout(desc, this.keyType), (layout) => desc.kind === "map" ? new MapTable(this, desc, layout) : new SingleTable(this, desc, layout));
  }

  /**
   * Registers a state table made by `make` (namespaced state of windows and timers lives in its own
   * module), loading restored rows of the same name; returns the existing table when registered twice.
   */
  registerTable<T extends StateTable>(desc: KeyedStateDescriptor, layout: StateLayout, make: (layout: StateLayout) => T): T {
    const existing = this.tables.get(desc.name);
    if (existing) {
      if (existing.desc.kind !== desc.kind || existing.layout.namespaced !== layout.namespaced) {
        throw new TypeError(`Cannot register ${desc.kind} state ${JSON.stringify(desc.name)} as a ${existing.desc.kind} state of that name exists`);
      }
      return existing as T;
    }
    const table = make(layout);
    const r = this.restored.get(desc.name);
    if (r) {
      this.restored.delete(desc.name);
      if (!sameLayout(r.layout, layout) || r.schemaVersion !== desc.schemaVersion) {
        throw new IncompatibleSnapshotError(
          `Cannot restore state ${JSON.stringify(desc.name)} as its layout changed: snapshot ${describe(r.layout)} v${r.schemaVersion}, job ${describe(layout)} v${desc.schemaVersion}; ` +
            "migrate the snapshot first (`arrowpoint migrate`) or give the state a new name",
        );
      }
      if (r.rows instanceof RestoredTables) table.adopt(r.rows);
      else table.restore(this.range.start, this.range.end, r.rows);
      table.chain.chainLength = r.chainLength;
      table.chain.forceBase = r.forceBase;
    }
    this.tables.set(desc.name, table);
    return table;
  }

  /** The value state of a descriptor (registering it on first use). */
  getState<T>(desc: ValueStateDescriptor<T>): ValueState<T> {
    return this.register(desc).handle as ValueState<T>;
  }
  /** The list state of a descriptor. */
  getListState<T>(desc: ListStateDescriptor<T>): ListState<T> {
    return this.register(desc).handle as ListState<T>;
  }
  /** The map state of a descriptor. */
  getMapState<UK, V>(desc: MapStateDescriptor<UK, V>): MapState<UK, V> {
    return this.register(desc as MapStateDescriptor<unknown, unknown>).handle as MapState<UK, V>;
  }
  /** The reducing state of a descriptor. */
  getReducingState<T>(desc: ReducingStateDescriptor<T>): ReducingState<T> {
    return this.register(desc).handle as ReducingState<T>;
  }
  /** The aggregating state of a descriptor. */
  getAggregatingState<IN, ACC, OUT>(desc: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT> {
    return this.register(desc).handle as AggregatingState<IN, OUT>;
  }
}

/**
 * JSON with object keys sorted, so equal structures give equal text whatever their key order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stableStringify } from "./keyed_backend.ts";
 * assert.equal(stableStringify({ b: 1, a: [2] }), '{"a":[2],"b":1}');
 * ```
 */
export function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return "[" + v.map(stableStringify).join(",") + "]";
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return "{" + Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => JSON.stringify(k) + ":" + stableStringify(o[k])).join(",") + "}";
  }
  return JSON.stringify(v) ?? "null";
}

function describe(l: StateLayout): string {
  return stableStringify({ kind: l.kind, keyType: l.keyType, userKeyType: l.userKeyType, namespaced: l.namespaced === true ? true : undefined, value: l.value });
}
