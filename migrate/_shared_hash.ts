// Private: a re-hash (a new maxParallelism) split over the threads of one run (`workers` > 1). Every source
// key group can feed every destination slice, so a shard alone must read, verify and hash the whole source;
// threads of one process need not each do that. Before the shards, the run's threads share out the source
// chunks ("units"): a thread reads and verifies its chunk, hashes its key column into new key groups and
// counting-sorts the chunk's rows by them. Every thread then gets every unit's sorted rows (shared memory)
// and its shard only reads the chunks and gathers its own key groups (_shard_cache.ts, `sharedPicks`). Shard processes on other machines keep hashing on their own: nothing here changes the
// shard protocol, only who computes what inside one process.
import type { StateSnapshot } from "../format/manifest.ts";
import { keyGroupsOfColumn } from "../format/chunk_slice.ts";
import { isPlainBaseSet } from "../snapshot/chain.ts";
import { checkChunk } from "../snapshot/chunks.ts";
import type { Snapshot } from "../snapshot/read.ts";
import type { ChunkFile } from "../format/chunk_ipc.ts";
import { Arena, type Lease, scratchFor } from "../format/_scratch.ts";
import { idleTimer } from "../format/_idle_timer.ts";
import { COLUMN_REHASH_KEY_TYPES, IN_MEMORY_REHASH_BYTES, rehashKey, type SharedUnit } from "./_shard_cache.ts";

/** SharedArrayBuffer where the host has one (Node, Deno), else ArrayBuffer: messages then copy. */
const Shared: new (bytes: number) => ArrayBufferLike = typeof SharedArrayBuffer === "function" ? SharedArrayBuffer : ArrayBuffer;

/** Free buffers of sorted rows kept for the next run (bytes at most), and how long an idle pool keeps them. */
const KEEP_BYTES = 64 * 1024 * 1024;
const IDLE_MS = 10_000;
const free: ArrayBufferLike[] = [];
let freeBytes = 0;
let idle: ReturnType<typeof setTimeout> | undefined;

/**
 * A buffer for one unit's sorted rows ({@link unitBytes} of them), reused from an earlier run of this
 * process when one is free: first touch of fresh memory costs ~4 ms of CPU per MB on these VMs, more than
 * the sort that fills it. The run that takes it hands it back with {@link releaseUnitBuffers} once no
 * thread reads it any more (the run is over on every thread, or its threads were terminated).
 */
export function unitBuffer(bytes: number): ArrayBufferLike {
  let best = -1;
  for (let i = 0; i < free.length; i++) if (free[i].byteLength >= bytes && (best < 0 || free[i].byteLength < free[best].byteLength)) best = i;
  if (best < 0) return new Shared(bytes + (bytes >> 4));
  unitBuffersReused.count++;
  freeBytes -= free[best].byteLength;
  return free.splice(best, 1)[0];
}

/** Hands buffers of {@link unitBuffer} back: only once nothing reads them (their contents are overwritten). */
export function releaseUnitBuffers(buffers: readonly ArrayBufferLike[]): void {
  for (const b of buffers) {
    if (free.includes(b)) continue;
    if (freeBytes + b.byteLength > KEEP_BYTES) continue;
    free.push(b);
    freeBytes += b.byteLength;
  }
  if (idle !== undefined) clearTimeout(idle);
  idle = idleTimer(() => {
    free.length = 0;
    freeBytes = 0;
    idle = undefined;
  }, IDLE_MS);
}

/** Buffers {@link unitBuffer} took from an earlier run since this thread started (for tests). */
export const unitBuffersReused: { count: number } = { count: 0 };

/** Bytes of one unit's sorted rows: `starts` (maxParallelism + 1 entries) then `order` (a row each). */
export function unitBytes(rows: number, maxParallelism: number): number {
  return (maxParallelism + 1 + rows) * 4;
}

/** Units hashed by this thread since it started (for tests: who did which share of a run's hashing). */
export const unitsHashedHere: { count: number } = { count: 0 };

/** One source chunk to hash: state `state` of operator `uid`, its `chunk`-th chunk. */
export interface HashUnit {
  uid: string;
  state: string;
  chunk: number;
  /** The chunk's rows (for progress). */
  rows: number;
}

/**
 * Whether a state's re-hash can be shared: keyed, a plain set of base chunks (the single run's picks are
 * then every row, chunk by chunk in key-group order, which the per-chunk sort reproduces exactly), a key
 * column hashed as a column, and small enough for the in-memory re-hash.
 */
export function shareableState(st: StateSnapshot): boolean {
  if (!st.keyed || st.chunks.length === 0 || !COLUMN_REHASH_KEY_TYPES.includes(st.keyType ?? "")) return false;
  if (st.chunks.some((c) => !c.keyGroupRange) || !isPlainBaseSet(st.chunks)) return false;
  for (let i = 1; i < st.chunks.length; i++) if (st.chunks[i].keyGroupRange!.start < st.chunks[i - 1].keyGroupRange!.start) return false;
  return st.chunks.reduce((n, c) => n + (c.rawBytes ?? c.bytes), 0) <= IN_MEMORY_REHASH_BYTES;
}

/** Every unit of a re-hash of `snap` that threads can share, in the source's order. */
export function hashUnits(snap: Snapshot): HashUnit[] {
  const units: HashUnit[] = [];
  for (const op of snap.manifest.operators) {
    for (const st of op.states) {
      if (!shareableState(st)) continue;
      st.chunks.forEach((c, chunk) => units.push({ uid: op.uid, state: st.name, chunk, rows: c.rows }));
    }
  }
  return units;
}

/**
 * A hashed unit as it crosses threads (structured-cloneable): its sorted rows as the buffer alone, no typed
 * array. Deno's node:worker_threads walks every message received with for…in to find MessagePorts, which
 * on a typed array visits each element: 20–40 ms of CPU per 250,000 rows on each side, per message.
 */
export interface HashedUnit extends HashUnit {
  /** The state's key in the shared registry (_shard_cache.ts `rehashKey`). */
  key: string;
  /** Chunks of the state. */
  chunks: number;
  /** Where the sorted rows are (see {@link asShared}): `starts` (maxParallelism + 1 entries), then `order`. */
  buffer: ArrayBufferLike;
  /** The new maxParallelism. */
  maxParallelism: number;
  /** Rows of the chunk (entries of `order`). */
  sorted: number;
}

/**
 * Reads and verifies (every check of a sweep's read) one unit's chunk, hashes its keys into `maxParallelism`
 * new key groups and counting-sorts its rows by them. Returns the unit and the opened chunk.
 */
export async function hashUnit(snap: Snapshot, unit: HashUnit, maxParallelism: number, leases: Lease[], into?: ArrayBufferLike): Promise<{ unit: HashedUnit; file: ChunkFile }> {
  const op = snap.manifest.operators.find((o) => o.uid === unit.uid);
  const st = op?.states.find((s) => s.name === unit.state);
  const ref = st?.chunks[unit.chunk];
  if (!op || !st || !ref) throw new TypeError(`Cannot hash ${unit.uid}/${unit.state} chunk ${unit.chunk} as snapshot ${snap.location} has no such chunk`);
  // Into a reused scratch buffer (the caller releases `leases` once the run is over): see _shard_cache.ts.
  const lease = scratchFor(ref.bytes + 1);
  if (lease) leases.push(lease);
  const checked = await checkChunk(snap, st, ref, lease?.bytes);
  if (checked.problems.length) throw checked.problems[0].error;
  const file = checked.file!;
  unitsHashedHere.count++;
  // The hash's own arrays (2.5 MB per 250,000 rows) live until the sort below: in reused memory, as the
  // single run's picks are (fresh memory is what made two threads cost ~1.5× one thread's CPU).
  const arena = new Arena();
  try {
    return sortUnit(snap, unit, st, file, maxParallelism, arena, into);
  } finally {
    arena.release();
  }
}

function sortUnit(snap: Snapshot, unit: HashUnit, st: StateSnapshot, file: ChunkFile, maxParallelism: number, arena: Arena, into?: ArrayBufferLike): { unit: HashedUnit; file: ChunkFile } {
  const n = file.rows;
  const row = arena.array(Uint32Array, n);
  for (let i = 0; i < n; i++) row[i] = i;
  const kgs = keyGroupsOfColumn([file.columns[file.plan.index.key]], arena.array(Uint32Array, n), row, maxParallelism, arena.array(Uint16Array, n));
  if (!kgs) throw new TypeError(`Cannot hash ${unit.uid}/${unit.state} as its key column cannot be hashed as a column`);
  const counts = new Uint32Array(maxParallelism + 1);
  for (let i = 0; i < n; i++) counts[kgs[i] + 1]++;
  for (let g = 1; g <= maxParallelism; g++) counts[g] += counts[g - 1];
  // The sorted rows live in shared memory: a message then carries references, not copies. The chunk's
  // bytes do not cross: each thread reads and verifies the chunks it did not hash itself (from the page
  // cache into reused buffers, ~25–40 ms of CPU per 37 MB here), which cost less than the alternatives
  // measured: a structured clone (~50 ms on each side per 10 MB), or the bytes in SharedArrayBuffers,
  // on which crc32 and the gathers' copies ran 2–8× slower than on ordinary memory.
  // In `into` (a run's pooled buffer, unitBuffer) when it is large enough, else fresh shared memory.
  const buffer = into && into.byteLength >= unitBytes(n, maxParallelism) ? into : new Shared(unitBytes(n, maxParallelism));
  const unitOut: HashedUnit = { ...unit, key: rehashKey(snap.location, unit.uid, st, maxParallelism), chunks: st.chunks.length, buffer, maxParallelism, sorted: n };
  const { starts, order } = views(unitOut);
  starts.set(counts);
  for (let i = 0; i < n; i++) order[counts[kgs[i]]++] = i;
  return { unit: unitOut, file };
}

function views(unit: HashedUnit): { starts: Uint32Array; order: Uint32Array } {
  return {
    starts: new Uint32Array(unit.buffer, 0, unit.maxParallelism + 1),
    order: new Uint32Array(unit.buffer, (unit.maxParallelism + 1) * 4, unit.sorted),
  };
}

/** The units as `SharedUnit`s for the registry (the chunk opened where this thread has it). */
export function asShared(unit: HashedUnit, file?: ChunkFile): SharedUnit {
  const { starts, order } = views(unit);
  return { key: unit.key, chunks: unit.chunks, chunk: unit.chunk, order, starts, file };
}

