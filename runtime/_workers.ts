/**
 * The main thread's side of subtasks in worker threads: starts the workers, stands in for their subtasks
 * (so the checkpoint coordinator, restore and the job's lifecycle see one list of tasks), carries the
 * channels that cross threads, relays between two workers, and serves the storage operations workers ask
 * for. Private to the runtime (the leading underscore). The worker's side is `_subtask_worker.ts`.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import type { ChunkRef } from "../format/manifest.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { siblingModule, type WorkerThread } from "../platform/worker.ts";
// Workers that ran a job to its end and closed cleanly wait there for the next job (starting one costs
// ~0.3–1.5 s: a module graph to load, under Node also tsx for the sources), unreferenced.
import { acquireWorker, releaseWorker } from "../platform/worker_pool.ts";
import { Barrier, type Channel, type StreamElement } from "./channel.ts";
import { stateKey } from "./checkpoint.ts";
import type { Vertex } from "./_graph.ts";
import { CreditBatcher, decodeElement, encodeElement, fromWire, RemoteSender, serveStorage, type StorageRequest, type TargetSpec, type WireElement, type WireError } from "./_remote.ts";
import { Task, type TaskHost, type TaskSnapshot } from "./_tasks.ts";
import type { ChainSettings } from "./_chain_policy.ts";
import type { ThreadEnds } from "./_wiring.ts";

/**
 * Where a worker thread finds a job's operators: a module it can import and the name of the function it
 * exports that builds the job (called with `args`, which must survive `structuredClone`).
 *
 * @example A module that builds its job for the main thread and for the workers alike
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JobDefinition } from "./job.ts";
 * // in jobs.ts: export function countsJob(args: { parallelism: number }): Job { … new Job("counts", { workers: 2, definition }) … }
 * const definition: JobDefinition = { module: import.meta.url, export: "countsJob", args: { parallelism: 4 } };
 * assert.equal(definition.export, "countsJob");
 * ```
 */
export interface JobDefinition {
  /** The module's URL (`import.meta.url` of the module that exports the function). */
  readonly module: string | URL;
  /** The exported function's name; it returns the `Job` (or a promise of it), built but not started. */
  readonly export: string;
  /** What the function is called with. */
  readonly args?: unknown;
}

/** What a worker needs to wire, restore and run its subtasks. */
export interface WorkerInit {
  readonly t: "init";
  readonly thread: number;
  readonly definition: { readonly module: string; readonly export: string; readonly args?: unknown };
  /** Per vertex (by id): uid, kind and the thread of each subtask. */
  readonly vertices: readonly { readonly uid: string; readonly kind: Vertex["kind"]; readonly threads: readonly number[] }[];
  readonly name: string;
  readonly attempt: string;
  readonly maxParallelism: number;
  readonly batchSize: number;
  readonly channelCapacity: number;
  readonly trackChanges: boolean;
  readonly chain: ChainSettings | undefined;
  readonly restore?: { readonly sid: number; readonly uri: string; readonly dir: string; readonly inherit: boolean };
}

/** Messages from a worker. */
type FromWorker =
  | { t: "data"; c: number; el: WireElement }
  | { t: "credit"; c: number; n: number }
  | StorageRequest
  | { t: "opened"; registered: Record<string, string[]> }
  | { t: "open-failed"; error: WireError }
  | { t: "captured"; task: string; id: number }
  | { t: "ack"; task: string; id: number; snapshot: TaskSnapshot }
  | { t: "ack-failed"; task: string; id: number; error: WireError }
  | { t: "finished"; task: string }
  | { t: "failed"; where: string; error: WireError }
  | { t: "late"; n: number }
  | { t: "closed" };

/** What the pool needs of the job. */
export interface PoolHost extends TaskHost {
  /** The snapshot's target of a barrier in progress. */
  readonly error: unknown;
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** The key of subtask `index` of vertex `vertexId` in messages. */
export function taskKey(vertexId: number, index: number): string {
  return `${vertexId}/${index}`;
}

/** A subtask running in a worker, as the main thread sees it. */
class RemoteTask extends Task {
  registered = new Set<string>();
  private finished!: () => void;
  private readonly ran = new Promise<void>((resolve) => (this.finished = resolve));

  constructor(vertex: Vertex, index: number, parallelism: number, host: TaskHost, private readonly pool: WorkerPool, readonly thread: number) {
    super(vertex, index, parallelism, host);
  }

  open(): Promise<void> {
    return this.pool.opened(this.thread);
  }
  run(): Promise<void> {
    this.pool.run(this.thread);
    return this.ran;
  }
  /** The worker reported this subtask finished, or the job ended. */
  end(): void {
    this.finished();
  }
  override hasState(name: string): boolean {
    return this.registered.has(name);
  }
  override checkpointFailed(id: number): void {
    this.pool.post(this.thread, { t: "checkpoint-failed", task: taskKey(this.vertex.id, this.index), id });
  }
  wake(): void {}
  close(): Promise<void> {
    return this.pool.close(this.thread);
  }
}

interface WorkerSlot {
  thread: WorkerThread | undefined;
  readonly started: Promise<WorkerThread>;
  readonly opened: Promise<void>;
  running: boolean;
  closing: Promise<void> | undefined;
  /** Settles once the worker closed its subtasks (or ended). */
  readonly closed: Promise<void>;
  readonly markClosed: () => void;
}

/** The workers of one run of a job. */
export class WorkerPool {
  private readonly slots: WorkerSlot[] = [];
  private readonly proxies = new Map<string, RemoteTask>();
  /** Channels read on the main thread, by id. */
  private readonly receivers = new Map<number, { ch: Channel; keyOf: ((v: unknown) => unknown) | undefined }>();
  /** Sending ends on the main thread, by id. */
  private readonly senders = new Map<number, RemoteSender>();
  /** Channels between two workers: id → [producer thread, consumer thread]. */
  private readonly passing = new Map<number, [number, number]>();
  private readonly storages = new Map<Storage, number>();
  private readonly bySid: Storage[] = [];
  /** The barrier object of each checkpoint id sent to a worker (the coordinator knows barriers by identity). */
  private readonly barriers = new Map<number, Barrier>();
  /** Asynchronous snapshot parts running in the workers, by `task@checkpoint id`. */
  private readonly parts = new Map<string, { promise: Promise<TaskSnapshot>; resolve(s: TaskSnapshot): void; reject(e: unknown): void }>();
  private aborted = false;
  /** Credits owed to each worker for the channels it feeds here. */
  private readonly credits: CreditBatcher[] = [];

  /** Workers in use: at most one per keyed subtask. */
  readonly count: number;

  /** A pool of up to `workers` workers for `host`, whose keyed subtasks are spread over them. */
  constructor(private readonly host: PoolHost, workers: number, vertices: readonly Vertex[], private readonly definition: JobDefinition) {
    let subtasks = 0;
    for (const v of vertices) if (v.kind === "keyed") subtasks += v.parallelism!;
    this.count = Math.max(1, Math.min(workers, subtasks));
  }

  /** The thread of each subtask: keyed operators' subtasks round-robin over the workers, the rest here. */
  placement(vertices: readonly Vertex[]): (v: Vertex, index: number) => number {
    const first = new Map<Vertex, number>();
    let n = 0;
    for (const v of vertices) {
      if (v.kind !== "keyed") continue;
      first.set(v, n);
      n += v.parallelism!;
    }
    return (v, i) => {
      const f = first.get(v);
      return f === undefined ? 0 : 1 + ((f + i) % this.count);
    };
  }

  /** The wiring's view of the threads, from the main thread. */
  ends(vertices: readonly Vertex[]): ThreadEnds {
    const placement = this.placement(vertices);
    return {
      here: 0,
      placement,
      proxy: (v, i, thread) => {
        const t = new RemoteTask(v, i, v.parallelism!, this.host, this, thread);
        this.proxies.set(taskKey(v.id, i), t);
        return t;
      },
      sender: (id, capacity, thread) => {
        const s = new RemoteSender(id, capacity, (el) => this.send(thread, id, el));
        this.senders.set(id, s);
        return s;
      },
      receiver: (id, ch, thread, keyOf) => {
        this.receivers.set(id, { ch, keyOf });
        const credits = this.credits[thread] ??= new CreditBatcher((c, n) => this.post(thread, { t: "credit", c, n }));
        ch.onTake = () => credits.take(id);
      },
      passing: (id, producer, consumer) => {
        this.passing.set(id, [producer, consumer]);
      },
    };
  }

  /** Starts the workers; each wires, restores and opens its subtasks while the main thread does the same. */
  start(vertices: readonly Vertex[], init: Omit<WorkerInit, "t" | "thread" | "vertices" | "definition" | "restore">, restore: { snap: Snapshot; inherit: boolean } | undefined): void {
    const placement = this.placement(vertices);
    const table = vertices.map((v) => ({ uid: v.uid!, kind: v.kind, threads: Array.from({ length: v.parallelism! }, (_, i) => placement(v, i)) }));
    const def = this.definition;
    const restoreSpec = restore && { sid: this.sid(restore.snap.storage), uri: restore.snap.storage.uri, dir: restore.snap.dir, inherit: restore.inherit };
    const module = siblingModule(import.meta.url, "_subtask_worker");
    for (let k = 1; k <= this.count; k++) {
      const message: WorkerInit = { t: "init", thread: k, definition: { module: String(def.module), export: def.export, args: def.args }, vertices: table, ...init, restore: restoreSpec };
      let markClosed!: () => void;
      const closed = new Promise<void>((r) => (markClosed = r));
      let openedResolve!: () => void, openedReject!: (e: unknown) => void;
      const opened = new Promise<void>((res, rej) => ((openedResolve = res), (openedReject = rej)));
      opened.catch(() => {});
      const started = acquireWorker(module, { name: "arrowpoint subtasks" });
      started.catch(() => {});
      const slot: WorkerSlot = { thread: undefined, started, opened, running: false, closing: undefined, closed, markClosed };
      this.slots[k] = slot;
      started.then(
        (w) => {
          slot.thread = w;
          w.onMessage((m) => this.receive(k, m as FromWorker, openedResolve, openedReject));
          w.exited.then((exit) => {
            markClosed();
            const error = exit.error ?? new Error("it ended before the job did");
            openedReject(error);
            if (!this.aborted && slot.closing === undefined) this.host.fail(error, `worker ${k}`);
          });
          if (this.aborted) void w.terminate();
          else w.post(message);
        },
        (e) => {
          markClosed();
          openedReject(e);
        },
      );
    }
  }


  /** For an inheriting restore: the chains of the workers' keyed states continue in the next checkpoint. */
  inheritChains(snap: Snapshot, previous: Map<string, ChunkRef[]>): void {
    for (const op of snap.manifest.operators) {
      const remote = [...this.proxies.values()].some((t) => t.uid === op.uid);
      if (!remote) continue;
      for (const st of op.states) if (st.keyed) previous.set(stateKey(op.uid, st.name), st.chunks.slice());
    }
  }

  /** Settles once worker `k` has restored and opened its subtasks. */
  opened(k: number): Promise<void> {
    return this.slots[k].opened;
  }

  /** Lets worker `k` run its subtasks (once). */
  run(k: number): void {
    const s = this.slots[k];
    if (s.running) return;
    s.running = true;
    this.post(k, { t: "run" });
  }

  /** Posts to worker `k` (dropped once the job is aborted or the worker is gone). */
  post(k: number, message: unknown, transfer?: ArrayBuffer[]): void {
    const w = this.slots[k]?.thread;
    if (w && !this.slots[k].closing) w.post(message, transfer);
  }

  private sid(storage: Storage): number {
    let sid = this.storages.get(storage);
    if (sid === undefined) {
      sid = this.bySid.length;
      this.bySid.push(storage);
      this.storages.set(storage, sid);
    }
    return sid;
  }

  private targetOf = (b: Barrier): TargetSpec => {
    this.barriers.set(b.id, b);
    for (const id of this.barriers.keys()) if (id < b.id - 64) this.barriers.delete(id);
    const t = this.host.target(b);
    return { kind: t.kind, sid: this.sid(t.storage), uri: t.storage.uri, dir: t.dir };
  };

  private send(k: number, c: number, el: StreamElement): void {
    const { wire, transfer } = encodeElement(el, this.targetOf);
    this.post(k, { t: "data", c, el: wire }, transfer);
  }

  private barrierOf = (w: Extract<WireElement, { tag: 1 }>): Barrier => this.barriers.get(w.id) ?? new Barrier(w.id, w.kind, w.stop);

  private receive(k: number, m: FromWorker, openedResolve: () => void, openedReject: (e: unknown) => void): void {
    switch (m.t) {
      case "data": {
        const r = this.receivers.get(m.c);
        if (r) {
          r.ch.push(decodeElement(m.el, this.barrierOf, r.keyOf));
          return;
        }
        const route = this.passing.get(m.c);
        if (!route) return;
        const transfer: ArrayBuffer[] = [];
        if (m.el.tag === 0) {
          transfer.push(m.el.data);
          if (m.el.kgs) transfer.push(m.el.kgs);
        }
        this.post(route[1], m, transfer);
        return;
      }
      case "credit": {
        const s = this.senders.get(m.c);
        if (s) s.credit(m.n);
        else {
          const route = this.passing.get(m.c);
          if (route) this.post(route[0], m);
        }
        return;
      }
      case "storage": {
        if (this.aborted) {
          this.post(k, { t: "storage-reply", req: m.req, error: { name: "JobFailedError", message: "the job is no longer running" } });
          return;
        }
        const storage = this.bySid[m.sid];
        void this.host.track(serveStorage(storage, m)).then(({ reply, transfer }) => this.post(k, reply, transfer));
        return;
      }
      case "opened": {
        for (const [key, names] of Object.entries(m.registered)) {
          const t = this.proxies.get(key);
          if (t) t.registered = new Set(names);
        }
        openedResolve();
        return;
      }
      case "open-failed":
        openedReject(fromWire(m.error));
        return;
      case "captured": {
        // The worker captured the subtask's state and passed the barrier on; its asynchronous part (encode
        // and write, in the worker) answers later with "ack" or "ack-failed".
        const t = this.proxies.get(m.task);
        const b = this.barriers.get(m.id);
        if (!t || !b) return;
        const part = deferred<TaskSnapshot>();
        this.parts.set(`${m.task}@${m.id}`, part);
        this.host.ack(t, b, part.promise);
        return;
      }
      case "ack":
      case "ack-failed": {
        const key = `${m.task}@${m.id}`;
        const part = this.parts.get(key);
        if (!part) return;
        this.parts.delete(key);
        if (m.t === "ack") part.resolve(m.snapshot);
        else part.reject(fromWire(m.error));
        return;
      }
      case "finished": {
        const t = this.proxies.get(m.task);
        if (!t) return;
        t.end();
        this.host.taskFinished(t);
        return;
      }
      case "failed":
        this.host.fail(fromWire(m.error), m.where);
        return;
      case "late":
        this.host.countLate(m.n);
        return;
      case "closed":
        this.slots[k].markClosed();
        return;
    }
  }

  /** The job is failing or cancelled: the workers stop, the stand-ins' runs end, no storage is served. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const s of this.senders.values()) s.close();
    for (let k = 1; k <= this.count; k++) this.post(k, { t: "abort" });
    for (const t of this.proxies.values()) t.end();
    for (const p of this.parts.values()) p.reject(new Error("the job is no longer running"));
    this.parts.clear();
  }

  /** Closes worker `k`'s subtasks and ends the worker (once; every stand-in of it calls this). */
  close(k: number): Promise<void> {
    const module = siblingModule(import.meta.url, "_subtask_worker");
    const s = this.slots[k];
    if (s.closing) return s.closing;
    const w = s.thread;
    if (w) w.post({ t: "close" });
    s.closing = (async () => {
      if (w) {
        const clean = await Promise.race([s.closed.then(() => true), w.exited.then(() => false)]);
        // A worker that closed (even after an abort: it waited for its subtasks and writes to end) has
        // forgotten this job: the next job on this thread starts at once.
        if (clean) releaseWorker(module, w);
        else await w.terminate();
      } else await s.started.then((t) => t.terminate(), () => {});
    })();
    return s.closing;
  }

  /** Closes every worker (those without subtasks too). */
  async closeAll(): Promise<void> {
    for (let k = 1; k <= this.count; k++) if (this.slots[k]) await this.close(k);
  }

  /** Ends every worker at once (the job failed to start). */
  async terminateAll(): Promise<void> {
    this.abort();
    await Promise.all(this.slots.filter(Boolean).map((s) => {
      s.closing ??= s.started.then((t) => t.terminate(), () => {});
      return s.closing;
    }));
  }
}

/** The error a job fails with when `workers` is set without a definition. */
export function missingDefinition(job: string): TypeError {
  return new TypeError(
    `Cannot run the keyed operators of job ${JSON.stringify(job)} in workers as the job has no definition: ` +
      "export a function that builds the job from a module with no other effects, and pass definition: { module: import.meta.url, export: \"<its name>\", args } (or workers: 0)",
  );
}

