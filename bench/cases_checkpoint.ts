/**
 * arrowpoint's own cases on the filesystem, all through the public API: a running job's keyed state
 * checkpointed in full and incrementally, restored, then the offline tools (compact, rekey, migrate) on the
 * snapshots it wrote.
 *
 * @module
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Job, type SnapshotInfo } from "../runtime/mod.ts";
import { valueState } from "../runtime/state.ts";
import type { Sink, Source } from "../runtime/mod.ts";
import { addField, compact, defineMigrations, dropField, migrate, rekey, renameField } from "../migrate/mod.ts";
import { commitShards } from "../snapshot/shards.ts";
import type { BenchCase } from "./harness.ts";
import type { BenchContext } from "./cases_baseline.ts";
import { type BenchValue, touch } from "./data.ts";
import { VALUE_LAYOUT } from "./cases_format.ts";

/** A record that sets one key's value. */
interface Put {
  key: string;
  value: BenchValue;
}

/** A source fed from the benchmark: records are released with `feed` and never end until `end`. */
export function feedSource(): { source: Source<Put>; feed(items: Put[]): void; end(): void } {
  const queue: Put[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    feed(items) {
      for (const x of items) queue.push(x);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    source: {
      name: "feed",
      splits: () => [{ id: "0" }],
      reader() {
        let at = 0;
        return {
          read(out, max) {
            if (queue.length === 0) {
              if (ended) return -1;
              return new Promise<number>((resolve) => (wake = () => resolve(0)));
            }
            const batch = queue.splice(0, max);
            for (const x of batch) out.push(x);
            at += batch.length;
            return batch.length;
          },
          position: () => at,
        };
      },
    },
  };
}

/** A sink that only counts (checkpoint cases measure state, not output). */
function discardSink(): Sink<number, number> {
  return { name: "discard", createWriter: () => ({ write() {}, prepareCommit: () => undefined }), commit: async () => {} };
}

const VALUE = valueState<BenchValue>("value", { value: VALUE_LAYOUT.value });

/** A job holding the benchmark's state: keyBy(key) → value state. `processed` counts records applied. */
function stateJob(root: string, options: { incremental: boolean; parallelism: number; restore?: string; fullEvery?: number }) {
  const feed = feedSource();
  const progress = { processed: 0 };
  const job = new Job("bench", {
    maxParallelism: 128,
    checkpoints: { storage: root, incremental: options.incremental, fullEvery: options.fullEvery ?? 1000, maxChainLength: 1000, retain: 2 },
    restore: options.restore ? { from: options.restore } : undefined,
    batchSize: 4096,
  });
  job.fromSource(feed.source, { uid: "feed" })
    .keyBy((p) => p.key)
    .process<number>({
      open(ctx) {
        ctx.getState(VALUE);
      },
      processElement(p, ctx) {
        ctx.getState(VALUE).update(p.value);
        progress.processed++;
      },
    }, { uid: "state", parallelism: options.parallelism })
    .sinkTo(discardSink(), { uid: "out" });
  return { job, feed, progress };
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

/**
 * checkpoint.full.write, checkpoint.incremental.write (1%, and 0.1% / 10%), restore.full,
 * savepoint.compact, rekey.parallelism, rekey.maxParallelism, migrate.addField, migrate.renameField,
 * migrate.dropField.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cases } from "./cases_checkpoint.ts";
 * import type { BenchContext } from "./cases_baseline.ts";
 * import { generateData } from "./data.ts";
 * const ctx: BenchContext = { data: generateData(100), dir: ".", snapshotBytes: () => new Uint8Array(0) };
 * const list = await cases(ctx);
 * assert.equal(list[0].name, "checkpoint.full.write");
 * assert.ok(list.every((c) => c.group === "arrowpoint"));
 * ```
 */
export async function cases(ctx: BenchContext): Promise<BenchCase[]> {
  const { data, dir } = ctx;
  const all: Put[] = [...data.state].map(([key, value]) => ({ key, value }));
  let full: ReturnType<typeof stateJob> | undefined;
  let incr: ReturnType<typeof stateJob> | undefined;
  let last: SnapshotInfo | undefined;
  let bytes = 0;
  let restored: Job | undefined;
  let step = 0;
  let spBytes = 0;
  let chainTip = "";
  const fullRoot = join(dir, "ckpt-full");
  const incrRoot = join(dir, "ckpt-incr");
  const sp4 = join(dir, "sp-p4");
  const out = join(dir, "tool-out");

  let incrReady: Promise<void> | undefined;
  const startIncremental = () =>
    (incrReady ??= (async () => {
      incr = stateJob(incrRoot, { incremental: true, parallelism: 4 });
      await incr.job.start();
      incr.feed.feed(all);
      await until(() => incr!.progress.processed >= data.rows);
      await incr.job.triggerCheckpoint(); // the base
    })());
  // A fresh base plus ten 1% deltas, and the savepoint of the parallelism-4 job, for the offline tools.
  let chainReady: Promise<void> | undefined;
  const prepareChain = () =>
    (chainReady ??= (async () => {
      await startIncremental();
      await incr!.job.triggerCheckpoint();
      for (let i = 0; i < 10; i++) {
        const changed = touch(data, 0.01, 1000 + i).map((key) => ({ key, value: data.state.get(key)! }));
        const target = incr!.progress.processed + changed.length;
        incr!.feed.feed(changed);
        await until(() => incr!.progress.processed >= target);
        last = await incr!.job.triggerCheckpoint();
      }
      chainTip = last!.location;
      spBytes = (await incr!.job.savepoint(sp4)).newBytes;
      incr!.feed.end();
      await incr!.job.cancel();
      // A cancelled job's state is garbage: held here, its 1M entries would stay in the heap that every later
      // case (restore.full above all) collects around.
      incr = undefined;
    })());

  // An offline tool over the chain's savepoint: its output is removed after each iteration.
  const tool = (name: string, what: string, iterations: number | undefined, run: () => Promise<number>, warmups?: number): BenchCase => ({
    name,
    what,
    group: "arrowpoint",
    offline: true,
    rows: data.rows,
    bytes: () => bytes,
    iterations,
    warmups,
    beforeAll: prepareChain,
    run: async () => {
      bytes = await run();
    },
    afterEach: () => rmSync(out, { recursive: true, force: true }),
  });

  const incremental = (fraction: number, name: string): BenchCase => {
    let changed: Put[] = [];
    return {
      name,
      what: `the same after ${fraction * 100}% of keys changed: delta chunks + manifest`,
      group: "arrowpoint",
      rows: Math.max(1, Math.round(data.rows * fraction)),
      bytes: () => bytes,
      beforeAll: startIncremental,
      beforeEach: async () => {
        changed = touch(data, fraction, ++step).map((key) => ({ key, value: data.state.get(key)! }));
        const target = incr!.progress.processed + changed.length;
        incr!.feed.feed(changed);
        await until(() => incr!.progress.processed >= target);
      },
      run: async () => {
        last = await incr!.job.triggerCheckpoint();
        bytes = last.newBytes;
      },
    };
  };

  return [
    {
      name: "checkpoint.full.write",
      what: "a running job's keyed state → Arrow chunks → filesystem, fsync and manifest included (parallelism 4)",
      group: "arrowpoint",
      rows: data.rows,
      bytes: () => bytes,
      beforeAll: async () => {
        full = stateJob(fullRoot, { incremental: false, parallelism: 4 });
        await full.job.start();
        full.feed.feed(all);
        await until(() => full!.progress.processed >= data.rows);
      },
      run: async () => {
        last = await full!.job.triggerCheckpoint();
        bytes = last.newBytes;
        if (last.newRows < data.rows) throw new Error(`full checkpoint wrote ${last.newRows} rows`);
      },
      afterAll: async () => {
        full!.feed.end();
        await full!.job.cancel();
        full = undefined; // its state is garbage once cancelled (see prepareChain)
      },
    },
    incremental(0.01, "checkpoint.incremental.write"),
    incremental(0.001, "checkpoint.incremental.write.0.1pct"),
    incremental(0.1, "checkpoint.incremental.write.10pct"),
    tool("savepoint.compact", "base + 10 incremental deltas → self-contained savepoint", 3, async () => (await compact(chainTip, join(out, "compact"))).bytes),
    tool("rekey.parallelism", "savepoint at 4 subtasks → 7 (whole key groups move)", undefined, async () => (await rekey(sp4, join(out, "p7"), { parallelism: 7 })).bytes),
    tool("rekey.maxParallelism", "savepoint with 128 key groups → 512 (every key re-hashed)", 3, async () => (await rekey(sp4, join(out, "m512"), { maxParallelism: 512 })).bytes),
    tool("migrate.addField", "one-step schema migration adding a field to every row", 3, async () => {
      const m = defineMigrations({ "state/value": [addField("region", "utf8", "eu")] });
      return (await migrate(sp4, join(out, "migrated"), m)).written?.bytes ?? 0;
    }),
    // Issue 13: the same runs as 2 shards in 2 worker threads (+ commit), and as 8 shards one after another
    // in this thread (+ commit): what splitting costs when nothing runs in parallel. The workers2 cases
    // measure the steady state of runs repeated in one process (the pool's thread warm and its code
    // compiled: 3 warm-up runs); the first run's time, a cold start, is reported beside them.
    tool("rekey.maxParallelism.workers2", "rekey.maxParallelism as 2 shards in 2 worker threads, then commit", 3, async () =>
      (await rekey(sp4, join(out, "m512"), { maxParallelism: 512, workers: 2 })).bytes, 3),
    tool("migrate.addField.workers2", "migrate.addField as 2 shards in 2 worker threads, then commit", 3, async () => {
      const m = defineMigrations({ "state/value": [addField("region", "utf8", "eu")] });
      return (await migrate(sp4, join(out, "migrated"), m, { workers: 2 })).written?.bytes ?? 0;
    }, 3),
    tool("migrate.addField.shards8", "migrate.addField as 8 shards one after another in this thread, then commit", 3, async () => {
      const m = defineMigrations({ "state/value": [addField("region", "utf8", "eu")] });
      for (let index = 0; index < 8; index++) await migrate(sp4, join(out, "migrated"), m, { shard: { index, count: 8 } });
      return (await commitShards(join(out, "migrated"))).bytes;
    }),
    tool("rekey.maxParallelism.shards8", "rekey.maxParallelism as 8 shards one after another in this thread, then commit", 3, async () => {
      for (let index = 0; index < 8; index++) await rekey(sp4, join(out, "m512"), { maxParallelism: 512, shard: { index, count: 8 } });
      return (await commitShards(join(out, "m512"))).bytes;
    }),
    tool("migrate.renameField", "one-step schema migration renaming a value field (schema only)", 3, async () => {
      const m = defineMigrations({ "state/value": [renameField("label", "tag")] });
      return (await migrate(sp4, join(out, "migrated"), m)).written?.bytes ?? 0;
    }),
    tool("migrate.dropField", "one-step schema migration dropping a value field (schema only)", 3, async () => {
      const m = defineMigrations({ "state/value": [dropField("label")] });
      return (await migrate(sp4, join(out, "migrated"), m)).written?.bytes ?? 0;
    }),
    {
      name: "restore.full",
      what: "filesystem → a new job's live keyed state, all rows (parallelism 4)",
      group: "arrowpoint",
      rows: data.rows,
      bytes: () => spBytes,
      beforeAll: prepareChain,
      beforeEach: () => {
        restored = stateJob(join(dir, "ckpt-restore"), { incremental: true, parallelism: 4, restore: sp4 }).job;
      },
      run: async () => {
        await restored!.start();
        const report = restored!.restoreReport;
        if (!report) throw new Error("restore.full did not restore");
      },
      afterEach: async () => {
        await restored!.cancel();
        // Dropped as the jobs above: the last iteration's restored 1M entries stayed alive through every case
        // after this one (runtime.*, the baselines).
        restored = undefined;
        rmSync(join(dir, "ckpt-restore"), { recursive: true, force: true });
      },
    },
  ];
}
