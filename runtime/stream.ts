/**
 * The typed builder API of a job's DAG: `DataStream` (map, filter, flatMap, process, keyBy, union, sinkTo)
 * and `KeyedStream` (process, reduce), and the functions user code implements.
 *
 * @module
 */
import type { Key } from "../format/key_group.ts";
import type { KeyType } from "../format/state_layout.ts";
import type { Sink } from "./sinks.ts";
import type { Source } from "./sources.ts";
import type {
  AggregatingState,
  AggregatingStateDescriptor,
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  OperatorListState,
  OperatorListStateDescriptor,
  ReducingState,
  ReducingStateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from "./state.ts";
import { valueState } from "./state.ts";
import type { NamespacedValueState } from "./namespaced_state.ts";
import type { TimeDomain, TimerService } from "./timers.ts";
import { WindowedStream, type WindowAssigner, type WindowOptions, type LateRecord } from "./windows.ts";
import type { FunctionOrFactory, Graph, InputEdge, Vertex } from "./_graph.ts";

/**
 * Where a function runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RuntimeInfo } from "./stream.ts";
 * const where = (info: RuntimeInfo) => `${info.uid}[${info.subtaskIndex}/${info.parallelism}]`;
 * assert.equal(where({ uid: "count", subtaskIndex: 1, parallelism: 4, maxParallelism: 128 }), "count[1/4]");
 * ```
 */
export interface RuntimeInfo {
  /** The operator uid. */
  readonly uid: string;
  /** This subtask's index, 0-based. */
  readonly subtaskIndex: number;
  /** The operator's parallelism. */
  readonly parallelism: number;
  /** The job's maxParallelism (number of key groups). */
  readonly maxParallelism: number;
}

/**
 * Access to keyed state (registered on first use; register in `open` so restore can match it).
 *
 * @example
 * ```ts
 * import type { KeyedStateAccess } from "./stream.ts";
 * import { valueState } from "./state.ts";
 * const COUNT = valueState<number>("count");
 * const register = (ctx: KeyedStateAccess) => ctx.getState(COUNT);
 * ```
 */
export interface KeyedStateAccess {
  /** A value state. */
  getState<T>(desc: ValueStateDescriptor<T>): ValueState<T>;
  /** A list state. */
  getListState<T>(desc: ListStateDescriptor<T>): ListState<T>;
  /** A map state. */
  getMapState<UK, V>(desc: MapStateDescriptor<UK, V>): MapState<UK, V>;
  /** A reducing state. */
  getReducingState<T>(desc: ReducingStateDescriptor<T>): ReducingState<T>;
  /** An aggregating state. */
  getAggregatingState<IN, ACC, OUT>(desc: AggregatingStateDescriptor<IN, ACC, OUT>): AggregatingState<IN, OUT>;
  /** A value state with one value per (key, namespace), e.g. per window; stored with the chunk's `ns` column. */
  getNamespacedState<T>(desc: ValueStateDescriptor<T>): NamespacedValueState<T>;
}

/**
 * The context of a keyed function's `open`.
 *
 * @example
 * ```ts
 * import type { KeyedOpenContext } from "./stream.ts";
 * import { mapState } from "./state.ts";
 * const PAGES = mapState<string, number>("pages");
 * const open = (ctx: KeyedOpenContext) => console.log(`subtask ${ctx.subtaskIndex}`, ctx.getMapState(PAGES));
 * ```
 */
export interface KeyedOpenContext extends RuntimeInfo, KeyedStateAccess {}

/**
 * The context of one record in a keyed function.
 *
 * @example
 * ```ts
 * import type { KeyedProcessContext } from "./stream.ts";
 * import { valueState } from "./state.ts";
 * const LAST = valueState<number>("last");
 * function onEvent(ts: number, ctx: KeyedProcessContext<string, string>): void {
 *   const last = ctx.getState(LAST);
 *   if ((last.value() ?? 0) < ts) ctx.collect(`${ctx.currentKey} advanced to ${ts}`);
 *   last.update(ts);
 * }
 * ```
 */
export interface KeyedProcessContext<K, OUT> extends KeyedOpenContext {
  /** The key of the record being processed. */
  readonly currentKey: K;
  /** Emits a record downstream. */
  collect(value: OUT): void;
  /** Processing-time milliseconds (the job's clock). */
  currentProcessingTime(): number;
  /** The operator's current watermark (`-Infinity` before the first one). */
  currentWatermark(): number;
  /** Timers of the current key (`onTimer` is called when one fires). */
  timerService(): TimerService;
}

/**
 * The context of a firing timer: the key is the timer's, keyed state is that key's.
 *
 * @example
 * ```ts
 * import type { OnTimerContext } from "./stream.ts";
 * const describe = (ts: number, ctx: OnTimerContext<string, string>) => ctx.collect(`${ctx.currentKey} ${ctx.timeDomain} timer at ${ts}`);
 * ```
 */
export interface OnTimerContext<K, OUT> extends KeyedProcessContext<K, OUT> {
  /** The clock the timer followed. */
  readonly timeDomain: TimeDomain;
}

/**
 * A function over a keyed stream, with keyed state scoped to each record's key.
 *
 * The object is instantiated once per subtask (`Object.create(fn)`), so `open` may keep state handles on
 * `this`; or pass a factory `() => fn`.
 *
 * @example
 * ```ts
 * import type { KeyedProcessFunction } from "./stream.ts";
 * import { valueState, type ValueState } from "./state.ts";
 * const COUNT = valueState<number>("count");
 * const counter: KeyedProcessFunction<string, { user: string }, [string, number]> & { count?: ValueState<number> } = {
 *   open(ctx) { this.count = ctx.getState(COUNT); },
 *   processElement(_e, ctx) {
 *     const n = (this.count!.value() ?? 0) + 1;
 *     this.count!.update(n);
 *     ctx.collect([ctx.currentKey, n]);
 *   },
 * };
 * ```
 */
export interface KeyedProcessFunction<K, IN, OUT> {
  /** Called once per subtask before any record: register state here. */
  open?(ctx: KeyedOpenContext): void | Promise<void>;
  /** Called per record. */
  processElement(value: IN, ctx: KeyedProcessContext<K, OUT>): void;
  /** Called when a timer of a key fires (once per registered timer, also across crashes and restores). */
  onTimer?(timestamp: number, ctx: OnTimerContext<K, OUT>): void;
  /** Called before each snapshot (e.g. to move buffered data into state). */
  snapshotState?(info: { checkpointId: number }): void;
  /** Called at the end. */
  close?(): void | Promise<void>;
}

/**
 * The context of a non-keyed function's `open`.
 *
 * @example
 * ```ts
 * import type { OperatorOpenContext } from "./stream.ts";
 * import { operatorListState } from "./state.ts";
 * const OFFSETS = operatorListState<number>("offsets");
 * const open = (ctx: OperatorOpenContext) => ctx.getListState(OFFSETS).get().length;
 * ```
 */
export interface OperatorOpenContext extends RuntimeInfo {
  /** An operator list state (register in `open`). */
  getListState<T>(desc: OperatorListStateDescriptor<T>): OperatorListState<T>;
}

/**
 * The context of one record in a non-keyed function.
 *
 * @example
 * ```ts
 * import type { ProcessContext } from "./stream.ts";
 * const upper = (s: string, ctx: ProcessContext<string>) => ctx.collect(s.toUpperCase());
 * ```
 */
export interface ProcessContext<OUT> extends OperatorOpenContext {
  /** Emits a record downstream. */
  collect(value: OUT): void;
  /** Processing-time milliseconds (the job's clock). */
  currentProcessingTime(): number;
  /** The operator's current watermark (`-Infinity` before the first one). */
  currentWatermark(): number;
}

/**
 * A function over a non-keyed stream, with operator list state. Instantiated per subtask like
 * {@link KeyedProcessFunction}.
 *
 * @example
 * ```ts
 * import type { ProcessFunction } from "./stream.ts";
 * import { operatorListState, type OperatorListState } from "./state.ts";
 * const SEEN = operatorListState<number>("seen-count", { redistribution: "union" });
 * const tagger: ProcessFunction<string, string> & { seen?: OperatorListState<number>; n?: number } = {
 *   open(ctx) { this.seen = ctx.getListState(SEEN); this.n = 0; },
 *   processElement(v, ctx) { this.n!++; ctx.collect(`${ctx.subtaskIndex}:${v}`); },
 *   snapshotState() { this.seen!.update([this.n!]); },
 * };
 * ```
 */
export interface ProcessFunction<IN, OUT> {
  /** Called once per subtask before any record. */
  open?(ctx: OperatorOpenContext): void | Promise<void>;
  /** Called per record. */
  processElement(value: IN, ctx: ProcessContext<OUT>): void;
  /** Called before each snapshot. */
  snapshotState?(info: { checkpointId: number }): void;
  /** Called at the end. */
  close?(): void | Promise<void>;
}

/**
 * Options of an operator.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OperatorOptions } from "./stream.ts";
 * const options: OperatorOptions = { uid: "sessions", name: "per-user sessions", parallelism: 4 };
 * assert.equal(options.uid, "sessions");
 * ```
 */
export interface OperatorOptions {
  /** Stable id: the operator's name in snapshots. Required for stateful operators. */
  uid?: string;
  /** Human-readable name. */
  name?: string;
  /** Number of subtasks (default: the job's parallelism). */
  parallelism?: number;
}

function applyOptions(v: Vertex, options: OperatorOptions | undefined): void {
  if (!options) return;
  if (options.uid !== undefined) v.uid = options.uid;
  if (options.name !== undefined) v.name = options.name;
  if (options.parallelism !== undefined) v.parallelism = options.parallelism;
}

/**
 * A stream of records of type T.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Job, arraySource, CollectingSink } from "./mod.ts";
 * const job = new Job("words");
 * const sink = new CollectingSink<string>();
 * job.fromSource(arraySource(["a", "bb", "ccc"]), { uid: "words" })
 *   .filter((w) => w.length > 1)
 *   .map((w) => w.toUpperCase())
 *   .sinkTo(sink, { uid: "out" });
 * await job.run();
 * assert.deepEqual(sink.committed, ["BB", "CCC"]);
 * ```
 */
export class DataStream<T> {
  /** @internal */
  readonly graph: Graph;
  /** @internal The vertices whose output this stream is (several after `union`). */
  readonly heads: readonly Vertex[];

  /** @internal */
  constructor(graph: Graph, heads: readonly Vertex[]) {
    this.graph = graph;
    this.heads = heads;
  }

  /** The input edges a downstream operator of this stream gets. */
  private edges(): InputEdge[] {
    return this.heads.map((from) => ({ from }));
  }

  /** The single operator behind this stream (not a union). */
  private last(): Vertex {
    if (this.heads.length !== 1) throw new TypeError("Cannot set uid, name or parallelism on a union of streams; set them on each input");
    return this.heads[0];
  }

  /** Sets the uid of the operator producing this stream (Flink's `.uid()`). */
  uid(uid: string): this {
    this.last().uid = uid;
    return this;
  }

  /** Sets the name of the operator producing this stream. */
  name(name: string): this {
    this.last().name = name;
    return this;
  }

  /** Sets the parallelism of the operator producing this stream (Flink's `.setParallelism()`). */
  setParallelism(parallelism: number): this {
    this.last().parallelism = parallelism;
    return this;
  }

  /** One output per input. */
  map<R>(fn: (value: T) => R, options?: OperatorOptions): DataStream<R> {
    return this.process<R>({ processElement: (v, ctx) => ctx.collect(fn(v)) }, { name: "map", ...options }, false);
  }

  /** Keeps the records for which `fn` is true. */
  filter(fn: (value: T) => boolean, options?: OperatorOptions): DataStream<T> {
    return this.process<T>({ processElement: (v, ctx) => { if (fn(v)) ctx.collect(v); } }, { name: "filter", ...options }, false);
  }

  /** Zero or more outputs per input. */
  flatMap<R>(fn: (value: T, out: { collect(value: R): void }) => void, options?: OperatorOptions): DataStream<R> {
    return this.process<R>({ processElement: (v, ctx) => fn(v, ctx) }, { name: "flatMap", ...options }, false);
  }

  /** A non-keyed operator with operator list state. */
  process<R>(fn: FunctionOrFactory<ProcessFunction<T, R>>, options?: OperatorOptions, stateful = true): DataStream<R> {
    const v = this.graph.add({
      kind: "operator",
      name: "process",
      stateful,
      inputs: this.edges(),
      fn: fn as FunctionOrFactory<ProcessFunction<unknown, unknown>>,
    });
    applyOptions(v, options);
    return new DataStream<R>(this.graph, [v]);
  }

  /**
   * Partitions the stream by key: records with the same key go to the same subtask (by key group) and
   * share keyed state. `keyType` says how keys are stored in snapshots (default `string`; use `int32`,
   * `int64` (bigint), `float64`, `bytes` or `msgpack` (tuples) for other keys).
   */
  keyBy<K extends Key>(selector: (value: T) => K, options: { keyType?: KeyType } = {}): KeyedStream<K, T> {
    return new KeyedStream<K, T>(this.graph, this.heads, selector, options.keyType ?? "string");
  }

  /** Merges streams of the same type; the next operator reads all of them (barriers are aligned across them). */
  union(...others: DataStream<T>[]): DataStream<T> {
    for (const o of others) if (o.graph !== this.graph) throw new TypeError("Cannot union streams of different jobs");
    return new DataStream<T>(this.graph, [...this.heads, ...others.flatMap((o) => o.heads)]);
  }

  /** Writes the stream to a sink (exactly-once when the sink stages and commits by checkpoint). */
  sinkTo<C>(sink: Sink<T, C>, options?: OperatorOptions): void {
    const v = this.graph.add({
      kind: "sink",
      name: sink.name,
      uid: sink.name,
      stateful: true,
      inputs: this.edges(),
      sink: sink as Sink<unknown, unknown>,
    });
    applyOptions(v, options);
  }
}

/**
 * A stream partitioned by key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Job, arraySource, CollectingSink, valueState } from "./mod.ts";
 * const COUNT = valueState<number>("count");
 * const job = new Job("counts");
 * const sink = new CollectingSink<string>();
 * job.fromSource(arraySource(["a", "b", "a"]), { uid: "in" })
 *   .keyBy((w) => w)
 *   .process<string>({
 *     processElement(w, ctx) {
 *       const s = ctx.getState(COUNT);
 *       const n = (s.value() ?? 0) + 1;
 *       s.update(n);
 *       ctx.collect(`${w}=${n}`);
 *     },
 *   }, { uid: "count", parallelism: 2 })
 *   .sinkTo(sink, { uid: "out" });
 * await job.run();
 * assert.deepEqual(sink.committed.sort(), ["a=1", "a=2", "b=1"]);
 * ```
 */
export class KeyedStream<K extends Key, T> {
  /** @internal */
  readonly graph: Graph;
  /** @internal */
  readonly heads: readonly Vertex[];
  /** @internal */
  readonly selector: (value: T) => K;
  /** How keys are stored in snapshots. */
  readonly keyType: KeyType;

  /** @internal */
  constructor(graph: Graph, heads: readonly Vertex[], selector: (value: T) => K, keyType: KeyType) {
    this.graph = graph;
    this.heads = heads;
    this.selector = selector;
    this.keyType = keyType;
  }

  /** A keyed operator: `fn` runs per record with keyed state scoped to the record's key. Needs a uid. */
  process<R>(fn: FunctionOrFactory<KeyedProcessFunction<K, T, R>>, options?: OperatorOptions): DataStream<R> {
    const v = this.graph.add({
      kind: "keyed",
      name: "keyed-process",
      stateful: true,
      inputs: this.heads.map((from) => ({ from, keySelector: this.selector as (v: unknown) => Key, keyType: this.keyType })),
      keyedFn: fn as FunctionOrFactory<KeyedProcessFunction<unknown, unknown, unknown>>,
    });
    applyOptions(v, options);
    return new DataStream<R>(this.graph, [v]);
  }

  /**
   * Event-time windows per key: `assigner` (tumbling, sliding, session) puts each record (event time from
   * `options.timestampOf`) in windows; `.reduce` / `.aggregate` on the result emit one
   * {@link WindowResult} per window when the watermark passes its end.
   */
  window<L extends "drop" | "emit" = "drop">(assigner: WindowAssigner, options: WindowOptions<T> & { lateRecords?: L }): WindowedStream<K, T, L extends "emit" ? LateRecord<T> : never> {
    return new WindowedStream(this, assigner, options);
  }

  /** A running reduce per key: emits the reduced value after each record. The value state is named `reduce`. */
  reduce(fn: (acc: T, value: T) => T, options?: OperatorOptions): DataStream<T> {
    const desc = valueState<T>("reduce");
    return this.process<T>({
      open(ctx) {
        ctx.getState(desc);
      },
      processElement(value, ctx) {
        const s = ctx.getState(desc);
        const cur = s.value();
        const next = cur === undefined ? value : fn(cur, value);
        s.update(next);
        ctx.collect(next);
      },
    }, { name: "reduce", ...options });
  }
}
