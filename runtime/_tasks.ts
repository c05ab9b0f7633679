/**
 * Subtasks: how records, barriers and end-of-input flow through one operator instance. Private to the
 * runtime (the leading underscore): the job creates and drives them; nothing here is public API.
 *
 * @module
 */
import { setImmediate as yieldToLoop } from "node:timers";
import type { Storage } from "../backends/storage.ts";
import { javaHashCode, type KeyGroupRange, murmurHash, operatorIndexFor } from "../format/key_group.ts";
import type { ChunkRef } from "../format/manifest.ts";
import type { KeyType, Redistribution, StateLayout } from "../format/state_layout.ts";
import { keyFits } from "../format/key_identity.ts";
import { Barrier, BARRIER, BATCH, Channel, type ChannelWriter, END_OF_INPUT, type EndOfInput, InputGate, RecordBatch, Watermark, WATERMARK } from "./channel.ts";
import { KeyedStateBackend } from "./keyed_backend.ts";
import { OperatorStateStore } from "./operator_state.ts";
import { type PendingCommit, recommitRestored, type SinkWriter } from "./sinks.ts";
import type { SplitReader, SourceSplit } from "./sources.ts";
import { operatorListState, type OperatorListState } from "./state.ts";
import type { KeyedProcessContext, KeyedProcessFunction, ProcessContext, ProcessFunction } from "./stream.ts";
import type { FunctionOrFactory, Vertex } from "./_graph.ts";
import { type Clock, InputWatermarks, SourceWatermarks, type SplitTime } from "./watermark.ts";
import { COUNT_LATE, type TimeDomain, Timers } from "./timers.ts";
import { namespacedTable } from "./namespaced_state.ts";
import type { ChainSettings } from "./_chain_policy.ts";
import { captureSnapshot, writeSnapshot } from "./_async_snapshot.ts";

export type { ChainSettings } from "./_chain_policy.ts";

/** Where the chunks of one snapshot go. */
export interface ChunkTarget {
  /** The storage written to. */
  readonly storage: Storage;
  /** A checkpoint (chunks under the root's `shared/` and `chk-<n>/`) or a savepoint (all in `dir`). */
  readonly kind: "checkpoint" | "savepoint";
  /** The savepoint's folder in `storage` (checkpoints: ""). */
  readonly dir: string;
  /** Storage path and manifest path of a keyed chunk. */
  keyed(uid: string, state: string, range: KeyGroupRange, type: "base" | "delta"): { path: string; ref: string };
  /** Storage path and manifest path of an operator-state chunk. */
  operator(uid: string, state: string, subtask: number): { path: string; ref: string };
}

/** One state of one subtask in a snapshot. */
export interface StatePart {
  readonly name: string;
  readonly keyed: boolean;
  readonly layout: StateLayout;
  readonly schemaVersion: number;
  readonly redistribution?: Redistribution;
  readonly chunks: ChunkRef[];
  /** Rows written (new chunks). */
  rows: number;
}

/** What one subtask contributed to a snapshot. */
export interface TaskSnapshot {
  readonly uid: string;
  readonly subtask: number;
  readonly range?: KeyGroupRange;
  readonly states: StatePart[];
}

/** What the job gives its tasks. */
export interface TaskHost {
  /** The job's name. */
  readonly name: string;
  readonly maxParallelism: number;
  readonly batchSize: number;
  readonly attempt: string;
  /** Chain settings; undefined when checkpointing is off. */
  readonly chain: ChainSettings | undefined;
  /** Set once the job is failing or cancelled: tasks return at their next step. */
  readonly aborted: boolean;
  fail(error: unknown, where: string): void;
  ack(task: Task, barrier: Barrier, snapshot: Promise<TaskSnapshot>): void;
  target(barrier: Barrier): ChunkTarget;
  sourceExhausted(task: SourceTask): void;
  taskFinished(task: Task): void;
  countRecords(n: number): void;
  /** Counts records dropped (or side-output) as late. */
  countLate(n: number): void;
  /** Processing time. */
  readonly clock: Clock;
  track<T>(p: Promise<T>): Promise<T>;
  /** The id to stage final output under when checkpointing is off. */
  finalId(): number;
}

function instantiate<F extends object>(f: FunctionOrFactory<F>): F {
  return typeof f === "function" ? (f as () => F)() : (Object.create(f) as F);
}

/** The outgoing side of an edge: buffers records per target channel, in batches. */
abstract class Edge {
  constructor(readonly channels: ChannelWriter[], protected readonly batchSize: number) {}
  abstract add(value: unknown): void;
  abstract flush(): void;
  broadcast(el: Barrier | EndOfInput | Watermark): void {
    this.flush();
    for (const ch of this.channels) ch.push(el);
  }
  anyFull(): boolean {
    for (const ch of this.channels) if (ch.full) return true;
    return false;
  }
  async waitSpace(): Promise<void> {
    for (const ch of this.channels) while (ch.full) await ch.waitSpace();
  }
}

class KeyedEdge extends Edge {
  private vals: unknown[][];
  private keys: unknown[][];
  private kgs: number[][];
  private readonly targetOf: Int32Array;
  private readonly valid: (k: unknown) => boolean;

  constructor(channels: ChannelWriter[], batchSize: number, private readonly selector: (v: unknown) => unknown, private readonly keyType: KeyType, private readonly maxP: number) {
    super(channels, batchSize);
    const n = channels.length;
    this.vals = Array.from({ length: n }, () => []);
    this.keys = Array.from({ length: n }, () => []);
    this.kgs = Array.from({ length: n }, () => []);
    this.targetOf = new Int32Array(maxP);
    for (let kg = 0; kg < maxP; kg++) this.targetOf[kg] = operatorIndexFor(kg, n, maxP);
    this.valid = (k) => keyFits(keyType, k);
  }

  add(value: unknown): void {
    const k = this.selector(value);
    if (!this.valid(k)) {
      throw new TypeError(
        `Cannot route key ${typeof k === "bigint" ? `${k}n` : JSON.stringify(k)} (${typeof k}) as keyBy declared keyType ${JSON.stringify(this.keyType)}; ` +
          "pass keyBy(selector, { keyType }) with string, int32, int64 (bigint), float64, bytes or msgpack",
      );
    }
    const kg = murmurHash(javaHashCode(k as string)) % this.maxP;
    const t = this.targetOf[kg];
    const vs = this.vals[t];
    vs.push(value);
    this.keys[t].push(k);
    this.kgs[t].push(kg);
    if (vs.length >= this.batchSize) this.seal(t);
  }

  private seal(t: number): void {
    this.channels[t].push(new RecordBatch(this.vals[t], this.keys[t], this.kgs[t]));
    this.vals[t] = [];
    this.keys[t] = [];
    this.kgs[t] = [];
  }

  flush(): void {
    for (let t = 0; t < this.vals.length; t++) if (this.vals[t].length > 0) this.seal(t);
  }
}

class ForwardEdge extends Edge {
  private buf: unknown[] = [];
  private rr = 0;
  add(value: unknown): void {
    this.buf.push(value);
    if (this.buf.length >= this.batchSize) this.flush();
  }
  flush(): void {
    if (this.buf.length === 0) return;
    const chs = this.channels;
    chs[this.rr].push(new RecordBatch(this.buf, null, null));
    this.buf = [];
    if (chs.length > 1) this.rr = this.rr + 1 === chs.length ? 0 : this.rr + 1;
  }
}

/** The outputs of a task: one edge per downstream consumer. */
export class Output {
  readonly collect: (value: unknown) => void;
  constructor(private readonly edges: Edge[]) {
    if (edges.length === 0) this.collect = () => {};
    else if (edges.length === 1) {
      const e = edges[0];
      this.collect = (v) => e.add(v);
    } else this.collect = (v) => {
      for (const e of edges) e.add(v);
    };
  }
  flushAll(): void {
    for (const e of this.edges) e.flush();
  }
  broadcast(el: Barrier | EndOfInput | Watermark): void {
    for (const e of this.edges) e.broadcast(el);
  }
  anyFull(): boolean {
    for (const e of this.edges) if (e.anyFull()) return true;
    return false;
  }
  async waitSpace(): Promise<void> {
    for (const e of this.edges) await e.waitSpace();
  }
}

/** How a task's output edge is made. */
export interface OutputSpec {
  /** The channels to the consumer's subtasks, by subtask. */
  readonly channels: ChannelWriter[];
  /** Key selector for keyed edges. */
  readonly keySelector?: (v: unknown) => unknown;
  /** Key type for keyed edges. */
  readonly keyType?: KeyType;
  /** Forward to one channel (equal parallelism) or round-robin. */
  readonly forwardIndex?: number;
}

/** Builds an {@link Output}. */
export function makeOutput(specs: readonly OutputSpec[], batchSize: number, maxP: number): Output {
  return new Output(specs.map((s) => {
    if (s.keySelector) return new KeyedEdge(s.channels, batchSize, s.keySelector, s.keyType ?? "string", maxP);
    if (s.forwardIndex !== undefined) return new ForwardEdge([s.channels[s.forwardIndex]], batchSize);
    return new ForwardEdge(s.channels, batchSize);
  }));
}

/** A split's position; `wm` is its watermark generator's state (absent without a watermark strategy). */
interface SplitPosition {
  id: string;
  split: SourceSplit;
  position: unknown;
  done: boolean;
  wm?: unknown;
}
const POSITIONS = operatorListState<SplitPosition>("positions", { redistribution: "split" });
const PENDING_COMMITS = operatorListState<PendingCommit>("pending-commits", { redistribution: "split" });

/** One subtask of an operator. */
export abstract class Task {
  readonly uid: string;
  readonly opState: OperatorStateStore = new OperatorStateStore();
  keyed: KeyedStateBackend | null = null;
  output!: Output;
  protected snapshotHook: ((info: { checkpointId: number }) => void) | undefined;
  /** Names of operator states that were restored (even when this subtask received no items). */
  readonly restoredOperatorStates: Set<string> = new Set();
  /** Every item of each restored operator state, as in the snapshot (before redistribution). */
  readonly restoredItems: Map<string, readonly unknown[]> = new Map();

  constructor(readonly vertex: Vertex, readonly index: number, readonly parallelism: number, protected readonly host: TaskHost) {
    this.uid = vertex.uid!;
  }

  abstract open(): Promise<void>;
  abstract run(): Promise<void>;
  /** Whether this subtask registered the state `name` (in `open()`), keyed or operator state. */
  hasState(name: string, keyed: boolean): boolean {
    return keyed ? this.keyed?.table(name) !== undefined : this.opState.entry(name) !== undefined;
  }
  /** Called after a snapshot completed (sinks commit). */
  notifyComplete(_id: number, _kind: "checkpoint" | "savepoint", _stop: boolean): Promise<void> | undefined {
    return undefined;
  }
  /** Wakes the task (abort, new barrier). */
  abstract wake(): void;
  abstract close(): Promise<void>;

  /** The asynchronous part of this subtask's latest snapshot while it runs (at most one runs at a time). */
  private asyncPart: { readonly id: number; aborted: boolean; done: Promise<void> } | null = null;

  /**
   * Snapshots this subtask for a barrier: captures its state now (a consistent copy, the chains moved
   * past it) and acks with the asynchronous part, which encodes and writes the chunks while the subtask
   * goes on. A part still running from an earlier barrier runs first (the next one starts after it).
   */
  protected snapshot(b: Barrier): void {
    this.snapshotHook?.({ checkpointId: b.id });
    const host = this.host;
    const captured = captureSnapshot({ uid: this.uid, index: this.index, keyed: this.keyed, opState: this.opState, chain: host.chain }, b, host.target(b));
    const part = { id: b.id, aborted: false, done: Promise.resolve() };
    const stopped = () => (host.aborted ? "the job is no longer running" : part.aborted ? `${b.kind} ${b.id} failed` : undefined);
    const before = this.asyncPart?.done;
    const run = before === undefined ? writeSnapshot(captured, stopped) : before.then(() => writeSnapshot(captured, stopped));
    part.done = run.then(() => {}, () => {});
    this.asyncPart = part;
    void part.done.then(() => {
      if (this.asyncPart === part) this.asyncPart = null;
    });
    host.ack(this, b, host.track(run));
  }

  /** Settles once no asynchronous snapshot part of this subtask runs; undefined when none does. */
  protected snapshotInFlight(): Promise<void> | undefined {
    return this.asyncPart?.done;
  }

  /**
   * After checkpoint `id` could not complete: the next checkpoint writes bases (the chain lost a link),
   * and this subtask's asynchronous part of it (or of an older one) stops before its next encode or write.
   */
  checkpointFailed(id: number): void {
    if (this.keyed) for (const t of this.keyed.all()) t.chain.forceBase = true;
    const p = this.asyncPart;
    if (p !== null && p.id <= id) p.aborted = true;
  }
}

interface SplitState {
  split: SourceSplit;
  position: unknown;
  done: boolean;
  reader?: SplitReader<unknown>;
  time?: SplitTime;
}

/** A subtask of a source. */
export class SourceTask extends Task {
  private splits: SplitState[] = [];
  private positions!: OperatorListState<SplitPosition>;
  private wms: SourceWatermarks | null = null;
  private pendingBarrier: Barrier | null = null;
  private halted = false;
  /** A stop was asked: read nothing more, but still emit barriers (the stop's own among them). */
  private paused = false;
  private finishing = false;
  private exhausted = false;
  private sleeper: (() => void) | null = null;
  private rr = 0;
  /** Read nothing before the first barrier (the initial checkpoint of a job restored from elsewhere). */
  waitFirstBarrier = false;
  /** Positions recorded at barriers whose completion readers are told of (notifyCheckpointComplete). */
  private acknowledgeable: { id: number; positions: { s: SplitState; position: unknown }[] }[] = [];

  async open(): Promise<void> {
    this.positions = this.opState.getListState(POSITIONS);
    if (this.restoredOperatorStates.has(POSITIONS.name)) {
      // msgpack stores an undefined position (a split never opened) as null: both mean the beginning.
      this.splits = this.positions.get().map((p) => ({ split: p.split, position: p.position ?? undefined, done: p.done }));
      // Splits the source lists now that the snapshot does not hold are new (as a Flink enumerator
      // discovering splits): dealt over the subtasks in list order and read from their beginning.
      const all = this.restoredItems.get(POSITIONS.name);
      if (all !== undefined) {
        const known = new Set(all.map((p) => (p as { id: string }).id));
        const fresh = (await this.vertex.source!.splits()).filter((split) => !known.has(split.id));
        for (let i = this.index; i < fresh.length; i += this.parallelism) this.splits.push({ split: fresh[i], position: undefined, done: false });
      }
    } else {
      const all = await this.vertex.source!.splits();
      this.splits = all.filter((_, i) => i % this.parallelism === this.index).map((split) => ({ split, position: undefined, done: false }));
    }
    const strategy = this.vertex.watermarks;
    if (strategy) {
      const wms = (this.wms = new SourceWatermarks(strategy, this.host.clock));
      const restored = this.restoredOperatorStates.has(POSITIONS.name) ? this.positions.get() : [];
      this.splits.forEach((s, i) => (s.time = wms.split(restored[i]?.wm)));
    }
  }

  /** Emits the subtask's watermark if it advanced (or its idleness changed). */
  private emitWatermark(force: boolean): void {
    const w = this.wms!.poll(this.splits, force);
    if (w !== undefined) this.output.broadcast(w);
  }

  /** Makes the source emit a barrier before its next read. */
  inject(b: Barrier): void {
    this.pendingBarrier = b;
    this.wake();
  }

  /**
   * Stops reading before the next read (a stop-with-savepoint was asked): the stop's barrier, injected
   * later, then finds every split where it was when the stop was asked.
   */
  pause(): void {
    this.paused = true;
  }

  /** Lets a halted source read again (a stop-with-savepoint that failed). */
  resume(): void {
    this.halted = false;
    this.paused = false;
    this.wake();
  }

  /** Makes the source end its output (after the final snapshot). */
  finish(): void {
    this.finishing = true;
    this.wake();
  }

  wake(): void {
    const s = this.sleeper;
    if (s) {
      this.sleeper = null;
      s();
    }
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      this.sleeper = resolve;
    });
  }

  private emitBarrier(b: Barrier): void {
    const positions = this.splits.map((s) => {
      const p: SplitPosition = { id: s.split.id, split: s.split, position: s.reader ? s.reader.position() : s.position, done: s.done };
      if (s.time) p.wm = s.time.generator.state();
      return p;
    });
    this.positions.update(positions);
    if (b.kind === "checkpoint" || b.stop) this.acknowledgeable.push({ id: b.id, positions: this.splits.map((s, i) => ({ s, position: positions[i].position })) });
    this.output.flushAll();
    if (this.wms) this.emitWatermark(true);
    this.snapshot(b);
    this.output.broadcast(b);
    if (b.stop) this.halted = true;
  }

  async run(): Promise<void> {
    const host = this.host;
    const out = this.output;
    const buf: unknown[] = [];
    const max = host.batchSize;
    let lastYield = performance.now();
    while (this.waitFirstBarrier && this.pendingBarrier === null && !host.aborted) await this.sleep();
    for (;;) {
      if (host.aborted) return;
      const b = this.pendingBarrier;
      if (b !== null) {
        this.pendingBarrier = null;
        this.emitBarrier(b);
        if (out.anyFull()) await out.waitSpace();
        continue;
      }
      if (this.finishing) {
        out.flushAll();
        out.broadcast(END_OF_INPUT);
        host.taskFinished(this);
        return;
      }
      if (this.halted || this.paused || this.exhausted) {
        out.flushAll();
        await this.sleep();
        continue;
      }
      const s = this.nextSplit();
      if (s === undefined) {
        this.exhausted = true;
        if (this.wms) this.emitWatermark(true); // a subtask without splits must not hold the watermark back
        out.flushAll();
        host.sourceExhausted(this);
        continue;
      }
      s.reader ??= await this.vertex.source!.reader(s.split, s.position);
      const r = s.reader.read(buf, max);
      let n: number;
      if (typeof r === "number") n = r;
      else {
        // An idle source still takes part in checkpoints: barriers are emitted while the read is pending
        // (a pending read changes neither `buf` nor the reader's position until it resolves).
        out.flushAll();
        const pending = { done: false, value: 0, error: undefined as unknown, failed: false };
        r.then(
          (v) => {
            pending.done = true;
            pending.value = v;
            this.wake();
          },
          (e) => {
            pending.done = pending.failed = true;
            pending.error = e;
            this.wake();
          },
        );
        const wms = this.wms;
        let cancelWake: (() => void) | undefined;
        while (!pending.done) {
          if (host.aborted) return;
          if (this.finishing) break; // the pending read is abandoned: nothing after the last barrier is emitted
          if (wms) {
            // While waiting, a split may turn idle: its watermark must stop holding back the others.
            this.emitWatermark(true);
            cancelWake?.();
            const at = wms.nextIdleAt(this.splits);
            cancelWake = at === Infinity ? undefined : host.clock.wakeAt(at, () => this.wake());
          }
          const pb = this.pendingBarrier;
          if (pb !== null) {
            this.pendingBarrier = null;
            this.emitBarrier(pb);
            if (out.anyFull()) await out.waitSpace();
            continue;
          }
          await this.sleep();
        }
        cancelWake?.();
        if (host.aborted) return;
        if (!pending.done) continue;
        if (pending.failed) throw pending.error;
        n = pending.value;
        if (this.halted || this.finishing) {
          buf.length = 0; // read after a stop barrier: not emitted; a restore reads it again
          continue;
        }
      }
      if (!Number.isInteger(n) || n < -1 || n > max) {
        throw new TypeError(`Cannot read source ${JSON.stringify(this.uid)} split ${JSON.stringify(s.split.id)} as its reader returned ${n}: read() must return the number of records added (0..${max}) or -1 at the end`);
      }
      if (n < 0) {
        s.done = true;
        s.position = s.reader!.position();
        await s.reader.close?.();
        s.reader = undefined;
        if (this.wms) this.emitWatermark(true);
        continue;
      }
      if (n > 0) {
        if (this.wms) this.wms.onRecords(s.time!, buf);
        const collect = out.collect;
        for (let i = 0; i < buf.length; i++) collect(buf[i]);
        buf.length = 0;
        host.countRecords(n);
      }
      if (this.wms) this.emitWatermark(n === 0);
      if (out.anyFull()) await out.waitSpace();
      const now = performance.now();
      if (now - lastYield > 4) {
        out.flushAll();
        await new Promise<void>((r) => yieldToLoop(r));
        lastYield = performance.now();
      }
    }
  }

  override notifyComplete(id: number, kind: "checkpoint" | "savepoint", stop: boolean): Promise<void> | undefined {
    if (kind === "savepoint" && !stop) return undefined;
    const done = this.acknowledgeable.filter((a) => a.id <= id);
    if (done.length === 0) return undefined;
    this.acknowledgeable = this.acknowledgeable.filter((a) => a.id > id);
    const acks: Promise<void>[] = [];
    for (const { s, position } of done[done.length - 1].positions) {
      const r = s.reader;
      if (r?.notifyCheckpointComplete) acks.push(Promise.resolve(r.notifyCheckpointComplete(position)));
    }
    return acks.length > 0 ? Promise.all(acks).then(() => {}) : undefined;
  }

  private nextSplit(): SplitState | undefined {
    const n = this.splits.length;
    for (let k = 0; k < n; k++) {
      const i = (this.rr + k) % n;
      if (!this.splits[i].done) {
        this.rr = (i + 1) % n;
        return this.splits[i];
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    for (const s of this.splits) await s.reader?.close?.();
  }
}

/** A subtask of a keyed operator, a non-keyed operator or a sink. */
export class OperatorTask extends Task {
  private gate!: InputGate;
  private aligning: Barrier | null = null;
  private processBatch!: (b: RecordBatch) => void;
  private closeFn: (() => void | Promise<void>) | undefined;
  private writer: SinkWriter<unknown, unknown> | undefined;
  private pending: OperatorListState<PendingCommit> | undefined;
  /** The newest snapshot whose completion commits the sink's transactions (a checkpoint or a stop-with-savepoint). */
  private committedThrough = 0;
  private readonly commits = new Set<unknown>();
  private commitChain: Promise<void> = Promise.resolve();
  private inputWm!: InputWatermarks;
  private timers: Timers | null = null;
  private fireTimers: ((domain: TimeDomain, upTo: number) => void) | undefined;
  private cancelWake: (() => void) | undefined;
  private wakeArmedAt = Infinity;
  /** A stop-with-savepoint barrier passed: the end that follows is not the end of the input (no timers fire). */
  private stopped = false;

  /** Connects the input channels. */
  setInputs(channels: Channel[]): void {
    this.gate = new InputGate(channels);
    this.inputWm = new InputWatermarks(channels.length);
  }

  /** The operator's watermark advanced: fire due event-time timers, then pass the watermark on. */
  private advanceWatermark(wm: number): void {
    if (this.timers) {
      this.timers.watermark = wm;
      this.fireTimers!("event", wm);
    }
    this.inputWm.idleSent = false;
    this.output.broadcast(new Watermark(wm, false));
  }

  /** A watermark arrived on input `i`. */
  private onWatermark(i: number, w: Watermark): void {
    const iw = this.inputWm;
    const adv = iw.update(i, w);
    if (adv !== undefined) this.advanceWatermark(adv);
    else if (iw.allIdle()) {
      if (!iw.idleSent) {
        iw.idleSent = true;
        this.output.broadcast(new Watermark(iw.current, true));
      }
    } else if (iw.idleSent) {
      iw.idleSent = false;
      this.output.broadcast(new Watermark(iw.current, false));
    }
  }

  /** Fires due processing-time timers; arms a wake-up for the next one. */
  private checkProcessingTimers(): void {
    const t = this.timers!;
    const clock = this.host.clock;
    let next = t.nextProcessingTime();
    if (next === Infinity) return;
    if (next <= clock.now()) {
      this.fireTimers!("processing", clock.now());
      next = t.nextProcessingTime();
    }
    if (next !== Infinity && next !== this.wakeArmedAt) {
      this.cancelWake?.();
      this.wakeArmedAt = next;
      this.cancelWake = clock.wakeAt(next, () => {
        this.wakeArmedAt = Infinity;
        this.gate.interrupt();
      });
    }
  }

  async open(): Promise<void> {
    const v = this.vertex;
    const info = { uid: this.uid, subtaskIndex: this.index, parallelism: this.parallelism, maxParallelism: this.host.maxParallelism };
    const collect = this.output.collect;
    const clock = this.host.clock;
    const now = () => clock.now();
    const watermark = () => this.inputWm.current;
    if (v.kind === "keyed") {
      const kb = this.keyed!;
      const fn = instantiate(v.keyedFn!) as KeyedProcessFunction<unknown, unknown, unknown>;
      const where = `operator ${JSON.stringify(this.uid)}`;
      const timers = (this.timers = new Timers(kb, now, where));
      const service = timers.service();
      const onTimer = fn.onTimer;
      const timerService = () => {
        if (!onTimer) throw new TypeError(`Cannot use timers in ${where} as its function has no onTimer(timestamp, ctx): add one to handle the timers it registers`);
        return service;
      };
      const ctx: KeyedProcessContext<unknown, unknown> & { currentKey: unknown; timeDomain: TimeDomain; [COUNT_LATE]: () => void } = {
        ...info,
        currentKey: undefined,
        timeDomain: "event",
        collect,
        currentProcessingTime: now,
        currentWatermark: watermark,
        timerService,
        getState: (d) => kb.getState(d),
        getListState: (d) => kb.getListState(d),
        getMapState: (d) => kb.getMapState(d),
        getReducingState: (d) => kb.getReducingState(d),
        getAggregatingState: (d) => kb.getAggregatingState(d),
        getNamespacedState: (d) => namespacedTable(kb, d as Parameters<typeof namespacedTable>[1]).handle as never,
        [COUNT_LATE]: () => this.host.countLate(1),
      };
      this.fireTimers = (domain, upTo) => {
        timers.fire(domain, upTo, (ts, key) => {
          if (!onTimer) throw new TypeError(`Cannot fire a restored timer in ${where} as its function has no onTimer(timestamp, ctx)`);
          ctx.currentKey = key;
          ctx.timeDomain = domain;
          onTimer.call(fn, ts, ctx);
        });
      };
      if (fn.open) await fn.open(ctx);
      this.snapshotHook = fn.snapshotState?.bind(fn);
      this.closeFn = fn.close?.bind(fn);
      const pe = fn.processElement;
      this.processBatch = (b) => {
        const vals = b.values;
        const keys = b.keys!;
        const kgs = b.kgs!;
        for (let i = 0; i < vals.length; i++) {
          const k = keys[i];
          kb.setCurrentKey(k, kgs[i]);
          ctx.currentKey = k;
          pe.call(fn, vals[i], ctx);
        }
        kb.clearCurrentKey();
      };
    } else if (v.kind === "operator") {
      const fn = instantiate(v.fn!) as ProcessFunction<unknown, unknown>;
      const store = this.opState;
      const ctx: ProcessContext<unknown> = { ...info, collect, currentProcessingTime: now, currentWatermark: watermark, getListState: (d) => store.getListState(d) };
      if (fn.open) await fn.open(ctx);
      this.snapshotHook = fn.snapshotState?.bind(fn);
      this.closeFn = fn.close?.bind(fn);
      const pe = fn.processElement;
      this.processBatch = (b) => {
        const vals = b.values;
        for (let i = 0; i < vals.length; i++) pe.call(fn, vals[i], ctx);
      };
    } else {
      const sink = v.sink!;
      this.pending = this.opState.getListState(PENDING_COMMITS);
      const writer = (this.writer = sink.createWriter({ job: this.host.name, uid: this.uid, subtask: this.index, parallelism: this.parallelism, attempt: this.host.attempt }));
      this.closeFn = writer.close?.bind(writer);
      this.processBatch = (b) => writer.write(b.values);
      // Restored transactions belong to a completed snapshot: commit them (idempotently) before anything else.
      const restored = this.pending.get().slice();
      if (restored.length > 0) {
        await recommitRestored(sink, this.uid, restored);
        this.pending.update(this.pending.get().filter((p) => !restored.includes(p)));
      }
    }
  }

  wake(): void {
    this.gate.interrupt();
  }

  async run(): Promise<void> {
    try {
      await this.loop();
    } finally {
      this.cancelWake?.();
    }
  }

  private async loop(): Promise<void> {
    const host = this.host;
    const gate = this.gate;
    const out = this.output;
    const timers = this.timers;
    for (;;) {
      if (host.aborted) return;
      if (timers !== null && !this.stopped && timers.nextProcessingTime() !== Infinity) {
        this.checkProcessingTimers();
        if (out.anyFull()) await out.waitSpace();
      }
      const i = gate.poll();
      if (i < 0) {
        out.flushAll();
        if (out.anyFull()) await out.waitSpace();
        else await gate.waitData();
        continue;
      }
      const el = gate.element!;
      if (el.tag === BATCH) {
        this.processBatch(el);
        if (out.anyFull()) await out.waitSpace();
      } else if (el.tag === WATERMARK) {
        this.onWatermark(i, el);
        if (out.anyFull()) await out.waitSpace();
      } else if (el.tag === BARRIER) {
        if (this.aligning !== null && this.aligning.id !== el.id) {
          throw new Error(`barrier ${el.id} arrived while aligning barrier ${this.aligning.id}`);
        }
        this.aligning = el;
        gate.blocked[i] = 1;
        if (this.aligned()) await this.onAligned();
      } else {
        gate.ended[i] = 1;
        const adv = this.inputWm.end(i);
        if (adv !== undefined && !this.stopped) this.advanceWatermark(adv);
        if (this.aligning !== null && this.aligned()) await this.onAligned();
        if (gate.allEnded()) {
          await this.endInput();
          return;
        }
      }
    }
  }

  private aligned(): boolean {
    const g = this.gate;
    for (let i = 0; i < g.channels.length; i++) if (g.blocked[i] === 0 && g.ended[i] === 0) return false;
    return true;
  }

  private async onAligned(): Promise<void> {
    // At most one asynchronous snapshot part per subtask: a barrier that finds the previous one still
    // running (its checkpoint failed elsewhere and the next one was triggered) waits for it with its inputs
    // blocked, as Flink's coordinator holds the next checkpoint back (maxConcurrentCheckpoints 1).
    const busy = this.snapshotInFlight();
    if (busy !== undefined) {
      await busy;
      if (this.host.aborted) return;
    }
    const b = this.aligning!;
    this.aligning = null;
    this.stopped = b.stop;
    this.output.flushAll();
    if (this.writer) {
      const c = await this.writer.prepareCommit(b.id);
      if (this.host.aborted) return;
      if (c !== undefined) this.pending!.add({ id: b.id, committable: c });
      // The snapshot records which transactions its completion (or an earlier one) commits, so a restore
      // can tell output committed elsewhere from output never committed; the live entries stay as they are.
      const live = this.pending!.get();
      const committing = b.kind === "checkpoint" || b.stop;
      this.pending!.update(live.map((p) => ({ id: p.id, committable: p.committable, due: committing || p.id <= this.committedThrough })));
      this.snapshot(b);
      this.pending!.update(live);
    } else this.snapshot(b);
    this.output.broadcast(b);
    this.gate.unblockAll();
    if (this.output.anyFull()) await this.output.waitSpace();
  }

  private async endInput(): Promise<void> {
    const host = this.host;
    if (this.writer) {
      const c = await this.writer.prepareCommit(host.finalId());
      await this.commitChain;
      const all = this.pending!.get().map((p) => p.committable);
      if (c !== undefined) all.push(c);
      if (all.length > 0 && !host.aborted) await this.vertex.sink!.commit(all);
      this.pending!.clear();
    }
    this.output.flushAll();
    this.output.broadcast(END_OF_INPUT);
    host.taskFinished(this);
  }

  override notifyComplete(id: number, kind: "checkpoint" | "savepoint", stop: boolean): Promise<void> | undefined {
    if (!this.writer || (kind === "savepoint" && !stop)) return undefined;
    this.committedThrough = Math.max(this.committedThrough, id);
    const ready = this.pending!.get().filter((p) => p.id <= id && !this.commits.has(p));
    if (ready.length === 0) return undefined;
    for (const p of ready) this.commits.add(p);
    const run = this.commitChain.then(() => this.vertex.sink!.commit(ready.map((p) => p.committable))).then(() => {
      const done = new Set(ready);
      this.pending!.update(this.pending!.get().filter((p) => !done.has(p)));
      for (const p of ready) this.commits.delete(p);
    });
    this.commitChain = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    await this.closeFn?.();
  }
}
