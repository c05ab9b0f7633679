/**
 * Test helpers of the runtime: a realistic keyed job over a generated event stream, a gated source,
 * and a source wrapper that calls a hook as records are read.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ObjectInfo, Storage } from "../backends/storage.ts";
import { tsCommand } from "../backends/_test_exec.ts";
import { Job, type FaultPlan, type JobOptions, type RestoreOptions } from "./job.ts";
import { CollectingSink, type Sink } from "./sinks.ts";
import { generatorSource, type Source } from "./sources.ts";
import { listState, mapState, reducingState, valueState } from "./state.ts";
import type { KeyedProcessFunction } from "./stream.ts";

/** A generated event. */
export interface Event {
  user: string;
  cat: string;
  amount: number;
  seq: number;
}

/** Events whose users each belong to one split, so each user's order is independent of parallelism. */
export function events(count: number, seed: number, splits = 4, users = 40): Source<Event> {
  return generatorSource<Event>({
    count,
    splits,
    seed,
    make: (i, rng, split) => ({ user: `u${rng.int(users) * splits + split}`, cat: `c${rng.int(5)}`, amount: rng.int(100), seq: i }),
  });
}

/** Calls `hook(total)` after every read of the wrapped source. */
export function withHook<T>(source: Source<T>, hook: (records: number) => void): Source<T> {
  let total = 0;
  return {
    name: source.name,
    splits: () => source.splits(),
    async reader(split, position) {
      const r = await source.reader(split, position);
      return {
        read(out, max) {
          const n = r.read(out, max);
          const after = (c: number) => {
            if (c > 0) {
              total += c;
              hook(total);
            }
            return c;
          };
          return typeof n === "number" ? after(n) : n.then(after);
        },
        position: () => r.position(),
        close: () => r.close?.(),
      };
    },
  };
}

/**
 * Runs a kill-test child (`_test_kill_child*.ts`: prints STARTED once its job runs, COMMITTED <id> after
 * each committed checkpoint, DONE when it finished) under the current runtime and SIGKILLs it
 * `killAfterMs` after its first COMMITTED line (never when undefined). The kill is armed by the child's
 * own report, not by a time since its start: on a loaded machine the start (worker threads compiling the
 * job's modules) can take longer than any delay chosen here, and a kill before the first commit would
 * test nothing but a fresh start. Either ending (killed, or done first) is an outcome the caller accepts,
 * so the kill's moment varies the run, never the verdict.
 */
export function runKillable(child: URL, args: string[], killAfterMs: number | undefined): Promise<"killed" | "done"> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = tsCommand(fileURLToPath(child), args);
    const p = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    p.stdout.on("data", (b: Uint8Array) => {
      out += new TextDecoder().decode(b);
      if (killAfterMs !== undefined && timer === undefined && /^COMMITTED \d+$/m.test(out)) timer = setTimeout(() => p.kill("SIGKILL"), killAfterMs);
    });
    p.stderr.on("data", (b: Uint8Array) => (err += new TextDecoder().decode(b)));
    p.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL") resolve("killed");
      else if (code === 0 && out.includes("DONE")) resolve("done");
      else reject(new Error(`child exited ${code} ${signal}: ${out}\n${err}`));
    });
  });
}

/**
 * The `onEvent` of a kill-test child: reports each committed checkpoint on stdout (the parent arms its
 * kill on the first, see {@link runKillable}).
 */
export function reportCommits(event: Parameters<NonNullable<JobOptions["onEvent"]>>[0]): void {
  if (event.type === "checkpoint" && event.info.kind === "checkpoint") console.log(`COMMITTED ${event.info.id}`);
}

/**
 * Waits until `pred()` holds while `job` runs. No clock decides: it fails only when the job has ended
 * (finished, stopped, cancelled or failed) with `pred()` still false, i.e. it never will hold.
 */
export async function waitWhileRunning(job: Job, what: string, pred: () => boolean): Promise<void> {
  const ended = new Set(["finished", "stopped", "cancelled", "failed"]);
  while (!pred()) {
    if (ended.has(job.status)) throw new Error(`waiting for ${what}: the job ended (${job.status}) first`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * A one-split source over `items` that reads only as far as `allow(n)` let it, and ends only after
 * `end()` (or when `allow` reaches the end with `endAtLast`).
 */
export function gatedSource<T>(items: readonly T[], name = "gated", endAtLast = false): { source: Source<T>; allow(n: number): void; end(): void } {
  let allowed = 0;
  let ended = endAtLast;
  const waiters: (() => void)[] = [];
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  return {
    allow(n: number) {
      allowed = Math.max(allowed, n);
      wake();
    },
    end() {
      ended = true;
      allowed = items.length;
      wake();
    },
    source: {
      name,
      splits: () => [{ id: "0" }],
      reader(_split, position) {
        let i = typeof position === "number" ? position : 0;
        return {
          read(out, max) {
            if (i >= items.length && ended) return -1;
            if (i >= allowed || i >= items.length) return new Promise<number>((resolve) => waiters.push(() => resolve(0)));
            const stop = Math.min(allowed, items.length, i + max);
            const c = stop - i;
            while (i < stop) out.push(items[i++]);
            return c;
          },
          position: () => i,
        };
      },
    },
  };
}

/** The states of the session job. */
export const COUNT = valueState<{ n: number; sum: number }>("count", {
  value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }, { name: "sum", type: "float64" }] } },
});
/** Last three amounts per user. */
export const RECENT = listState<number>("recent", { value: { encoding: "arrow", type: "int32" } });
/** Events per category per user. */
export const PER_CAT = mapState<string, number>("per-cat", { value: { encoding: "arrow", type: "int32" } });
/** Total amount per user. */
export const TOTAL = reducingState<number>("total", (a, b) => a + b, { value: { encoding: "arrow", type: "float64" } });

/** The keyed function of the session job: one output line per event, a pure function of the user's history. */
export function sessionFunction(): KeyedProcessFunction<string, Event, string> {
  return {
    processElement(e, ctx) {
      const count = ctx.getState(COUNT);
      const recent = ctx.getListState(RECENT);
      const perCat = ctx.getMapState(PER_CAT);
      const total = ctx.getReducingState(TOTAL);
      const c = count.value() ?? { n: 0, sum: 0 };
      const next = { n: c.n + 1, sum: c.sum + e.amount };
      count.update(next);
      recent.add(e.amount);
      if (recent.get().length > 3) recent.update(recent.get().slice(-3));
      const cc = (perCat.get(e.cat) ?? 0) + 1;
      perCat.put(e.cat, cc);
      if (cc >= 4) perCat.remove(e.cat); // exercise deletes
      total.add(e.amount);
      ctx.collect(`${e.user}|${next.n}|${next.sum}|${recent.get().join(",")}|${e.cat}:${cc}|${total.get()}`);
    },
    open(ctx) {
      ctx.getState(COUNT);
      ctx.getListState(RECENT);
      ctx.getMapState(PER_CAT);
      ctx.getReducingState(TOTAL);
    },
  };
}

/** Options of {@link sessionJob}. */
export interface SessionJobOptions {
  source: Source<Event>;
  sink: Sink<string, unknown>;
  parallelism: number;
  sourceParallelism?: number;
  storage?: Storage | string;
  restore?: RestoreOptions;
  faults?: FaultPlan;
  maxParallelism?: number;
  batchSize?: number;
  intervalMs?: number;
  fullEvery?: number;
  /** Run the keyed subtasks in this many worker threads (built there by {@link sessionJobShape}). */
  workers?: number;
  /** The job's event hook (a kill test's child reports committed checkpoints through it). */
  onEvent?: JobOptions["onEvent"];
}

/** What a worker needs to build the session job's operators (see {@link sessionJobShape}). */
export interface SessionJobShape {
  parallelism: number;
  sourceParallelism?: number;
}

/**
 * The session job's operators for a worker thread: the same graph as {@link sessionJob} with the same
 * parallelism; its source and sink are never used there (they run on the main thread).
 */
export function sessionJobShape(shape: SessionJobShape): Job {
  return sessionJob({ source: events(0, 0), sink: new CollectingSink<string>(), ...shape });
}

/** source → keyBy(user) → sessions → sink. */
export function sessionJob(o: SessionJobOptions): Job {
  const job = new Job("sessions", {
    maxParallelism: o.maxParallelism,
    checkpoints: o.storage === undefined ? undefined : { storage: o.storage, intervalMs: o.intervalMs, retain: 2, fullEvery: o.fullEvery ?? 4 },
    restore: o.restore,
    faults: o.faults,
    batchSize: o.batchSize ?? 32,
    channelCapacity: 2,
    workers: o.workers,
    definition: o.workers ? { module: import.meta.url, export: "sessionJobShape", args: { parallelism: o.parallelism, sourceParallelism: o.sourceParallelism } satisfies SessionJobShape } : undefined,
    onEvent: o.onEvent,
  });
  job.fromSource(o.source, { uid: "events", parallelism: o.sourceParallelism ?? 2 })
    .keyBy((e) => e.user)
    .process(sessionFunction, { uid: "sessions", parallelism: o.parallelism })
    .sinkTo(o.sink, { uid: "out", parallelism: Math.max(1, o.parallelism - 1) });
  return job;
}

/** Sorted copy, for multiset comparison. */
export function sorted(lines: readonly string[]): string[] {
  return [...lines].sort();
}

/**
 * A storage that hands every call to `inner`: a test overrides the calls it gates or fails. The deferred
 * puts are left out on purpose, so every write goes through `put`, where a test can hold it.
 */
export class ForwardingStorage implements Storage {
  constructor(readonly inner: Storage) {}
  get uri(): string {
    return this.inner.uri;
  }
  put(path: string, bytes: Uint8Array): Promise<void> {
    return this.inner.put(path, bytes);
  }
  putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    return this.inner.putStream(path, source);
  }
  putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    return this.inner.putIfAbsent(path, bytes);
  }
  get(path: string): Promise<Uint8Array> {
    return this.inner.get(path);
  }
  getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.inner.getRange(path, offset, length, into);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  delete(paths: readonly string[]): Promise<void> {
    return this.inner.delete(paths);
  }
  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
