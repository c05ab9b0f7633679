/**
 * The one batch type of the read model: rows of one state, column by column, sorted by key group, as the
 * sweep yields them and the writers take them; with stable ordering by key group, range helpers and value
 * equality. Nothing here touches storage.
 *
 * @module
 */
import type { KeyGroupRange } from "../format/key_group.ts";

/** Rows of one keyed state (or operator state, without key columns), column by column. */
export interface Rows {
  /** Number of rows. */
  length: number;
  /** Key group per row, ascending (keyed state). */
  keyGroups?: Uint16Array;
  /** Key per row (keyed state). */
  keys?: unknown[];
  /** Namespace per row (namespaced state). */
  namespaces?: string[];
  /** User key per row (map state). */
  userKeys?: unknown[];
  /** Value per row (list state: the whole list). */
  values: unknown[];
  /** Operator state: the subtask each item came from. */
  subtasks?: number[];
}

/** A batch of rows covering exactly the key groups of `range` (every row of them, none outside). */
export interface RangeBatch {
  /** The key groups this batch is complete for. */
  range: KeyGroupRange;
  /** Index of the window (target range) the batch belongs to. */
  window: number;
  /** The rows, sorted by key group. */
  rows: Rows;
}

/** An empty batch of the given shape. */
export function emptyRows(shape: { namespaced?: boolean; map?: boolean }): Rows {
  return {
    length: 0,
    keyGroups: new Uint16Array(0),
    keys: [],
    namespaces: shape.namespaced ? [] : undefined,
    userKeys: shape.map ? [] : undefined,
    values: [],
  };
}

/** Accumulates row batches (in order) into one `Rows`. */
export class RowBuffer {
  #kgs: number[] = [];
  #keys: unknown[] = [];
  #ns: string[] | undefined;
  #ukeys: unknown[] | undefined;
  #values: unknown[] = [];

  constructor(readonly namespaced: boolean, readonly map: boolean) {
    if (namespaced) this.#ns = [];
    if (map) this.#ukeys = [];
  }

  /** Rows buffered. */
  get length(): number {
    return this.#values.length;
  }

  /** Appends one row. */
  push(kg: number, key: unknown, ns: string | undefined, ukey: unknown, value: unknown): void {
    this.#kgs.push(kg);
    this.#keys.push(key);
    this.#ns?.push(ns ?? "");
    this.#ukeys?.push(ukey);
    this.#values.push(value);
  }

  /** Appends every row of `rows`. */
  append(rows: Rows): void {
    for (let i = 0; i < rows.length; i++) {
      this.push(rows.keyGroups![i], rows.keys![i], rows.namespaces?.[i], rows.userKeys?.[i], rows.values[i]);
    }
  }

  /** The buffered rows; the buffer is empty afterwards. */
  take(): Rows {
    const rows: Rows = {
      length: this.#values.length,
      keyGroups: Uint16Array.from(this.#kgs),
      keys: this.#keys,
      namespaces: this.#ns,
      userKeys: this.#ukeys,
      values: this.#values,
    };
    this.#kgs = [];
    this.#keys = [];
    this.#values = [];
    if (this.namespaced) this.#ns = [];
    if (this.map) this.#ukeys = [];
    return rows;
  }
}

/** Whether key groups are ascending. */
export function isSorted(kgs: ArrayLike<number>): boolean {
  for (let i = 1; i < kgs.length; i++) if (kgs[i - 1] > kgs[i]) return false;
  return true;
}

/** Reorders rows by key group with a stable counting sort (rows of one key group keep their order). */
export function sortByKeyGroup(rows: Rows): Rows {
  const kgs = rows.keyGroups!;
  if (isSorted(kgs)) return rows;
  let max = 0;
  for (let i = 0; i < kgs.length; i++) if (kgs[i] > max) max = kgs[i];
  const counts = new Uint32Array(max + 2);
  for (let i = 0; i < kgs.length; i++) counts[kgs[i] + 1]++;
  for (let g = 1; g < counts.length; g++) counts[g] += counts[g - 1];
  const perm = new Uint32Array(kgs.length);
  for (let i = 0; i < kgs.length; i++) perm[counts[kgs[i]]++] = i;
  return permute(rows, perm);
}

/** The rows in the order of `perm` (indices into `rows`). */
export function permute(rows: Rows, perm: ArrayLike<number>): Rows {
  const n = perm.length;
  const pick = <T>(col: T[] | undefined): T[] | undefined => {
    if (!col) return undefined;
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = col[perm[i]];
    return out;
  };
  const kgs = new Uint16Array(n);
  for (let i = 0; i < n; i++) kgs[i] = rows.keyGroups![perm[i]];
  return {
    length: n,
    keyGroups: kgs,
    keys: pick(rows.keys),
    namespaces: pick(rows.namespaces),
    userKeys: pick(rows.userKeys),
    values: pick(rows.values)!,
  };
}

/** Deep equality of state values: bigint, Uint8Array, arrays, plain objects, NaN equal to NaN. */
export function valuesEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || a === undefined || b === undefined) return (a ?? null) === (b ?? null);
  if (typeof a !== typeof b) return false;
  if (typeof a !== "object") return a === b;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!(Array.isArray(a) && Array.isArray(b)) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!valuesEqual(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!valuesEqual(ao[k], bo[k])) return false;
  return true;
}

/** Whether two ranges are equal. */
export function sameRange(a: KeyGroupRange, b: KeyGroupRange): boolean {
  return a.start === b.start && a.end === b.end;
}

/** The intersection of two ranges, or undefined. */
export function intersect(a: KeyGroupRange, b: KeyGroupRange): KeyGroupRange | undefined {
  const start = Math.max(a.start, b.start);
  const end = Math.min(a.end, b.end);
  return start <= end ? { start, end } : undefined;
}
