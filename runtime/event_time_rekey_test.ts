// Timers are keyed state: a savepoint with pending timers, rekeyed to another maxParallelism and
// parallelism by the offline tool, restores with every timer on the subtask of its key, firing once at
// its time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { inspect } from "../migrate/inspect.ts";
import { migrate } from "../migrate/migrate.ts";
import { defineMigrations, dropState } from "../migrate/migrations.ts";
import { rekey } from "../migrate/rekey.ts";
import { validate } from "../migrate/validate.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import type { KeyedProcessFunction } from "./stream.ts";
import { TIMERS_STATE } from "./timers.ts";
import { boundedOutOfOrderness } from "./watermark.ts";
import { gatedSource } from "./_test_util.ts";

interface Ev {
  k: string;
  ts: number;
}

const FAR = 1_000_000_000;
const items: Ev[] = Array.from({ length: 300 }, (_, i) => ({ k: `user-${i % 97}`, ts: 1000 + i * 10 }));

function timerFn(): KeyedProcessFunction<string, Ev, string> {
  return {
    processElement(e, ctx) {
      ctx.timerService().registerEventTimeTimer(FAR + e.ts);
    },
    onTimer(ts, ctx) {
      assert.ok(ctx.currentWatermark() >= ts, `timer ${ts} fired at watermark ${ctx.currentWatermark()}`);
      ctx.collect(`${ctx.currentKey}@${ts - FAR}`);
    },
  };
}

function build(name: string, gated: ReturnType<typeof gatedSource<Ev>>, sink: CollectingSink<string>, parallelism: number, maxParallelism: number, restore?: string): Job {
  const job = new Job(name, { maxParallelism, restore: restore ? { from: restore } : undefined, batchSize: 16 });
  job.fromSource(gated.source, { uid: "in", watermarks: boundedOutOfOrderness<Ev>(0, (e) => e.ts, { emitEvery: 1 }) })
    .keyBy((e) => e.k)
    .process(timerFn, { uid: "timers", parallelism })
    .sinkTo(sink, { uid: "out" });
  return job;
}

test("a savepoint with pending timers, rekeyed to another maxParallelism and restored at another parallelism: every timer fires once, at its time, for its key", async () => {
  const root = `memory:et-rekey-${Math.random().toString(36).slice(2)}`;
  const before = new CollectingSink<string>();
  const g1 = gatedSource(items, "in");
  const job = build("timers", g1, before, 3, 128);
  await job.start();
  g1.allow(200);
  while (job.records < 200) await new Promise((r) => setImmediate(r));
  const sp = await job.stopWithSavepoint(`${root}/sp`);
  assert.deepEqual(before.committed, [], "no timer fires at a stop-with-savepoint");

  const snap = await openSnapshot(sp.location);
  const timers = snap.manifest.operators.find((o) => o.uid === "timers")!.states.find((s) => s.name === TIMERS_STATE)!;
  assert.equal(timers.namespaced, true);
  const rows = await readState(snap, "timers", TIMERS_STATE);
  assert.equal(rows.length, 200);
  assert.deepEqual(rows.namespaces!.slice().sort(), items.slice(0, 200).map((e) => `e:${FAR + e.ts}`).sort());
  await snap.storage.close();
  const info = await inspect(sp.location);
  const timerInfo = info.operators.find((o) => o.uid === "timers")!.states.find((s) => s.name === TIMERS_STATE)!;
  assert.equal(timerInfo.rows, 200, "inspect counts the pending timers as the rows of _timers");
  assert.equal(timerInfo.namespaced, true);

  await rekey(sp.location, `${root}/rekeyed`, { maxParallelism: 256, parallelism: 5 });
  const findings = await validate(`${root}/rekeyed`);
  assert.deepEqual(findings, [], "validate checks the timer chunks like any other");

  const after = new CollectingSink<string>();
  const g2 = gatedSource(items, "in");
  const restored = build("timers", g2, after, 5, 256, `${root}/rekeyed`);
  await restored.start();
  g2.end();
  await restored.done;
  const want = items.map((e) => `${e.k}@${e.ts}`).sort();
  assert.deepEqual(after.committed.slice().sort(), want);

  // migrate keeps timers by default, and drops them when told (dropState of the reserved state).
  await migrate(sp.location, `${root}/no-timers`, defineMigrations({}, { operators: [dropState("timers", TIMERS_STATE)] }));
  const dropped = new CollectingSink<string>();
  const g3 = gatedSource(items, "in");
  const withoutTimers = build("timers", g3, dropped, 2, 128, `${root}/no-timers`);
  await withoutTimers.start();
  g3.end();
  await withoutTimers.done;
  assert.deepEqual(dropped.committed.slice().sort(), items.slice(200).map((e) => `${e.k}@${e.ts}`).sort(), "only the timers registered after the restore fire");
  clearMemoryStorage(root.slice("memory:".length));
});
