/**
 * The checkpoint coordinator: triggers checkpoints and savepoints one at a time (barriers into the
 * sources), collects every subtask's ack, commits the manifest, tells the subtasks (sinks commit), and
 * applies retention. Private to the runtime (the leading underscore); it talks to the subtasks only
 * through barriers, acks and `notifyComplete`, the seam a subtask in another thread answers through too.
 *
 * @module
 */
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { AlreadyExistsError } from "../format/errors.ts";
import type { ChunkRef } from "../format/manifest.ts";
import { checkpointDirName, manifestPath, SAVEPOINTS_DIR, savepointDirName } from "../snapshot/layout.ts";
import { applyRetention } from "../snapshot/retention.ts";
import { commitManifest } from "../snapshot/write.ts";
import { Barrier } from "./channel.ts";
import { assembleManifest, checkpointTarget, chunksByState, joinRelative, savepointTarget } from "./checkpoint.ts";
import { JobFailedError, JobKilledError } from "./errors.ts";
import type { FaultPoint, JobOptions, SnapshotInfo } from "./job.ts";
import type { Vertex } from "./_graph.ts";
import type { ChunkTarget, SourceTask, Task, TaskSnapshot } from "./_tasks.ts";

/** What the coordinator needs of the job it runs in. */
export interface CoordinatorHost {
  readonly name: string;
  readonly maxParallelism: number;
  readonly attempt: string;
  readonly aborted: boolean;
  readonly error: unknown;
  /** Source records emitted so far. */
  readonly records: number;
  readonly vertices: readonly Vertex[];
  readonly tasks: readonly Task[];
  readonly sources: readonly SourceTask[];
  /** The job no longer takes snapshots other than its final checkpoint. */
  readonly finishing: boolean;
  /** A stop-with-savepoint is in progress: no periodic checkpoint is triggered. */
  readonly stopping: boolean;
  fail(error: unknown, where: string): void;
  track<T>(p: Promise<T>): Promise<T>;
}

interface PendingSnapshot {
  readonly barrier: Barrier;
  readonly target: ChunkTarget;
  readonly acks: Promise<TaskSnapshot>[];
  /** Every subtask captured its state (its asynchronous part may still run). */
  captured(): void;
  resolve(v: TaskSnapshot[]): void;
  reject(e: unknown): void;
}

/** Coordinates the snapshots of one run of a job. */
export class CheckpointCoordinator {
  /** Checkpoints and savepoints completed in this run. */
  readonly completed: SnapshotInfo[] = [];
  /** The next checkpoint id (savepoints share the sequence). */
  nextId = 1;
  /** The chunks of the last committed checkpoint, by state (see `stateKey`): what deltas build on. */
  previous = new Map<string, ChunkRef[]>();
  private pending: PendingSnapshot | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;

  constructor(private readonly host: CoordinatorHost, private readonly options: JobOptions, readonly root: Storage | undefined) {}

  /** Arms the next periodic checkpoint (when an interval is set). */
  schedule(): void {
    const interval = this.options.checkpoints?.intervalMs;
    if (!interval || !this.root) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const h = this.host;
      if (h.aborted || h.finishing || h.stopping) return;
      this.enqueue("checkpoint", undefined, false).then(
        () => this.schedule(),
        () => this.schedule(),
      );
    }, interval);
  }

  /** Disarms the periodic checkpoint. */
  cancelTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Fails the snapshot waiting for acks, if any (the job is failing or cancelled). */
  abortPending(error: unknown): void {
    const p = this.pending;
    this.pending = null;
    p?.reject(error);
  }

  /** Settles once every queued snapshot has. */
  idle(): Promise<void> {
    return this.queue.then(() => {}, () => {});
  }

  /** Queues a snapshot behind any in progress; resolves once its manifest is committed. */
  enqueue(kind: "checkpoint" | "savepoint", target: string | Storage | undefined, stop: boolean, final = false): Promise<SnapshotInfo> {
    const run = this.queue.then(() => this.snapshotNow(kind, target, stop, final));
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * A subtask captured its state for `barrier` (the synchronous part); `snapshot` is the asynchronous
   * part and settles once its chunks are written. The checkpoint commits only after every part settled.
   */
  ack(_task: Task, barrier: Barrier, snapshot: Promise<TaskSnapshot>): void {
    const p = this.pending;
    if (!p || p.barrier !== barrier) {
      snapshot.catch(() => {});
      return;
    }
    snapshot.catch(() => {}); // observed through Promise.all below
    p.acks.push(snapshot);
    if (p.acks.length === this.host.tasks.length) {
      p.captured();
      Promise.all(p.acks).then(p.resolve, p.reject);
    }
  }

  /** Where the chunks of the snapshot of `barrier` go. */
  target(barrier: Barrier): ChunkTarget {
    if (this.pending?.barrier !== barrier) throw new Error(`no snapshot ${barrier.id} in progress`);
    return this.pending.target;
  }

  private fault(stage: FaultPoint["stage"], id: number, kind: "checkpoint" | "savepoint"): void {
    const h = this.host;
    const killAt = this.options.faults?.killAt;
    if (killAt && killAt({ stage, checkpointId: id, kind, records: h.records })) {
      h.fail(new JobKilledError(`at ${stage} of ${kind} ${id}`), "fault injection");
    }
    if (h.aborted) throw h.error;
  }

  private async resolveSavepoint(target: string | Storage | undefined, id: number): Promise<{ storage: Storage; dir: string; owned: boolean }> {
    let storage: Storage;
    let dir = "";
    let owned = false;
    if (target === undefined) {
      if (!this.root) throw new TypeError("Cannot take a savepoint without a target as the job has no checkpoints.storage: pass a URI");
      storage = this.root;
      dir = savepointDirName(id, this.host.attempt);
    } else if (typeof target === "string") {
      storage = await openStorage(target);
      owned = true;
    } else storage = target;
    if (await storage.exists(manifestPath(dir))) {
      if (owned) await storage.close();
      throw new AlreadyExistsError(`${storage.uri}/${manifestPath(dir)}`);
    }
    return { storage, dir, owned };
  }

  private async snapshotNow(kind: "checkpoint" | "savepoint", targetSpec: string | Storage | undefined, stop: boolean, final: boolean): Promise<SnapshotInfo> {
    const h = this.host;
    if (h.aborted) throw h.error ?? new JobFailedError("the job is not running");
    if (h.finishing && !final) throw new TypeError(`Cannot take a ${kind} as the job is finishing`);
    const started = performance.now();
    const id = this.nextId++;
    let sp: { storage: Storage; dir: string; owned: boolean } | undefined;
    let target: ChunkTarget;
    if (kind === "savepoint") {
      sp = await this.resolveSavepoint(targetSpec, id);
      target = savepointTarget(sp.storage, sp.dir);
    } else target = checkpointTarget(this.root!, id, h.attempt);
    const barrier = new Barrier(id, kind, stop);
    try {
      let captured!: () => void;
      const allCaptured = new Promise<void>((resolve) => (captured = resolve));
      const acked = new Promise<TaskSnapshot[]>((resolve, reject) => {
        this.pending = { barrier, target, acks: [], captured, resolve, reject };
      });
      acked.catch(() => {}); // a kill before the await below must not leave it unobserved
      this.fault("triggered", id, kind);
      for (const s of h.sources) s.inject(barrier);
      // Whichever comes first: a failed part or a failed job ends the wait for the captures too.
      await Promise.race([allCaptured, acked]);
      this.fault("captured", id, kind);
      const snaps = await acked;
      this.pending = null;
      this.fault("acked", id, kind);
      const dir = kind === "checkpoint" ? checkpointDirName(id) : sp!.dir;
      const manifest = assembleManifest({
        kind,
        id: kind === "checkpoint" ? dir : (dir.split("/").pop() || savepointDirName(id, h.attempt).split("/").pop()!),
        checkpointId: id,
        job: h.name,
        maxParallelism: h.maxParallelism,
        operators: h.vertices.map((v) => ({ uid: v.uid!, name: v.name, parallelism: v.parallelism! })),
        snapshots: snaps,
        previous: kind === "checkpoint" ? this.previous : undefined,
        metadata: { attempt: h.attempt, records: String(h.records) },
      });
      await h.track(commitManifest(target.storage, dir, manifest));
      this.fault("committed", id, kind);
      if (kind === "checkpoint") this.previous = chunksByState(manifest);
      let newChunks = 0, newBytes = 0, newRows = 0, totalChunks = 0;
      for (const s of snaps) for (const p of s.states) for (const c of p.chunks) (newChunks++, newBytes += c.bytes, newRows += c.rows);
      for (const op of manifest.operators) for (const st of op.states) totalChunks += st.chunks.length;
      const location = dir ? `${target.storage.uri.replace(/\/+$/, "")}/${dir}` : target.storage.uri;
      const info: SnapshotInfo = { id, kind, location, durationMs: performance.now() - started, newChunks, newBytes, newRows, totalChunks, manifest };
      this.completed.push(info);
      const commits = h.tasks.map((t) => t.notifyComplete(id, kind, stop)).filter((p): p is Promise<void> => p !== undefined);
      const committed = h.track(Promise.all(commits)).catch((e) => h.fail(e, `commit of checkpoint ${id}`));
      if (stop || final) await committed;
      if (kind === "checkpoint") {
        const retain = this.options.checkpoints?.retain ?? 3;
        try {
          await h.track(applyRetention(this.root!, { retain }));
        } catch (e) {
          this.options.onEvent?.({ type: "retention-failed", error: e });
        }
      }
      this.options.onEvent?.({ type: "checkpoint", info });
      return info;
    } catch (e) {
      if (this.pending?.barrier === barrier) this.pending = null;
      if (!h.aborted && kind === "checkpoint") {
        for (const t of h.tasks) t.checkpointFailed(id);
        this.options.onEvent?.({ type: "checkpoint-failed", id, error: e });
        if (++this.failures > (this.options.checkpoints?.tolerableFailures ?? 0)) h.fail(e, `checkpoint ${id}`);
      }
      throw e;
    } finally {
      if (sp?.owned) await sp.storage.close().catch(() => {});
    }
  }
}
