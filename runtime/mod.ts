/**
 * The arrowpoint streaming runtime: jobs over sources, keyed and non-keyed operators and exactly-once
 * sinks, with keyed and operator state, aligned barriers, incremental Arrow checkpoints, savepoints,
 * stop-with-savepoint and restore at any parallelism.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Job, generatorSource, CollectingSink, valueState } from "./mod.ts";
 * const COUNT = valueState<number>("count");
 * const sink = new CollectingSink<string>();
 * const job = new Job("quick", { checkpoints: { storage: "memory:quick", intervalMs: 50 } });
 * job.fromSource(generatorSource({ count: 1000, make: (i) => ({ user: `u${i % 10}` }) }), { uid: "events" })
 *   .keyBy((e) => e.user)
 *   .process<string>({
 *     processElement(e, ctx) { const s = ctx.getState(COUNT); s.update((s.value() ?? 0) + 1); ctx.collect(e.user); },
 *   }, { uid: "count", parallelism: 2 })
 *   .sinkTo(sink, { uid: "out" });
 * const result = await job.run();
 * assert.equal(result.status, "finished");
 * assert.equal(sink.committed.length, 1000);
 * ```
 *
 * @module
 */
export {
  type CheckpointOptions,
  type FaultPlan,
  type FaultPoint,
  Job,
  type JobDefinition,
  type JobEvent,
  type JobOptions,
  type JobResult,
  type JobStatus,
  type RestoreOptions,
  type RestoreReport,
  type SnapshotInfo,
  type SourceOptions,
} from "./job.ts";
export {
  DataStream,
  type KeyedOpenContext,
  type KeyedProcessContext,
  type KeyedProcessFunction,
  type KeyedStateAccess,
  KeyedStream,
  type OnTimerContext,
  type OperatorOpenContext,
  type OperatorOptions,
  type ProcessContext,
  type ProcessFunction,
  type RuntimeInfo,
} from "./stream.ts";
export {
  type AggregateFunction,
  type AggregatingState,
  type AggregatingStateDescriptor,
  aggregatingState,
  type KeyedStateDescriptor,
  type ListState,
  type ListStateDescriptor,
  listState,
  type MapState,
  type MapStateDescriptor,
  mapState,
  type OperatorListState,
  type OperatorListStateDescriptor,
  operatorListState,
  type ReducingState,
  type ReducingStateDescriptor,
  reducingState,
  type StateDescriptorBase,
  type StateOptions,
  type ValueState,
  type ValueStateDescriptor,
  valueState,
} from "./state.ts";
export { type SourceTap, tapSource } from "./tap_source.ts";
export { arraySource, generatorSource, type GeneratorOptions, ndjsonSource, type NdjsonSourceOptions, Rng, type Source, type SourceSplit, type SplitReader } from "./sources.ts";
export {
  CollectingSink,
  type NdjsonCommittable,
  ndjsonFileSink,
  type NdjsonSinkOptions,
  type PendingCommit,
  readNdjsonParts,
  type Sink,
  type SinkContext,
  type SinkWriter,
  UncommittedOutputError,
  UnknownTransactionError,
} from "./sinks.ts";
export { type CdcRecord, postgresCdcSource, type PostgresCdcOptions, type PostgresRow } from "./connectors/postgres_cdc.ts";
export { type PostgresCommittable, postgresSink, type PostgresSinkOptions } from "./connectors/postgres_sink.ts";
export type { PostgresConnection } from "./connectors/postgres_connection.ts";
export { PostgresConfigError, PostgresConnectionLostError, PostgresPublicationError, PostgresRestoreError, PostgresSlotInUseError } from "./connectors/postgres_errors.ts";
export { JobFailedError, JobKilledError, type NonRestoredState, NonRestoredStateError } from "./errors.ts";
export type { FunctionOrFactory } from "./_graph.ts";
export { boundedOutOfOrderness, type Clock, ManualClock, systemClock, type WatermarkGenerator, type WatermarkStrategy } from "./watermark.ts";
export { TimeDomain, type TimerService, TIMERS_STATE } from "./timers.ts";
export { type NamespacedValueState, namespacedValueState } from "./namespaced_state.ts";
export {
  eventTimeSessionWindows,
  type LateRecord,
  slidingEventTimeWindows,
  type TimeWindow,
  tumblingEventTimeWindows,
  type WindowAggregate,
  WindowedStream,
  type WindowAssigner,
  type WindowOptions,
  type WindowResult,
} from "./windows.ts";
export { type ChainLink, pruneChain } from "../snapshot/chain.ts";
