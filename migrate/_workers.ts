// Private: `workers` — the shards of one run in worker threads of this process, then one commit. The same
// protocol as shard processes on many machines (receipts under the destination, commitShards), so the
// one-machine case tests the many-machine one. Each thread runs whole shards through the same tool code.
import { availableParallelism } from "node:os";
import * as errors from "../format/errors.ts";
import { ArrowpointError } from "../format/errors.ts";
// platform/worker.ts is imported when threads start, not with the tools: its top-level await (loading
// node:worker_threads) would make every module importing the tools an async module, which a migrations
// module compiled to CommonJS (tsx, outside a "type": "module" package) cannot import.
import type { WorkerThread } from "../platform/worker.ts";
import { commitShards } from "../snapshot/shards.ts";
import type { ShardSpec } from "../snapshot/shards.ts";
import type { Migrations } from "./migrations.ts";
import type { Progress } from "./progress.ts";
import type { ShardRun, WriteReport } from "./_rewrite.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { asShared, type HashedUnit, hashUnit, type HashUnit, hashUnits, releaseUnitBuffers, shareableState, unitBuffer, unitBytes } from "./_shared_hash.ts";
import { dropShared, shareUnits } from "./_shard_cache.ts";
import type { Lease } from "../format/_scratch.ts";
import type { WriteOptions } from "./_sink.ts";

/** One shard for a worker thread. */
export interface ShardTask {
  type?: "shard";
  tool: "compact" | "rekey" | "migrate";
  src: string;
  dst: string;
  /** The tool's options, structured-cloneable (no functions, no signal). */
  options: Record<string, unknown>;
  /** migrate: the migrations (plain data), or the module that exports them. */
  migrations?: Migrations | { module: string };
  shard: ShardSpec;
  /** Whether to report progress. */
  progress: boolean;
  /** Units of a shared re-hash (migrate/_shared_hash.ts) this thread did not hash itself, with its first shard. */
  shared?: { run: string; units: HashedUnit[] };
}

/** One unit of a shared re-hash for a worker thread: it keeps the result and sends a copy back. */
export interface HashTask {
  type: "hash";
  run: string;
  src: string;
  maxParallelism: number;
  unit: HashUnit;
  /** Where to put the unit's sorted rows: shared memory this thread reuses from run to run (_shared_hash.ts). */
  buffer?: ArrayBufferLike;
}

/** What a worker thread is asked: a shard, a unit to hash, or to let a run's shared units go. */
export type WorkerTask = ShardTask | HashTask | { type: "forget"; run: string };

/** What a worker thread says. */
export type WorkerReply =
  | { type: "progress"; shard: number; progress: Progress }
  | { type: "done"; shard: number; rows: number; bytes: number; chunks: number; thread: number }
  | { type: "hashed"; unit: HashedUnit }
  | { type: "error"; shard: number; name: string; code?: string; message: string; stack?: string; fields?: Record<string, unknown>; during?: "hash" };

const BUILT_IN: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError };

/**
 * A worker thread's error, rebuilt on this side as the same class (a named arrowpoint error or a built-in
 * one) with its fields, so that callers catch it as they would from a run in this thread; the message says
 * which shard failed where.
 */
export function rebuildError(r: Extract<WorkerReply, { type: "error" }>, count: number): Error {
  const message = r.during === "hash" ? `hashing the source for ${count} shards (worker thread): ${r.message}` : `shard ${r.shard}/${count} (worker thread): ${r.message}`;
  const named = (errors as Record<string, unknown>)[r.name];
  let e: Error;
  if (typeof named === "function" && named.prototype instanceof ArrowpointError) {
    // Not through its constructor (each takes its own arguments): the same prototype and fields.
    e = Object.create(named.prototype as object) as Error;
    Object.defineProperty(e, "message", { value: message, writable: true, configurable: true });
    Object.assign(e, r.fields ?? {});
    if (r.code !== undefined) Object.assign(e, { code: r.code });
    e.name = r.name;
  } else if (Object.hasOwn(BUILT_IN, r.name)) {
    e = new BUILT_IN[r.name](message);
  } else {
    e = Object.assign(new ArrowpointError(r.code ?? "ARROWPOINT_WORKER", message), r.fields ?? {});
    e.name = r.name;
  }
  if (r.stack) e.stack = `${e.name}: ${message}\n    (in a worker thread) ${r.stack.split("\n").slice(1).join("\n")}`;
  return e;
}

/**
 * `"auto"` starts new threads only for a source of at least this many rows: a thread starting cold loads
 * the library (1–3 s here under load, competing with this thread for the cores), which runs of 1M and 3M
 * rows did not win back (docs/scale-out.md); from here one thread works for ≥ 15 s.
 */
export const AUTO_MIN_ROWS_COLD = 16_000_000;

/**
 * `"auto"` uses threads already warm in the pool (left by an earlier run of this process) for a source of
 * at least this many rows: a warm thread costs no start-up, only a shard's constants. The same as
 * {@link AUTO_MIN_ROWS_COLD} since December 2026 (was 500,000): on this 2-core machine, shared with other
 * work, warm threads lost at 1M rows (0.72–1.40× one thread's rows/s, 11 runs of 16 below 1×) and at 4M
 * rows (0.68–0.86×), on Node and Deno, for `rekey` and `migrate` (docs/scale-out.md).
 */
export const AUTO_MIN_ROWS_WARM = 16_000_000;

/**
 * The row limits `"auto"` decides with: {@link AUTO_MIN_ROWS_COLD} and {@link AUTO_MIN_ROWS_WARM}, in one
 * object so that a test can take the threaded path of `"auto"` with a small source (and the warm one, which
 * the limits as measured make unreachable on its own: warm starts where cold does).
 */
export const autoLimits: { cold: number; warm: number } = { cold: AUTO_MIN_ROWS_COLD, warm: AUTO_MIN_ROWS_WARM };

/** This machine's cores (node:os availableParallelism, else navigator.hardwareConcurrency). */
export function cores(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, typeof availableParallelism === "function" ? availableParallelism() : nav);
}

/** What `"auto"` decides from, besides the source's rows. */
export interface AutoFacts {
  /**
   * Whether every shard must read and hash the whole source: a re-hash that the threads of a run cannot
   * share (a new key function, spilled re-hashes of large states; migrate/_shared_hash.ts).
   */
  rehash?: boolean;
  /** Worker threads idle and warm in the pool now. */
  warm?: number;
}

/**
 * The number of threads a run uses, this one included: `workers` as given; 1 = this thread alone.
 * `"auto"` (see docs/scale-out.md for the figures): this thread alone for a re-hash the threads cannot
 * share (each shard would read and hash the whole source: 2 threads measured 0.9–1.5× slower), else the
 * cores for a source of at least
 * {@link AUTO_MIN_ROWS_COLD} rows, else this thread plus the warm threads for a source of at least
 * {@link AUTO_MIN_ROWS_WARM} rows, else this thread alone.
 */
export function workerCount(workers: number | "auto" | undefined, sourceRows: number, facts: AutoFacts = {}): number {
  if (workers === undefined) return 1;
  if (workers === "auto") {
    if (facts.rehash) return 1;
    if (sourceRows >= autoLimits.cold) return cores();
    if (sourceRows >= autoLimits.warm) return Math.min(cores(), 1 + (facts.warm ?? 0));
    return 1;
  }
  if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`Cannot run in worker threads as workers must be an integer ≥ 1 or "auto": current value is ${workers}`);
  return workers;
}

const RUN_ONLY = new Set(["onProgress", "signal", "workers", "shard", "dryRun"]);

/** `signal` alone, or one that aborts with either (AbortSignal.any is missing before Node 20.3). */
export function anySignal(user: AbortSignal | undefined, signal: AbortSignal): AbortSignal {
  if (!user) return signal;
  const both = new AbortController();
  const stop = (s: AbortSignal) => both.abort(s.reason);
  if (user.aborted) stop(user);
  else if (signal.aborted) stop(signal);
  else {
    user.addEventListener("abort", () => stop(user), { once: true });
    signal.addEventListener("abort", () => stop(signal), { once: true });
  }
  return both.signal;
}

/** Runs one shard in this thread (the tool itself, with `shard` set), reporting progress to `onProgress`. */
export type RunHere = (shard: ShardSpec, onProgress: ((p: Progress) => void) | undefined, signal: AbortSignal) => Promise<unknown>;

/** The rows a run in this thread wrote: a compact or rekey report, or a migrate report's `written`. */
function rowsOf(r: unknown): number {
  const x = r as { rows?: number; written?: { rows?: number } } | undefined;
  return x?.rows ?? x?.written?.rows ?? 0;
}

/** A re-hash the threads of a run can share (migrate/_shared_hash.ts): the opened source and the new maxParallelism. */
export interface SharedRehash {
  snapshot: Snapshot;
  maxParallelism: number;
}

/**
 * Runs `tool` as `count` shards on `count` threads, this one included, then commits: the same savepoint
 * as one run. This thread starts on the first shard at once, while the other threads start (or come warm
 * from the pool, platform/worker_pool.ts); every thread takes the next shard nobody has begun, so a thread
 * that is slow to start takes less or nothing and the run is never much slower than this thread alone.
 * Threads that end up idle go back to the pool, unreferenced, for the next run.
 * With `rehash` (a new maxParallelism), the threads first hash the source together, a chunk at a time,
 * taken the same way (migrate/_shared_hash.ts); every thread then has every chunk's picks and its shards
 * only gather their own key groups.
 * `src` and `dst` must be URIs a thread can open on its own (not `memory:`, which lives in one thread).
 */
export async function runInWorkers(
  tool: ShardTask["tool"],
  src: unknown,
  dst: unknown,
  options: WriteOptions & { workers?: number | "auto" },
  count: number,
  migrations: Migrations | { module: string } | undefined,
  here: RunHere,
  rehash?: SharedRehash,
): Promise<WriteReport> {
  const why = (what: string) => new TypeError(`Cannot run ${tool} in ${count} worker threads as ${what}; give workers: 1 to run it in this thread`);
  if (typeof src !== "string" || typeof dst !== "string") throw why("the source and destination must be URIs (a thread opens its own storage)");
  if (/^memory:/.test(src) || /^memory:/.test(dst)) throw why("memory: storage lives in one thread");
  const plain = Object.fromEntries(Object.entries(options).filter(([k, v]) => !RUN_ONLY.has(k) && v !== undefined));
  try {
    structuredClone(plain);
    if (migrations && !("module" in migrations)) structuredClone(migrations);
  } catch (e) {
    throw why(`its arguments hold functions (a key function, a merge, a custom migration step), which cannot cross threads: ${(e as Error).message}`);
  }
  const started = Date.now();
  options.signal?.throwIfAborted();
  const progress = new Map<number, Progress>();
  // Shards that have scattered (a re-hash: each shard scatters the whole source, then writes its slice).
  const scattered = new Set<number>();
  // Rows of the source hashed together before the shards (a shared re-hash): the whole source once.
  let sharedRows = 0;
  let sharedTotal = 0;
  const report = () => {
    if (!options.onProgress) return;
    let written = 0;
    let scatter = 0;
    let scattering = false;
    let bytes = 0;
    let total = sharedTotal;
    for (const p of progress.values()) total = Math.max(total, p.totalRows ?? 0);
    for (const [index, p] of progress) {
      bytes += p.bytes;
      if (p.phase === "scatter") {
        scattering = true;
        scatter += p.rows;
      } else {
        written += p.rows;
        if (scattered.has(index)) scatter += total;
      }
    }
    // As one run's progress: while any shard scatters, the run's scatter is the shards' mean (every shard
    // passes over the whole source, those not begun count 0); then the rows written, summed.
    if (sharedTotal > 0 && progress.size === 0) return options.onProgress({ phase: "scatter", rows: sharedRows, bytes: 0, totalRows: sharedTotal, elapsedMs: Date.now() - started });
    const rows = scattering ? Math.round(scatter / count) : written;
    options.onProgress({ phase: scattering ? "scatter" : "write", rows, bytes, totalRows: total || undefined, elapsedMs: Date.now() - started });
  };
  const onProgress = options.onProgress ? (index: number) => (p: Progress) => {
      progress.set(index, p);
      if (p.phase === "scatter") scattered.add(index);
      report();
    } : undefined;

  const { siblingModule } = await import("../platform/worker.ts");
  const pool = await import("../platform/worker_pool.ts");
  const module = siblingModule(import.meta.url, "_shard_worker");
  const queue = Array.from({ length: count }, (_, i) => i);
  let done = 0;
  let over = false;
  const busy = new Set<WorkerThread>();
  const runs: ShardRun[] = [];
  let finish!: () => void;
  let fail!: (e: unknown) => void;
  // The shared re-hash: its units, taken one at a time by whichever thread is free; every shard waits for
  // all of them (the gate opens when the last is hashed, or when the run fails).
  const units: HashUnit[] = rehash && (options as { spillRows?: number }).spillRows === undefined ? hashUnits(rehash.snapshot) : [];
  const sharing = units.length >= 2;
  const run = sharing ? `${started.toString(36)}-${Math.random().toString(36).slice(2, 10)}` : "";
  const hashed: HashedUnit[] = [];
  const hashedHere = new Map<number, Awaited<ReturnType<typeof hashUnit>>["file"]>();
  const unitQueue = sharing ? units.map((_, i) => i) : [];
  // The units' sorted rows, in buffers this thread lends to the run and takes back once it is over.
  const buffers: ArrayBufferLike[] = [];
  const bufferFor = (u: number) => {
    const b = unitBuffer(unitBytes(units[u].rows, rehash!.maxParallelism));
    buffers.push(b);
    return b;
  };
  // Scratch buffers this thread's hashing read into: the shared units' from the gate on, else freed here.
  const leasesHere: Lease[] = [];
  let unitsLeft = unitQueue.length;
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  if (!sharing) openGate();
  sharedTotal = units.reduce((n, u) => n + u.rows, 0) * (sharing ? 1 : 0);
  const unitDone = (i: number, unit: HashedUnit) => {
    hashed[i] = unit;
    sharedRows += unit.rows;
    report();
    if (--unitsLeft === 0) openGate();
  };
  const finished = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = (e) => {
      if (over) return;
      over = true;
      openGate();
      reject(e);
    };
  });
  // This thread takes shards from the front, worker threads from the back: with 2 threads, this one runs
  // shard 0 and the worker shard 1 whichever is first at the shared re-hash's gate (also what tests see).
  const next = (): number | undefined => (over ? undefined : queue.shift());
  const nextForWorker = (): number | undefined => (over ? undefined : queue.pop());
  const nextUnit = (): number | undefined => (over ? undefined : unitQueue.shift());
  const shardDone = () => {
    if (++done === count && !over) {
      over = true;
      finish();
    }
  };
  // Stops this thread's shard when the run fails elsewhere (or is aborted), so nothing writes after we return.
  const stopHere = new AbortController();
  const onAbort = () => fail(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });

  // One task on a worker thread; resolves with its reply, rejects on its error or its thread's end.
  const ask = (t: WorkerThread, task: WorkerTask, what: string) =>
    new Promise<Extract<WorkerReply, { type: "done" | "hashed" }>>((resolve, reject) => {
      t.onMessage((m) => {
        const r = m as WorkerReply;
        if (r.type === "progress") onProgress?.(r.shard)(r.progress);
        else if (r.type === "error") reject(rebuildError(r, count));
        else resolve(r);
      });
      t.exited.then((x) => reject(x.error ?? new ArrowpointError("ARROWPOINT_WORKER", `the worker thread of ${what} ended before it was done`)));
      t.post(task);
    });
  const workOn = async (t: WorkerThread) => {
    // Units this thread holds: those it hashed, then all once its first shard has brought the others.
    const holds = new Set<number>();
    const attempt = async <T>(job: () => Promise<T>): Promise<T> => {
      busy.add(t);
      try {
        return await job();
      } catch (e) {
        busy.delete(t);
        await t.terminate();
        throw e;
      } finally {
        busy.delete(t);
      }
    };
    for (let u = nextUnit(); u !== undefined; u = nextUnit()) {
      const i = u;
      const r = await attempt(() => ask(t, { type: "hash", run, src: src as string, maxParallelism: rehash!.maxParallelism, unit: units[i], buffer: bufferFor(i) }, `unit ${i} of the shared re-hash`));
      holds.add(i);
      unitDone(i, (r as Extract<WorkerReply, { type: "hashed" }>).unit);
    }
    await gate;
    for (let i = nextForWorker(); i !== undefined; i = nextForWorker()) {
      const index = i;
      const missing = sharing && holds.size < units.length ? hashed.filter((_, k) => !holds.has(k)) : undefined;
      const task: ShardTask = { tool, src: src as string, dst: dst as string, options: plain, migrations, shard: { index, count }, progress: onProgress !== undefined };
      if (missing) task.shared = { run, units: missing };
      const r = await attempt(() => ask(t, task, `shard ${index}/${count}`));
      if (missing) for (let k = 0; k < units.length; k++) holds.add(k);
      runs.push({ index, thread: (r as Extract<WorkerReply, { type: "done" }>).thread, rows: (r as Extract<WorkerReply, { type: "done" }>).rows });
      shardDone();
    }
    if (sharing) t.post({ type: "forget", run } satisfies WorkerTask);
    pool.releaseWorker(module, t);
  };
  // Starts not yet resolved: those still pending when the run ends go to the next run (pool.releaseStart).
  const starting = new Set<Promise<WorkerThread>>();
  for (let w = 1; w < count; w++) {
    const start = pool.acquireWorker(module, { name: `arrowpoint ${tool} shards` });
    starting.add(start);
    start.then(
      (t) => {
        if (starting.delete(start)) workOn(t).catch(fail);
      },
      // A thread that cannot start fails the run only while there is work left for it.
      (e: unknown) => {
        if (starting.delete(start) && !over) fail(e);
      },
    );
  }
  const workHere = async () => {
    for (let u = nextUnit(); u !== undefined; u = nextUnit()) {
      const h = await hashUnit(rehash!.snapshot, units[u], rehash!.maxParallelism, leasesHere, bufferFor(u));
      hashedHere.set(u, h.file);
      unitDone(u, h.unit);
    }
    await gate;
    if (sharing && !over) shareUnits(run, hashed.map((unit, k) => asShared(unit, hashedHere.get(k))), leasesHere.splice(0));
    for (let i = next(); i !== undefined; i = next()) {
      const r = await here({ index: i, count }, onProgress?.(i), stopHere.signal);
      runs.push({ index: i, thread: 0, rows: rowsOf(r) });
      shardDone();
    }
  };
  const hereDone = workHere().catch(fail);
  try {
    await finished;
  } catch (e) {
    // Work in flight on other threads is abandoned: those threads are not reused.
    stopHere.abort(e);
    await Promise.all([...busy].map((t) => t.terminate()));
    await hereDone;
    throw e;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (sharing) dropShared(run);
    for (const l of leasesHere.splice(0)) l.release();
    // Every thread of the run is done with them: its shards are over, or its thread was terminated above.
    releaseUnitBuffers(buffers);
    for (const start of starting) pool.releaseStart(module, start);
    starting.clear();
  }
  options.signal?.throwIfAborted();
  // Every chunk was checksummed from the bytes this process's threads wrote a moment ago, as a single run
  // writes its chunks (which it never reads back): reading them all again would add a pass over the whole
  // output that one run does not pay. Shards run elsewhere are committed with the full verification.
  const commit = await commitShards(dst, { verify: "size" });
  options.onProgress?.({ phase: "commit", rows: commit.rows, bytes: commit.bytes, totalRows: commit.rows, elapsedMs: Date.now() - started });
  return { id: commit.manifest.id, destination: commit.destination, manifest: commit.manifest, rows: commit.rows, bytes: commit.bytes, chunks: commit.chunks, elapsedMs: Date.now() - started, shards: runs.sort((a, b) => a.index - b.index) };
}

/**
 * The seam each tool calls first: runs it in worker threads when `options.workers` asks for more than one
 * (and this is not already one shard), else returns undefined and the tool runs here. `"auto"` quietly stays
 * in this thread for what cannot cross threads (a memory: URI, an opened Snapshot or Storage, functions).
 */
export async function viaWorkers(
  tool: ShardTask["tool"],
  src: unknown,
  dst: unknown,
  snap: { manifest: { operators: { states: { chunks: { rows: number }[] }[] }[] } },
  options: WriteOptions & { workers?: number | "auto" },
  migrations: Migrations | { module: string } | undefined,
  here: RunHere,
  rehash: boolean | SharedRehash = false,
): Promise<WriteReport | undefined> {
  if (options.workers === undefined || options.shard) return undefined;
  let rows = 0;
  for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) rows += c.rows;
  let warm = 0;
  if (options.workers === "auto" && rows >= autoLimits.warm) {
    const { siblingModule } = await import("../platform/worker.ts");
    const { idleWorkers } = await import("../platform/worker_pool.ts");
    warm = idleWorkers(siblingModule(import.meta.url, "_shard_worker"));
  }
  // A re-hash the threads share (every keyed state a plain set of chunks they can hash a chunk each) splits
  // like any other run; one they cannot share would make every shard hash the whole source.
  const whole = rehash === true || (typeof rehash === "object" &&
    ((options as { spillRows?: number }).spillRows !== undefined || rehash.snapshot.manifest.operators.some((op) => op.states.some((st) => st.keyed && !shareableState(st)))));
  const k = workerCount(options.workers, rows, { rehash: whole, warm });
  if (k <= 1) return undefined;
  if (options.workers === "auto") {
    const local = (x: unknown) => typeof x === "string" && !/^memory:/.test(x);
    if (!local(src) || !local(dst)) return undefined;
    try {
      structuredClone(Object.fromEntries(Object.entries(options).filter(([key]) => !RUN_ONLY.has(key))));
      if (migrations && !("module" in migrations)) structuredClone(migrations);
    } catch {
      return undefined;
    }
  }
  return await runInWorkers(tool, src, dst, options, k, migrations, here, typeof rehash === "object" ? rehash : undefined);
}
