/**
 * A worker thread of a job: builds the job from its definition (the module and exported function the job
 * names), wires the subtasks the main thread placed here, restores and opens them, runs them, and
 * snapshots them at barriers (the capture at the barrier, then encoding here while the subtasks go on;
 * the bytes move to the main thread, which writes them to the job's storage). Private to the runtime (the leading underscore); `_workers.ts` is the main
 * thread's side.
 *
 * @module
 */
import { parentLink } from "../platform/worker.ts";
import { openSnapshot } from "../snapshot/read.ts";
import { Barrier, type Channel } from "./channel.ts";
import { checkpointTarget, savepointTarget } from "./checkpoint.ts";
import { graphOf, Job } from "./job.ts";
import { restoreState } from "./_restore.ts";
import { CreditBatcher, decodeElement, encodeElement, RelayStorage, RemoteSender, type StorageReply, type TargetSpec, toWire, type WireElement } from "./_remote.ts";
import type { ChunkTarget, SourceTask, Task, TaskHost, TaskSnapshot } from "./_tasks.ts";
import { wireTasks } from "./_wiring.ts";
import { taskKey, type WorkerInit } from "./_workers.ts";
import { systemClock } from "./watermark.ts";
import type { ChainSettings } from "./_chain_policy.ts";

const parent = parentLink();
const post = (m: unknown, transfer?: ArrayBuffer[]) => parent.post(m, transfer);

/** The job as this worker's subtasks see it. */
class WorkerHost implements TaskHost {
  readonly name: string;
  readonly maxParallelism: number;
  readonly batchSize: number;
  readonly attempt: string;
  readonly chain: ChainSettings | undefined;
  readonly clock = systemClock;
  aborted = false;
  tasks: Task[] = [];
  channels: Channel[] = [];
  senders: RemoteSender[] = [];
  readonly inflight = new Set<Promise<unknown>>();
  private readonly targets = new Map<number, TargetSpec>();
  private readonly relays = new Map<number, RelayStorage>();
  private late = 0;

  constructor(readonly init: WorkerInit) {
    this.name = init.name;
    this.maxParallelism = init.maxParallelism;
    this.batchSize = init.batchSize;
    this.attempt = init.attempt;
    this.chain = init.chain;
  }

  relay(sid: number, uri: string): RelayStorage {
    let r = this.relays.get(sid);
    if (!r) this.relays.set(sid, r = new RelayStorage(uri, sid, post));
    return r;
  }

  /** The one Barrier object of a checkpoint id in this worker, remembering where its chunks go. */
  barrierOf = (w: Extract<WireElement, { tag: 1 }>): Barrier => {
    this.targets.set(w.id, w.target);
    for (const id of this.targets.keys()) if (id < w.id - 64) this.targets.delete(id);
    return new Barrier(w.id, w.kind, w.stop);
  };

  fail(error: unknown, where: string): void {
    if (this.aborted) return;
    post({ t: "failed", where, error: toWire(error) });
    this.abort();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const ch of this.channels) ch.close();
    for (const s of this.senders) s.close();
    for (const t of this.tasks) t.wake();
  }

  ack(task: Task, barrier: Barrier, snapshot: Promise<TaskSnapshot>): void {
    const key = taskKey(task.vertex.id, task.index);
    // Captured now; the asynchronous part (encode and write, here) answers when it settles.
    post({ t: "captured", task: key, id: barrier.id });
    snapshot.then(
      (s) => post({ t: "ack", task: key, id: barrier.id, snapshot: s }),
      (e) => post({ t: "ack-failed", task: key, id: barrier.id, error: toWire(e) }),
    );
  }

  /** Where the chunks of a barrier that came through this worker go. */
  specOf = (barrier: Barrier): TargetSpec => {
    const spec = this.targets.get(barrier.id);
    if (!spec) throw new Error(`no target for barrier ${barrier.id}`);
    return spec;
  };

  target(barrier: Barrier): ChunkTarget {
    const spec = this.specOf(barrier);
    const storage = this.relay(spec.sid, spec.uri);
    return spec.kind === "checkpoint" ? checkpointTarget(storage, barrier.id, this.attempt) : savepointTarget(storage, spec.dir);
  }

  sourceExhausted(_task: SourceTask): void {}

  taskFinished(task: Task): void {
    this.flushLate();
    post({ t: "finished", task: taskKey(task.vertex.id, task.index) });
  }

  countRecords(_n: number): void {}

  countLate(n: number): void {
    if (this.late === 0) queueMicrotask(() => this.flushLate());
    this.late += n;
  }

  private flushLate(): void {
    if (this.late === 0) return;
    post({ t: "late", n: this.late });
    this.late = 0;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  finalId(): number {
    return 0;
  }
}

let host: WorkerHost | undefined;
const receivers = new Map<number, { ch: Channel; keyOf: ((v: unknown) => unknown) | undefined }>();
const senders = new Map<number, RemoteSender>();
let runs: Promise<void>[] = [];
const credits = new CreditBatcher((c, n) => post({ t: "credit", c, n }));

async function setUp(init: WorkerInit): Promise<void> {
  const h = (host = new WorkerHost(init));
  const mod = (await import(init.definition.module)) as Record<string, unknown>;
  const factory = mod[init.definition.export];
  if (typeof factory !== "function") {
    throw new TypeError(`Cannot build the job in a worker as ${init.definition.module} exports no function ${JSON.stringify(init.definition.export)}: export the function that builds the job`);
  }
  const job = await (factory as (args: unknown) => unknown)(init.definition.args);
  if (!(job instanceof Job)) throw new TypeError(`Cannot build the job in a worker as ${init.definition.export}() returned ${job === null ? "null" : typeof job}, not a Job`);
  const vertices = graphOf(job).vertices;
  const same = vertices.length === init.vertices.length && vertices.every((v, i) => v.kind === init.vertices[i].kind && (v.uid === undefined || v.uid === init.vertices[i].uid));
  if (!same) {
    throw new TypeError(
      `Cannot build the job in a worker as ${init.definition.export}(args) built other operators (${vertices.map((v) => v.uid ?? v.name).join(", ")}) than the job ` +
        `(${init.vertices.map((v) => v.uid).join(", ")}): the function must build the same job for the same args`,
    );
  }
  vertices.forEach((v, i) => {
    v.uid = init.vertices[i].uid;
    v.parallelism = init.vertices[i].threads.length;
  });
  const threads = init.vertices.map((v) => v.threads);
  const wiring = wireTasks(vertices, h, {
    maxParallelism: init.maxParallelism,
    batchSize: init.batchSize,
    channelCapacity: init.channelCapacity,
    trackChanges: init.trackChanges,
    threads: {
      here: init.thread,
      placement: (v, i) => threads[v.id][i],
      proxy: () => null,
      sender: (id, capacity) => {
        const s = new RemoteSender(id, capacity, (el) => {
          const { wire, transfer } = encodeElement(el, h.specOf);
          post({ t: "data", c: id, el: wire }, transfer);
        });
        senders.set(id, s);
        h.senders.push(s);
        return s;
      },
      receiver: (id, ch, _thread, keyOf) => {
        receivers.set(id, { ch, keyOf });
        ch.onTake = () => credits.take(id);
      },
      passing: () => {},
    },
  });
  h.tasks = wiring.tasks;
  h.channels = wiring.channels;
  if (init.restore) {
    const r = init.restore;
    const snap = await openSnapshot(h.relay(r.sid, r.uri), r.dir);
    // Only the operators with subtasks here: the others' state is restored in their own threads.
    const here = new Map([...wiring.byUid].filter(([, tasks]) => tasks.length > 0));
    await restoreState(snap, r.inherit, here, new Map());
  }
  const registered: Record<string, string[]> = {};
  for (const t of wiring.tasks) {
    await t.open();
    const names: string[] = [];
    if (t.keyed) for (const s of t.keyed.all()) names.push(s.desc.name);
    for (const e of t.opState.all()) names.push(e.desc.name);
    registered[taskKey(t.vertex.id, t.index)] = names;
    t.keyed?.dropPendingRestored();
    t.opState.dropPendingRestored();
  }
  post({ t: "opened", registered });
}

async function close(): Promise<void> {
  await Promise.allSettled(runs);
  while (host && host.inflight.size > 0) await Promise.allSettled([...host.inflight]);
  for (const t of host?.tasks ?? []) await t.close().catch(() => {});
  // Forget the job: this thread may run the next one.
  host = undefined;
  receivers.clear();
  senders.clear();
  runs = [];
  post({ t: "closed" });
}

parent.onMessage((message) => {
  const m = message as { t: string } & Record<string, unknown>;
  switch (m.t) {
    case "data": {
      const r = receivers.get(m.c as number);
      if (r && host) r.ch.push(decodeElement(m.el as WireElement, host.barrierOf, r.keyOf));
      return;
    }
    case "credit":
      senders.get(m.c as number)?.credit(m.n as number);
      return;
    case "storage-reply":
      RelayStorage.reply(m as unknown as StorageReply);
      return;
    case "init":
      setUp(m as unknown as WorkerInit).catch((e) => post({ t: "open-failed", error: toWire(e) }));
      return;
    case "run": {
      const h = host!;
      runs = h.tasks.map((t) => t.run().catch((e) => h.fail(e, `operator ${JSON.stringify(t.uid)} subtask ${t.index}`)));
      return;
    }
    case "checkpoint-failed":
      for (const t of host?.tasks ?? []) if (taskKey(t.vertex.id, t.index) === m.task) t.checkpointFailed(m.id as number);
      return;
    case "abort":
      host?.abort();
      RelayStorage.abortAll(new Error("the job was aborted"));
      return;
    case "close":
      void close();
      return;
  }
});
