/**
 * Offline tools over snapshots: each reads a snapshot and writes a new one (never in place, the manifest
 * last), streaming key-group range by range in bounded memory, on any storage URI.
 *
 * - {@link compact}: checkpoint chain → self-contained, canonical savepoint
 * - {@link rekey}: new parallelism, new maxParallelism (re-hash), new key function (with merge)
 * - {@link migrate} with {@link defineMigrations}: versioned schema migrations, dry-run plans
 * - {@link inspect}, {@link validate}, {@link diff}, {@link exportState}, {@link ls}
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, compact, rekey, validate } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:tools-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * await job.stopWithSavepoint();
 * await compact("memory:tools-example", "memory:tools-example/savepoints/compacted");
 * await rekey("memory:tools-example/savepoints/compacted", "memory:tools-example/savepoints/p8", { parallelism: 8 });
 * assert.deepEqual(await validate("memory:tools-example/savepoints/p8"), []);
 * ```
 *
 * @module
 */
export { compact, type CompactOptions } from "./compact.ts";
export { type KeyFunction, type MergeFunction, parallelismFor, rekey, type RekeyOptions, type WriteReport } from "./rekey.ts";
export type { WriteOptions } from "./_sink.ts";
export type { ShardRun } from "./_rewrite.ts";
export {
  addField,
  custom,
  defineMigrations,
  describeStep,
  dropField,
  dropOperator,
  dropState,
  type FieldDefault,
  isMigrations,
  type Migrations,
  type OperatorStep,
  renameField,
  renameOperator,
  renameState,
  type RowContext,
  type StateStep,
  typeName,
  widenType,
} from "./migrations.ts";
export { migrate, type MigrateOptions, type MigrateReport, type MigrationPlan, type PlannedState } from "./migrate.ts";
export { inspect, type InspectOptions, type OperatorInfo, type Skew, type SnapshotInfo, type StateInfo, type TimerCounts, type TimerSummary } from "./inspect.ts";
export { type Finding, type FindingCode, validate, type ValidateOptions } from "./validate.ts";
export { type ChangedSample, diff, type DiffOptions, type SnapshotDiff, type StateDiff } from "./diff.ts";
export { type ExportOptions, exportState, toJson } from "./export.ts";
export { type Listing, ls, type SnapshotEntry } from "./ls.ts";
export type { Progress } from "./progress.ts";
export { type PlannedShard, type PlanShardsOptions, planShards, type ShardOperatorPlan, type ShardPlan } from "./plan_shards.ts";
