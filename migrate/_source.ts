// Private: reading a keyed state's chunks key-group range by key-group range in bounded memory.
//
// A sweep walks ascending key groups over a list of windows (usually the subtask ranges of the target
// parallelism) and yields batches that hold every row of a small key-group sub-range, chosen so that a
// batch holds about `batchRows` rows. Chunk bytes are fetched once (size and checksum verified,
// decompressed once) and dropped as soon as the sweep has passed their range, so memory holds the chunks
// overlapping the current key group plus one batch of JS rows.
import type { Storage } from "../backends/storage.ts";
import { SnapshotFormatError } from "../format/errors.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import type { ChunkRef, StateSnapshot } from "../format/manifest.ts";
import { decompress } from "../format/compression.ts";
import { type DecodedChunk, decodeChunk, readKeyGroupRange } from "../format/decode_chunk.ts";
import { readVerifiedChunk, type Snapshot } from "../snapshot/read.ts";
import { emptyRows, intersect, type RangeBatch, RowBuffer, rowId, type Rows, sortByKeyGroup } from "./_rows.ts";

/** One chunk a sweep reads. */
export interface ChunkInput {
  /** Key groups it covers. */
  readonly range: KeyGroupRange;
  /** `base` resets its range; `delta` upserts and deletes. */
  readonly type: "base" | "delta";
  /** Apply order. */
  readonly order: number;
  /** Rows the manifest records (checked once the sweep has read the whole chunk). */
  readonly rows: number;
  /** Where it is, for messages. */
  readonly path: string;
  /** Fetches its verified, uncompressed bytes. */
  readonly load: () => Promise<Uint8Array>;
  /** The manifest entry, when the input is a snapshot chunk. */
  readonly ref?: ChunkRef;
}

/** Where a chunk of a snapshot is, for messages. */
export function chunkLocation(snap: Snapshot, ref: ChunkRef): string {
  return `${snap.location.replace(/\/+$/, "")} → ${ref.path}`;
}

/** Reads a chunk's stored bytes (size and checksum verified) and decompresses them. */
export async function loadChunk(snap: Snapshot, ref: ChunkRef): Promise<Uint8Array> {
  const bytes = await readVerifiedChunk(snap, ref);
  return decompress(bytes, { compression: ref.compression, rawBytes: ref.rawBytes, path: chunkLocation(snap, ref) });
}

/** The chunks of a keyed state of a snapshot, as sweep inputs. */
export function snapshotInputs(snap: Snapshot, st: StateSnapshot): ChunkInput[] {
  return st.chunks.map((ref) => ({
    range: ref.keyGroupRange!,
    type: ref.type,
    order: ref.order,
    rows: ref.rows,
    path: chunkLocation(snap, ref),
    load: () => loadChunk(snap, ref),
    ref,
  }));
}

/** Spill pieces (or any plain chunks) in a storage, as sweep inputs. */
export function storageInput(storage: Storage, path: string, range: KeyGroupRange, rows: number, order: number): ChunkInput {
  return { range, type: "base", order, rows, path: `${storage.uri}/${path}`, load: () => storage.get(path) };
}

/**
 * Whether inputs can simply be concatenated (every chunk a base, no two overlapping): no chain to apply.
 */
export function isPlainBaseSet(inputs: readonly ChunkInput[]): boolean {
  if (inputs.some((c) => c.type !== "base")) return false;
  const sorted = [...inputs].sort((a, b) => a.range.start - b.range.start);
  for (let i = 1; i < sorted.length; i++) if (sorted[i].range.start <= sorted[i - 1].range.end) return false;
  return true;
}

/** Options of {@link sweep}. */
export interface SweepOptions {
  /**
   * `chain`: apply bases and deltas in order (checkpoint chains); `concat`: every input is a set of rows to
   * keep, overlapping inputs are interleaved by key group in input order (spill pieces, plain base sets).
   */
  mode: "chain" | "concat";
  /** Rows a batch aims at (default 16,384). */
  batchRows?: number;
  /** Whether the state is namespaced (row identity). */
  namespaced: boolean;
  /** Whether the state is a map state (row identity). */
  map: boolean;
  /** In `chain` mode, sort the rows of each key group by their identity (a canonical order). */
  canonical?: boolean;
  /** Called after each batch with the decoded chunk parts, e.g. to validate rows. */
  onPart?: (input: ChunkInput, part: DecodedChunk, sub: KeyGroupRange) => void;
  /** Aborts the sweep between batches. */
  signal?: AbortSignal;
}

/** How many rows per key group an input holds on average. */
function density(c: ChunkInput): number {
  return c.rows / (c.range.end - c.range.start + 1);
}

function decodePart(c: ChunkInput, bytes: Uint8Array, sub: KeyGroupRange): DecodedChunk {
  const info = { path: c.path, compression: "none" as const };
  const part = sub.start <= c.range.start && sub.end >= c.range.end ? decodeChunk(bytes, info) : readKeyGroupRange(bytes, sub, info);
  const kgs = part.keyGroups;
  if (!kgs || kgs.length !== part.length) throw new SnapshotFormatError("keyed chunk has no key-group column", { path: c.path });
  if (part.length > 0 && (kgs[0] < sub.start || kgs[kgs.length - 1] > sub.end || kgs[0] < c.range.start || kgs[kgs.length - 1] > c.range.end)) {
    throw new SnapshotFormatError(
      `chunk holds key groups ${kgs[0]}..${kgs[kgs.length - 1]} outside its manifest range [${c.range.start}, ${c.range.end}] or the range asked [${sub.start}, ${sub.end}]`,
      { path: c.path },
    );
  }
  for (let i = 1; i < kgs.length; i++) {
    if (kgs[i - 1] > kgs[i]) throw new SnapshotFormatError(`chunk rows are not sorted by key group (row ${i})`, { path: c.path });
  }
  return part;
}

function concatParts(parts: DecodedChunk[], opts: SweepOptions): Rows {
  if (parts.length === 0) return emptyRows(opts);
  if (parts.length === 1) {
    const p = parts[0];
    if (p.ops && p.ops.some((o) => o !== 0)) return mergeChain(parts.map((part) => ({ part, base: false, sub: undefined })), opts);
    return { length: p.length, keyGroups: p.keyGroups, keys: p.keys as unknown[], namespaces: opts.namespaced ? (p.namespaces as string[]) : undefined, userKeys: opts.map ? (p.userKeys as unknown[]) : undefined, values: p.values as unknown[] };
  }
  const buf = new RowBuffer(opts.namespaced, opts.map);
  for (const p of parts) {
    buf.append({ length: p.length, keyGroups: p.keyGroups, keys: p.keys as unknown[], namespaces: p.namespaces as string[] | undefined, userKeys: p.userKeys as unknown[] | undefined, values: p.values as unknown[] });
  }
  return sortByKeyGroup(buf.take());
}

interface ChainPart {
  part: DecodedChunk;
  base: boolean;
  sub: KeyGroupRange | undefined;
}

interface ChainRow {
  id: string;
  key: unknown;
  ns: string | undefined;
  ukey: unknown;
  value: unknown;
}

function mergeChain(parts: ChainPart[], opts: SweepOptions): Rows {
  const groups = new Map<number, Map<string, ChainRow>>();
  for (const { part: d, base, sub } of parts) {
    if (base && sub) for (const kg of [...groups.keys()]) if (kg >= sub.start && kg <= sub.end) groups.delete(kg);
    const kgs = d.keyGroups!;
    for (let i = 0; i < d.length; i++) {
      const kg = kgs[i];
      let g = groups.get(kg);
      if (!g) groups.set(kg, (g = new Map()));
      const key = d.keys![i];
      const ns = d.namespaces?.[i];
      const ukey = d.userKeys?.[i];
      const id = rowId(key, ns, ukey, opts.namespaced, opts.map);
      if (d.ops && d.ops[i] === 1) g.delete(id);
      else g.set(id, { id, key, ns, ukey, value: d.values[i] });
    }
  }
  const buf = new RowBuffer(opts.namespaced, opts.map);
  for (const kg of [...groups.keys()].sort((a, b) => a - b)) {
    const rows = [...groups.get(kg)!.values()];
    if (opts.canonical) rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const r of rows) buf.push(kg, r.key, r.ns, r.ukey, r.value);
  }
  return buf.take();
}

/**
 * Sweeps `windows` (ascending, non-overlapping key-group ranges) over `inputs` and yields batches, each
 * complete for its key-group sub-range and never crossing a window boundary. Every key group of every
 * window is covered by exactly one batch, empty or not. Checks each chunk's row count against its
 * manifest entry once the sweep has read all of it.
 */
export async function* sweep(inputs: readonly ChunkInput[], windows: readonly KeyGroupRange[], opts: SweepOptions): AsyncGenerator<RangeBatch> {
  const batchRows = Math.max(1, opts.batchRows ?? 16_384);
  const cache = new Map<ChunkInput, Promise<Uint8Array>>();
  const seen = new Map<ChunkInput, number>();
  const first = windows.length ? windows[0].start : 0;
  const last = windows.length ? windows[windows.length - 1].end : -1;
  // Expected rows per key group (each chunk's rows spread evenly over its range), as prefix sums:
  // O(chunks + key groups), whatever a manifest holds.
  let top = last;
  for (const c of inputs) if (c.range.end > top) top = c.range.end;
  top += 2;
  const diff = new Float64Array(top + 1);
  for (const c of inputs) {
    diff[c.range.start] += density(c);
    diff[c.range.end + 1] -= density(c);
  }
  const prefix = new Float64Array(top + 1); // prefix[g] = expected rows of key groups < g
  for (let g = 0, d = 0; g < top; g++) {
    d += diff[g];
    prefix[g + 1] = prefix[g] + d;
  }
  // Chunks by start; `active` holds those that may overlap the current position, in apply order.
  const byStart = [...inputs].sort((a, b) => a.range.start - b.range.start);
  let nextStart = 0;
  let active: ChunkInput[] = [];
  for (let w = 0; w < windows.length; w++) {
    const win = windows[w];
    let pos = win.start;
    while (pos <= win.end) {
      opts.signal?.throwIfAborted();
      // The largest end whose expected rows stay within batchRows (at least one key group).
      let lo = pos;
      let hi = win.end;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if (prefix[mid + 1] - prefix[pos] <= batchRows) lo = mid;
        else hi = mid - 1;
      }
      const end = lo;
      const sub = { start: pos, end };
      let added = false;
      while (nextStart < byStart.length && byStart[nextStart].range.start <= end) {
        active.push(byStart[nextStart++]);
        added = true;
      }
      if (added) active.sort((a, b) => a.order - b.order);
      const parts: ChainPart[] = [];
      for (const c of active) {
        const overlap = intersect(c.range, sub);
        if (!overlap) continue;
        let bytes = cache.get(c);
        if (!bytes) cache.set(c, (bytes = c.load()));
        const part = decodePart(c, await bytes, overlap);
        seen.set(c, (seen.get(c) ?? 0) + part.length);
        opts.onPart?.(c, part, overlap);
        parts.push({ part, base: c.type === "base", sub: overlap });
      }
      const rows = opts.mode === "chain" && (parts.length > 1 || parts.some((p) => !p.base || (p.part.ops?.some((o) => o !== 0) ?? false)))
        ? mergeChain(parts, opts)
        : concatParts(parts.map((p) => p.part), opts);
      // Chunks the sweep has passed: check their row counts, drop their bytes.
      const still: ChunkInput[] = [];
      for (const c of active) {
        if (c.range.end > end) {
          still.push(c);
          continue;
        }
        cache.delete(c);
        if (c.range.start >= first && c.range.end <= last && (seen.get(c) ?? 0) !== c.rows) {
          throw new SnapshotFormatError(`chunk holds ${seen.get(c) ?? 0} rows but the manifest records ${c.rows}`, { path: c.path });
        }
      }
      active = still;
      yield { range: sub, window: w, rows };
      pos = end + 1;
    }
  }
}

/** The values of an operator state of a snapshot, with the subtask each came from, in subtask order. */
export async function readOperatorItems(snap: Snapshot, st: StateSnapshot): Promise<{ values: unknown[]; subtasks: number[] }> {
  const values: unknown[] = [];
  const subtasks: number[] = [];
  const chunks = [...st.chunks].sort((a, b) => (a.subtask! - b.subtask!) || a.order - b.order);
  for (const ref of chunks) {
    const path = chunkLocation(snap, ref);
    const d = decodeChunk(await loadChunk(snap, ref), { path, compression: "none" });
    if (d.length !== ref.rows) throw new SnapshotFormatError(`chunk holds ${d.length} rows but the manifest records ${ref.rows}`, { path });
    for (let i = 0; i < d.length; i++) {
      values.push(d.values[i]);
      subtasks.push(ref.subtask!);
    }
  }
  return { values, subtasks };
}
