/**
 * Sharded writes: a tool's run split by destination key-group range into shards that any batch runner can
 * start, each writing its chunks (at their canonical paths) and a **receipt** under the destination, and
 * one small commit that checks every receipt and writes the manifest.
 *
 * ```
 * <dst>/<operator>/<state>/kg-<a>-<b>.arrow                 chunks, where a single run writes them
 * <dst>/_shards/<fingerprint>/shard-<i>-of-<n>.json          receipt of shard i (written after its chunks)
 * <dst>/_manifest.json                                       written by commitShards, put-if-absent
 * ```
 *
 * How the work splits (decisions, see docs/scale-out.md):
 * - Shard i of n owns the key groups `keyGroupRangeFor(i, n, maxParallelism)` of the destination, and of
 *   each operator the destination subtasks whose first key group lies there. Shards are therefore unions
 *   of whole destination subtask ranges, so every shard writes exactly the chunks a single run writes for
 *   those subtasks, and the committed manifest equals a single run's (ids and times aside). Splitting
 *   key-group ranges inside a subtask would change chunk boundaries for nothing: a subtask restores
 *   whatever chunks cover its range. Only an operator with fewer destination subtasks than shards is cut
 *   at the shards' key-group boundaries (else some shards would have nothing to do).
 * - Operator (non-keyed) state is small (offsets, buffers) and redistributed as a whole list: shard 0
 *   carries all of it.
 * - The plan fingerprint hashes the source manifest, the tool, its arguments and n: receipts of another
 *   plan are refused by the commit.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import {
  AlreadyExistsError,
  DamagedShardError,
  DestinationExistsError,
  ForeignShardError,
  MissingShardError,
  ShardReceiptError,
  SnapshotFormatError,
} from "../format/errors.ts";
import { type KeyGroupRange, keyGroupRangeFor } from "../format/key_group.ts";
import type { ChunkRef, Manifest, OperatorSnapshot, StateSnapshot } from "../format/manifest.ts";
import { scratchFor } from "../format/_scratch.ts";
import { checkSnapshotPath } from "../format/snapshot_path.ts";
import { readVerifiedChunk } from "./chunks.ts";
import { manifestPath } from "./layout.ts";
import { openSnapshot, type Snapshot } from "./read.ts";
import { buildManifest, commitManifest, type ManifestHeader } from "./write.ts";

/** The folder of shard receipts inside a destination. */
export const SHARDS_DIR = "_shards" as const;

/** One shard of a sharded run: `index` in `0..count-1`. */
export interface ShardSpec {
  /** This shard, from 0. */
  readonly index: number;
  /** How many shards the run has. */
  readonly count: number;
}

/** What one shard wrote for one operator. */
export interface ShardOperator extends OperatorSnapshot {
  /** The destination subtasks this shard wrote, `[first, end)`. */
  subtasks: { first: number; end: number };
  /** Their key groups (absent when the shard owns none of this operator's subtasks). */
  keyGroupRange?: KeyGroupRange;
}

/** A shard receipt: which chunks shard `shard.index` of a plan wrote, and the manifest header to commit. */
export interface ShardReceipt {
  /** Always `arrowpoint-shard-receipt`. */
  format: "arrowpoint-shard-receipt";
  /** Receipt format version (1). */
  version: 1;
  /** The plan fingerprint: source manifest, tool, arguments, shard count. */
  fingerprint: string;
  /** This shard. */
  shard: { index: number; count: number };
  /** The destination key groups this shard owns. */
  keyGroups: KeyGroupRange;
  /** The manifest header every shard of the plan agrees on. */
  header: ManifestHeader;
  /** Every operator of the destination, with this shard's chunks only. */
  operators: ShardOperator[];
  /** Rows this shard wrote. */
  rows: number;
  /** Chunk bytes this shard wrote. */
  bytes: number;
  /** Chunk files this shard wrote. */
  chunks: number;
}

/**
 * Checks a shard against a destination's key groups: integers, `0 <= index < count <= maxParallelism`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkShard } from "./shards.ts";
 * checkShard({ index: 3, count: 4 }, 128);
 * assert.throws(() => checkShard({ index: 4, count: 4 }, 128), RangeError);
 * ```
 */
export function checkShard(shard: ShardSpec, maxParallelism: number): void {
  const { index, count } = shard ?? ({} as ShardSpec);
  if (!Number.isInteger(count) || count < 1 || count > maxParallelism) {
    throw new RangeError(`Cannot split the run into shards as the shard count must be an integer in 1..${maxParallelism} (the destination's key groups): current value is ${count}`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`Cannot run shard ${index}/${count} as its index must be an integer in 0..${count - 1}: current value is ${index}`);
  }
}

/**
 * Parses `i/n` (as `--shard` takes it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseShard } from "./shards.ts";
 * assert.deepEqual(parseShard("2/8"), { index: 2, count: 8 });
 * ```
 */
export function parseShard(text: string): ShardSpec {
  const m = /^(\d{1,5})\/(\d{1,5})$/.exec(text.trim());
  if (!m) throw new RangeError(`Cannot read the shard as it must look like i/n (e.g. 0/4): current value is ${JSON.stringify(text)}`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

/**
 * The destination key groups shard `shard` owns: an even split of `0..maxParallelism-1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardKeyGroups } from "./shards.ts";
 * assert.deepEqual(shardKeyGroups({ index: 1, count: 4 }, 128), { start: 32, end: 63 });
 * ```
 */
export function shardKeyGroups(shard: ShardSpec, maxParallelism: number): KeyGroupRange {
  checkShard(shard, maxParallelism);
  return keyGroupRangeFor(shard.index, shard.count, maxParallelism);
}

/**
 * The destination subtasks `[first, end)` of an operator at `parallelism` that shard `shard` writes: those
 * whose first key group it owns (every subtask once, over all shards; whole subtasks only); with fewer
 * subtasks than shards, those overlapping its key groups. Without a shard, every subtask.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardSubtasks } from "./shards.ts";
 * assert.deepEqual(shardSubtasks({ index: 1, count: 2 }, 3, 128), { first: 2, end: 3 });
 * assert.deepEqual(shardSubtasks(undefined, 3, 128), { first: 0, end: 3 });
 * ```
 */
export function shardSubtasks(shard: ShardSpec | undefined, parallelism: number, maxParallelism: number): { first: number; end: number } {
  if (!shard) return { first: 0, end: parallelism };
  checkShard(shard, maxParallelism);
  if (parallelism < shard.count) {
    // Fewer subtasks than shards: the subtasks that overlap this shard's key groups (see shardWindows).
    const own = keyGroupRangeFor(shard.index, shard.count, maxParallelism);
    return { first: Math.floor((own.start * parallelism) / maxParallelism), end: Math.floor((own.end * parallelism) / maxParallelism) + 1 };
  }
  // Subtask j starts at ceil(j * maxP / p); it belongs to the shard of that key group, floor(kg * n / maxP).
  const owner = (j: number) => Math.floor((Math.floor((j * maxParallelism + parallelism - 1) / parallelism) * shard.count) / maxParallelism);
  let first = 0;
  while (first < parallelism && owner(first) < shard.index) first++;
  let end = first;
  while (end < parallelism && owner(end) === shard.index) end++;
  return { first, end };
}

/**
 * The destination subtask ranges of an operator that shard `shard` writes (all of them without a shard),
 * and the index of the first. With fewer subtasks than shards, the parts of subtask ranges inside the
 * shard's own key groups.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shardWindows } from "./shards.ts";
 * assert.deepEqual(shardWindows(2, 128, { index: 1, count: 2 }), { first: 1, windows: [{ start: 64, end: 127 }] });
 * ```
 */
export function shardWindows(parallelism: number, maxParallelism: number, shard?: ShardSpec): { first: number; windows: KeyGroupRange[] } {
  const { first, end } = shardSubtasks(shard, parallelism, maxParallelism);
  const windows: KeyGroupRange[] = [];
  for (let j = first; j < end; j++) windows.push(keyGroupRangeFor(j, parallelism, maxParallelism));
  if (shard && parallelism < shard.count) {
    // Whole subtasks would leave shards idle (a job at parallelism 1 would not split at all): each shard
    // takes its even share of key groups instead, cutting the subtasks' ranges at shard boundaries. The
    // savepoint then has chunk boundaries a single run does not (valid: a subtask restores whatever
    // chunks cover its range).
    const own = keyGroupRangeFor(shard.index, shard.count, maxParallelism);
    return { first, windows: windows.map((w) => ({ start: Math.max(w.start, own.start), end: Math.min(w.end, own.end) })) };
  }
  return { first, windows };
}

/**
 * Whether a shard writes operator (non-keyed) state: shard 0 carries all of it (and an unsharded run).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { carriesOperatorState } from "./shards.ts";
 * assert.equal(carriesOperatorState({ index: 0, count: 4 }), true);
 * assert.equal(carriesOperatorState({ index: 1, count: 4 }), false);
 * ```
 */
export function carriesOperatorState(shard: ShardSpec | undefined): boolean {
  return !shard || shard.index === 0;
}

/** JSON with sorted keys; functions as their source text (a key function or custom step is an argument too). */
function canonical(value: unknown): string {
  return JSON.stringify(value, function (this: unknown, _key, v: unknown) {
    if (typeof v === "function") return `function:${String(v)}`;
    if (typeof v === "bigint") return `bigint:${v}`;
    if (v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array)) {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) out[k] = (v as Record<string, unknown>)[k];
      return out;
    }
    return v;
  });
}

/**
 * The plan fingerprint of a sharded run: a digest of the source manifest, the tool, its arguments (that
 * shape the output) and the shard count. Every shard of one plan computes the same one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildManifest } from "./write.ts";
 * import { shardFingerprint } from "./shards.ts";
 * const src = buildManifest({ kind: "savepoint", id: "sp-1", job: "j", maxParallelism: 128 }, []);
 * const a = shardFingerprint("rekey", src, { parallelism: 4 }, 8);
 * assert.equal(a, shardFingerprint("rekey", src, { parallelism: 4 }, 8));
 * assert.notEqual(a, shardFingerprint("rekey", src, { parallelism: 4 }, 4));
 * ```
 */
export function shardFingerprint(tool: string, source: Manifest, args: unknown, count: number): string {
  const sourceDigest = createHash("sha256").update(canonical(source)).digest("hex");
  return createHash("sha256").update(canonical({ tool, source: sourceDigest, args: args ?? null, count })).digest("hex").slice(0, 32);
}

/**
 * The path of shard `shard`'s receipt, relative to the destination.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { receiptPath } from "./shards.ts";
 * assert.equal(receiptPath("ab12", { index: 2, count: 8 }), "_shards/ab12/shard-2-of-8.json");
 * ```
 */
export function receiptPath(fingerprint: string, shard: ShardSpec): string {
  return `${SHARDS_DIR}/${fingerprint}/shard-${shard.index}-of-${shard.count}.json`;
}

/**
 * Writes a shard's receipt (after all its chunks): from here on the commit counts the shard as done. The
 * bytes depend only on what was written, so a re-run writes the same receipt.
 *
 * @example
 * ```ts
 * import { openStorage } from "../backends/open.ts";
 * import { type ShardReceipt, writeReceipt } from "./shards.ts";
 * declare const receipt: ShardReceipt;
 * // await writeReceipt(await openStorage("memory:dst"), receipt);
 * ```
 */
export async function writeReceipt(storage: Storage, receipt: ShardReceipt): Promise<void> {
  await storage.put(receiptPath(receipt.fingerprint, receipt.shard), new TextEncoder().encode(canonical(receipt) + "\n"));
}

/** What {@link commitShards} did. */
export interface CommitReport {
  /** The destination committed. */
  destination: string;
  /** The committed manifest. */
  manifest: Manifest;
  /** The plan fingerprint of the shards. */
  fingerprint: string;
  /** Shards combined. */
  shards: number;
  /** Rows, chunk bytes and chunk files of all shards. */
  rows: number;
  /** Chunk bytes of all shards. */
  bytes: number;
  /** Chunk files of all shards. */
  chunks: number;
  /** Whether the manifest was already there (an earlier commit of the same receipts succeeded). */
  alreadyCommitted: boolean;
}

/** Options of {@link commitShards}. */
export interface CommitShardsOptions {
  /**
   * How chunks are verified before the manifest is written: `checksum` (default) reads every chunk once
   * (size and checksum); `size` compares the sizes a listing reports (no chunk is read).
   */
  verify?: "checksum" | "size";
  /** Chunks read at once while verifying (default 4: each holds a chunk-sized buffer). */
  concurrency?: number;
}

const RECEIPT_NAME = /^shard-(\d{1,5})-of-(\d{1,5})\.json$/;
const FINGERPRINT = /^[0-9a-f]{8,64}$/;

interface Found {
  fingerprint: string;
  index: number;
  count: number;
  path: string;
}

async function listReceipts(storage: Storage): Promise<Found[]> {
  const out: Found[] = [];
  for await (const o of storage.list(`${SHARDS_DIR}/`)) {
    const [, fp, name, ...rest] = o.path.split("/");
    const m = name !== undefined && rest.length === 0 ? RECEIPT_NAME.exec(name) : null;
    if (!m || !FINGERPRINT.test(fp)) continue; // leftovers of a put in flight, or not ours
    out.push({ fingerprint: fp, index: Number(m[1]), count: Number(m[2]), path: o.path });
  }
  return out;
}

function isRange(r: unknown): r is KeyGroupRange {
  const x = r as KeyGroupRange;
  return !!x && typeof x === "object" && Number.isInteger(x.start) && Number.isInteger(x.end) && x.start >= 0 && x.start <= x.end;
}

function parseReceipt(bytes: Uint8Array, found: Found, dst: string): ShardReceipt {
  const bad = (why: string, cause?: unknown) => new ShardReceiptError(dst, [found.index], `the receipt ${found.path} ${why}; run shard ${found.index}/${found.count} again`, { cause });
  let r: ShardReceipt;
  try {
    r = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) as ShardReceipt;
  } catch (e) {
    throw bad("is not JSON", e);
  }
  if (!r || typeof r !== "object" || r.format !== "arrowpoint-shard-receipt") throw bad("is not a shard receipt");
  if (r.version !== 1) throw bad(`has version ${JSON.stringify(r.version)}, which this arrowpoint does not read`);
  if (r.fingerprint !== found.fingerprint || r.shard?.index !== found.index || r.shard?.count !== found.count) throw bad("does not match its own path");
  if (!isRange(r.keyGroups) || !r.header || typeof r.header !== "object" || !Array.isArray(r.operators)) throw bad("lacks its key groups, header or operators");
  for (const op of r.operators) {
    if (!op || typeof op.uid !== "string" || !Array.isArray(op.states) || !op.subtasks || !Number.isInteger(op.subtasks.first) || !Number.isInteger(op.subtasks.end)) {
      throw bad("has a malformed operator entry");
    }
    if (op.keyGroupRange !== undefined && !isRange(op.keyGroupRange)) throw bad(`has a malformed key-group range for operator ${JSON.stringify(op.uid)}`);
    for (const st of op.states) {
      if (!st || typeof st.name !== "string" || !Array.isArray(st.chunks)) throw bad(`has a malformed state of operator ${JSON.stringify(op.uid)}`);
      for (const c of st.chunks) {
        if (!c || typeof c.path !== "string" || !Number.isSafeInteger(c.bytes) || typeof c.checksum !== "string") throw bad(`has a malformed chunk entry in ${op.uid}/${st.name}`);
        try {
          checkSnapshotPath(c.path);
        } catch (e) {
          throw bad(`names a chunk outside the destination (${JSON.stringify(c.path)})`, e);
        }
        if (st.keyed && !isRange(c.keyGroupRange)) throw bad(`has a keyed chunk without a key-group range (${c.path})`);
      }
    }
  }
  return r;
}

/** The receipt's operators and states without chunks: what every shard of a plan must agree on. */
function skeleton(r: ShardReceipt): string {
  return canonical({
    header: r.header,
    operators: r.operators.map(({ uid, name, parallelism, states }) => ({ uid, name, parallelism, states: states.map((s) => ({ ...s, chunks: [] })) })),
  });
}

interface Assembled {
  fingerprint: string;
  count: number;
  receipts: ShardReceipt[];
  header: ManifestHeader;
  operators: OperatorSnapshot[];
  /** Which shard wrote each chunk path. */
  owner: Map<string, number>;
}

async function assemble(storage: Storage, dst: string): Promise<Assembled> {
  const found = await listReceipts(storage);
  if (found.length === 0) throw new MissingShardError(dst, [], 0);
  const plans = [...new Set(found.map((f) => f.fingerprint))];
  if (plans.length > 1) {
    const desc = plans.map((fp) => `${fp} (shards ${found.filter((f) => f.fingerprint === fp).map((f) => `${f.index}/${f.count}`).join(", ")})`);
    throw new ForeignShardError(
      dst,
      [...new Set(found.map((f) => f.index))].sort((a, b) => a - b),
      `its receipts come from ${plans.length} different plans: ${desc.join("; ")}. Delete the _shards/<fingerprint>/ folder of the attempt you abandoned (gc removes it after its grace period) and re-run that plan's shards`,
    );
  }
  const counts = [...new Set(found.map((f) => f.count))];
  if (counts.length > 1) {
    throw new ForeignShardError(dst, found.map((f) => f.index), `its receipts disagree on the shard count (${counts.join(" and ")}) under one plan`);
  }
  const count = counts[0];
  const byIndex = new Map(found.map((f) => [f.index, f]));
  const missing: number[] = [];
  for (let i = 0; i < count; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length) throw new MissingShardError(dst, missing, count);
  const receipts: ShardReceipt[] = [];
  for (let i = 0; i < count; i++) receipts.push(parseReceipt(await storage.get(byIndex.get(i)!.path), byIndex.get(i)!, dst));
  const shape = skeleton(receipts[0]);
  for (const r of receipts) {
    if (skeleton(r) !== shape) {
      throw new ForeignShardError(dst, [0, r.shard.index], `shard ${r.shard.index}/${count} describes another destination than shard 0/${count} (header, operators or states differ) under the same fingerprint; run both again`);
    }
  }
  const header = receipts[0].header;
  const maxP = header.maxParallelism;
  if (!Number.isInteger(maxP) || maxP < count) throw new ShardReceiptError(dst, [0], `the receipts' maxParallelism ${maxP} cannot hold ${count} shards`);
  const owner = new Map<string, number>();
  const operators: OperatorSnapshot[] = receipts[0].operators.map((op0, o) => {
    const states: StateSnapshot[] = op0.states.map((st0, s) => ({ ...st0, chunks: [] as ChunkRef[] }));
    let next = 0; // the next key group this operator's keyed chunks must start at
    for (const r of receipts) {
      const i = r.shard.index;
      const op = r.operators[o];
      // The subtasks and key groups this shard had to write: exactly its own, whole subtasks.
      const want = shardWindows(op0.parallelism, maxP, r.shard);
      const range = want.windows.length ? { start: want.windows[0].start, end: want.windows[want.windows.length - 1].end } : undefined;
      if (op.subtasks.first !== want.first || op.subtasks.end !== want.first + want.windows.length || canonical(op.keyGroupRange) !== canonical(range)) {
        throw new ShardReceiptError(dst, [i], `shard ${i}/${count} claims subtasks [${op.subtasks.first}, ${op.subtasks.end}) of ${op0.uid}, but the plan gives it [${want.first}, ${want.first + want.windows.length})`);
      }
      op.states.forEach((st, si) => {
        for (const c of st.chunks) {
          if (owner.has(c.path)) throw new ShardReceiptError(dst, [owner.get(c.path)!, i], `shards ${owner.get(c.path)}/${count} and ${i}/${count} both list chunk ${c.path}`);
          owner.set(c.path, i);
        }
        if (!st.keyed) {
          if (i !== 0 && st.chunks.length) throw new ShardReceiptError(dst, [i], `shard ${i}/${count} lists operator state of ${op0.uid}/${st.name}, which only shard 0 writes`);
        } else if (range) {
          // Keyed chunks tile this shard's key groups exactly once.
          let at = range.start;
          for (const c of st.chunks) {
            if (c.keyGroupRange!.start !== at || c.keyGroupRange!.end > range.end) {
              throw new ShardReceiptError(dst, [i], `shard ${i}/${count}'s chunks of ${op0.uid}/${st.name} do not cover its key groups [${range.start}, ${range.end}] exactly once (at ${c.path})`);
            }
            at = c.keyGroupRange!.end + 1;
          }
          if (at !== range.end + 1) throw new ShardReceiptError(dst, [i], `shard ${i}/${count}'s chunks of ${op0.uid}/${st.name} stop at key group ${at - 1}, short of ${range.end}`);
        } else if (st.chunks.length) {
          throw new ShardReceiptError(dst, [i], `shard ${i}/${count} lists chunks of ${op0.uid}/${st.name} but owns none of its subtasks`);
        }
        states[si].chunks.push(...st.chunks);
      });
      if (range) {
        if (range.start !== next) throw new ShardReceiptError(dst, [i], `the shards leave key groups of ${op0.uid} uncovered or covered twice before ${range.start}`);
        next = range.end + 1;
      }
    }
    if (next !== maxP) throw new ShardReceiptError(dst, [], `the shards cover key groups 0..${next - 1} of ${op0.uid}, not 0..${maxP - 1}`);
    const entry: OperatorSnapshot = { uid: op0.uid, parallelism: op0.parallelism, states };
    if (op0.name !== undefined) entry.name = op0.name;
    return entry;
  });
  return { fingerprint: plans[0], count, receipts, header, operators, owner };
}

async function verifyChunks(storage: Storage, dst: string, a: Assembled, manifest: Manifest, options: CommitShardsOptions): Promise<void> {
  const refs = manifest.operators.flatMap((o) => o.states.flatMap((s) => s.chunks));
  const damaged = (ref: ChunkRef, reason: string, cause?: unknown) => {
    const i = a.owner.get(ref.path)!;
    return new DamagedShardError(dst, i, a.count, ref.path, reason, { cause });
  };
  if (options.verify === "size") {
    const sizes = new Map<string, number>();
    for await (const o of storage.list("")) sizes.set(o.path, o.size);
    for (const ref of refs) {
      const size = sizes.get(ref.path);
      if (size === undefined) throw damaged(ref, "missing");
      if (size !== ref.bytes) throw damaged(ref, `${size} bytes, the receipt records ${ref.bytes}`);
    }
    return;
  }
  // The destination read as the snapshot it is about to become: the one chunk verification reads it.
  const snap: Snapshot = { manifest, storage, dir: "", chunkBase: "", location: dst };
  const width = Math.max(1, options.concurrency ?? 4);
  // Size and checksum only, nothing decoded, each reader into one reused buffer that fits every chunk: a
  // fresh chunk-sized buffer per chunk cost more than the read and the checksum together
  // (format/_scratch.ts), so a commit holds `width` buffers at most, warm ones from the pool when the
  // shards have just handed theirs back.
  const largest = refs.reduce((n, r) => Math.max(n, Number.isSafeInteger(r.bytes) ? r.bytes : 0), 0);
  let next = 0;
  const worker = async () => {
    const lease = scratchFor(largest + 1);
    try {
      while (next < refs.length) {
        const ref = refs[next++];
        try {
          await readVerifiedChunk(snap, ref, lease && ref.bytes < lease.bytes.length ? lease.bytes : undefined);
        } catch (e) {
          if (e instanceof SnapshotFormatError) throw damaged(ref, e.message, e);
          throw e;
        }
      }
    } finally {
      lease?.release();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, refs.length) }, worker));
}

function sameCommit(existing: Manifest, header: ManifestHeader, operators: OperatorSnapshot[]): boolean {
  return existing.id === header.id && existing.job === header.job && existing.maxParallelism === header.maxParallelism && canonical(existing.operators) === canonical(operators);
}

/**
 * Commits a sharded run: checks that every receipt under `dst/_shards/` belongs to one plan, that all n
 * shards are there and cover every destination key group of every operator exactly once, verifies every
 * chunk they list (size and checksum), then writes the manifest (put-if-absent) through the one manifest
 * assembly, and removes the receipts. A missing, foreign or damaged shard throws `MissingShardError`,
 * `ForeignShardError`, `DamagedShardError` or `ShardReceiptError` naming it, and nothing is committed.
 * Running it again after a commit whose clean-up was interrupted finds the same manifest and finishes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, commitShards, generatorSource, Job, rekey, valueState } from "../mod.ts";
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:commit-shards-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:commit-shards-example/savepoints/sp-1");
 * // Two shards (any processes, any machines), then one commit:
 * const dst = "memory:commit-shards-example/savepoints/p4";
 * for (const index of [0, 1]) await rekey(sp.location, dst, { parallelism: 4, shard: { index, count: 2 } });
 * const report = await commitShards(dst);
 * assert.deepEqual(report.manifest.operators.map((o) => o.parallelism), [4, 4, 4]);
 * ```
 */
export async function commitShards(dst: string | Storage, options: CommitShardsOptions = {}): Promise<CommitReport> {
  const storage = typeof dst === "string" ? await openStorage(dst) : dst;
  const where = storage.uri.replace(/\/+$/, "");
  try {
    const existing = await readExisting(storage);
    if (existing) return await finishCommitted(storage, where, existing);
    const a = await assemble(storage, where);
    const totals = { rows: 0, bytes: 0, chunks: 0 };
    for (const r of a.receipts) {
      totals.rows += r.rows;
      totals.bytes += r.bytes;
      totals.chunks += r.chunks;
    }
    const done = (manifest: Manifest, alreadyCommitted: boolean): CommitReport => ({ destination: storage.uri, manifest, fingerprint: a.fingerprint, shards: a.count, ...totals, alreadyCommitted });
    const manifest = buildManifest(a.header, a.operators);
    await verifyChunks(storage, where, a, manifest, options);
    try {
      await commitManifest(storage, "", manifest);
    } catch (e) {
      // Another commit of the same receipts won the race: that is this commit, done.
      const now = e instanceof AlreadyExistsError ? await readExisting(storage) : undefined;
      if (now && sameCommit(now, a.header, a.operators)) {
        await removeReceipts(storage);
        return done(now, true);
      }
      throw e;
    }
    await removeReceipts(storage);
    return done(manifest, false);
  } finally {
    if (typeof dst === "string") await storage.close();
  }
}

/**
 * The destination already has a manifest: an earlier commit succeeded if the receipts left (its clean-up
 * may have stopped half way) are one plan's and every chunk they list is in the manifest, where they say.
 */
async function finishCommitted(storage: Storage, where: string, existing: Manifest): Promise<CommitReport> {
  const found = await listReceipts(storage);
  const plans = new Set(found.map((f) => f.fingerprint));
  if (found.length === 0 || plans.size !== 1) throw new DestinationExistsError(where);
  const listed = new Map<string, string>();
  for (const op of existing.operators) for (const st of op.states) for (const c of st.chunks) listed.set(`${op.uid}\u0000${st.name}\u0000${c.path}`, canonical(c));
  let count = 0;
  for (const f of found) {
    const r = parseReceipt(await storage.get(f.path), f, where);
    const h = r.header;
    const fits = h.id === existing.id && h.job === existing.job && h.maxParallelism === existing.maxParallelism &&
      r.operators.every((op) => op.states.every((st) => st.chunks.every((c) => listed.get(`${op.uid}\u0000${st.name}\u0000${c.path}`) === canonical(c))));
    if (!fits) throw new DestinationExistsError(where);
    count = r.shard.count;
  }
  await removeReceipts(storage);
  const refs = existing.operators.flatMap((o) => o.states.flatMap((st) => st.chunks));
  const totals = { rows: refs.reduce((n, c) => n + c.rows, 0), bytes: refs.reduce((n, c) => n + c.bytes, 0), chunks: refs.length };
  return { destination: storage.uri, manifest: existing, fingerprint: [...plans][0], shards: count, ...totals, alreadyCommitted: true };
}

async function readExisting(storage: Storage): Promise<Manifest | undefined> {
  if (!(await storage.exists(manifestPath("")))) return undefined;
  return (await openSnapshot(storage)).manifest;
}

/** After the commit the receipts are debris: removed here (best effort; `gc` removes what is left). */
async function removeReceipts(storage: Storage): Promise<void> {
  const paths: string[] = [];
  for await (const o of storage.list(`${SHARDS_DIR}/`)) paths.push(o.path);
  if (paths.length) await storage.delete(paths).catch(() => {});
}
