import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FaultyStorage } from "../backends/faulty.ts";
import { MemoryStorage, clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { IncompatibleSnapshotError } from "../format/errors.ts";
import { assignKeyGroup, keyGroupRangeFor } from "../format/key_group.ts";
import { readChunk } from "../snapshot/chunks.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { JobFailedError, NonRestoredStateError } from "./errors.ts";
import { Job, type RestoreOptions } from "./job.ts";
import type { Storage } from "../backends/storage.ts";
import { CollectingSink, ndjsonFileSink, readNdjsonParts } from "./sinks.ts";
import { arraySource, generatorSource, ndjsonSource, type Source } from "./sources.ts";
import { operatorListState, valueState, type OperatorListState } from "./state.ts";
import type { ProcessFunction } from "./stream.ts";
import { COUNT, type Event, events, gatedSource, sessionFunction, sessionJob, sorted, waitWhileRunning } from "./_test_util.ts";

function uniq(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2)}`;
}

interface Upd {
  user: string;
  del?: boolean;
}
const V = valueState<number>("v");

function updJob(name: string, storage: string | Storage, source: ReturnType<typeof gatedSource<Upd>>["source"], parallelism: number, fullEvery = 10, restore?: RestoreOptions): Job {
  const job = new Job(name, { maxParallelism: 128, checkpoints: { storage, fullEvery, retain: 10 }, restore });
  job.fromSource(source, { uid: "upd" })
    .keyBy((u) => u.user)
    .process<string>({
      open(ctx) {
        ctx.getState(V);
      },
      processElement(u, ctx) {
        const s = ctx.getState(V);
        if (u.del) s.clear();
        else s.update((s.value() ?? 0) + 1);
      },
    }, { uid: "counter", parallelism })
    .sinkTo(new CollectingSink<string>(), { uid: "out" });
  return job;
}

test("incremental checkpoints write only the changed keys, with deletes, and re-base every fullEvery", async () => {
  const storage = uniq("memory:incr");
  const items: Upd[] = [];
  for (let i = 0; i < 1000; i++) items.push({ user: `user-${i}` });
  const changed = ["user-3", "user-77", "user-500", "user-501", "user-999", "user-3"];
  const deleted = ["user-10", "user-11", "user-12"];
  for (const u of changed) items.push({ user: u });
  for (const u of deleted) items.push({ user: u, del: true });
  const gate = gatedSource(items);
  const job = updJob("incr", storage, gate.source, 3, 3);
  await job.start();
  gate.allow(1000);
  await waitWhileRunning(job, "1000 records", () => job.records >= 1000);
  const c1 = await job.triggerCheckpoint();
  gate.allow(items.length);
  await waitWhileRunning(job, "all records", () => job.records >= items.length);
  const c2 = await job.triggerCheckpoint();
  const c3 = await job.triggerCheckpoint(); // nothing changed
  const c4 = await job.triggerCheckpoint(); // fullEvery 3: a base again
  await job.cancel();

  const st = (m: typeof c1.manifest) => m.operators.find((o) => o.uid === "counter")!.states.find((s) => s.name === "v")!;
  assert.ok(st(c1.manifest).chunks.every((c) => c.type === "base" && c.order === c1.id));
  assert.equal(st(c1.manifest).chunks.reduce((n, c) => n + c.rows, 0), 1000);

  const deltas = st(c2.manifest).chunks.filter((c) => c.order === c2.id);
  assert.ok(deltas.length > 0 && deltas.every((c) => c.type === "delta"), "checkpoint 2 writes deltas only");
  const dirty = new Set([...changed, ...deleted]);
  assert.equal(deltas.reduce((n, c) => n + c.rows, 0), dirty.size, "delta rows == dirty keys");
  assert.equal(st(c2.manifest).chunks.filter((c) => c.order === c1.id).length, st(c1.manifest).chunks.length, "checkpoint 2 references the bases of checkpoint 1");

  const snap = await openSnapshot(storage, "chk-" + String(c2.id).padStart(6, "0"));
  const seen = new Map<string, number>();
  const dirtyGroups = new Set([...dirty].map((u) => assignKeyGroup(u, 128)));
  for (const ref of deltas) {
    const d = await readChunk(snap, ref);
    for (let i = 0; i < d.length; i++) {
      seen.set(d.keys![i] as string, d.ops![i]);
      assert.ok(dirtyGroups.has(d.keyGroups![i]), "only changed key groups are written");
    }
    const kgs = [...d.keyGroups!];
    assert.deepEqual(ref.keyGroupRange, { start: Math.min(...kgs), end: Math.max(...kgs) });
  }
  assert.deepEqual([...seen.keys()].sort(), [...dirty].sort());
  for (const u of deleted) assert.equal(seen.get(u), 1, `${u} is a delete`);
  for (const u of changed) assert.equal(seen.get(u), 0, `${u} is an upsert`);

  const rows = await readState(snap, "counter", "v");
  assert.equal(rows.length, 1000 - deleted.length);
  const byKey = new Map(rows.keys!.map((k, i) => [k as string, rows.values[i]]));
  assert.equal(byKey.get("user-3"), 3);
  assert.equal(byKey.get("user-4"), 1);
  assert.equal(byKey.has("user-10"), false);

  assert.equal(st(c3.manifest).chunks.filter((c) => c.order === c3.id).length, 0, "an unchanged state writes nothing");
  assert.ok(c3.newBytes < c2.newBytes);
  const c4chunks = st(c4.manifest).chunks;
  assert.ok(c4chunks.length > 0 && c4chunks.every((c) => c.type === "base" && c.order === c4.id), "checkpoint 4 is a fresh base and lists nothing older");
  assert.equal(c4chunks.reduce((n, c) => n + c.rows, 0), 997);
  clearMemoryStorage(storage.slice("memory:".length));
});

test("restore at parallelism 1 → 7 → 1 loses no key and keeps every value", async () => {
  const N = 3000;
  const storage = uniq("memory:rescale");
  const expectedSink = new CollectingSink<string>();
  await sessionJob({ source: events(N, 11), sink: expectedSink, parallelism: 2 }).run();
  const sink = new CollectingSink<string>();
  const gate = gatedSource(await collect<Event>(events(N, 11)), "gated", true);
  const a = sessionJob({ source: gate.source, sink, parallelism: 1, storage, sourceParallelism: 1 });
  await a.start();
  gate.allow(N / 2);
  await waitWhileRunning(a, "half", () => a.records >= N / 2);
  const spA = await a.stopWithSavepoint();
  const before = await openSnapshot(spA.location);

  const b = sessionJob({ source: gate.source, sink, parallelism: 7, storage, sourceParallelism: 1, restore: { from: spA.location } });
  await b.start();
  const first = await b.savepoint(); // nothing read since the restore: the state must be exactly the savepoint's
  gate.allow(N);
  const after = await openSnapshot(first.location);
  for (const name of ["count", "recent", "per-cat", "total"]) {
    const ra = await readState(before, "sessions", name);
    const rb = await readState(after, "sessions", name);
    const rows = (r: typeof ra) => Array.from({ length: r.length }, (_, i) => JSON.stringify([r.keys![i], r.userKeys?.[i] ?? null, r.values[i]])).sort();
    assert.ok(ra.length >= 50, `state ${name} has ${ra.length} rows`);
    assert.deepEqual(rows(rb), rows(ra), `state ${name} is identical after restoring at parallelism 7`);
  }
  const op = after.manifest.operators.find((o) => o.uid === "sessions")!;
  assert.equal(op.parallelism, 7);
  const ranges = op.states.find((s) => s.name === "count")!.chunks.map((c) => JSON.stringify(c.keyGroupRange));
  const subtaskRanges = [0, 1, 2, 3, 4, 5, 6].map((i) => JSON.stringify(keyGroupRangeFor(i, 7, b.maxParallelism!)));
  assert.deepEqual(ranges.slice().sort(), subtaskRanges.slice().sort(), "one base per subtask range");
  await b.done;

  const c = sessionJob({ source: gatedSource(await collect<Event>(events(N, 11)), "gated", true).source, sink, parallelism: 1, storage, restore: { from: "latest" } });
  const result = await c.run();
  assert.equal(result.restore?.kind, "checkpoint");
  assert.deepEqual(sorted(sink.committed), sorted(expectedSink.committed));
  clearMemoryStorage(storage.slice("memory:".length));
});

async function collect<T>(source: Source<T>): Promise<T[]> {
  const out: T[] = [];
  for (const split of await source.splits()) {
    const r = await source.reader(split, undefined);
    for (;;) {
      const n = await r.read(out, 1024);
      if (n < 0) break;
    }
  }
  return out;
}

const SPLIT = operatorListState<string>("split-items", { redistribution: "split" });
const UNION = operatorListState<string>("union-items", { redistribution: "union" });
const BCAST = operatorListState<string>("config", { redistribution: "broadcast" });

function opStateJob(storage: string, parallelism: number, seen: Map<number, { split: string[]; union: string[]; bcast: string[] }>, sink: CollectingSink<number>, restore = false): Job {
  const job = new Job("op-state", { checkpoints: { storage }, restore: restore ? { from: "latest" } : undefined });
  const fn: ProcessFunction<number, number> & { s?: OperatorListState<string> } = {
    open(ctx) {
      const s = ctx.getListState(SPLIT), u = ctx.getListState(UNION), b = ctx.getListState(BCAST);
      seen.set(ctx.subtaskIndex, { split: [...s.get()], union: [...u.get()], bcast: [...b.get()] });
      if (!restore) {
        s.update([`s${ctx.subtaskIndex}-a`, `s${ctx.subtaskIndex}-b`]);
        u.update([`u${ctx.subtaskIndex}`]);
        b.update(["cfg-v1"]);
      }
    },
    processElement(v, ctx) {
      ctx.collect(v);
    },
  };
  job.fromSource(arraySource([1, 2, 3, 4]), { uid: "nums" }).process(fn, { uid: "stateful", parallelism }).sinkTo(sink, { uid: "out" });
  return job;
}

test("operator state is redistributed by mode: split, union, broadcast", async () => {
  const storage = uniq("memory:opstate");
  const sink = new CollectingSink<number>(); // the sinks' external system outlives each job
  await opStateJob(storage, 3, new Map(), sink).run();
  let previousUnion = ["u0", "u1", "u2"]; // what the subtasks held: union state hands every subtask all of it
  for (const p of [2, 5]) {
    const seen = new Map<number, { split: string[]; union: string[]; bcast: string[] }>();
    const job = opStateJob(storage, p, seen, sink, true);
    await job.run();
    assert.equal(seen.size, p);
    const allSplit = [...seen.values()].flatMap((s) => s.split).sort();
    assert.deepEqual(allSplit, ["s0-a", "s0-b", "s1-a", "s1-b", "s2-a", "s2-b"], `split at ${p}: every item exactly once`);
    const sizes = [...seen.values()].map((s) => s.split.length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, "split deals evenly");
    for (const s of seen.values()) {
      assert.deepEqual(s.union.slice().sort(), previousUnion.slice().sort(), `union at ${p}: every subtask gets every item of every old subtask`);
      assert.deepEqual(s.bcast, ["cfg-v1"], `broadcast at ${p}: one copy each`);
    }
    previousUnion = [...seen.values()].flatMap((s) => s.union);
  }
  clearMemoryStorage(storage.slice("memory:".length));
});

test("a snapshot with another maxParallelism is refused, pointing to arrowpoint rekey; an unset maxParallelism is adopted", async () => {
  const storage = uniq("memory:maxp");
  const sink = new CollectingSink<string>();
  const mk = (maxParallelism?: number) => {
    const job = new Job("maxp", { maxParallelism, checkpoints: { storage }, restore: { from: "latest" } });
    job.fromSource(arraySource(["a", "b", "c"]), { uid: "in" }).keyBy((s) => s).process<string>({
      open(ctx) {
        ctx.getState(V);
      },
      processElement(s, ctx) {
        ctx.getState(V).update(1);
        ctx.collect(s);
      },
    }, { uid: "k", parallelism: 2 }).sinkTo(sink, { uid: "out" });
    return job;
  };
  await mk(64).run();
  await assert.rejects(mk(256).start(), (e: unknown) => {
    assert.ok(e instanceof IncompatibleSnapshotError);
    assert.match((e as Error).message, /maxParallelism 64/);
    assert.match((e as Error).message, /arrowpoint rekey/);
    return true;
  });
  const adopt = mk(undefined);
  await adopt.run();
  assert.equal(adopt.maxParallelism, 64);
  clearMemoryStorage(storage.slice("memory:".length));
});

test("state the job does not take over is an error, or reported exactly with allowNonRestoredState", async () => {
  const storage = uniq("memory:nonrestored");
  const sink = new CollectingSink<string>();
  const full = new Job("nr", { checkpoints: { storage } });
  const s = full.fromSource(events(200, 1), { uid: "events" });
  s.keyBy((e) => e.user).process(sessionFunction, { uid: "sessions" }).sinkTo(sink, { uid: "out" });
  s.process<number>({ open(ctx) { ctx.getListState(SPLIT).update(["x"]); }, processElement() {} }, { uid: "extra" });
  await full.run();

  const partial = (allow: boolean) => {
    const job = new Job("nr", { checkpoints: { storage }, restore: { from: "latest", allowNonRestoredState: allow } });
    job.fromSource(events(200, 1), { uid: "events" }).keyBy((e) => e.user).process<string>({
      open(ctx) {
        ctx.getState(COUNT); // recent, per-cat and total are not registered
      },
      processElement() {},
    }, { uid: "sessions" }).sinkTo(sink, { uid: "out" });
    return job;
  };
  await assert.rejects(partial(false).start(), (e: unknown) => {
    assert.ok(e instanceof NonRestoredStateError);
    assert.match((e as Error).message, /"extra"/);
    return true;
  });
  const ok = partial(true);
  await ok.run();
  const report = ok.restoreReport!;
  assert.deepEqual(
    report.nonRestored.map((n) => `${n.uid}/${n.state ?? "*"}:${n.reason}`).sort(),
    ["extra/*:operator-missing", "sessions/per-cat:state-not-registered", "sessions/recent:state-not-registered", "sessions/total:state-not-registered"],
  );
  clearMemoryStorage(storage.slice("memory:".length));
});

test("a running savepoint is self-contained and leaves the incremental chain intact", async () => {
  const storage = uniq("memory:sp-chain");
  const spUri = uniq("memory:sp-target");
  const items: Upd[] = [];
  for (let i = 0; i < 300; i++) items.push({ user: `user-${i}` });
  for (let i = 0; i < 20; i++) items.push({ user: `user-${i}` });
  for (let i = 20; i < 30; i++) items.push({ user: `user-${i}` });
  const gate = gatedSource(items);
  const job = updJob("spchain", storage, gate.source, 4);
  await job.start();
  gate.allow(300);
  await waitWhileRunning(job, "300", () => job.records >= 300);
  await job.triggerCheckpoint();
  gate.allow(320);
  await waitWhileRunning(job, "320", () => job.records >= 320);
  const sp = await job.savepoint(spUri);
  gate.allow(330);
  await waitWhileRunning(job, "330", () => job.records >= 330);
  const c = await job.triggerCheckpoint();
  await job.cancel();

  const snap = await openSnapshot(spUri);
  assert.equal(snap.manifest.kind, "savepoint");
  assert.equal(snap.manifest.chunkRoot, ".");
  const target = await openStorage(spUri);
  const st = snap.manifest.operators.find((o) => o.uid === "counter")!.states[0];
  assert.equal(st.chunks.length, 4, "one base per subtask range");
  for (const ch of st.chunks) {
    assert.equal(ch.type, "base");
    assert.ok(!ch.path.startsWith("shared/") && (await target.exists(ch.path)), `${ch.path} lives inside the savepoint`);
  }
  assert.equal((await readState(snap, "counter", "v")).length, 300);
  assert.equal(sp.id + 1, c.id);
  const cst = c.manifest.operators.find((o) => o.uid === "counter")!.states[0];
  const deltas = cst.chunks.filter((x) => x.order === c.id);
  assert.ok(deltas.every((x) => x.type === "delta"));
  assert.equal(deltas.reduce((n, x) => n + x.rows, 0), 30, "the checkpoint after the savepoint holds every change since the last checkpoint");
  await target.close();
  clearMemoryStorage(storage.slice("memory:".length));
  clearMemoryStorage(spUri.slice("memory:".length));
});

test("NDJSON files in, NDJSON part files out, on the filesystem: exactly-once across a kill", async () => {
  const dir = mkdtempSync(join(tmpdir(), "arrowpoint-rt-"));
  try {
    mkdirSync(join(dir, "in"));
    const lines: string[][] = [[], []];
    for (let i = 0; i < 1500; i++) lines[i % 2].push(JSON.stringify({ user: `u${(i * 7) % 23}`, n: i }));
    writeFileSync(join(dir, "in", "a.ndjson"), lines[0].join("\n") + "\n");
    writeFileSync(join(dir, "in", "b.ndjson"), lines[1].join("\n")); // no final newline
    const C = valueState<number>("c");
    const build = (out: string, kill?: number, restore = false) => {
      const job = new Job("files", { checkpoints: { storage: join(dir, `ckpt-${out}`) }, restore: restore ? { from: "latest" } : undefined, faults: kill ? { killAfterRecords: kill } : undefined, batchSize: 16 });
      let n = 0;
      job.fromSource(ndjsonSource<{ user: string; n: number }>({ storage: join(dir, "in"), paths: ["a.ndjson", "b.ndjson"], readSize: 1000 }), { uid: "files", parallelism: 2 })
        .keyBy((r) => r.user)
        .process<{ user: string; c: number }>({
          open(ctx) {
            ctx.getState(C);
          },
          processElement(r, ctx) {
            const s = ctx.getState(C);
            s.update((s.value() ?? 0) + 1);
            ctx.collect({ user: r.user, c: s.value()! });
            if (++n % 200 === 0 && job.status === "running") job.triggerCheckpoint().catch(() => {});
          },
        }, { uid: "count", parallelism: 3 })
        .sinkTo(ndjsonFileSink(join(dir, out)), { uid: "out", parallelism: 2 });
      return job;
    };
    await build("clean").run();
    const clean = (await readNdjsonParts(join(dir, "clean"))).map((r) => JSON.stringify(r)).sort();
    assert.equal(clean.length, 1500);
    await assert.rejects(build("out", 700).run(), JobFailedError);
    await build("out", undefined, true).run();
    const got = (await readNdjsonParts(join(dir, "out"))).map((r) => JSON.stringify(r)).sort();
    assert.deepEqual(got, clean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("barriers align across a union of two sources", async () => {
  const storage = uniq("memory:union");
  const C = valueState<number>("c");
  const build = (sink: CollectingSink<string>, kill?: number) => {
    const job = new Job("union", { checkpoints: { storage }, restore: { from: "latest" }, faults: kill ? { killAfterRecords: kill } : undefined, batchSize: 8 });
    const a = job.fromSource(generatorSource({ count: 800, seed: 1, make: (i) => `a${i % 13}` }), { uid: "a" });
    const b = job.fromSource(generatorSource({ count: 600, seed: 2, make: (i) => `b${i % 17}` }), { uid: "b", parallelism: 2 });
    let n = 0;
    a.union(b).keyBy((k) => k).process<string>({
      open(ctx) {
        ctx.getState(C);
      },
      processElement(k, ctx) {
        const s = ctx.getState(C);
        s.update((s.value() ?? 0) + 1);
        ctx.collect(`${k}:${s.value()}`);
        if (++n % 97 === 0 && job.status === "running") job.triggerCheckpoint().catch(() => {});
      },
    }, { uid: "count", parallelism: 3 }).sinkTo(sink, { uid: "out" });
    return job;
  };
  const clean = new CollectingSink<string>();
  const cleanStorage = storage;
  await build(clean).run();
  clearMemoryStorage(cleanStorage.slice("memory:".length));
  const sink = new CollectingSink<string>();
  await assert.rejects(build(sink, 900).run(), JobFailedError);
  await build(sink).run();
  assert.deepEqual(sorted(sink.committed), sorted(clean.committed));
  clearMemoryStorage(storage.slice("memory:".length));
});

test("misuse is refused with clear errors", async () => {
  const noUid = new Job("bad");
  noUid.fromSource(arraySource([1]), { uid: "in" }).keyBy((x) => String(x)).process({ processElement() {} });
  await assert.rejects(noUid.start(), /has no uid/);
  const dup = new Job("dup");
  dup.fromSource(arraySource([1]), { uid: "x" }).sinkTo(new CollectingSink<number>(), { uid: "x" });
  await assert.rejects(dup.start(), /used by two operators/);
  const badKey = new Job("badkey");
  badKey.fromSource(arraySource([1, 2]), { uid: "in" }).keyBy((x) => x).process({ processElement() {} }, { uid: "k" });
  await assert.rejects(badKey.run(), (e: unknown) => e instanceof JobFailedError && /keyType "string"/.test((e as Error).message));
  const throws = new Job("throws");
  throws.fromSource(arraySource(["a"]), { uid: "in" }).keyBy((x) => x).process({ processElement() { throw new Error("boom"); } }, { uid: "k" });
  await assert.rejects(throws.run(), (e: unknown) => e instanceof JobFailedError && (e.cause as Error).message === "boom");
  const twice = new Job("twice");
  twice.fromSource(arraySource([1]), { uid: "in" }).sinkTo(new CollectingSink<number>(), { uid: "out" });
  await twice.run();
  await assert.rejects(twice.start(), /a job runs once/);
});

test("an unbounded job stops with a savepoint and resumes from it", async () => {
  const storage = new MemoryStorage(uniq("unbounded"));
  const spTarget = uniq("memory:unbounded-sp");
  const sink = new CollectingSink<number>();
  const make = () => {
    const job = new Job("unbounded", { checkpoints: { storage, intervalMs: 5 } });
    job.fromSource(generatorSource({ count: Infinity, make: (i) => i }), { uid: "nums" }).sinkTo(sink, { uid: "out" });
    return job;
  };
  const a = make();
  await a.start();
  await waitWhileRunning(a, "records", () => a.records > 5000);
  const sp = await a.stopWithSavepoint(spTarget);
  assert.equal(a.status, "stopped");
  const n = sink.committed.length;
  assert.ok(n > 5000 && n === Number(sp.manifest.metadata?.records), "everything before the savepoint is committed, nothing after");
  const b = new Job("unbounded", { restore: { from: spTarget } });
  b.fromSource(generatorSource({ count: n + 100, make: (i) => i }), { uid: "nums" }).sinkTo(sink, { uid: "out" });
  await b.run();
  assert.deepEqual(sink.committed, Array.from({ length: n + 100 }, (_, i) => i));
  clearMemoryStorage(spTarget.slice("memory:".length));
});

test("a tolerated checkpoint failure makes the next checkpoint re-base, and restoring it gives the right state", async () => {
  const inner = new MemoryStorage(uniq("tolerate"));
  const items: Upd[] = [];
  for (let i = 0; i < 200; i++) items.push({ user: `user-${i % 50}` });
  const gate = gatedSource(items);
  const faulty = new FaultyStorage(inner, {});
  const events: string[] = [];
  const job = new Job("tolerate", { maxParallelism: 128, checkpoints: { storage: faulty, tolerableFailures: 1, retain: 5 }, onEvent: (e) => events.push(e.type) });
  job.fromSource(gate.source, { uid: "upd" }).keyBy((u) => u.user).reduce((a) => ({ user: a.user, del: !a.del }), { uid: "r", parallelism: 2 }).sinkTo(new CollectingSink<Upd>(), { uid: "out" });
  await job.start();
  gate.allow(100);
  await waitWhileRunning(job, "100", () => job.records >= 100);
  await job.triggerCheckpoint();
  gate.allow(150);
  await waitWhileRunning(job, "150", () => job.records >= 150);
  faulty.reset({ failAt: 1, mode: "fail" }); // the next write fails, once
  await assert.rejects(job.triggerCheckpoint());
  assert.deepEqual(events.slice(-1), ["checkpoint-failed"]);
  gate.allow(200);
  await waitWhileRunning(job, "200", () => job.records >= 200);
  const after = await job.triggerCheckpoint();
  assert.equal(job.status, "running", "one failure is tolerated");
  const st = after.manifest.operators.find((o) => o.uid === "r")!.states[0];
  assert.ok(st.chunks.every((c) => c.type === "base" && c.order === after.id), "the chain lost a link: every subtask re-bases");
  await job.cancel();
  const rows = await readState(await openSnapshot(inner, `chk-${String(after.id).padStart(6, "0")}`), "r", "reduce");
  assert.equal(rows.length, 50);
  // 4 records per key: the first is stored as is, the next three toggle `del`: true, false, true
  for (let i = 0; i < rows.length; i++) assert.equal((rows.values[i] as Upd).del, true, "each key saw all 4 records exactly once");
});

test("'latest' follows the newest lineage: after restoring an older checkpoint, new ids start above every snapshot of the root", async () => {
  const storage = new MemoryStorage(uniq("lineage"));
  const items: Upd[] = [];
  for (let i = 0; i < 100; i++) items.push({ user: `user-${i % 10}` });
  const gate = gatedSource(items);
  const a = updJob("lineage", storage, gate.source, 2);
  await a.start();
  gate.allow(10);
  await waitWhileRunning(a, "10", () => a.records >= 10);
  const c1 = await a.triggerCheckpoint();
  gate.allow(20);
  await waitWhileRunning(a, "20", () => a.records >= 20);
  await a.triggerCheckpoint();
  const sp = await a.savepoint(); // a running savepoint under <root>/savepoints/
  await a.cancel();
  const b = updJob("lineage", storage, gatedSource(items).source, 3, 10, { from: c1.id });
  await b.start();
  const first = await b.triggerCheckpoint();
  assert.ok(first.id > sp.id, `the new lineage's checkpoint ${first.id} is newer than savepoint ${sp.id}`);
  await b.cancel();
  const c = updJob("lineage", storage, gatedSource(items).source, 1, 10, { from: "latest" });
  await c.start();
  assert.equal(c.restoreReport?.checkpointId, b.snapshots[b.snapshots.length - 1].id);
  await c.cancel();
});
