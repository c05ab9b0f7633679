/**
 * Warm worker threads, kept per worker module. Starting a worker costs more than a small job's work (under
 * tsx a thread loads and compiles the library again: 1–3 s on a loaded 2-core machine, against 0.8 s for a
 * 1M-row `migrate`), so a worker that finished its work is kept idle, unreferenced (it never keeps the
 * process alive), and the next {@linkcode acquireWorker} of the same module takes it instead of starting one.
 *
 * A worker taken from the pool must be usable for several jobs one after another: its module keeps its
 * message handler for its whole life (as `migrate/_shard_worker.ts` does).
 *
 * @module
 */
import { availableCores, startWorker, type StartWorkerOptions, type WorkerThread } from "./worker.ts";

const idle = new Map<string, WorkerThread[]>();
// Starts whose caller no longer waits for them (handed over with releaseStart): the next acquireWorker of
// the module takes one rather than starting yet another thread beside it.
const handedOver = new Map<string, Promise<WorkerThread>[]>();

function idleOf(module: URL): WorkerThread[] {
  let list = idle.get(module.href);
  if (!list) idle.set(module.href, list = []);
  return list;
}

/**
 * How many idle workers a pool of one module holds at most (more are terminated on release): the cores.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxIdleWorkers } from "./worker_pool.ts";
 * assert.ok(maxIdleWorkers() >= 1);
 * ```
 */
export function maxIdleWorkers(): number {
  return availableCores();
}

/**
 * How many idle workers of `module` the pool holds now: what an {@linkcode acquireWorker} gets without
 * starting one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { idleWorkers } from "./worker_pool.ts";
 * assert.equal(idleWorkers(new URL("file:///nowhere/_never_started.ts")), 0);
 * ```
 */
export function idleWorkers(module: URL): number {
  return idle.get(module.href)?.length ?? 0;
}

/**
 * A worker running `module`: an idle one from the pool (referenced again), else a new one
 * ({@linkcode startWorker}). Give it back with {@linkcode releaseWorker} when its work is done, or
 * terminate it if its state cannot be trusted (work abandoned mid-way).
 *
 * @example
 * ```ts no-run
 * import assert from "node:assert/strict";
 * import { acquireWorker, idleWorkers, releaseWorker } from "./worker_pool.ts";
 * const module = new URL("./_test_worker.ts", import.meta.url);
 * const w = await acquireWorker(module);
 * releaseWorker(module, w);
 * assert.equal(idleWorkers(module), 1);
 * assert.equal(await acquireWorker(module), w); // the same thread, no start-up
 * ```
 */
export async function acquireWorker(module: URL, options: StartWorkerOptions = {}): Promise<WorkerThread> {
  const list = idleOf(module);
  const warm = list.pop();
  if (warm) {
    warm.ref();
    return warm;
  }
  const starting = handedOver.get(module.href)?.shift();
  if (starting) {
    const w = await starting;
    w.ref();
    return w;
  }
  return await startWorker(module, options);
}

/**
 * Hands over a start of `module` (a promise {@linkcode acquireWorker} returned) whose caller no longer needs
 * the worker, typically because its work was done before the worker was up: the next
 * {@linkcode acquireWorker} takes it instead of starting another thread, else it joins the idle workers once
 * started (a start that fails is forgotten). On a loaded machine a start takes seconds; a run ending sooner
 * would otherwise leave its start behind and the next run would start a second thread beside it.
 *
 * @example
 * ```ts no-run
 * import { acquireWorker, releaseStart } from "./worker_pool.ts";
 * const module = new URL("./_test_worker.ts", import.meta.url);
 * releaseStart(module, acquireWorker(module)); // not needed after all: the next acquireWorker gets it
 * ```
 */
export function releaseStart(module: URL, start: Promise<WorkerThread>): void {
  let list = handedOver.get(module.href);
  if (!list) handedOver.set(module.href, list = []);
  const pending = list;
  pending.push(start);
  start.then(
    (w) => {
      const at = pending.indexOf(start);
      if (at < 0) return; // taken by an acquireWorker meanwhile
      pending.splice(at, 1);
      releaseWorker(module, w);
    },
    () => {
      const at = pending.indexOf(start);
      if (at >= 0) pending.splice(at, 1);
    },
  );
}

/**
 * Gives a worker back to the pool of `module`: it stays alive, idle and unreferenced (the process may end
 * while it waits), and messages it sends meanwhile are dropped. Beyond {@linkcode maxIdleWorkers} it is
 * terminated instead. A pooled worker that ends on its own leaves the pool.
 *
 * @example
 * ```ts no-run
 * import { acquireWorker, releaseWorker } from "./worker_pool.ts";
 * const module = new URL("./_test_worker.ts", import.meta.url);
 * releaseWorker(module, await acquireWorker(module));
 * ```
 */
export function releaseWorker(module: URL, worker: WorkerThread): void {
  const list = idleOf(module);
  if (list.includes(worker)) return;
  if (list.length >= maxIdleWorkers()) {
    void worker.terminate();
    return;
  }
  worker.onMessage(() => {});
  worker.unref();
  list.push(worker);
  void worker.exited.then(() => {
    const at = list.indexOf(worker);
    if (at >= 0) list.splice(at, 1);
  });
}

/**
 * Terminates every idle worker of every module (or of `module` only), and those handed over with
 * {@linkcode releaseStart} once started, and waits until they have ended:
 * for tests and hosts that must leave no thread behind.
 *
 * @example
 * ```ts
 * import { drainWorkerPool } from "./worker_pool.ts";
 * await drainWorkerPool();
 * ```
 */
export async function drainWorkerPool(module?: URL): Promise<void> {
  const lists = module ? [idleOf(module)] : [...idle.values()];
  const all = lists.flatMap((l) => l.splice(0));
  // Starts handed over and not yet taken: waited for, then terminated as the idle ones.
  const starts = (module ? [handedOver.get(module.href) ?? []] : [...handedOver.values()]).flatMap((l) => l.splice(0));
  for (const s of await Promise.allSettled(starts)) if (s.status === "fulfilled") all.push(s.value);
  await Promise.all(all.map((w) => w.terminate()));
}
