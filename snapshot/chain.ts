/**
 * The one chain model: which chunks of a keyed state a reader applies to which key groups. Bases reset
 * the key groups of their range, deltas (in `order`) upsert and delete. Everything that reasons about a
 * chain without reading it — pruning when a checkpoint is assembled, depth for inspect/ls and restore,
 * coverage and overlaps for validate, "is this a plain set of bases" for the readers — is here.
 *
 * @module
 */
import type { KeyGroupRange } from "../format/key_group.ts";

/** The part of a chunk entry the chain model looks at (a `ChunkRef` is one). */
export interface ChainLink {
  /** Key groups covered (absent for operator state). */
  readonly keyGroupRange?: KeyGroupRange;
  /** `base` resets its range, `delta` upserts and deletes. */
  readonly type: "base" | "delta";
  /** Apply order. */
  readonly order: number;
}

/**
 * Whether chunks are a plain set of rows: every one a base, no two covering one key group (no chain to
 * apply, they are concatenated).
 *
 * @example
 * ```ts
 * import { isPlainBaseSet } from "./chain.ts";
 * const b = (start: number, end: number) => ({ type: "base" as const, order: 1, keyGroupRange: { start, end } });
 * console.log(isPlainBaseSet([b(0, 63), b(64, 127)]), isPlainBaseSet([b(0, 63), b(60, 127)])); // true false
 * ```
 */
export function isPlainBaseSet(chunks: readonly ChainLink[]): boolean {
  if (chunks.some((c) => c.type !== "base")) return false;
  const sorted = [...chunks].sort((a, b) => a.keyGroupRange!.start - b.keyGroupRange!.start);
  for (let i = 1; i < sorted.length; i++) if (sorted[i].keyGroupRange!.start <= sorted[i - 1].keyGroupRange!.end) return false;
  return true;
}

/**
 * The chunks a snapshot needs: walking from the newest, a chunk is kept while any key group of its range
 * is not yet covered by a newer base; bases cover their range. Returned in apply order.
 *
 * @example
 * ```ts
 * import { pruneChain } from "./chain.ts";
 * const c = (path: string, type: "base" | "delta", order: number, start: number, end: number) =>
 *   ({ path, type, order, keyGroupRange: { start, end }, rows: 1, bytes: 1, checksum: "crc32:0", compression: "none" as const });
 * const kept = pruneChain([c("b1", "base", 1, 0, 127), c("d2", "delta", 2, 0, 127), c("b3", "base", 3, 0, 63)], 128);
 * console.log(kept.map((x) => x.path)); // ["b1", "d2", "b3"]: key groups 64..127 still need b1 and d2
 * ```
 */
export function pruneChain<C extends ChainLink>(chunks: readonly C[], maxParallelism: number): C[] {
  const sorted = [...chunks].sort((a, b) => b.order - a.order || (b.type === "base" ? 1 : 0) - (a.type === "base" ? 1 : 0));
  const covered = new Uint8Array(maxParallelism);
  const keep: C[] = [];
  for (const c of sorted) {
    const r = c.keyGroupRange;
    if (!r) {
      keep.push(c);
      continue;
    }
    let needed = false;
    for (let kg = Math.max(0, r.start); kg <= Math.min(maxParallelism - 1, r.end); kg++) {
      if (covered[kg] === 0) {
        needed = true;
        break;
      }
    }
    if (!needed) continue;
    keep.push(c);
    if (c.type === "base") covered.fill(1, r.start, r.end + 1);
  }
  return keep.sort((a, b) => a.order - b.order || (a.keyGroupRange?.start ?? 0) - (b.keyGroupRange?.start ?? 0));
}

/**
 * How many of `ranges` cover each key group `0..size-1`, by a difference array: O(ranges + size), whatever
 * the ranges (clipped to `[0, size)`). `weight` gives each range's contribution per key group (default 1).
 *
 * @example
 * ```ts
 * import { coverage } from "./chain.ts";
 * console.log([...coverage([{ start: 0, end: 1 }, { start: 1, end: 2 }], 4)]); // [1, 2, 1, 0]
 * ```
 */
export function coverage(ranges: readonly KeyGroupRange[], size: number, weight?: (i: number) => number): Float64Array {
  const diff = new Float64Array(size + 1);
  ranges.forEach((r, i) => {
    const start = Math.max(0, r.start);
    const end = Math.min(size - 1, r.end);
    if (start > end) return;
    const w = weight ? weight(i) : 1;
    diff[start] += w;
    diff[end + 1] -= w;
  });
  const out = new Float64Array(size);
  for (let g = 0, d = 0; g < size; g++) out[g] = d += diff[g];
  return out;
}

/**
 * Expected rows per key group (each chunk's rows spread evenly over its range), clipped to `[0, size)`.
 *
 * @example
 * ```ts
 * import { rowDensity } from "./chain.ts";
 * console.log([...rowDensity([{ keyGroupRange: { start: 0, end: 1 }, rows: 10 }], 3)]); // [5, 5, 0]
 * ```
 */
export function rowDensity(chunks: readonly { readonly keyGroupRange?: KeyGroupRange; readonly rows: number }[], size: number): Float64Array {
  const keyed = chunks.filter((c) => c.keyGroupRange !== undefined);
  return coverage(keyed.map((c) => c.keyGroupRange!), size, (i) => keyed[i].rows / (keyed[i].keyGroupRange!.end - keyed[i].keyGroupRange!.start + 1));
}

/**
 * The longest chain of chunks a reader applies for one key group of `range` (default: every key group):
 * the last base covering it and every later chunk (in `order`) covering it.
 *
 * @example
 * ```ts
 * import { chainDepth } from "./chain.ts";
 * const r = { start: 0, end: 127 };
 * console.log(chainDepth([{ keyGroupRange: r, type: "base", order: 1 }, { keyGroupRange: r, type: "delta", order: 2 }], 128)); // 2
 * ```
 */
export function chainDepth(chunks: readonly ChainLink[], maxParallelism: number, range?: KeyGroupRange): number {
  // O((chunks + key groups) · log), whatever a manifest holds: the order of the last base of each key
  // group by a "next unassigned" walk over bases newest first, then the chunks newer than it per key group
  // by a Fenwick tree (range add, point query) swept from the newest order down.
  const n = maxParallelism;
  const keyed = chunks.filter((c) => c.keyGroupRange !== undefined);
  const clip = (c: ChainLink) => ({ s: Math.max(0, c.keyGroupRange!.start), e: Math.min(n - 1, c.keyGroupRange!.end) });
  const lastBase = new Float64Array(n).fill(-Infinity);
  const next = Int32Array.from({ length: n + 1 }, (_, i) => i);
  const find = (x: number): number => {
    while (next[x] !== x) {
      next[x] = next[next[x]];
      x = next[x];
    }
    return x;
  };
  for (const b of keyed.filter((c) => c.type === "base").sort((a, z) => z.order - a.order)) {
    const { s, e } = clip(b);
    for (let g = s <= e ? find(s) : n; g <= e; g = find(g + 1)) {
      lastBase[g] = b.order;
      next[g] = g + 1;
    }
  }
  const tree = new Float64Array(n + 1);
  const add = (i: number, v: number) => {
    for (i++; i <= n; i += i & -i) tree[i] += v;
  };
  const at = (i: number) => {
    let sum = 0;
    for (i++; i > 0; i -= i & -i) sum += tree[i];
    return sum;
  };
  const deltas = keyed.filter((c) => c.type === "delta").sort((a, z) => z.order - a.order);
  const lo = Math.max(0, range?.start ?? 0);
  const hi = Math.min(n - 1, range?.end ?? n - 1);
  const groups: number[] = [];
  for (let g = lo; g <= hi; g++) groups.push(g);
  groups.sort((a, z) => lastBase[z] - lastBase[a]);
  let k = 0;
  let max = 0;
  for (const g of groups) {
    while (k < deltas.length && deltas[k].order > lastBase[g]) {
      const { s, e } = clip(deltas[k++]);
      if (s <= e) {
        add(s, 1);
        add(e + 1, -1);
      }
    }
    const depth = at(g) + (lastBase[g] > -Infinity ? 1 : 0);
    if (depth > max) max = depth;
  }
  return max;
}

/** A problem with how a state's chunks cover its key groups (see {@link rangeProblems}). */
export interface RangeProblem {
  /** `range-overlap`: two bases cover one key group; `range-gap`: key groups no chunk covers. */
  readonly code: "range-overlap" | "range-gap";
  /** What is wrong. */
  readonly message: string;
  /** The chunk involved, for overlaps. */
  readonly path?: string;
}

/**
 * How a state's chunks fail to cover `[0, maxParallelism)`: bases overlapping each other, and key groups
 * covered by no chunk (by no base, for a savepoint, where every key group must have exactly one).
 *
 * @example
 * ```ts
 * import { rangeProblems } from "./chain.ts";
 * const c = { path: "a", type: "base" as const, order: 1, keyGroupRange: { start: 0, end: 63 } };
 * console.log(rangeProblems([c], 128, true).map((p) => p.code)); // ["range-gap"]
 * ```
 */
export function rangeProblems(chunks: readonly (ChainLink & { readonly path: string })[], maxParallelism: number, savepoint: boolean): RangeProblem[] {
  const out: RangeProblem[] = [];
  if (chunks.length === 0) return out;
  const bases = chunks.filter((c) => c.type === "base").sort((a, b) => a.keyGroupRange!.start - b.keyGroupRange!.start);
  for (let i = 1; i < bases.length; i++) {
    const a = bases[i - 1].keyGroupRange!;
    const b = bases[i].keyGroupRange!;
    if (b.start <= a.end) {
      out.push({
        code: "range-overlap",
        path: bases[i].path,
        message: `base chunks ${bases[i - 1].path} [${a.start}, ${a.end}] and ${bases[i].path} [${b.start}, ${b.end}] both cover key groups ${b.start}..${Math.min(a.end, b.end)}; a reader would take one and lose the other's rows`,
      });
    }
  }
  const covered = coverage((savepoint ? bases : chunks).map((c) => c.keyGroupRange!), maxParallelism);
  const gaps: string[] = [];
  for (let g = 0; g < maxParallelism; g++) {
    if (covered[g]) continue;
    let e = g;
    while (e + 1 < maxParallelism && !covered[e + 1]) e++;
    gaps.push(g === e ? `${g}` : `${g}..${e}`);
    g = e;
  }
  if (gaps.length) {
    out.push({ code: "range-gap", message: `key groups ${gaps.slice(0, 8).join(", ")}${gaps.length > 8 ? ", …" : ""} are covered by no chunk; their rows are lost (maxParallelism ${maxParallelism})` });
  }
  return out;
}
