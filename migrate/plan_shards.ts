/**
 * `planShards`: how a sharded run of compact, rekey or migrate splits, with the rows and bytes each shard
 * is expected to write, from the source manifest alone (nothing is read but the manifest), so a batch
 * runner can size its jobs.
 *
 * @module
 */
import { KeyGroupError } from "../format/errors.ts";
import { type KeyGroupRange, UPPER_BOUND_MAX_PARALLELISM } from "../format/key_group.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { carriesOperatorState, checkShard, shardKeyGroups, shardWindows } from "../snapshot/shards.ts";
import { withSnapshot } from "./_open.ts";
import { parallelismFor } from "./rekey.ts";

/** The destination shape a plan splits: the options of the tool that change it. */
export interface PlanShardsOptions {
  /** Target parallelism (as `compact` and `rekey` take it; default: each operator's own). */
  parallelism?: number | Record<string, number>;
  /** Target maxParallelism (as `rekey` takes it; default: the source's). */
  maxParallelism?: number;
  /** Limit a single-number `parallelism` to these operator uids (as `rekey` takes it). */
  operators?: readonly string[];
}

/** One operator's part of a shard. */
export interface ShardOperatorPlan {
  /** Operator uid (in the source). */
  uid: string;
  /** Destination subtasks the shard writes, `[first, end)`. */
  subtasks: { first: number; end: number };
  /** Their key groups (absent when none). */
  keyGroupRange?: KeyGroupRange;
  /** Estimated rows. */
  rows: number;
  /** Estimated stored bytes. */
  bytes: number;
}

/** One shard of a plan. */
export interface PlannedShard {
  /** Shard index. */
  index: number;
  /** Shard count. */
  count: number;
  /** What to pass as `--shard`: `index/count`. */
  shard: string;
  /** The destination key groups the shard owns. */
  keyGroups: KeyGroupRange;
  /** Estimated rows it writes (operator state included, all on shard 0). */
  rows: number;
  /** Estimated stored bytes it writes. */
  bytes: number;
  /** Per operator. */
  operators: ShardOperatorPlan[];
}

/** What {@link planShards} returns. */
export interface ShardPlan {
  /** The source snapshot. */
  source: string;
  /** The destination's maxParallelism. */
  maxParallelism: number;
  /** Shard count. */
  count: number;
  /** Rows in the source (manifest counts; chains count their deltas too). */
  rows: number;
  /** Stored bytes in the source. */
  bytes: number;
  /** The shards, by index. */
  shards: PlannedShard[];
}

/**
 * Plans a sharded run: for each of `count` shards, the destination key groups and subtasks it writes and
 * its estimated rows and bytes. Estimates spread each source chunk's rows evenly over its key groups (a
 * re-hash to a new maxParallelism spreads all rows evenly); skewed keys make real shards uneven.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, planShards, valueState } from "../mod.ts";
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:plan-shards-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:plan-shards-example/savepoints/sp-1");
 * const plan = await planShards(sp.location, 4, { parallelism: 8 });
 * assert.deepEqual(plan.shards.map((s) => s.shard), ["0/4", "1/4", "2/4", "3/4"]);
 * assert.deepEqual(plan.shards[1].keyGroups, { start: 32, end: 63 });
 * ```
 */
export async function planShards(src: string | Snapshot, count: number, options: PlanShardsOptions = {}): Promise<ShardPlan> {
  return await withSnapshot(src, async (snap) => {
    const srcMaxP = snap.manifest.maxParallelism;
    const maxP = options.maxParallelism ?? srcMaxP;
    if (!Number.isInteger(maxP) || maxP < 1 || maxP > UPPER_BOUND_MAX_PARALLELISM) {
      throw new KeyGroupError(`Cannot use maxParallelism as it must be an integer in 1..${UPPER_BOUND_MAX_PARALLELISM}: current value is ${maxP}`);
    }
    checkShard({ index: 0, count }, maxP);
    const rehash = maxP !== srcMaxP;
    let rows = 0;
    let bytes = 0;
    const shards: PlannedShard[] = Array.from({ length: count }, (_, index) => {
      const shard = { index, count };
      return { index, count, shard: `${index}/${count}`, keyGroups: shardKeyGroups(shard, maxP), rows: 0, bytes: 0, operators: [] };
    });
    for (const op of snap.manifest.operators) {
      const p = parallelismFor(op, options.parallelism, maxP, options.operators);
      for (const s of shards) {
        const { first, windows } = shardWindows(p, maxP, s);
        const range = windows.length ? { start: windows[0].start, end: windows[windows.length - 1].end } : undefined;
        let r = 0;
        let b = 0;
        for (const st of op.states) {
          for (const c of st.chunks) {
            if (s.index === 0) {
              rows += c.rows;
              bytes += c.bytes;
            }
            if (!st.keyed || !c.keyGroupRange) {
              if (carriesOperatorState(s)) {
                r += c.rows;
                b += c.bytes;
              }
              continue;
            }
            if (!range) continue;
            // The share of the chunk's rows that lands in this shard's key groups.
            let share: number;
            if (rehash) share = (range.end - range.start + 1) / maxP;
            else {
              const lo = Math.max(range.start, c.keyGroupRange.start);
              const hi = Math.min(range.end, c.keyGroupRange.end);
              share = hi < lo ? 0 : (hi - lo + 1) / (c.keyGroupRange.end - c.keyGroupRange.start + 1);
            }
            r += c.rows * share;
            b += c.bytes * share;
          }
        }
        s.operators.push({ uid: op.uid, subtasks: { first, end: first + windows.length }, ...(range ? { keyGroupRange: range } : {}), rows: Math.round(r), bytes: Math.round(b) });
        s.rows += Math.round(r);
        s.bytes += Math.round(b);
      }
    }
    return { source: snap.location, maxParallelism: maxP, count, rows, bytes, shards };
  });
}
