// inspect reports the pending timers of a `_timers` state: how many per time domain, and the earliest and
// latest of each, read from the snapshot's rows (the namespace `e:<ts>` / `p:<ts>`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { inspect } from "./inspect.ts";
import { inspectText } from "../cli/format.ts";
import { Job } from "../runtime/job.ts";
import { CollectingSink } from "../runtime/sinks.ts";
import { gatedSource } from "../runtime/_test_util.ts";

const EVENT = 1_000_000_000;
// Far beyond any wall clock of a test run, so no processing-time timer fires before the savepoint.
const PROCESSING = 9_000_000_000_000;

test("inspect shows the pending timers of an operator per domain, with the earliest and latest", async () => {
  const root = `memory:inspect-timers-${Math.random().toString(36).slice(2)}`;
  const items = Array.from({ length: 50 }, (_, i) => i);
  const gated = gatedSource(items, "in");
  const job = new Job("timers", { maxParallelism: 128 });
  job.fromSource(gated.source, { uid: "in" })
    .keyBy((i) => `k${i % 7}`)
    .process<number>({
      processElement(i, ctx) {
        ctx.timerService().registerEventTimeTimer(EVENT + i);
        if (i % 10 === 0) ctx.timerService().registerProcessingTimeTimer(PROCESSING + i);
      },
      onTimer() {},
    }, { uid: "timers", parallelism: 2 })
    .sinkTo(new CollectingSink<number>(), { uid: "out" });
  await job.start();
  gated.allow(50);
  while (job.records < 50) await new Promise((r) => setImmediate(r));
  const sp = await job.stopWithSavepoint(`${root}/sp`);

  const info = await inspect(sp.location);
  const states = info.operators.find((o) => o.uid === "timers")!.states;
  const timers = states.find((s) => s.name === "_timers")!;
  assert.deepEqual(timers.timers, {
    event: { count: 50, earliest: EVENT, latest: EVENT + 49 },
    processing: { count: 5, earliest: PROCESSING, latest: PROCESSING + 40 },
  });
  assert.equal(timers.rows, 55);
  for (const o of info.operators) for (const s of o.states) if (s.name !== "_timers") assert.equal(s.timers, undefined, `${o.uid}/${s.name} is not a timer state`);
  const text = inspectText(info);
  assert.match(text, /timers +50 event-time, earliest 1000000000 \(1970-01-12T13:46:40\.000Z\), latest 1000000049 .* · 5 processing-time, earliest 9000000000000 /);
  assert.equal((await inspect(sp.location, { keyGroups: false })).operators.find((o) => o.uid === "timers")!.states.find((s) => s.name === "_timers")!.timers, undefined, "manifest-only inspect reads no rows");
  clearMemoryStorage(root.slice("memory:".length));
});
