import assert from "node:assert/strict";
import { test } from "node:test";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { events, sessionFunction, sessionJob, sorted, withHook } from "./_test_util.ts";
import { ManualClock } from "./watermark.ts";

const util = new URL("./_test_util.ts", import.meta.url).href;

function jobWith(options: ConstructorParameters<typeof Job>[1], uid = "sessions"): Job {
  const job = new Job("sessions", options);
  job.fromSource(events(100, 1), { uid: "events", parallelism: 2 })
    .keyBy((e) => e.user)
    .process(sessionFunction, { uid, parallelism: 3 })
    .sinkTo(new CollectingSink<string>(), { uid: "out", parallelism: 2 });
  return job;
}

test("workers without a definition are refused, saying what to pass", async () => {
  await assert.rejects(jobWith({ workers: 2 }).run(), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /definition: \{ module: import\.meta\.url, export:/);
    return true;
  });
});

test("workers with a custom clock are refused (a worker keeps the wall clock)", async () => {
  await assert.rejects(jobWith({ workers: 2, clock: new ManualClock(0), definition: { module: util, export: "sessionJobShape", args: { parallelism: 3 } } }).run(), /custom clock/);
});

test("a definition whose module exports no such function fails the start, naming module and function", async () => {
  await assert.rejects(jobWith({ workers: 2, definition: { module: util, export: "noSuchJob" } }).run(), (e: unknown) => {
    assert.match(String((e as Error).message), /_test_util\.ts exports no function "noSuchJob"/);
    return true;
  });
});

test("a definition that builds other operators than the job is refused", async () => {
  await assert.rejects(jobWith({ workers: 2, definition: { module: util, export: "sessionJobShape", args: { parallelism: 3 } } }, "renamed").run(), (e: unknown) => {
    assert.match(String((e as Error).message), /built other operators \(events, sessions, out\) than the job \(events, renamed, out\)/);
    return true;
  });
});

test("the keyed subtasks give the same output in workers as on one thread, with more workers than subtasks too", async () => {
  const expected = new CollectingSink<string>();
  await sessionJob({ source: events(1200, 5), sink: expected, parallelism: 3 }).run();
  for (const workers of [1, 2, 5]) {
    const sink = new CollectingSink<string>();
    const result = await sessionJob({ source: events(1200, 5), sink, parallelism: 3, workers, storage: `memory:workers-same-${workers}` }).run();
    assert.equal(result.status, "finished");
    assert.deepEqual(sorted(sink.committed), sorted(expected.committed), `workers: ${workers}`);
  }
});

test("a savepoint taken by workers restores on one thread at another parallelism, and that one in workers again", async () => {
  const expected = new CollectingSink<string>();
  await sessionJob({ source: events(1600, 7), sink: expected, parallelism: 2 }).run();
  const sink = new CollectingSink<string>();
  const stopAt = (n: number) => {
    let job!: Job;
    let stop: Promise<unknown> | undefined;
    const source = withHook(events(1600, 7), (records) => {
      if (records >= n && job.status === "running") stop ??= job.stopWithSavepoint();
    });
    return { source, set: (j: Job) => (job = j) };
  };
  const a = stopAt(500);
  const first = sessionJob({ source: a.source, sink, parallelism: 4, workers: 2, storage: "memory:workers-sp-1" });
  a.set(first);
  const r1 = await first.run();
  assert.equal(r1.status, "stopped");
  const b = stopAt(400); // records read by this run, after the restored position
  const second = sessionJob({ source: b.source, sink, parallelism: 3, storage: "memory:workers-sp-2", restore: { from: r1.savepoint!.location } });
  b.set(second);
  const r2 = await second.run();
  assert.equal(r2.status, "stopped");
  const r3 = await sessionJob({ source: events(1600, 7), sink, parallelism: 5, workers: 2, storage: "memory:workers-sp-3", restore: { from: r2.savepoint!.location } }).run();
  assert.equal(r3.status, "finished");
  assert.deepEqual(sorted(sink.committed), sorted(expected.committed));
});
