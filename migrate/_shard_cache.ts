// Private: what a shard of a re-hash (a new maxParallelism) leaves for the next shards of the same run in
// this process. Every source key group can feed every destination slice of a re-hash, so each shard reads,
// verifies, decodes and hashes the whole source and keeps its own slice: N shards run one after another in
// one process (the bench's `…shards8`, a worker thread given more shards than one) would pay that N times.
// The first shard's picks (every source row with its new key group) and the decoded source chunks they
// point into are kept here instead, and the next shards of the same source and plan only sort and gather
// their slices. One entry, dropped once every shard of the run has taken it, when another source is
// re-hashed, or when no shard has asked for it for a while (a process running one shard keeps nothing).
import type { ChunkFile } from "../format/chunk_ipc.ts";
import type { StateSnapshot } from "../format/manifest.ts";
import { idleTimer } from "../format/_idle_timer.ts";
import { Arena, type Lease, scratchFor } from "../format/_scratch.ts";
import { openStateChunk } from "../snapshot/chunks.ts";
import type { Snapshot } from "../snapshot/read.ts";

/** Key types a re-hash hashes straight from the key column's buffers (no JS row per key). */
export const COLUMN_REHASH_KEY_TYPES: readonly string[] = ["string", "int32", "int64", "float64"];

/**
 * Source chunk bytes (uncompressed) up to which a column re-hash keeps the source chunks in memory instead of
 * spilling pieces: memory then holds the sources, 10 bytes of picks per row and one output chunk, within the
 * tools' budget (256 MiB + 2 × the largest chunk), and every row is gathered once, straight from its source.
 * Threads share a re-hash's hashing only below it (_shared_hash.ts): larger states never ask for shared picks.
 */
export const IN_MEMORY_REHASH_BYTES = 64 * 1024 * 1024;

/** A re-hash's picks: source row `row[i]` of `files[src[i]]` goes to new key group `keyGroups[i]`, i < length. */
export interface HashedPicks {
  files: ChunkFile[];
  src: Uint32Array;
  row: Uint32Array;
  keyGroups: Uint16Array;
  length: number;
  /** Set when the picks are sorted by new key group: `starts[g]` is the first pick of key group g. */
  starts?: Uint32Array;
}

// Kept picks point into source chunks read into scratch buffers: those go back to the pool once the entry
// is let go and no run still gathers from them.
interface Holder {
  users: number;
  kept: boolean;
  leases: Lease[];
}
const holders = new WeakMap<HashedPicks, Holder>();

function letGoPicks(picks: HashedPicks): void {
  const h = holders.get(picks);
  if (!h) return;
  h.kept = false;
  if (h.users === 0) for (const l of h.leases.splice(0)) l.release();
}

/** How long an entry waits for the next shard before it lets its memory go. */
const IDLE_MS = 10_000;

let entry: { key: string; picks: HashedPicks; count: number; served: Set<number>; timer: ReturnType<typeof setTimeout> } | undefined;

function drop(): void {
  if (entry) {
    clearTimeout(entry.timer);
    letGoPicks(entry.picks);
  }
  entry = undefined;
}


/**
 * The picks a shard of the same source and plan kept (then counted as served for `shard`), or
 * undefined. `key` names the source state exactly: its location, chunks and checksums, and the maxParallelism.
 */
export function takePicks(key: string, shard: { index: number; count: number }): HashedPicks | undefined {
  if (!entry || entry.key !== key || entry.count !== shard.count) return undefined;
  const picks = entry.picks;
  const h = holders.get(picks);
  if (h) h.users++;
  entry.served.add(shard.index);
  clearTimeout(entry.timer);
  if (entry.served.size >= entry.count) drop();
  else entry.timer = idleTimer(drop, IDLE_MS);
  return picks;
}

/**
 * Keeps `picks` for the other shards of the run (`shard` has had them). `leases` hold the source chunks
 * they point into: handed back once the picks are let go and every run that took them has called
 * {@link releasePicks} (the keeping run included).
 */
export function keepPicks(key: string, shard: { index: number; count: number }, picks: HashedPicks, leases: Lease[] = []): void {
  drop();
  holders.set(picks, { users: 1, kept: shard.count >= 2, leases });
  if (shard.count < 2) return;
  entry = { key, picks, count: shard.count, served: new Set([shard.index]), timer: idleTimer(drop, IDLE_MS) };
}

/** A run that kept or took `picks` is done gathering from them. */
export function releasePicks(picks: HashedPicks): void {
  const h = holders.get(picks);
  if (!h || h.users === 0) return;
  if (--h.users === 0 && !h.kept) for (const l of h.leases.splice(0)) l.release();
}

/** Whether picks are kept now (for tests). */
export function keptPicks(): string | undefined {
  return entry?.key;
}

// The last source chunk a shard read, verified: when there are more shards than source chunks (8 shards of
// a savepoint of 4 subtasks), consecutive shards slice the same chunk, which the next one then reads and
// checksums again. One chunk, let go as the picks are. Its bytes sit in a scratch buffer (a fresh
// chunk-sized buffer per source chunk cost a shard more than reading it), handed back to the pool once the
// chunk is no longer the kept one and no run still reads it.
interface KeptChunk {
  key: string;
  bytes: Uint8Array;
  lease?: Lease;
  users: number;
  kept: boolean;
  timer?: ReturnType<typeof setTimeout>;
}
let lastChunk: KeptChunk | undefined;

function letGo(c: KeptChunk): void {
  c.kept = false;
  if (c.timer !== undefined) clearTimeout(c.timer);
  if (lastChunk === c) lastChunk = undefined;
  if (c.users === 0) c.lease?.release();
}

function use(c: KeptChunk): Lease {
  c.users++;
  let done = false;
  return {
    bytes: c.bytes,
    release() {
      if (done) return;
      done = true;
      if (--c.users === 0 && !c.kept) c.lease?.release();
    },
  };
}

/**
 * A source chunk's verified bytes for a shard run: those the previous shard of this process read, when the
 * chunk is the same (`key`: source location, path and checksum), else `read(into)`'s (`into`: a scratch
 * buffer of `size` bytes, when the size is one the pool serves), kept for the next shard. Release the lease
 * once nothing reads the bytes.
 */
export async function shardSourceChunk(key: string, size: number, read: (into?: Uint8Array) => Promise<Uint8Array>): Promise<Lease> {
  if (lastChunk?.key === key) return use(lastChunk);
  if (lastChunk) letGo(lastChunk);
  const lease = scratchFor(size);
  let bytes: Uint8Array;
  try {
    bytes = await read(lease?.bytes);
  } catch (e) {
    lease?.release();
    throw e;
  }
  // Another run of this thread may have kept a chunk meanwhile: the last one read is kept.
  if (lastChunk) letGo(lastChunk);
  const c: KeptChunk = { key, bytes, lease, users: 0, kept: true };
  c.timer = idleTimer(() => letGo(c), IDLE_MS);
  lastChunk = c;
  return use(c);
}

/**
 * The key of a re-hashed state in this module's caches: the source's location, the state, the new
 * maxParallelism and every chunk's path and checksum.
 */
export function rehashKey(location: string, uid: string, st: { name: string; chunks: readonly { path: string; checksum: string }[] }, maxParallelism: number): string {
  return `${location}\n${uid}/${st.name}\n${maxParallelism}\n${st.chunks.map((c) => `${c.path}:${c.checksum}`).join(",")}`;
}

/**
 * One source chunk of a re-hash shared by the threads of a run (migrate/_shared_hash.ts): its rows sorted by
 * new key group, and the chunk itself once this thread has opened it.
 */
export interface SharedUnit {
  /** The state's {@link rehashKey}. */
  key: string;
  /** Chunks of the state. */
  chunks: number;
  /** Which of them this is. */
  chunk: number;
  /** Its rows sorted by new key group (stable). */
  order: Uint32Array;
  /** `order[starts[g]…starts[g + 1]]` are the rows of new key group g. */
  starts: Uint32Array;
  /** The chunk, read and verified in this thread (by its hashing, or by the first shard that needed it). */
  file?: ChunkFile | Promise<ChunkFile>;
}

/** Picks sorted by new key group: `starts[g]` is the first pick of key group g (g in lo…hi + 1). */
export interface SortedSharedPicks {
  files: ChunkFile[];
  src: Uint32Array;
  row: Uint32Array;
  keyGroups: Uint16Array;
  starts: Uint32Array;
  /** Holds `src`, `row` and `keyGroups` (reused memory): release it once the gather is over. */
  arena: Arena;
}

// The units of the run in progress in this thread, by state key, and the scratch buffers their chunks were
// read into (reused memory: reading 37 MB into fresh memory cost 150–370 ms of CPU here, into reused
// buffers 25–40 ms); replaced by the next run's.
let shared: { run: string; byKey: Map<string, (SharedUnit | undefined)[]>; leases: Lease[] } | undefined;

/**
 * Adds units of run `run` to this thread's registry (a new run's units replace another run's), with the
 * scratch leases their chunks were read into (released with the units).
 */
export function shareUnits(run: string, units: readonly SharedUnit[], leases: readonly Lease[] = []): void {
  if (shared?.run !== run) {
    dropShared();
    shared = { run, byKey: new Map(), leases: [] };
  }
  shared.leases.push(...leases);
  for (const u of units) {
    let list = shared.byKey.get(u.key);
    if (!list) shared.byKey.set(u.key, list = new Array<SharedUnit | undefined>(u.chunks).fill(undefined));
    list[u.chunk] = u;
  }
}

/** Lets this thread's shared units go (those of `run` only, when given). */
export function dropShared(run?: string): void {
  if (!shared || (run !== undefined && shared.run !== run)) return;
  for (const l of shared.leases) l.release();
  shared = undefined;
}

/** The run whose units this thread holds (for tests). */
export function sharedRun(): string | undefined {
  return shared?.run;
}

/**
 * The picks of new key groups `lo`–`hi` of the state `key` from the shared units, in the order a single
 * run's stable sort gives them (by new key group, then chunk, then row), or undefined when this thread
 * lacks any unit of that state. The source chunks (of `snap`'s state `st`) this thread has not read yet
 * are read and verified, once for every shard of the run in this thread.
 */
export async function sharedPicks(key: string, lo: number, hi: number, maxParallelism: number, snap: Snapshot, st: StateSnapshot): Promise<SortedSharedPicks | undefined> {
  const units = shared?.byKey.get(key);
  if (!units || units.some((u) => u === undefined)) return undefined;
  const us = units as SharedUnit[];
  const leases = shared!.leases;
  const open = (j: number) => {
    const ref = st.chunks[j];
    const lease = scratchFor(ref.bytes + 1);
    if (lease) leases.push(lease);
    return openStateChunk(snap, st, ref, lease?.bytes);
  };
  const files = await Promise.all(us.map((u) => (u.file ??= open(u.chunk))));
  us.forEach((u, j) => (u.file = files[j]));
  let m = 0;
  if (hi >= lo) for (const u of us) m += u.starts[hi + 1] - u.starts[lo];
  // A shard's picks (10 bytes a row) in reused memory, as the single run's are: fresh, they cost each
  // thread more CPU to first touch than the gather that reads them (docs/scale-out.md).
  const arena = new Arena();
  const src = arena.array(Uint32Array, m);
  const row = arena.array(Uint32Array, m);
  const keyGroups = arena.array(Uint16Array, m);
  const starts = new Uint32Array(maxParallelism + 1);
  let at = 0;
  for (let g = lo; g <= hi; g++) {
    starts[g] = at;
    for (let j = 0; j < us.length; j++) {
      const { order, starts: s } = us[j];
      const a = s[g];
      const b = s[g + 1];
      if (b === a) continue;
      row.set(order.subarray(a, b), at);
      src.fill(j, at, at + b - a);
      keyGroups.fill(g, at, at + b - a);
      at += b - a;
    }
  }
  if (hi >= lo && hi + 1 <= maxParallelism) starts[hi + 1] = at;
  return { files, src, row, keyGroups, starts, arena };
}
