/**
 * The benchmark data set: `rows` keyed entries generated deterministically from a seed, the same for every
 * case in a run: keys `user-000123`, an int64 counter, a float64 sum, a label of 50, and a map state.
 *
 * @module
 */
import { assignKeyGroup } from "../format/key_group.ts";

/** One value of the benchmark's main (value) state. */
export interface BenchValue {
  /** An int64 counter. */
  count: bigint;
  /** A float64 sum. */
  sum: number;
  /** One of 50 labels. */
  label: string;
}

/** The generated data set. */
export interface BenchData {
  /** Number of entries in the value state. */
  rows: number;
  /** maxParallelism used for key groups. */
  maxParallelism: number;
  /** The live state: key → value, in shuffled key order (as a running job would hold it). */
  state: Map<string, BenchValue>;
  /** Map state: key → (user key → count), about one entry per ten keys. */
  mapState: Map<string, Map<string, number>>;
  /** Key group of each key. */
  keyGroupOf: Map<string, number>;
  /** The labels. */
  labels: readonly string[];
}

/** A small deterministic PRNG (mulberry32): the same seed gives the same data on every runtime. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Generates the data set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateData } from "./data.ts";
 * const data = generateData(1000, 42);
 * assert.equal(data.state.size, 1000);
 * ```
 */
export function generateData(rows: number, seed = 42, maxParallelism = 128): BenchData {
  const random = prng(seed);
  const width = Math.max(6, String(rows - 1).length);
  const order = Array.from({ length: rows }, (_, i) => i);
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  const labels = Array.from({ length: 50 }, (_, i) => `label-${String(i).padStart(2, "0")}`);
  const state = new Map<string, BenchValue>();
  const keyGroupOf = new Map<string, number>();
  const mapState = new Map<string, Map<string, number>>();
  for (const i of order) {
    const key = `user-${String(i).padStart(width, "0")}`;
    state.set(key, {
      count: BigInt(Math.floor(random() * 1e9)) * 1000n + BigInt(i),
      sum: random() * 1e6,
      label: labels[Math.floor(random() * labels.length)],
    });
    keyGroupOf.set(key, assignKeyGroup(key, maxParallelism));
    if (i % 10 === 0) mapState.set(key, new Map([[`page-${i % 7}`, i], [`page-${(i + 3) % 7}`, i + 1]]));
  }
  return { rows, maxParallelism, state, mapState, keyGroupOf, labels };
}

/**
 * Changes `fraction` of the keys' values in place (deterministically), as a running job would between two
 * checkpoints; returns the changed keys.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateData, touch } from "./data.ts";
 * const data = generateData(1000);
 * assert.equal(touch(data, 0.01, 1).length, 10);
 * ```
 */
export function touch(data: BenchData, fraction: number, seed: number): string[] {
  const random = prng(seed);
  const keys = [...data.state.keys()];
  const n = Math.max(1, Math.round(keys.length * fraction));
  const changed: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = keys[Math.floor(random() * keys.length)];
    const v = data.state.get(key)!;
    data.state.set(key, { count: v.count + 1n, sum: v.sum + 1, label: v.label });
    changed.push(key);
  }
  return changed;
}
