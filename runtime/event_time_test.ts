import { test } from "node:test";
import assert from "node:assert/strict";
import { Watermark } from "./channel.ts";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { arraySource } from "./sources.ts";
import type { KeyedProcessFunction } from "./stream.ts";
import { boundedOutOfOrderness, InputWatermarks, ManualClock, SourceWatermarks, systemClock } from "./watermark.ts";
import { type LateRecord, slidingEventTimeWindows, tumblingEventTimeWindows, eventTimeSessionWindows, type WindowAssigner, type WindowResult } from "./windows.ts";
import { gatedSource } from "./_test_util.ts";
import { clicks, eventTimeJob } from "./_test_event_time.ts";

/** Waits (yielding to the event loop) until `pred` holds; a watchdog only, never an outcome. */
async function until(what: string, pred: () => boolean): Promise<void> {
  for (let i = 0; !pred(); i++) {
    if (i > 200_000) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

test("InputWatermarks takes the minimum over inputs, leaves out idle and ended ones, never goes back", () => {
  const w = new InputWatermarks(3);
  assert.equal(w.update(0, new Watermark(100, false)), undefined);
  assert.equal(w.update(1, new Watermark(50, false)), undefined);
  assert.equal(w.update(2, new Watermark(70, false)), 50);
  assert.equal(w.update(1, new Watermark(80, false)), 70);
  assert.equal(w.update(2, new Watermark(20, true)), 80); // input 2 idle
  assert.equal(w.update(2, new Watermark(60, false)), undefined); // active again, behind: no step back
  assert.equal(w.current, 80);
  assert.equal(w.update(0, new Watermark(10, true)), undefined);
  assert.equal(w.update(1, new Watermark(10, true)), undefined);
  assert.equal(w.update(2, new Watermark(10, true)), undefined);
  assert.ok(w.allIdle());
  assert.equal(w.end(0), undefined);
  w.end(1);
  assert.equal(w.end(2), Infinity);
});

test("SourceWatermarks: the minimum over splits, an idle split stops holding back after the timeout, a finished one counts as Infinity", () => {
  const clock = new ManualClock(0);
  const w = new SourceWatermarks(boundedOutOfOrderness<number>(10, (n) => n, { idleTimeoutMs: 1000 }) as never, clock);
  const a = { time: w.split(undefined), done: false };
  const b = { time: w.split(undefined), done: false };
  w.onRecords(a.time, [100, 90, 120]);
  assert.equal(w.poll([a, b], true), undefined); // b has seen nothing: -Infinity
  clock.advance(999);
  w.onRecords(a.time, [130]);
  assert.equal(w.poll([a, b], true), undefined);
  clock.advance(1);
  assert.equal(w.poll([a, b], true)?.timestamp, 119); // b idle
  w.onRecords(b.time, [50]);
  assert.equal(w.poll([a, b], true), undefined); // b active again at 39: the watermark holds, never steps back
  w.onRecords(b.time, [200]);
  w.onRecords(a.time, [300]);
  assert.equal(w.poll([a, b], true)?.timestamp, 189);
  b.done = true;
  assert.equal(w.poll([a, b], true)?.timestamp, 289); // a finished split no longer holds back
  a.done = true;
  assert.equal(w.poll([a, b], true)?.timestamp, Infinity);
  // Restored generator state resumes the watermark.
  const r = w.split(a.time.generator.state());
  assert.equal(r.generator.current(), 289);
});

interface Ev {
  k: string;
  ts: number;
  cancel?: boolean;
}

test("watermarks propagate through a union of sources; an idle source stops holding timers back once the clock passes its timeout", async () => {
  const clock = new ManualClock(0);
  const a = gatedSource<Ev>([{ k: "x", ts: 1000 }, { k: "y", ts: 2000 }, { k: "x", ts: 3000 }, { k: "y", ts: 4000 }], "a");
  const b = gatedSource<Ev>([{ k: "z", ts: 500 }], "b");
  const fired: string[] = [];
  let seen = 0;
  const job = new Job("idle", { clock, batchSize: 1 });
  const sa = job.fromSource(a.source, { uid: "a", watermarks: boundedOutOfOrderness<Ev>(0, (e) => e.ts, { emitEvery: 1 }) });
  const sb = job.fromSource(b.source, { uid: "b", watermarks: boundedOutOfOrderness<Ev>(0, (e) => e.ts, { emitEvery: 1, idleTimeoutMs: 1000 }) });
  const fn: KeyedProcessFunction<string, Ev, string> = {
    processElement(e, ctx) {
      seen++;
      ctx.timerService().registerEventTimeTimer(e.ts);
    },
    onTimer(ts, ctx) {
      fired.push(`${ctx.currentKey}@${ts}`);
    },
  };
  sa.union(sb).keyBy((e) => e.k).process(fn, { uid: "t", parallelism: 2 }).sinkTo(new CollectingSink<string>(), { uid: "out" });
  await job.start();
  a.allow(3);
  await until("3 records processed", () => seen === 3);
  assert.deepEqual(fired, [], "source b (no data yet) holds the watermark back");
  clock.advance(999);
  assert.deepEqual(fired, []);
  clock.advance(1);
  await until("timers up to 2999 fired", () => fired.length === 2);
  assert.deepEqual(fired.sort(), ["x@1000", "y@2000"]);
  b.allow(1); // b active again at 499: the operator's watermark does not step back
  await until("b's record processed", () => seen === 4);
  a.allow(4);
  await until("4th record of a processed", () => seen === 5);
  assert.equal(fired.length, 2);
  a.end();
  b.end();
  await job.done;
  assert.deepEqual(fired.slice(2).sort(), ["x@3000", "y@4000", "z@500"]);
});

test("a source subtask without splits does not hold the watermark back", async () => {
  const g = gatedSource<Ev>([{ k: "x", ts: 1000 }, { k: "y", ts: 2000 }, { k: "x", ts: 3000 }], "one-split");
  const fired: string[] = [];
  const job = new Job("no-splits", { batchSize: 1 });
  job.fromSource(g.source, { uid: "in", parallelism: 2, watermarks: boundedOutOfOrderness<Ev>(0, (e) => e.ts, { emitEvery: 1 }) })
    .keyBy((e) => e.k)
    .process<string>({
      processElement(e, ctx) {
        ctx.timerService().registerEventTimeTimer(e.ts);
      },
      onTimer(ts, ctx) {
        fired.push(`${ctx.currentKey}@${ts}`);
      },
    }, { uid: "t" })
    .sinkTo(new CollectingSink<string>(), { uid: "out" });
  await job.start();
  g.allow(3);
  await until("timers up to 2999 fired while the job runs", () => fired.length === 2);
  assert.deepEqual(fired, ["x@1000", "y@2000"]);
  g.end();
  await job.done;
  assert.deepEqual(fired, ["x@1000", "y@2000", "x@3000"]);
});

test("late records: within the allowed lateness they update the window, after it they are emitted as late and counted", async () => {
  const ts = [1000, 12000, 3000, 20000, 4000, 25000];
  const job = new Job("late", { batchSize: 1 });
  const sink = new CollectingSink<WindowResult<string, number> | LateRecord<number>>();
  job.fromSource(arraySource(ts), { uid: "in", watermarks: boundedOutOfOrderness<number>(0, (t) => t, { emitEvery: 1 }) })
    .keyBy(() => "k")
    .window(tumblingEventTimeWindows(10_000), { timestampOf: (t) => t, allowedLatenessMs: 5000, lateRecords: "emit" })
    .aggregate({ createAccumulator: () => 0, add: (_t, n: number) => n + 1, getResult: (n) => n }, { uid: "w" })
    .sinkTo(sink, { uid: "out" });
  await job.run();
  const got = sink.committed.map((r) => (r.kind === "late" ? `late ${r.value}` : `[${r.start},${r.end}) ${r.value}`));
  assert.deepEqual(got, ["[0,10000) 1", "[0,10000) 2", "[10000,20000) 1", "late 4000", "[20000,30000) 2"]);
  assert.equal(job.lateRecords, 1);
});

test("late records are dropped by default, and counted", async () => {
  const job = new Job("late-drop", { batchSize: 1 });
  const sink = new CollectingSink<WindowResult<string, number>>();
  job.fromSource(arraySource([5000, 15000, 2000, 16000]), { uid: "in", watermarks: boundedOutOfOrderness<number>(0, (t) => t, { emitEvery: 1 }) })
    .keyBy(() => "k")
    .window(tumblingEventTimeWindows(10_000), { timestampOf: (t) => t })
    .reduce((a, b) => a + b, { uid: "w" })
    .sinkTo(sink, { uid: "out" });
  await job.run();
  assert.deepEqual(sink.committed.map((r) => `${r.start}:${r.value}`), ["0:5000", "10000:31000"]);
  assert.equal(job.lateRecords, 1);
});

test("sliding and session windows: each record in size/slide windows; sessions merge when they meet", async () => {
  const job = new Job("sliding");
  const slides = new CollectingSink<WindowResult<string, number>>();
  const sessions = new CollectingSink<WindowResult<string, number>>();
  const keyed = job.fromSource(arraySource([1000, 6000, 12000, 40000, 30000]), { uid: "in", watermarks: boundedOutOfOrderness<number>(20_000, (t) => t) }).keyBy(() => "k");
  keyed.window(slidingEventTimeWindows(10_000, 5_000), { timestampOf: (t) => t })
    .aggregate({ createAccumulator: () => 0, add: (_t, n: number) => n + 1, getResult: (n) => n }, { uid: "slide" })
    .sinkTo(slides, { uid: "o1" });
  keyed.window(eventTimeSessionWindows(10_000), { timestampOf: (t) => t })
    .aggregate({ createAccumulator: () => 0, add: (_t, n: number) => n + 1, getResult: (n) => n, merge: (a, b) => a + b }, { uid: "sess" })
    .sinkTo(sessions, { uid: "o2" });
  await job.run();
  assert.deepEqual(slides.committed.map((r) => `${r.start}:${r.value}`).sort(), ["-5000:1", "0:2", "10000:1", "25000:1", "30000:1", "35000:1", "40000:1", "5000:2"].sort());
  // 1000, 6000, 12000 chain into one session; 30000 and 40000 touch ([30000,40000) and [40000,50000)) and merge
  assert.deepEqual(sessions.committed.map((r) => `${r.start}-${r.end}:${r.value}`).sort(), ["1000-22000:3", "30000-50000:2"]);
});

test("a record that bridges two sessions merges all three in place; custom assigners give the built-in ones' windows", async () => {
  const run = async (tumbling: WindowAssigner, session: WindowAssigner) => {
    const job = new Job("custom", { batchSize: 1 });
    const fixed = new CollectingSink<WindowResult<string, number>>();
    const merged = new CollectingSink<WindowResult<string, number>>();
    // 9000 comes after the watermark passed its window's end, within the allowed lateness: a late firing
    const keyed = job.fromSource(arraySource([1000, 30000, 12000, 21000, 6000, 42000, 9000]), { uid: "in", watermarks: boundedOutOfOrderness<number>(20_000, (t) => t, { emitEvery: 1 }) }).keyBy(() => "k");
    keyed.window(tumbling, { timestampOf: (t) => t, allowedLatenessMs: 15_000 })
      .aggregate({ createAccumulator: () => 0, add: (_t, n: number) => n + 1, getResult: (n) => n }, { uid: "fixed" })
      .sinkTo(fixed, { uid: "o1" });
    keyed.window(session, { timestampOf: (t) => t })
      .aggregate({ createAccumulator: () => 0, add: (_t, n: number) => n + 1, getResult: (n) => n, merge: (a, b) => a + b }, { uid: "merged" })
      .sinkTo(merged, { uid: "o2" });
    await job.run();
    return { fixed: fixed.committed.map((r) => `${r.start}-${r.end}:${r.value}`).sort(), merged: merged.committed.map((r) => `${r.start}-${r.end}:${r.value}`).sort() };
  };
  const builtIn = await run(tumblingEventTimeWindows(10_000), eventTimeSessionWindows(10_000));
  // [12000, 22000) and [30000, 40000) are apart until 21000's window [21000, 31000) meets both; then 6000's
  // [6000, 16000) joins that one and [1000, 11000); 42000 starts its own; 9000 is late for a session (dropped)
  assert.deepEqual(builtIn.merged, ["1000-40000:5", "42000-52000:1"]);
  // [0, 10000) fires with 1000 once 30000 moved the watermark past it, then again (late firings within the
  // allowed lateness) with 6000 and with 9000
  assert.deepEqual(builtIn.fixed, ["0-10000:1", "0-10000:2", "0-10000:3", "10000-20000:1", "20000-30000:1", "30000-40000:1", "40000-50000:1"]);
  const custom = await run(
    { kind: "tumbling", merging: false, assign: (ts) => [{ start: Math.floor(ts / 10_000) * 10_000, end: Math.floor(ts / 10_000) * 10_000 + 10_000 }] },
    { kind: "session", merging: true, assign: (ts) => [{ start: ts, end: ts + 10_000 }] },
  );
  assert.deepEqual(custom, builtIn);
});

test("session windows with an aggregate function without merge are refused when built", () => {
  const job = new Job("nomerge");
  const keyed = job.fromSource(arraySource([1]), { uid: "in" }).keyBy(() => "k");
  assert.throws(() => keyed.window(eventTimeSessionWindows(10), { timestampOf: (t) => t }).aggregate({ createAccumulator: () => 0, add: (_t, n: number) => n + 1, getResult: (n) => n }, { uid: "s" }), /merge/);
});

test("timers deleted before firing never fire; re-registered ones fire once", async () => {
  const evs: Ev[] = [{ k: "a", ts: 100 }, { k: "b", ts: 100 }, { k: "a", ts: 100, cancel: true }, { k: "c", ts: 300 }, { k: "c", ts: 300, cancel: true }, { k: "c", ts: 300 }, { k: "c", ts: 300 }, { k: "z", ts: 10_000 }];
  const job = new Job("delete", { batchSize: 1 });
  const sink = new CollectingSink<string>();
  job.fromSource(arraySource(evs), { uid: "in", watermarks: boundedOutOfOrderness<Ev>(0, (e) => e.ts, { emitEvery: 1 }) })
    .keyBy((e) => e.k)
    .process<string>({
      processElement(e, ctx) {
        if (e.cancel) ctx.timerService().deleteEventTimeTimer(e.ts + 50);
        else ctx.timerService().registerEventTimeTimer(e.ts + 50);
      },
      onTimer(ts, ctx) {
        ctx.collect(`${ctx.currentKey}@${ts}:${ctx.timeDomain}`);
      },
    }, { uid: "t", parallelism: 3 })
    .sinkTo(sink, { uid: "out" });
  await job.run();
  assert.deepEqual(sink.committed.sort(), ["b@150:event", "c@350:event", "z@10050:event"]);
});

test("processing-time timers follow the injected clock: nothing fires before it passes, deleted ones never", async () => {
  const clock = new ManualClock(10_000);
  const g = gatedSource<Ev>([{ k: "a", ts: 0 }, { k: "b", ts: 0 }, { k: "b", ts: 0, cancel: true }, { k: "c", ts: 0 }], "g");
  const fired: string[] = [];
  let seen = 0;
  const job = new Job("proc", { clock, batchSize: 1 });
  job.fromSource(g.source, { uid: "in" })
    .keyBy((e) => e.k)
    .process<string>({
      processElement(e, ctx) {
        seen++;
        const at = e.k === "c" ? 12_000 : 11_000;
        if (e.cancel) ctx.timerService().deleteProcessingTimeTimer(at);
        else ctx.timerService().registerProcessingTimeTimer(at);
      },
      onTimer(ts, ctx) {
        assert.ok(ctx.currentProcessingTime() >= ts);
        fired.push(`${ctx.currentKey}@${ts}:${ctx.timeDomain}`);
      },
    }, { uid: "t", parallelism: 2 })
    .sinkTo(new CollectingSink<string>(), { uid: "out" });
  await job.start();
  g.allow(4);
  await until("4 records processed", () => seen === 4);
  clock.advance(999);
  assert.deepEqual(fired, []);
  clock.advance(1);
  await until("a's timer fired", () => fired.length === 1);
  assert.deepEqual(fired, ["a@11000:processing"]);
  clock.advance(1000);
  await until("c's timer fired", () => fired.length === 2);
  assert.deepEqual(fired, ["a@11000:processing", "c@12000:processing"]);
  g.end();
  await job.done;
  assert.equal(fired.length, 2);
});

test("a function without onTimer cannot use timers (named error)", async () => {
  const job = new Job("no-ontimer");
  job.fromSource(arraySource([1]), { uid: "in" }).keyBy(() => "k").process<number>({
    processElement(_v, ctx) {
      ctx.timerService().registerEventTimeTimer(5);
    },
  }, { uid: "t" }).sinkTo(new CollectingSink<number>(), { uid: "out" });
  await assert.rejects(job.run(), /no onTimer/);
});

test("the event-time job gives the same output at parallelism 1, 3 and 7 (no record is late)", async () => {
  const outputs: string[][] = [];
  for (const p of [1, 3, 7]) {
    const sink = new CollectingSink<string>();
    await eventTimeJob({ source: clicks(1200, { seed: 5 }), sink, parallelism: p, sourceParallelism: p === 7 ? 3 : 2 }).run();
    outputs.push(sink.committed.slice().sort());
  }
  assert.ok(outputs[0].some((l) => l.startsWith("session ")) && outputs[0].some((l) => l.startsWith("minute ")) && outputs[0].some((l) => l.startsWith("timer|")));
  assert.deepEqual(outputs[1], outputs[0]);
  assert.deepEqual(outputs[2], outputs[0]);
});

test("the wall clock arms a far-future wake-up within setTimeout's limit (a longer delay would fire at once, in a loop)", () => {
  const delays: number[] = [];
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((cb: () => void, ms?: number) => {
    delays.push(ms ?? 0);
    return real(cb, 0);
  }) as typeof globalThis.setTimeout;
  let cancel: () => void;
  try {
    cancel = systemClock.wakeAt(Date.now() + 365 * 86_400_000, () => {});
  } finally {
    globalThis.setTimeout = real;
  }
  cancel();
  assert.equal(delays.length, 1);
  assert.ok(delays[0] <= 2 ** 31 - 1 && delays[0] > 86_400_000, `delay ${delays[0]}`);
});
