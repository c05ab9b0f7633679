/**
 * `Job`: build a streaming DAG, run it with periodic incremental checkpoints, take savepoints, stop with a
 * savepoint, and restore from a checkpoint or savepoint at any parallelism.
 *
 * @module
 */
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { IncompatibleSnapshotError } from "../format/errors.ts";
import { defaultMaxParallelism, UPPER_BOUND_MAX_PARALLELISM } from "../format/key_group.ts";
import type { Manifest } from "../format/manifest.ts";
import { latestCheckpoint } from "../snapshot/read.ts";
import type { Barrier, Channel } from "./channel.ts";
import { JobFailedError, JobKilledError, type NonRestoredState } from "./errors.ts";
import type { Source } from "./sources.ts";
import { DataStream, type OperatorOptions } from "./stream.ts";
import { Graph, type Vertex } from "./_graph.ts";
import { type Clock, systemClock, type WatermarkStrategy } from "./watermark.ts";
import type { ChainSettings } from "./_chain_policy.ts";
import { CheckpointCoordinator, type CoordinatorHost } from "./_checkpoint_coordinator.ts";
import { checkRestored, openRestore, restoreState, savepointsIn } from "./_restore.ts";
import type { ChunkTarget, SourceTask, Task, TaskHost, TaskSnapshot } from "./_tasks.ts";
import { type ThreadEnds, wireTasks } from "./_wiring.ts";
import { type JobDefinition, missingDefinition, WorkerPool } from "./_workers.ts";

export type { JobDefinition } from "./_workers.ts";

/**
 * Checkpointing of a job.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CheckpointOptions } from "./job.ts";
 * const options: CheckpointOptions = { storage: "./checkpoints", intervalMs: 1000, retain: 3, fullEvery: 10 };
 * assert.equal(options.intervalMs, 1000);
 * ```
 */
export interface CheckpointOptions {
  /** The checkpoint root: a Storage or a URI/path (`./ckpt`, `file:///…`, `s3://bucket/prefix`, `memory:name`). */
  storage: Storage | string;
  /** Milliseconds between checkpoints (measured from the end of one to the start of the next); 0 or absent = only on demand. */
  intervalMs?: number;
  /** Incremental checkpoints (default true): deltas of what changed, a base now and then. */
  incremental?: boolean;
  /** Write a full base at least every this many checkpoints (default 10). */
  fullEvery?: number;
  /** Write a base when this many chunks make up a subtask's chain (default 16). */
  maxChainLength?: number;
  /** Completed checkpoints to keep (default 3); older ones and the chunks only they use are deleted. */
  retain?: number;
  /** Chunk compression (default `none`: deflate costs ~10× in checkpoint time). */
  compression?: "none" | "deflate";
  /** Failed checkpoints tolerated before the job fails (default 0). */
  tolerableFailures?: number;
}

/**
 * Where and how a job restores.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RestoreOptions } from "./job.ts";
 * const fromLatest: RestoreOptions = { from: "latest" };
 * const fromSavepoint: RestoreOptions = { from: "s3://bucket/job/savepoints/sp-000042-1a2b3c4d", allowNonRestoredState: true };
 * assert.equal(fromLatest.from, "latest");
 * assert.equal(fromSavepoint.allowNonRestoredState, true);
 * ```
 */
export interface RestoreOptions {
  /**
   * `"latest"`: the newest committed checkpoint of the checkpoint root (a fresh start when there is
   * none); a number: that checkpoint of the root; a string: the URI of a savepoint or checkpoint folder.
   */
  from: "latest" | number | string;
  /** Drop snapshot state the job does not register instead of failing (reported in `restoreReport`). */
  allowNonRestoredState?: boolean;
}

/**
 * Where a job is killed, for failure-injection tests.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FaultPoint } from "./job.ts";
 * const betweenDataAndManifest = (p: FaultPoint) => p.kind === "checkpoint" && p.stage === "acked" && p.checkpointId === 3;
 * assert.equal(betweenDataAndManifest({ stage: "acked", checkpointId: 3, kind: "checkpoint", records: 100 }), true);
 * ```
 */
export interface FaultPoint {
  /**
   * `triggered`: barriers injected; `captured`: every subtask captured its state and passed the barrier on,
   * its chunks being encoded and written (the asynchronous phase); `acked`: all chunks written, manifest
   * not yet; `committed`: manifest written, sinks not yet told.
   */
  readonly stage: "triggered" | "captured" | "acked" | "committed";
  /** The checkpoint id. */
  readonly checkpointId: number;
  /** Checkpoint or savepoint. */
  readonly kind: "checkpoint" | "savepoint";
  /** Source records emitted so far. */
  readonly records: number;
}

/**
 * Failure injection: kill the job as a crash would, at a chosen point.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { FaultPlan } from "./job.ts";
 * const crashMidStream: FaultPlan = { killAfterRecords: 50_000 };
 * const crashBeforeManifest: FaultPlan = { killAt: (p) => p.stage === "acked" };
 * assert.equal(crashMidStream.killAfterRecords, 50000);
 * assert.equal(typeof crashBeforeManifest.killAt, "function");
 * ```
 */
export interface FaultPlan {
  /** Kill once the sources emitted this many records. */
  killAfterRecords?: number;
  /** Kill when this returns true. */
  killAt?: (point: FaultPoint) => boolean;
}

/**
 * Options of a job.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JobOptions } from "./job.ts";
 * const options: JobOptions = { maxParallelism: 128, parallelism: 2, checkpoints: { storage: "memory:ckpt", intervalMs: 500 }, restore: { from: "latest" } };
 * assert.equal(options.maxParallelism, 128);
 * ```
 */
export interface JobOptions {
  /** Number of key groups (default: the snapshot's when restoring, else Flink's default for the largest parallelism). */
  maxParallelism?: number;
  /** Default operator parallelism (default 1). */
  parallelism?: number;
  /** Checkpointing (off when absent). */
  checkpoints?: CheckpointOptions;
  /** Restore on start. */
  restore?: RestoreOptions;
  /** Records per batch between subtasks (default 512). */
  batchSize?: number;
  /** Batches a channel holds before its producer waits (default 8). */
  channelCapacity?: number;
  /** Failure injection for tests. */
  faults?: FaultPlan;
  /** Progress events (checkpoint completed, restored, …). */
  onEvent?: (event: JobEvent) => void;
  /** Processing time for timers and idle timeouts (default the wall clock; a `ManualClock` in tests). */
  clock?: Clock;
  /**
   * Worker threads the keyed operators' subtasks run in (default 0: every subtask on this thread).
   * Sources, sinks and non-keyed operators stay on this thread; records cross threads in batches
   * (msgpack, so they must be plain data: objects, arrays, strings, numbers, bigints, bytes; `undefined`
   * fields are dropped). Needs {@link JobOptions.definition} and the wall clock. See runtime/README.md.
   */
  workers?: number;
  /**
   * How a worker thread builds this job's functions: a module without other effects at import and the
   * name of the function it exports that builds this same job from `args` (see {@link JobDefinition}).
   */
  definition?: JobDefinition;
}

/**
 * Options of a source: operator options plus how it assigns event time and watermarks.
 *
 * @example
 * ```ts
 * import type { SourceOptions } from "./job.ts";
 * import { boundedOutOfOrderness } from "./watermark.ts";
 * const options: SourceOptions<{ ts: number }> = { uid: "clicks", watermarks: boundedOutOfOrderness(5_000, (e) => e.ts) };
 * console.log(options.uid); // "clicks"
 * ```
 */
export interface SourceOptions<T> extends OperatorOptions {
  /** Event time and watermarks per split (none: the source emits no watermarks). */
  watermarks?: WatermarkStrategy<T>;
}

/**
 * A progress event.
 *
 * @example
 * ```ts
 * import type { JobEvent } from "./job.ts";
 * const log = (e: JobEvent) => {
 *   if (e.type === "checkpoint") console.log(`checkpoint ${e.info.id}: ${e.info.newRows} rows in ${e.info.durationMs.toFixed(0)} ms`);
 * };
 * log({ type: "retention-failed", error: new Error("x") });
 * ```
 */
export type JobEvent =
  | { type: "restored"; report: RestoreReport }
  | { type: "checkpoint"; info: SnapshotInfo }
  | { type: "checkpoint-failed"; id: number; error: unknown }
  | { type: "retention-failed"; error: unknown };

/**
 * A completed checkpoint or savepoint.
 *
 * @example
 * ```ts
 * import type { SnapshotInfo } from "./job.ts";
 * function describe(info: SnapshotInfo): string {
 *   return `${info.kind} ${info.id} at ${info.location}: ${info.newChunks} new chunks, ${info.totalChunks} referenced`;
 * }
 * ```
 */
export interface SnapshotInfo {
  /** The checkpoint id (savepoints share the sequence). */
  readonly id: number;
  /** Checkpoint or savepoint. */
  readonly kind: "checkpoint" | "savepoint";
  /** URI of the snapshot folder (open it with `openSnapshot` or `arrowpoint inspect`). */
  readonly location: string;
  /** Milliseconds from trigger to committed manifest. */
  readonly durationMs: number;
  /** Chunks written by this snapshot. */
  readonly newChunks: number;
  /** Bytes written by this snapshot. */
  readonly newBytes: number;
  /** Rows written by this snapshot. */
  readonly newRows: number;
  /** Chunks the manifest references (including earlier ones). */
  readonly totalChunks: number;
  /** The committed manifest. */
  readonly manifest: Manifest;
}

/**
 * What a restore did.
 *
 * @example
 * ```ts
 * import type { RestoreReport } from "./job.ts";
 * function dropped(report: RestoreReport): string[] {
 *   return report.nonRestored.map((s) => (s.state ? `${s.uid}/${s.state}` : s.uid));
 * }
 * ```
 */
export interface RestoreReport {
  /** URI of the snapshot restored. */
  readonly location: string;
  /** Its kind. */
  readonly kind: "checkpoint" | "savepoint";
  /** Its checkpoint id, when it has one. */
  readonly checkpointId?: number;
  /** State of the snapshot the job did not take (only with `allowNonRestoredState`). */
  readonly nonRestored: readonly NonRestoredState[];
}

/**
 * How a job ended.
 *
 * @example
 * ```ts
 * import type { JobResult } from "./job.ts";
 * function summary(r: JobResult): string {
 *   return `${r.status}: ${r.records} records, ${r.snapshots.length} snapshots${r.savepoint ? `, savepoint ${r.savepoint.location}` : ""}`;
 * }
 * ```
 */
export interface JobResult {
  /** `finished`: the sources ended; `stopped`: stop-with-savepoint; `cancelled`: `cancel()`. */
  readonly status: "finished" | "stopped" | "cancelled";
  /** Records the sources emitted in this run. */
  readonly records: number;
  /** Checkpoints and savepoints completed in this run. */
  readonly snapshots: readonly SnapshotInfo[];
  /** The stop savepoint, for `stopped`. */
  readonly savepoint?: SnapshotInfo;
  /** The restore, if any. */
  readonly restore?: RestoreReport;
}

/**
 * The state of a job.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { JobStatus } from "./job.ts";
 * const done = (s: JobStatus) => s === "finished" || s === "stopped" || s === "cancelled" || s === "failed";
 * assert.equal(done("running"), false);
 * ```
 */
export type JobStatus = "created" | "starting" | "running" | "finishing" | "finished" | "stopped" | "cancelled" | "failed";

function randomId(): string {
  return Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, "0");
}

function checkPositiveInt(value: number, name: string, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`Cannot use ${name} as it must be an integer in 1..${max}: current value is ${value}`);
}

const graphs = new WeakMap<Job, Graph>();

/** @internal The graph a job built (a worker thread takes the functions of its subtasks from it). */
export function graphOf(job: Job): Graph {
  return graphs.get(job)!;
}

/**
 * A streaming job: build the DAG with {@link Job.fromSource}, then {@link Job.run} (or {@link Job.start}
 * and await {@link Job.done}). A job runs once; restoring means a new `Job` with `restore` set.
 *
 * @example Per-user counters with checkpoints, restored at another parallelism
 * ```ts
 * import assert from "node:assert/strict";
 * import { Job, generatorSource, CollectingSink, valueState } from "./mod.ts";
 * const COUNT = valueState<number>("count");
 * const sink = new CollectingSink<[string, number]>();
 * const build = (parallelism: number, restore?: "latest") => {
 *   const job = new Job("counts", { maxParallelism: 128, checkpoints: { storage: "memory:counts-example" }, restore: restore && { from: restore } });
 *   job.fromSource(generatorSource({ count: 10_000, splits: 2, make: (i, rng, split) => ({ user: `u${rng.int(100) * 2 + split}` }) }), { uid: "events" })
 *     .keyBy((e) => e.user)
 *     .process<[string, number]>({
 *       processElement(e, ctx) { const s = ctx.getState(COUNT); const n = (s.value() ?? 0) + 1; s.update(n); ctx.collect([e.user, n]); },
 *     }, { uid: "count", parallelism })
 *     .sinkTo(sink, { uid: "out" });
 *   return job;
 * };
 * await build(2).run();
 * assert.equal(sink.committed.length, 10000);
 * ```
 */
export class Job {
  /** The job name (recorded in snapshots). */
  readonly name: string;
  private readonly options: JobOptions;
  private readonly graph = new Graph();
  #status: JobStatus = "created";
  #exec: Execution | undefined;
  #done: Promise<JobResult>;
  #resolve!: (r: JobResult) => void;
  #reject!: (e: unknown) => void;

  /** Creates a job; options are validated on {@link Job.start}. */
  constructor(name: string, options: JobOptions = {}) {
    if (typeof name !== "string" || name.length === 0 || name.length > 512) throw new TypeError(`Cannot create a job as its name must be a non-empty string: current value is ${JSON.stringify(name)}`);
    this.name = name;
    this.options = options;
    graphs.set(this, this.graph);
    this.#done = new Promise<JobResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#done.catch(() => {}); // observed through `done`/`run`
  }

  /** Adds a source; its uid defaults to the source's name. */
  fromSource<T>(source: Source<T>, options: SourceOptions<T> = {}): DataStream<T> {
    const v = this.graph.add({ kind: "source", name: source.name, uid: source.name, stateful: true, inputs: [], source: source as Source<unknown> });
    if (options.uid !== undefined) v.uid = options.uid;
    if (options.name !== undefined) v.name = options.name;
    if (options.parallelism !== undefined) v.parallelism = options.parallelism;
    if (options.watermarks !== undefined) v.watermarks = options.watermarks as WatermarkStrategy<unknown>;
    return new DataStream<T>(this.graph, [v]);
  }

  /** The job's state. */
  get status(): JobStatus {
    return this.#status;
  }

  /** Settles when the job ends: resolves with its result, rejects with the failure. */
  get done(): Promise<JobResult> {
    return this.#done;
  }

  /** The maxParallelism in use (after start). */
  get maxParallelism(): number | undefined {
    return this.#exec?.maxParallelism;
  }

  /** Source records emitted so far. */
  get records(): number {
    return this.#exec?.records ?? 0;
  }

  /** Records windows dropped or emitted as late in this run. */
  get lateRecords(): number {
    return this.#exec?.lateRecords ?? 0;
  }

  /** Snapshots completed so far. */
  get snapshots(): readonly SnapshotInfo[] {
    return this.#exec?.completed ?? [];
  }

  /** What the restore did (after start), if the job restored. */
  get restoreReport(): RestoreReport | undefined {
    return this.#exec?.restoreReport;
  }

  /** Restores (if asked), opens every operator and starts processing; resolves once running. */
  async start(): Promise<void> {
    if (this.#status !== "created") throw new TypeError(`Cannot start job ${JSON.stringify(this.name)} as it is ${this.#status}: a job runs once; build a new Job to restore`);
    this.#status = "starting";
    this.graph.frozen = true;
    const exec = new Execution(this.name, this.graph, this.options, (s) => (this.#status = s), this.#resolve, this.#reject);
    this.#exec = exec;
    try {
      await exec.start();
    } catch (e) {
      exec.fail(e, "start");
      await this.#done.catch(() => {});
      throw exec.error ?? e;
    }
  }

  /** Starts the job and waits for its end. */
  async run(): Promise<JobResult> {
    await this.start();
    return await this.#done;
  }

  #running(what: string): Execution {
    const exec = this.#exec;
    if (!exec || this.#status !== "running") throw new TypeError(`Cannot ${what} as job ${JSON.stringify(this.name)} is ${this.#status}`);
    return exec;
  }

  /** Takes a checkpoint now (after any in progress); resolves when its manifest is committed. */
  triggerCheckpoint(): Promise<SnapshotInfo> {
    const exec = this.#running("trigger a checkpoint");
    if (!exec.root) return Promise.reject(new TypeError("Cannot trigger a checkpoint as the job has no checkpoints.storage"));
    return exec.enqueue("checkpoint", undefined, false);
  }

  /**
   * Takes a savepoint while the job keeps running: a full, self-contained snapshot at `target` (a URI or
   * Storage of an empty folder; default `<checkpoint root>/savepoints/sp-<id>-<attempt>`).
   */
  savepoint(target?: string | Storage): Promise<SnapshotInfo> {
    return this.#running("take a savepoint").enqueue("savepoint", target, false);
  }

  /**
   * Stops the sources, takes a final savepoint (everything emitted before it is in it and committed by
   * the sinks), and ends the job; resolves with the savepoint once the job has stopped.
   *
   * The sources read nothing after the call, even while the savepoint waits for a checkpoint in
   * progress: called from a source's read (see {@link tapSource}), the savepoint holds exactly the
   * records read up to that read, so a job can stop at a position it reaches rather than at a time.
   *
   * @example Stop at the 5,000th record
   * ```ts
   * import { CollectingSink, generatorSource, Job, tapSource } from "./mod.ts";
   * const sink = new CollectingSink<number>();
   * const job = new Job("stop-at", { checkpoints: { storage: "memory:stop-at-example" } });
   * let stopping: Promise<unknown> | undefined;
   * const source = tapSource(generatorSource({ count: 100_000, make: (i) => i }), (records) => {
   *   if (records >= 5_000) stopping ??= job.stopWithSavepoint();
   * });
   * job.fromSource(source, { uid: "numbers" }).sinkTo(sink, { uid: "out" });
   * const result = await job.run();
   * console.log(result.status, sink.committed.length); // "stopped" 5120 (the read that passed 5,000 ends at 5,120)
   * ```
   */
  async stopWithSavepoint(target?: string | Storage): Promise<SnapshotInfo> {
    const exec = this.#running("stop with a savepoint");
    const info = await exec.stopWithSavepoint(target);
    await this.#done;
    return info;
  }

  /** Cancels the job: stops at once, commits nothing more; `done` resolves with status `cancelled`. */
  async cancel(): Promise<void> {
    if (!this.#exec) {
      this.#status = "cancelled";
      this.#resolve({ status: "cancelled", records: 0, snapshots: [] });
      return;
    }
    this.#exec.cancel();
    await this.#done.catch(() => {});
  }

  /** Kills the job as a crash would (failure injection): `done` rejects with a {@link JobKilledError}. */
  kill(reason = "kill() called"): void {
    this.#exec?.fail(new JobKilledError(reason), "kill");
  }
}

/** @internal One run of a job: its lifecycle; snapshots, restore and wiring live in their own modules. */
class Execution implements TaskHost, CoordinatorHost {
  maxParallelism = 0;
  readonly batchSize: number;
  readonly attempt: string = randomId();
  chain: ChainSettings | undefined;
  aborted = false;
  error: unknown;
  root: Storage | undefined;
  records = 0;
  lateRecords = 0;
  readonly clock: Clock;
  restoreReport: RestoreReport | undefined;
  readonly vertices: Vertex[];
  tasks: Task[] = [];
  sources: SourceTask[] = [];
  finishing = false;
  stopping = false;

  private coordinator: CheckpointCoordinator;
  private pool: WorkerPool | undefined;
  private channels: Channel[] = [];
  private byUid = new Map<string, Task[]>();
  private readonly inflight = new Set<Promise<unknown>>();
  private runs: Promise<void>[] = [];
  private ownRoot = false;
  private exhausted = 0;
  private finishedTasks = 0;
  private cancelled = false;
  private stopSavepoint: SnapshotInfo | undefined;
  private settled = false;

  constructor(
    readonly name: string,
    graph: Graph,
    private readonly options: JobOptions,
    private readonly setStatus: (s: JobStatus) => void,
    private readonly resolveDone: (r: JobResult) => void,
    private readonly rejectDone: (e: unknown) => void,
  ) {
    this.vertices = graph.vertices;
    this.batchSize = options.batchSize ?? 512;
    this.clock = options.clock ?? systemClock;
    checkPositiveInt(this.batchSize, "batchSize", 1 << 20);
    this.coordinator = new CheckpointCoordinator(this, options, undefined);
  }

  /** Checkpoints and savepoints completed in this run. */
  get completed(): readonly SnapshotInfo[] {
    return this.coordinator.completed;
  }

  // ---- start ------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const o = this.options;
    const defaultP = o.parallelism ?? 1;
    checkPositiveInt(defaultP, "parallelism", UPPER_BOUND_MAX_PARALLELISM);
    if (this.vertices.length === 0) throw new TypeError(`Cannot start job ${JSON.stringify(this.name)} as it has no operators: add a source with fromSource()`);
    const uids = new Set<string>();
    for (const v of this.vertices) {
      v.parallelism ??= defaultP;
      checkPositiveInt(v.parallelism, `parallelism of operator ${JSON.stringify(v.uid ?? v.name)}`, UPPER_BOUND_MAX_PARALLELISM);
      if (v.uid === undefined) {
        if (v.stateful) throw new TypeError(`Cannot start job as operator #${v.id} (${v.name}) has no uid: give every stateful operator a stable uid so its state can be restored`);
        v.uid = `${v.name}-${v.id}`;
      }
      if (typeof v.uid !== "string" || v.uid.length === 0 || v.uid.length > 512) throw new TypeError(`Cannot start job as operator #${v.id} has an invalid uid: current value is ${JSON.stringify(v.uid)}`);
      if (uids.has(v.uid)) throw new TypeError(`Cannot start job as uid ${JSON.stringify(v.uid)} is used by two operators: uids must be unique (pass { uid } to fromSource/sinkTo/process)`);
      uids.add(v.uid);
      const kt = new Set(v.inputs.map((e) => e.keyType));
      if (v.kind === "keyed" && kt.size !== 1) throw new TypeError(`Cannot start job as the inputs of ${JSON.stringify(v.uid)} declare different key types: ${[...kt].join(", ")}`);
    }
    const cp = o.checkpoints;
    if (cp) {
      this.chain = {
        incremental: cp.incremental ?? true,
        fullEvery: cp.fullEvery ?? 10,
        maxChainLength: cp.maxChainLength ?? 16,
        compression: cp.compression ?? "none",
      };
      checkPositiveInt(this.chain.fullEvery, "checkpoints.fullEvery");
      checkPositiveInt(this.chain.maxChainLength, "checkpoints.maxChainLength");
      if (cp.retain !== undefined) checkPositiveInt(cp.retain, "checkpoints.retain");
      if (typeof cp.storage === "string") {
        this.root = await openStorage(cp.storage);
        this.ownRoot = true;
      } else this.root = cp.storage;
    }
    const coordinator = (this.coordinator = new CheckpointCoordinator(this, o, this.root));

    // Restore: find the snapshot and settle maxParallelism before laying out key groups.
    const restore = await openRestore(o.restore, this.root, this.name);
    const snap = restore?.snap;
    const maxP = o.maxParallelism ?? snap?.manifest.maxParallelism ?? defaultMaxParallelism(Math.max(...this.vertices.map((v) => v.parallelism!)));
    checkPositiveInt(maxP, "maxParallelism", UPPER_BOUND_MAX_PARALLELISM);
    if (snap && snap.manifest.maxParallelism !== maxP) {
      const loc = snap.location;
      throw new IncompatibleSnapshotError(
        `Cannot restore ${loc} as it was taken with maxParallelism ${snap.manifest.maxParallelism} and the job declares ${maxP}: ` +
          `every key would move to another key group. Rewrite it first with \`arrowpoint rekey ${loc} <output> --max-parallelism ${maxP}\`, ` +
          `or run the job with maxParallelism ${snap.manifest.maxParallelism}`,
      );
    }
    this.maxParallelism = maxP;
    for (const v of this.vertices) {
      if (v.parallelism! > maxP) throw new RangeError(`Cannot run operator ${JSON.stringify(v.uid)} at parallelism ${v.parallelism} as it exceeds maxParallelism ${maxP}`);
    }
    const latest = this.root ? (await latestCheckpoint(this.root)) ?? 0 : 0;
    const savepoints = this.root ? await savepointsIn(this.root, this.name) : [];
    coordinator.nextId = Math.max(latest, snap?.manifest.checkpointId ?? 0, ...savepoints.map((s) => s.id)) + 1;

    const capacity = o.channelCapacity ?? 8;
    checkPositiveInt(capacity, "channelCapacity", 1 << 16);
    const workers = o.workers ?? 0;
    if (!Number.isInteger(workers) || workers < 0 || workers > 256) throw new RangeError(`Cannot use workers as it must be an integer in 0..256: current value is ${workers}`);
    let threads: ThreadEnds | undefined;
    if (workers > 0 && this.vertices.some((v) => v.kind === "keyed")) {
      if (!o.definition) throw missingDefinition(this.name);
      if (o.clock) throw new TypeError("Cannot run keyed operators in workers with a custom clock as a worker keeps the wall clock: use workers: 0 with a ManualClock");
      this.pool = new WorkerPool(this, workers, this.vertices, o.definition);
      threads = this.pool.ends(this.vertices);
    }
    const trackChanges = this.chain?.incremental ?? false;
    const wiring = wireTasks(this.vertices, this, { maxParallelism: maxP, batchSize: this.batchSize, channelCapacity: capacity, trackChanges, threads });
    this.tasks = wiring.tasks;
    this.sources = wiring.sources;
    this.channels = wiring.channels;
    this.byUid = wiring.byUid;
    try {
      this.pool?.start(this.vertices, { name: this.name, attempt: this.attempt, maxParallelism: maxP, batchSize: this.batchSize, channelCapacity: capacity, trackChanges, chain: this.chain }, restore);
      if (restore) {
        this.restoreReport = await restoreState(restore.snap, restore.inherit, this.byUid, coordinator.previous);
        if (restore.inherit) this.pool?.inheritChains(restore.snap, coordinator.previous);
      }
      for (const t of this.tasks) {
        await t.open();
        if (this.aborted) throw this.error;
      }
      if (restore) this.restoreReport = checkRestored(restore.snap, this.byUid, this.tasks, o.restore?.allowNonRestoredState ?? false, coordinator.previous, this.restoreReport!);
    } catch (e) {
      await this.pool?.terminateAll();
      throw e;
    } finally {
      if (restore && restore.snap.storage !== this.root) await restore.snap.storage.close().catch(() => {});
    }
    if (this.restoreReport) this.options.onEvent?.({ type: "restored", report: this.restoreReport });

    // A job restored from anything but the newest checkpoint of its root checkpoints before reading: a
    // crash before its first periodic checkpoint must not fall back to an older checkpoint of the root.
    const initial = restore !== undefined && this.root !== undefined && !(restore.inherit && restore.snap.manifest.checkpointId === latest);
    if (initial) for (const s of this.sources) s.waitFirstBarrier = true;
    this.setStatus("running");
    this.runs = this.tasks.map((t) => t.run().catch((e) => this.fail(e, `operator ${JSON.stringify(t.uid)} subtask ${t.index}`)));
    if (initial) {
      this.enqueue("checkpoint", undefined, false).then(() => coordinator.schedule(), (e) => this.fail(e, "initial checkpoint after restore"));
    } else coordinator.schedule();
  }

  // ---- TaskHost -----------------------------------------------------------------------------------

  fail(error: unknown, where: string): void {
    if (this.aborted) return;
    this.aborted = true;
    this.error = error instanceof JobFailedError || where === "start"
      ? error
      : new JobFailedError(`${where} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    this.setStatus("failed");
    this.teardown();
    this.coordinator.abortPending(this.error);
    void this.settle();
  }

  cancel(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.cancelled = true;
    this.setStatus("cancelled");
    this.teardown();
    this.coordinator.abortPending(new JobFailedError("the job was cancelled"));
    void this.settle();
  }

  private teardown(): void {
    this.coordinator.cancelTimer();
    this.pool?.abort();
    for (const ch of this.channels) ch.close();
    for (const t of this.tasks) t.wake();
  }

  ack(task: Task, barrier: Barrier, snapshot: Promise<TaskSnapshot>): void {
    this.coordinator.ack(task, barrier, snapshot);
  }

  target(barrier: Barrier): ChunkTarget {
    return this.coordinator.target(barrier);
  }

  sourceExhausted(_task: SourceTask): void {
    if (++this.exhausted < this.sources.length || this.stopping) return;
    this.finishInput();
  }

  /** Every source is exhausted: take the final checkpoint, then end the sources' output. */
  private finishInput(): void {
    this.finishing = true;
    this.setStatus("finishing");
    this.coordinator.cancelTimer();
    const finish = () => {
      for (const s of this.sources) s.finish();
    };
    if (this.root) {
      this.enqueue("checkpoint", undefined, false, true).then(finish, (e) => this.fail(e, "final checkpoint"));
    } else finish();
  }

  taskFinished(_task: Task): void {
    if (++this.finishedTasks === this.tasks.length) void this.settle();
  }

  countLate(n: number): void {
    this.lateRecords += n;
  }

  countRecords(n: number): void {
    this.records += n;
    const k = this.options.faults?.killAfterRecords;
    if (k !== undefined && this.records >= k) this.fail(new JobKilledError(`after ${this.records} records`), "fault injection");
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = () => this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  finalId(): number {
    return this.coordinator.nextId;
  }

  // ---- end ------------------------------------------------------------------------------------

  private async settle(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    await Promise.allSettled(this.runs);
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    await this.coordinator.idle();
    for (const t of this.tasks) await t.close().catch(() => {});
    await this.pool?.closeAll();
    for (const v of this.vertices) {
      await v.source?.close?.()?.catch?.(() => {});
      await v.sink?.close?.()?.catch?.(() => {});
    }
    if (this.ownRoot) await this.root?.close().catch(() => {});
    if (this.aborted && !this.cancelled) {
      this.rejectDone(this.error);
      return;
    }
    const status = this.cancelled ? "cancelled" : this.stopSavepoint ? "stopped" : "finished";
    if (!this.cancelled) this.setStatus(status);
    this.resolveDone({ status, records: this.records, snapshots: this.completed.slice(), savepoint: this.stopSavepoint, restore: this.restoreReport });
  }

  // ---- snapshots --------------------------------------------------------------------------------

  enqueue(kind: "checkpoint" | "savepoint", target: string | Storage | undefined, stop: boolean, final = false): Promise<SnapshotInfo> {
    return this.coordinator.enqueue(kind, target, stop, final);
  }

  async stopWithSavepoint(target: string | Storage | undefined): Promise<SnapshotInfo> {
    if (this.stopping) throw new TypeError("Cannot stop with a savepoint as a stop is already in progress");
    this.stopping = true;
    this.coordinator.cancelTimer();
    // Read nothing more from now on: the savepoint may wait behind a checkpoint in progress, and the
    // sources must not run on (possibly to the end of their input) meanwhile.
    for (const s of this.sources) s.pause();
    try {
      const info = await this.enqueue("savepoint", target, true);
      this.stopSavepoint = info;
      this.finishing = true;
      this.setStatus("finishing");
      for (const s of this.sources) s.finish();
      return info;
    } catch (e) {
      this.stopping = false;
      if (!this.aborted) {
        for (const s of this.sources) s.resume();
        // Sources that ran dry during the stop were told nothing (the stop would end them): end them now.
        if (this.exhausted >= this.sources.length) this.finishInput();
        else this.coordinator.schedule();
      }
      throw e;
    }
  }
}
