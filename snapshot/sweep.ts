/**
 * The one read model's sweep: a keyed state read key-group range by key-group range in bounded memory.
 *
 * A sweep walks ascending key groups over a list of windows (usually the subtask ranges of the target
 * parallelism) and yields batches that hold every row of a small key-group sub-range, chosen from the
 * manifest's row counts so that a batch holds about `batchRows` rows. Each chunk is read and verified once
 * (size, checksum, layout, row count, range: see chunks.ts), opened once, decoded range by range, and
 * dropped as soon as the sweep has passed its range: memory holds the chunks overlapping the current key
 * group plus one batch. Chains are applied here and nowhere else: bases reset their key groups, deltas
 * upsert and delete in `order`, last write wins, tombstones drop.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import type { ChunkFile, ColumnData } from "../format/chunk_ipc.ts";
import { SnapshotFormatError } from "../format/errors.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import { type KeyId, rowIdentity } from "../format/key_identity.ts";
import type { ChunkRef, StateSnapshot } from "../format/manifest.ts";
import { type DecodedChunk, decodeRows, keyGroupRows, openChunk } from "../format/decode_chunk.ts";
import { type Lease, scratchFor } from "../format/_scratch.ts";
import { isPlainBaseSet } from "./chain.ts";
import { chunkLocation, openStateChunk } from "./chunks.ts";
import type { Snapshot } from "./read.ts";
import { emptyRows, intersect, type RangeBatch, RowBuffer, type Rows, sortByKeyGroup } from "./rows.ts";

/** One chunk a sweep reads. */
export interface ChunkInput {
  /** Key groups it covers. */
  readonly range: KeyGroupRange;
  /** `base` resets its range; `delta` upserts and deletes. */
  readonly type: "base" | "delta";
  /** Apply order. */
  readonly order: number;
  /** Rows the manifest records. */
  readonly rows: number;
  /** Where it is, for messages. */
  readonly path: string;
  /**
   * Reads, verifies and opens it (called once per sweep). With `into` (at least {@link scratchBytes} bytes),
   * the read may land there: the opened file's columns are then views of it.
   */
  readonly open: (into?: Uint8Array) => Promise<ChunkFile>;
  /** Bytes a buffer passed to `open` needs (the stored size + 1, which tells an oversized file); none: `open` takes no buffer. */
  readonly scratchBytes?: number;
  /** The manifest entry, when the input is a snapshot chunk. */
  readonly ref?: ChunkRef;
}

/**
 * The chunks of a keyed state of a snapshot, as sweep inputs. With `leases`, each chunk is read into a
 * scratch buffer added there: the caller releases them once no opened file is read any more (the files'
 * columns are views of them).
 *
 * @example
 * ```ts
 * import { snapshotInputs } from "./sweep.ts";
 * // const inputs = snapshotInputs(snap, requireState(snap, "counter", "count"));
 * ```
 */
export function snapshotInputs(snap: Snapshot, st: StateSnapshot, leases?: Lease[]): ChunkInput[] {
  return st.chunks.map((ref) => ({
    range: ref.keyGroupRange!,
    type: ref.type,
    order: ref.order,
    rows: ref.rows,
    path: chunkLocation(snap, ref),
    open: (into?: Uint8Array) => {
      const lease = !into && leases ? scratchFor(ref.bytes + 1) : undefined;
      if (lease) leases!.push(lease);
      return openStateChunk(snap, st, ref, into ?? lease?.bytes);
    },
    scratchBytes: ref.bytes + 1,
    ref,
  }));
}

/**
 * Plain chunks in a storage (spill pieces), as sweep inputs.
 *
 * @example
 * ```ts
 * import { storageInput } from "./sweep.ts";
 * // const input = storageInput(temp, "b0/000001.arrow", { start: 0, end: 31 }, 4096, 1);
 * ```
 */
export function storageInput(storage: Pick<Storage, "uri" | "get">, path: string, range: KeyGroupRange, rows: number, order: number): ChunkInput {
  const where = `${storage.uri}/${path}`;
  return {
    range,
    type: "base",
    order,
    rows,
    path: where,
    open: async () => {
      const file = openChunk(await storage.get(path), { path: where });
      if (file.rows !== rows) throw new SnapshotFormatError(`chunk holds ${file.rows} rows but ${rows} were written`, { path: where });
      return file;
    },
  };
}

/** Options of {@link sweep}. */
export interface SweepOptions {
  /**
   * `chain`: apply bases and deltas in order (checkpoint chains); `concat`: every input is a set of rows to
   * keep, overlapping inputs are interleaved by key group in input order (spill pieces). Default: `concat`
   * for a plain set of bases, else `chain`.
   */
  mode?: "chain" | "concat";
  /** Rows a batch aims at (default 16,384). */
  batchRows?: number;
  /** Whether the state is namespaced (row identity). */
  namespaced: boolean;
  /** Whether the state is a map state (row identity). */
  map: boolean;
  /**
   * In `chain` mode, sort the rows of each key group by their identity ({@link sweep} only: the format gives
   * row order within a key group no meaning, so {@link sweepSelections} keeps the order it finds).
   */
  canonical?: boolean;
  /** Aborts the sweep between batches. */
  signal?: AbortSignal;
  /**
   * {@link sweepSelections} only: read chunks into the scratch pool's buffers and hand each back once the
   * sweep has passed it and every {@link SelectionBatch.retain} of a batch that picks from it has ended. The
   * consumer promises to read a batch's `files` after asking for the next batch only under a `retain()`.
   */
  scratch?: boolean;
}

/**
 * The sweep shape of a keyed state: what its row identity is made of.
 *
 * @example
 * ```ts
 * import { shapeOf } from "./sweep.ts";
 * // sweep(inputs, windows, { ...shapeOf(st), batchRows: 4096 })
 * ```
 */
export function shapeOf(st: StateSnapshot): { namespaced: boolean; map: boolean } {
  return { namespaced: st.namespaced === true, map: st.kind === "map" };
}

/** How many rows per key group an input holds on average. */
function density(c: ChunkInput): number {
  return c.rows / (c.range.end - c.range.start + 1);
}

function decodePart(c: ChunkInput, file: ChunkFile, sub: KeyGroupRange, withValues = true): DecodedChunk {
  if (!file.keyGroupIndex) throw new SnapshotFormatError("chunk holds operator state but is listed as keyed state", { path: c.path });
  const { from, to } = keyGroupRows(file, sub);
  const part = decodeRows(file, from, to, { path: c.path }, withValues);
  const kgs = part.keyGroups;
  if (!kgs || kgs.length !== part.length) throw new SnapshotFormatError("keyed chunk has no key-group column", { path: c.path });
  if (part.length > 0 && (kgs[0] < sub.start || kgs[kgs.length - 1] > sub.end || kgs[0] < c.range.start || kgs[kgs.length - 1] > c.range.end)) {
    throw new SnapshotFormatError(
      `chunk holds key groups ${kgs[0]}..${kgs[kgs.length - 1]} outside its manifest range [${c.range.start}, ${c.range.end}] or the range asked [${sub.start}, ${sub.end}]`,
      { path: c.path },
    );
  }
  return part;
}

function asRows(p: DecodedChunk, opts: SweepOptions): Rows {
  return { length: p.length, keyGroups: p.keyGroups, keys: p.keys, namespaces: opts.namespaced ? p.namespaces : undefined, userKeys: opts.map ? p.userKeys : undefined, values: p.values };
}

function concatParts(parts: DecodedChunk[], opts: SweepOptions): Rows {
  if (parts.length === 0) return emptyRows(opts);
  if (parts.length === 1) return asRows(parts[0], opts);
  const buf = new RowBuffer(opts.namespaced, opts.map);
  for (const p of parts) buf.append(asRows(p, opts));
  return sortByKeyGroup(buf.take());
}

interface ChainPart {
  part: DecodedChunk;
  base: boolean;
  sub: KeyGroupRange;
}

interface ChainRow {
  id: KeyId;
  key: unknown;
  ns: string | undefined;
  ukey: unknown;
  value: unknown;
}

function compareIds(a: { id: KeyId }, b: { id: KeyId }): number {
  const x = typeof a.id === "string" ? a.id : String(a.id);
  const y = typeof b.id === "string" ? b.id : String(b.id);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Applies a chain: parts in apply order; a base part resets the key groups of its range first. */
function mergeChain(parts: ChainPart[], opts: SweepOptions): Rows {
  const groups = new Map<number, Map<KeyId, ChainRow>>();
  for (const { part: d, base, sub } of parts) {
    if (base) for (const kg of [...groups.keys()]) if (kg >= sub.start && kg <= sub.end) groups.delete(kg);
    const kgs = d.keyGroups!;
    let kgNow = -1;
    let g: Map<KeyId, ChainRow> | undefined;
    for (let i = 0; i < d.length; i++) {
      const kg = kgs[i];
      if (kg !== kgNow) {
        kgNow = kg;
        g = groups.get(kg);
        if (!g) groups.set(kg, (g = new Map()));
      }
      const key = d.keys![i];
      const ns = d.namespaces?.[i];
      const ukey = d.userKeys?.[i];
      const id = rowIdentity(key, ns, ukey, opts.namespaced, opts.map);
      if (d.ops && d.ops[i] === 1) g!.delete(id);
      else g!.set(id, { id, key, ns, ukey, value: d.values[i] });
    }
  }
  const buf = new RowBuffer(opts.namespaced, opts.map);
  for (const kg of [...groups.keys()].sort((a, b) => a - b)) {
    const rows = [...groups.get(kg)!.values()];
    if (opts.canonical) rows.sort(compareIds);
    for (const r of rows) buf.push(kg, r.key, r.ns, r.ukey, r.value);
  }
  return buf.take();
}

interface OpenPart {
  readonly input: ChunkInput;
  readonly file: ChunkFile;
  readonly sub: KeyGroupRange;
}

/**
 * A chunk's scratch buffer with a use count: one use for the sweep while the chunk may still be needed, one
 * per live {@link SelectionBatch.retain} of a batch that picks from it. The buffer goes back to the pool
 * when the count reaches zero, and only then (the pool hands it to the next read, which overwrites it).
 */
class SharedBuffer {
  readonly #lease: Lease;
  #uses = 1;

  constructor(lease: Lease) {
    this.#lease = lease;
  }

  retain(): void {
    // A use after the last one ended would read bytes the pool may already have handed on.
    if (this.#uses <= 0) throw new Error("internal: a chunk buffer was retained after it went back to the scratch pool");
    this.#uses++;
  }

  release(): void {
    if (this.#uses <= 0) throw new Error("internal: a chunk buffer was released more often than it was used");
    if (--this.#uses === 0) this.#lease.release();
  }
}

/** A chunk the walk has opened (or is opening), with its shared buffer once opened into one. */
interface Opened {
  readonly file: Promise<ChunkFile>;
  shared?: SharedBuffer;
}

/** A batch of the walk: the opened chunks it needs, and the shared buffers of those read into the pool. */
interface WalkBatch {
  range: KeyGroupRange;
  window: number;
  parts: OpenPart[];
  shared: SharedBuffer[];
}

/** The windowing shared by {@link sweep} and {@link sweepSelections}: the opened chunks of each batch. */
async function* walk(inputs: readonly ChunkInput[], windows: readonly KeyGroupRange[], opts: SweepOptions): AsyncGenerator<WalkBatch> {
  const batchRows = Math.max(1, opts.batchRows ?? 16_384);
  const cache = new Map<ChunkInput, Opened>();
  const open = (c: ChunkInput): Opened => {
    const lease = opts.scratch && c.scratchBytes !== undefined ? scratchFor(c.scratchBytes) : undefined;
    if (!lease) return { file: c.open() };
    // A failed open leaves its lease to the garbage collector: never back in the pool, never reused.
    const o: Opened = { file: c.open(lease.bytes).then((f) => ((o.shared = new SharedBuffer(lease)), f)) };
    return o;
  };
  // The sweep's own use of a chunk ends: its buffer goes back once no retained batch reads it.
  const drop = (c: ChunkInput) => {
    const o = cache.get(c);
    if (!o) return;
    cache.delete(c);
    o.file.then(() => o.shared?.release(), () => {});
  };
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
  try {
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
        // Every chunk this batch needs is fetched at once (a few reads in flight), then used in order.
        for (const c of active) if (intersect(c.range, sub) && !cache.has(c)) cache.set(c, open(c));
        const parts: OpenPart[] = [];
        const shared: SharedBuffer[] = [];
        for (const c of active) {
          const overlap = intersect(c.range, sub);
          if (!overlap) continue;
          const o = cache.get(c)!;
          parts.push({ input: c, file: await o.file, sub: overlap });
          if (o.shared) shared.push(o.shared);
        }
        // Chunks the sweep passes with this batch: dropped once the consumer has had the batch (and
        // retained what it keeps reading).
        const still: ChunkInput[] = [];
        const passed: ChunkInput[] = [];
        for (const c of active) (c.range.end > end ? still : passed).push(c);
        active = still;
        yield { range: sub, window: w, parts, shared };
        for (const c of passed) drop(c);
        pos = end + 1;
      }
    }
  } finally {
    // Opened but never awaited (a window skipped them, or the caller stopped): not this sweep's to report.
    for (const c of [...cache.keys()]) drop(c);
  }
}

function defaultMode(inputs: readonly ChunkInput[]): "chain" | "concat" {
  return isPlainBaseSet(inputs.map((c) => ({ type: c.type, order: c.order, keyGroupRange: c.range }))) ? "concat" : "chain";
}

/**
 * Sweeps `windows` (ascending, non-overlapping key-group ranges) over `inputs` and yields batches, each
 * complete for its key-group sub-range and never crossing a window boundary. Every key group of every
 * window is covered by exactly one batch, empty or not.
 *
 * @example
 * ```ts
 * import { snapshotInputs, sweep } from "./sweep.ts";
 * // for await (const b of sweep(snapshotInputs(snap, st), [{ start: 0, end: 127 }], { namespaced: false, map: false })) {
 * //   console.log(b.range, b.rows.length);
 * // }
 * ```
 */
export async function* sweep(inputs: readonly ChunkInput[], windows: readonly KeyGroupRange[], opts: SweepOptions): AsyncGenerator<RangeBatch> {
  const mode = opts.mode ?? defaultMode(inputs);
  // Decoded rows may be views of a chunk's bytes and outlive the batch: never pooled buffers here.
  for await (const { range, window, parts: open } of walk(inputs, windows, { ...opts, scratch: false })) {
    const parts: ChainPart[] = open.map((p) => ({ part: decodePart(p.input, p.file, p.sub), base: p.input.type === "base", sub: p.sub }));
    const rows = mode === "chain" && (parts.length > 1 || parts.some((p) => !p.base || p.part.ops !== undefined))
      ? mergeChain(parts, opts)
      : concatParts(parts.map((p) => p.part), opts);
    yield { range, window, rows };
  }
}

/** A batch of {@link sweepSelections}: which rows of which opened chunks make the merged rows. */
export interface SelectionBatch {
  /** The key groups this batch is complete for. */
  readonly range: KeyGroupRange;
  /** Index of the window the batch belongs to. */
  readonly window: number;
  /** The opened chunks rows are picked from. */
  readonly files: readonly ChunkFile[];
  /** Per merged row, the index in `files` of its chunk. */
  readonly src: Uint32Array;
  /** Per merged row, its row in that chunk. */
  readonly row: Uint32Array;
  /** Per merged row, its key group (ascending): the gather need not read the kg columns. */
  readonly keyGroups: Uint16Array;
  /**
   * Keeps `files`' bytes valid after the next batch is asked for, until the returned function is called
   * (call it once the rows are gathered). Needed only under {@link SweepOptions.scratch}, where a chunk's
   * buffer goes back to the pool when the sweep has passed it and no retain is live; call it before asking
   * for the next batch.
   */
  readonly retain: () => () => void;
}

/**
 * The sweep without values: the same batches and the same chain rules as {@link sweep} (bases reset, last
 * write wins, tombstones drop), decided on the identity columns' bytes (no JS key per row unless keys are
 * msgpack), and
 * yielded as row picks for a column gather (`gatherChunk`), so no value becomes a JS value.
 *
 * @example
 * ```ts
 * import { snapshotInputs, sweepSelections } from "./sweep.ts";
 * // for await (const s of sweepSelections(snapshotInputs(snap, st), windows, { namespaced: false, map: false })) {
 * //   console.log(s.range, s.row.length);
 * // }
 * ```
 */
export async function* sweepSelections(inputs: readonly ChunkInput[], windows: readonly KeyGroupRange[], opts: SweepOptions): AsyncGenerator<SelectionBatch> {
  const mode = opts.mode ?? defaultMode(inputs);
  for await (const { range, window, parts, shared } of walk(inputs, windows, opts)) {
    const files: ChunkFile[] = [];
    const fileIndex = new Map<ChunkFile, number>();
    const indexOf = (f: ChunkFile) => {
      let i = fileIndex.get(f);
      if (i === undefined) fileIndex.set(f, (i = files.push(f) - 1));
      return i;
    };
    for (const p of parts) indexOf(p.file);
    const plain = mode === "concat" || (parts.length <= 1 && parts.every((p) => p.input.type === "base" && p.file.plan.index.op < 0));
    let picks: Picks;
    if (plain) picks = concatPicks(parts, range, indexOf);
    else {
      const ids = identityColumns(files, opts);
      picks = ids ? mergePicks(parts, range, indexOf, ids) : mergePicksByValue(parts, range, indexOf, opts);
    }
    yield { range, window, files, src: picks.src, row: picks.row, keyGroups: picks.kg, retain: () => retainAll(shared) };
  }
}

/** One use of each buffer, ended (once) by the function returned. */
function retainAll(shared: readonly SharedBuffer[]): () => void {
  if (shared.length === 0) return () => {};
  for (const b of shared) b.retain();
  let live = true;
  return () => {
    if (!live) return;
    live = false;
    for (const b of shared) b.release();
  };
}

/** Checks that the rows a part contributes lie in its chunk's manifest range and the range asked. */
function checkPartRange(p: OpenPart, from: number, to: number): Uint16Array {
  const f = p.file;
  if (!f.keyGroupIndex || f.plan.index.kg < 0) throw new SnapshotFormatError("chunk holds operator state but is listed as keyed state", { path: p.input.path });
  const kgs = f.columns[f.plan.index.kg].values as Uint16Array;
  if (to > from) {
    const lo = kgs[from];
    const hi = kgs[to - 1];
    if (lo < p.sub.start || hi > p.sub.end || lo < p.input.range.start || hi > p.input.range.end) {
      throw new SnapshotFormatError(
        `chunk holds key groups ${lo}..${hi} outside its manifest range [${p.input.range.start}, ${p.input.range.end}] or the range asked [${p.sub.start}, ${p.sub.end}]`,
        { path: p.input.path },
      );
    }
  }
  return kgs;
}

/** Row picks: per merged row its file, its row there and its key group. */
interface Picks {
  src: Uint32Array;
  row: Uint32Array;
  kg: Uint16Array;
}

/**
 * Stable counting sort of picks by key group (rows of one key group keep the order they were picked in).
 * Key groups are within `range`, so there are at most 32768 buckets.
 */
function sortPicks(n: number, src: Uint32Array, row: Uint32Array, kg: Uint16Array, range: KeyGroupRange): Picks {
  const width = range.end - range.start + 1;
  const counts = new Uint32Array(width + 1);
  let sorted = true;
  for (let i = 0; i < n; i++) {
    counts[kg[i] - range.start + 1]++;
    if (i > 0 && kg[i] < kg[i - 1]) sorted = false;
  }
  if (sorted) return { src: src.subarray(0, n), row: row.subarray(0, n), kg: kg.subarray(0, n) };
  for (let g = 1; g <= width; g++) counts[g] += counts[g - 1];
  const outSrc = new Uint32Array(n);
  const outRow = new Uint32Array(n);
  const outKg = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const at = counts[kg[i] - range.start]++;
    outSrc[at] = src[i];
    outRow[at] = row[i];
    outKg[at] = kg[i];
  }
  return { src: outSrc, row: outRow, kg: outKg };
}

/** Every row of every part (spill pieces, or non-overlapping bases), interleaved by key group in part order. */
function concatPicks(parts: readonly OpenPart[], range: KeyGroupRange, indexOf: (f: ChunkFile) => number): Picks {
  let total = 0;
  const spans = parts.map((p) => {
    const { from, to } = keyGroupRows(p.file, p.sub);
    total += to - from;
    return { from, to, kgs: checkPartRange(p, from, to) };
  });
  const src = new Uint32Array(total);
  const row = new Uint32Array(total);
  const kg = new Uint16Array(total);
  let n = 0;
  for (let j = 0; j < parts.length; j++) {
    const f = indexOf(parts[j].file);
    const { from, to, kgs } = spans[j];
    for (let r = from; r < to; r++, n++) {
      src[n] = f;
      row[n] = r;
      kg[n] = kgs[r];
    }
  }
  return sortPicks(n, src, row, kg, range);
}

/**
 * The identity columns of a set of chunks, read straight from their buffers: per file, its key, namespace
 * and user-key columns. `undefined` when a column's bytes do not decide identity (msgpack keys: two
 * encodings of one value), in which case the merge decodes keys as JS values.
 */
interface IdColumn {
  /** `b`: variable-width bytes (utf8, binary); `i`: 32-bit ints; `l`: 64-bit ints; `d`: float64 (0 = -0, NaN = NaN). */
  readonly kind: "b" | "i" | "l" | "d";
  readonly offsets: Int32Array | null;
  readonly bytes: Uint8Array | null;
  readonly words: Int32Array | null;
  readonly floats: Float64Array | null;
}

function idColumn(c: ColumnData): IdColumn | undefined {
  if (c.plan.msgpack) return undefined;
  const v = c.values;
  switch (c.plan.type) {
    case "utf8":
    case "binary":
      return { kind: "b", offsets: c.offsets, bytes: v as Uint8Array, words: null, floats: null };
    case "int32":
      return { kind: "i", offsets: null, bytes: null, words: v as Int32Array, floats: null };
    case "int64":
      return { kind: "l", offsets: null, bytes: null, words: new Int32Array(v!.buffer, v!.byteOffset, v!.length * 2), floats: null };
    case "float64":
      return { kind: "d", offsets: null, bytes: null, words: new Int32Array(v!.buffer, v!.byteOffset, v!.length * 2), floats: v as Float64Array };
  }
  return undefined;
}

function identityColumns(files: readonly ChunkFile[], opts: SweepOptions): IdColumn[][] | undefined {
  const out: IdColumn[][] = [];
  for (const f of files) {
    const idx = f.plan.index;
    const wanted = [idx.key, ...(opts.namespaced ? [idx.ns] : []), ...(opts.map ? [idx.ukey] : [])];
    const cols: IdColumn[] = [];
    for (const i of wanted) {
      if (i < 0) return undefined;
      const c = idColumn(f.columns[i]);
      if (!c) return undefined;
      cols.push(c);
    }
    out.push(cols);
  }
  // Identity columns of one position must agree in kind across files (same layout), else compare as values.
  for (const cols of out) for (let k = 0; k < cols.length; k++) if (cols[k].kind !== out[0][k].kind) return undefined;
  return out;
}

function hashRow(cols: readonly IdColumn[], r: number): number {
  let h = 0x811c9dc5 | 0;
  for (const c of cols) {
    switch (c.kind) {
      case "b": {
        const o = c.offsets!;
        const b = c.bytes!;
        let i = o[r];
        const e = o[r + 1];
        // Four bytes per multiply; the length goes in last, which separates "ab"+"c" from "a"+"bc".
        for (; i + 4 <= e; i += 4) h = Math.imul(h ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)), 0x01000193);
        for (; i < e; i++) h = Math.imul(h ^ b[i], 0x01000193);
        h = Math.imul(h ^ (e - o[r]) ^ 0x5bd1e995, 0x01000193);
        break;
      }
      case "i":
        h = Math.imul(h ^ c.words![r], 0x01000193);
        break;
      case "l":
        h = Math.imul(h ^ c.words![2 * r], 0x01000193);
        h = Math.imul(h ^ c.words![2 * r + 1], 0x01000193);
        break;
      case "d": {
        const x = c.floats![r];
        if (x === 0) h = Math.imul(h ^ 0, 0x01000193);
        else if (x !== x) h = Math.imul(h ^ 0x7ff80000, 0x01000193);
        else {
          h = Math.imul(h ^ c.words![2 * r], 0x01000193);
          h = Math.imul(h ^ c.words![2 * r + 1], 0x01000193);
        }
        break;
      }
    }
  }
  // Final avalanche (murmur3 fmix32) so the low bits used as the slot are well mixed.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Bits of {@link sigRow}: a table of 4096 generation stamps per merge. */
const SIG_BITS = 12;

/**
 * A cheap signature of a row's identity, from its first identity column alone (equal identities have equal
 * signatures): a string's length and last four bytes, an integer's words, a float's bits (0 and -0 alike,
 * every NaN alike). Lets a base row that no newer part has entered skip the full hash and probe.
 */
function sigRow(cols: readonly IdColumn[], r: number): number {
  const c = cols[0];
  let w: number;
  switch (c.kind) {
    case "b": {
      const o = c.offsets!;
      const b = c.bytes!;
      const e = o[r + 1];
      const len = e - o[r];
      w = len >= 4 ? (b[e - 4] | (b[e - 3] << 8) | (b[e - 2] << 16) | (b[e - 1] << 24)) ^ len : len > 0 ? (b[e - 1] | (len << 8)) ^ (b[o[r]] << 16) : 0x7fffffff;
      break;
    }
    case "i":
      w = c.words![r];
      break;
    case "l":
      w = c.words![2 * r] ^ Math.imul(c.words![2 * r + 1], 0x01000193);
      break;
    case "d": {
      const x = c.floats![r];
      w = x === 0 ? 0 : x !== x ? 0x7ff80000 : c.words![2 * r] ^ Math.imul(c.words![2 * r + 1], 0x01000193);
      break;
    }
  }
  return Math.imul(w, 0x9e3779b1) >>> (32 - SIG_BITS);
}

function sameRow(a: readonly IdColumn[], ra: number, b: readonly IdColumn[], rb: number): boolean {
  for (let k = 0; k < a.length; k++) {
    const x = a[k];
    const y = b[k];
    switch (x.kind) {
      case "b": {
        const xs = x.offsets![ra];
        const len = x.offsets![ra + 1] - xs;
        const ys = y.offsets![rb];
        if (y.offsets![rb + 1] - ys !== len) return false;
        const xb = x.bytes!;
        const yb = y.bytes!;
        for (let i = 0; i < len; i++) if (xb[xs + i] !== yb[ys + i]) return false;
        break;
      }
      case "i":
        if (x.words![ra] !== y.words![rb]) return false;
        break;
      case "l":
        if (x.words![2 * ra] !== y.words![2 * rb] || x.words![2 * ra + 1] !== y.words![2 * rb + 1]) return false;
        break;
      case "d": {
        const p = x.floats![ra];
        const q = y.floats![rb];
        if (p !== q && !(p !== p && q !== q)) return false;
        break;
      }
    }
  }
  return true;
}

/**
 * Applies a chain on identity columns alone, key group by key group (identities never repeat across key
 * groups): parts walked newest first, so the first sighting of an identity is its last write (kept unless
 * it is a tombstone) and every older one is shadowed; a base ends the walk (older parts are reset by it).
 * Identities of the current key group live in an open-addressing table of (file, row) slots compared by
 * bytes (no JS string or Map entry per row), emptied per key group by a generation stamp, so it stays as
 * small as one key group's deltas. A base's rows are only looked up, never entered (nothing older can
 * repeat them; a base holds each identity once: every writer writes a base from a map), and not even looked
 * up where no newer part left an identity: then they are one run. Picks come out in key-group order.
 */
function mergePicks(parts: readonly OpenPart[], range: KeyGroupRange, indexOf: (f: ChunkFile) => number, ids: IdColumn[][]): Picks {
  let total = 0;
  let maxDelta = 0;
  const np = parts.length;
  const from = new Int32Array(np);
  const to = new Int32Array(np);
  const cursor = new Int32Array(np);
  const fileOf = new Int32Array(np);
  const isBase = new Uint8Array(np);
  const subStart = new Int32Array(np);
  const subEnd = new Int32Array(np);
  const kgsOf: Uint16Array[] = [];
  const opsOf: (Uint8Array | null)[] = [];
  for (let j = 0; j < np; j++) {
    const p = parts[j];
    const span = keyGroupRows(p.file, p.sub);
    from[j] = cursor[j] = span.from;
    to[j] = span.to;
    kgsOf.push(checkPartRange(p, span.from, span.to));
    fileOf[j] = indexOf(p.file);
    isBase[j] = p.input.type === "base" ? 1 : 0;
    subStart[j] = p.sub.start;
    subEnd[j] = p.sub.end;
    const opIdx = p.file.plan.index.op;
    opsOf.push(opIdx >= 0 ? (p.file.columns[opIdx].values as Uint8Array) : null);
    total += span.to - span.from;
    if (!isBase[j]) maxDelta += span.to - span.from;
  }
  let cap = 16;
  while (cap < maxDelta * 2) cap *= 2;
  const mask = cap - 1;
  const slotGen = new Int32Array(cap);
  const slotFile = new Int32Array(cap);
  const slotRow = new Uint32Array(cap);
  // Signatures of the identities entered for the current key group (stamped with its generation).
  const sigGen = new Int32Array(1 << SIG_BITS);
  let gen = 0;
  // Older parts than `j` are reset by its base: their rows of key group `g` are skipped.
  const skipOlder = (j: number, g: number) => {
    for (let k = j - 1; k >= 0; k--) {
      const kk = kgsOf[k];
      let c = cursor[k];
      while (c < to[k] && kk[c] === g) c++;
      cursor[k] = c;
    }
  };
  const src = new Uint32Array(total);
  const row = new Uint32Array(total);
  const kg = new Uint16Array(total);
  let n = 0;
  for (let g = range.start; g <= range.end; g++) {
    gen++;
    const n0 = n;
    let entered = false;
    for (let j = np - 1; j >= 0; j--) {
      const kgs = kgsOf[j];
      let lo = cursor[j];
      const end = to[j];
      if (lo >= end || kgs[lo] !== g) {
        // A base resets every key group of its range, those it holds no row of included.
        if (isBase[j] && g >= subStart[j] && g <= subEnd[j]) {
          skipOlder(j, g);
          break;
        }
        continue;
      }
      let hi = lo + 1;
      while (hi < end && kgs[hi] === g) hi++;
      cursor[j] = hi;
      const f = fileOf[j];
      const cols = ids[f];
      const ops = opsOf[j];
      if (isBase[j]) {
        if (!entered && ops === null) {
          for (let r = lo; r < hi; r++, n++) {
            src[n] = f;
            row[n] = r;
          }
        } else {
          for (let r = lo; r < hi; r++) {
            if (entered && sigGen[sigRow(cols, r)] === gen) {
              let s = hashRow(cols, r) & mask;
              let seen = false;
              while (slotGen[s] === gen) {
                if (sameRow(ids[slotFile[s]], slotRow[s], cols, r)) {
                  seen = true;
                  break;
                }
                s = (s + 1) & mask;
              }
              if (seen) continue;
            }
            if (ops !== null && ops[r] === 1) continue;
            src[n] = f;
            row[n] = r;
            n++;
          }
        }
        skipOlder(j, g);
        break;
      }
      // Rows backwards: a chunk may hold an identity twice (a put, then its delete), the later row wins.
      const p0 = n;
      for (let r = hi - 1; r >= lo; r--) {
        let s = hashRow(cols, r) & mask;
        let seen = false;
        while (slotGen[s] === gen) {
          if (sameRow(ids[slotFile[s]], slotRow[s], cols, r)) {
            seen = true;
            break;
          }
          s = (s + 1) & mask;
        }
        if (seen) continue;
        slotGen[s] = gen;
        slotFile[s] = f;
        slotRow[s] = r;
        sigGen[sigRow(cols, r)] = gen;
        entered = true;
        if (ops !== null && ops[r] === 1) continue;
        src[n] = f;
        row[n] = r;
        n++;
      }
      // This part's picks back in file order, so a gather copies runs of consecutive rows.
      src.subarray(p0, n).reverse();
      row.subarray(p0, n).reverse();
      lo = hi;
    }
    kg.fill(g, n0, n);
  }
  return { src: src.subarray(0, n), row: row.subarray(0, n), kg: kg.subarray(0, n) };
}

/** {@link mergePicks} for identities whose bytes do not decide equality (msgpack keys): decoded to JS values. */
function mergePicksByValue(parts: readonly OpenPart[], range: KeyGroupRange, indexOf: (f: ChunkFile) => number, opts: SweepOptions): Picks {
  const seen = new Set<KeyId>();
  const src: number[] = [];
  const row: number[] = [];
  const kg: number[] = [];
  const closed = new Uint8Array(range.end - range.start + 1);
  for (let j = parts.length - 1; j >= 0; j--) {
    const p = parts[j];
    const d = decodePart(p.input, p.file, p.sub, false);
    const f = indexOf(p.file);
    const { from } = keyGroupRows(p.file, p.sub);
    const kgs = d.keyGroups!;
    for (let i = d.length - 1; i >= 0; i--) {
      if (closed[kgs[i] - range.start]) continue;
      const id = rowIdentity(d.keys![i], d.namespaces?.[i], d.userKeys?.[i], opts.namespaced, opts.map);
      if (seen.has(id)) continue;
      seen.add(id);
      if (d.ops && d.ops[i] === 1) continue;
      src.push(f);
      row.push(from + i);
      kg.push(kgs[i]);
    }
    if (p.input.type === "base") closed.fill(1, p.sub.start - range.start, p.sub.end - range.start + 1);
  }
  return sortPicks(src.length, Uint32Array.from(src), Uint32Array.from(row), Uint16Array.from(kg), range);
}


/**
 * The items of an operator state of a snapshot, with the subtask each came from, in subtask order.
 *
 * @example
 * ```ts
 * import { readOperatorItems } from "./sweep.ts";
 * // const { values, subtasks } = await readOperatorItems(snap, requireState(snap, "source", "offsets"));
 * ```
 */
export async function readOperatorItems(snap: Snapshot, st: StateSnapshot): Promise<{ values: unknown[]; subtasks: number[] }> {
  const values: unknown[] = [];
  const subtasks: number[] = [];
  const chunks = [...st.chunks].sort((a, b) => (a.subtask! - b.subtask!) || a.order - b.order);
  for (const ref of chunks) {
    const file = await openStateChunk(snap, st, ref);
    const d = decodeRows(file, 0, file.rows, { path: chunkLocation(snap, ref) });
    for (let i = 0; i < d.length; i++) {
      values.push(d.values[i]);
      subtasks.push(ref.subtask!);
    }
  }
  return { values, subtasks };
}
