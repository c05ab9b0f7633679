/**
 * Namespaced keyed state: one value per (key, namespace). Windows keep their contents here (namespace =
 * the window) and timers their entries (namespace = domain and time), so both are ordinary keyed state in
 * snapshots (the chunk's `ns` column) and every tool (rekey, validate, export, diff) handles them as such.
 *
 * @module
 */
import { type CapturedRows, type KeyedStateBackend, type RestoredRows, StateTable } from "./keyed_backend.ts";
import { type KeyId, keyIdentity } from "../format/key_identity.ts";
import { valueState, type StateOptions, type ValueStateDescriptor } from "./state.ts";

interface NsEntry {
  key: unknown;
  ns: string;
  value: unknown;
  epoch: number;
  live: boolean;
}

/**
 * The namespaces of one key: a short array (a key usually has one to a few windows or timers), indexed by a
 * `Map` only once it grows, so the common case allocates no `Map` per key.
 */
interface KeyEntry {
  key: unknown;
  list: NsEntry[];
  index: Map<string, NsEntry> | undefined;
}

const INDEX_FROM = 8;

function find(k: KeyEntry, ns: string): NsEntry | undefined {
  if (k.index !== undefined) return k.index.get(ns);
  const list = k.list;
  for (let i = 0; i < list.length; i++) if (list[i].ns === ns) return list[i];
  return undefined;
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

/** Rows per key group in a `Map` per key, then per namespace; changes tracked by epoch like value state. */
export class NamespacedTable extends StateTable {
  readonly tables: (Map<KeyId, KeyEntry> | undefined)[];
  private readonly dirty: (NsEntry[] | undefined)[] | null;
  private epoch = 0;
  readonly handle: NamespacedValueState<unknown>;

  constructor(private readonly b: KeyedStateBackend, desc: ValueStateDescriptor<unknown>) {
    super(desc, { kind: "value", keyType: b.keyType, namespaced: true, value: desc.value });
    this.tables = new Array(b.groups).fill(undefined);
    this.dirty = b.trackChanges ? new Array(b.groups).fill(undefined) : null;
    this.handle = {
      get: (ns) => {
        b.checkKey();
        return this.getIn(b.kgi, b.keyId, ns);
      },
      put: (ns, value) => {
        b.checkKey();
        if (value === undefined || value === null) this.removeIn(b.kgi, b.keyId, ns);
        else this.putIn(b.kgi, b.keyId, b.key, ns, value);
      },
      remove: (ns) => {
        b.checkKey();
        this.removeIn(b.kgi, b.keyId, ns);
      },
      entries: () => {
        b.checkKey();
        const e = this.tables[b.kgi]?.get(b.keyId);
        return e ? e.list.map((x) => [x.ns, x.value] as [string, unknown]) : [];
      },
    };
  }

  /** The value of (key, namespace) in key group index `g`. */
  getIn(g: number, keyId: KeyId, ns: string): unknown {
    const k = this.tables[g]?.get(keyId);
    return k === undefined ? undefined : find(k, ns)?.value;
  }

  /** Whether (key, namespace) holds a value. */
  has(g: number, keyId: KeyId, ns: string): boolean {
    const k = this.tables[g]?.get(keyId);
    return k !== undefined && find(k, ns) !== undefined;
  }

  /** Sets (key, namespace) in key group index `g`. */
  putIn(g: number, keyId: KeyId, key: unknown, ns: string, value: unknown): void {
    let m = this.tables[g];
    if (m === undefined) m = this.tables[g] = new Map();
    let k = m.get(keyId);
    if (k === undefined) {
      k = { key, list: [], index: undefined };
      m.set(keyId, k);
    }
    let e = find(k, ns);
    if (e !== undefined) e.value = value;
    else {
      e = { key, ns, value, epoch: -1, live: true };
      k.list.push(e);
      if (k.index !== undefined) k.index.set(ns, e);
      else if (k.list.length > INDEX_FROM) k.index = new Map(k.list.map((x) => [x.ns, x]));
    }
    this.mark(g, e);
  }

  /** Removes (key, namespace) from key group index `g`. */
  removeIn(g: number, keyId: KeyId, ns: string): void {
    const m = this.tables[g];
    const k = m?.get(keyId);
    if (k === undefined) return;
    const e = find(k, ns);
    if (e === undefined) return;
    const list = k.list;
    const i = list.indexOf(e);
    list[i] = list[list.length - 1];
    list.pop();
    k.index?.delete(ns);
    if (list.length === 0) m!.delete(keyId);
    e.live = false;
    this.mark(g, e);
  }

  private mark(g: number, e: NsEntry): void {
    if (this.dirty === null || e.epoch === this.epoch) return;
    e.epoch = this.epoch;
    const list = this.dirty[g];
    if (list === undefined) this.dirty[g] = [e];
    else list.push(e);
  }

  /** Every (key group index, key, namespace, value). */
  *rows(): IterableIterator<{ g: number; key: unknown; ns: string; value: unknown }> {
    for (let g = 0; g < this.tables.length; g++) {
      const m = this.tables[g];
      if (m) for (const k of m.values()) for (const e of k.list) yield { g, key: e.key, ns: e.ns, value: e.value };
    }
  }

  size(): number {
    let n = 0;
    for (const m of this.tables) if (m) for (const k of m.values()) n += k.list.length;
    return n;
  }

  dirtySize(): number {
    return this.captureDirty(0).length;
  }

  captureAll(start: number): CapturedRows {
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const namespaces: string[] = [];
    const values: unknown[] = [];
    for (let g = 0; g < this.tables.length; g++) {
      const m = this.tables[g];
      if (m === undefined) continue;
      for (const k of m.values()) {
        for (const e of k.list) {
          keyGroups.push(start + g);
          keys.push(e.key);
          namespaces.push(e.ns);
          values.push(e.value);
        }
      }
    }
    return { length: keys.length, keyGroups, keys, namespaces, values };
  }

  captureDirty(start: number): CapturedRows {
    const keyGroups: number[] = [];
    const keys: unknown[] = [];
    const namespaces: string[] = [];
    const values: unknown[] = [];
    const ops: number[] = [];
    const dirty = this.dirty;
    if (dirty !== null) {
      for (let g = 0; g < dirty.length; g++) {
        const list = dirty[g];
        if (list === undefined) continue;
        for (const e of list) {
          if (e.live) {
            keyGroups.push(start + g);
            keys.push(e.key);
            namespaces.push(e.ns);
            values.push(e.value);
            ops.push(0);
          } else if (!this.has(g, keyIdentity(e.key), e.ns)) {
            // removed and not re-created (a re-created one has its own live entry on the list)
            keyGroups.push(start + g);
            keys.push(e.key);
            namespaces.push(e.ns);
            values.push(null);
            ops.push(1);
          }
        }
      }
    }
    return { length: keys.length, keyGroups, keys, namespaces, values, ops: Uint8Array.from(ops) };
  }

  clearDirty(): void {
    if (this.dirty) this.dirty.fill(undefined);
    this.epoch++;
  }

  restore(start: number, end: number, rows: RestoredRows): void {
    const kgs = rows.keyGroups!;
    const keys = rows.keys!;
    const ns = rows.namespaces ?? [];
    const saved = this.epoch;
    this.epoch = -2; // restored rows are not changes
    for (let i = 0; i < rows.length; i++) {
      const kg = kgs[i];
      if (kg < start || kg > end) continue;
      this.putIn(kg - start, keyIdentity(keys[i]), keys[i], ns[i] ?? "", rows.values[i]);
    }
    if (this.dirty) this.dirty.fill(undefined);
    this.epoch = saved;
  }
}

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
 * t.handle.put("0:60000", 2);
 * assert.deepEqual(t.captureDirty(0).namespaces, ["0:60000"]);
 * ```
 */
export function namespacedTable(b: KeyedStateBackend, desc: ValueStateDescriptor<unknown>): NamespacedTable {
  const existing = b.table(desc.name);
  if (existing instanceof NamespacedTable) return existing;
  return b.registerTable(desc, { kind: "value", keyType: b.keyType, namespaced: true, value: desc.value }, () => new NamespacedTable(b, desc));
}
