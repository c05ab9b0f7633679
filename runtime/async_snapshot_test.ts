import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../backends/memory.ts";
import type { Storage } from "../backends/storage.ts";
import { StorageError } from "../format/errors.ts";
import { checkpointDirName, manifestPath } from "../snapshot/layout.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { aggregatingState, listState, mapState, valueState } from "./state.ts";
import { ForwardingStorage, gatedSource } from "./_test_util.ts";
import { asyncPhaseHooks } from "./_async_snapshot.ts";
import { copyPlain, copyValues, valueCopierOf } from "./_capture_copy.ts";
import { KeyedStateBackend } from "./keyed_backend.ts";
import { assignKeyGroup } from "../format/key_group.ts";

function uniq(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2)}`;
}

/** A promise with its resolver. */
function latch(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/**
 * A memory storage whose puts may wait for the test (`holdIf`) or fail (`failIf`): asynchronous phases
 * made observable without timing.
 */
class HeldStorage extends ForwardingStorage {
  holdIf: (path: string) => Promise<void> | undefined = () => undefined;
  failIf: (path: string) => boolean = () => false;
  readonly puts: string[] = [];
  constructor(name: string) {
    super(new MemoryStorage(name));
  }
  override async put(path: string, bytes: Uint8Array): Promise<void> {
    const hold = this.holdIf(path);
    if (hold) await hold;
    if (this.failIf(path)) throw new StorageError("put", path, "failed by the test");
    this.puts.push(path);
    await this.inner.put(path, bytes);
  }
  /** The test reads the checkpoints after the job has closed its storage. */
  override close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Ev {
  user: string;
  v: number;
}

const OBJ = valueState<{ n: number; tags: string[] }>("obj");
const TYPED = valueState<{ n: number; sum: number }>("typed", {
  value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }, { name: "sum", type: "float64" }] } },
});
const LIST = listState<number>("list");
const AGG = aggregatingState<number, { sum: number; seen: number[] }, number>("agg", {
  createAccumulator: () => ({ sum: 0, seen: [] }),
  add: (v, acc) => {
    acc.sum += v; // in place, as window aggregates do
    acc.seen.push(v);
    return acc;
  },
  getResult: (acc) => acc.sum,
});
const MAP = mapState<string, { c: number }>("map");

/** Counts processed records and lets a test wait for a count, without polling. */
class Progress {
  n = 0;
  private waiters: { at: number; open(): void }[] = [];
  add(): void {
    this.n++;
    this.waiters = this.waiters.filter((w) => (w.at <= this.n ? (w.open(), false) : true));
  }
  reach(at: number): Promise<void> {
    if (this.n >= at) return Promise.resolve();
    return new Promise<void>((open) => this.waiters.push({ at, open }));
  }
}

/** A keyed job whose function changes every kind of state, mostly in place. */
function mutatingJob(name: string, storage: Storage, items: Ev[], progress: Progress, opts: { parallelism?: number; tolerableFailures?: number; sink?: CollectingSink<string> } = {}) {
  const gate = gatedSource(items);
  const events: string[] = [];
  const job = new Job(name, { maxParallelism: 128, checkpoints: { storage, retain: 10, tolerableFailures: opts.tolerableFailures }, onEvent: (e) => events.push(e.type) });
  job.fromSource(gate.source, { uid: "events" })
    .keyBy((e) => e.user)
    .process<string>({
      open(ctx) {
        ctx.getState(OBJ);
        ctx.getState(TYPED);
        ctx.getListState(LIST);
        ctx.getAggregatingState(AGG);
        ctx.getMapState(MAP);
      },
      processElement(e, ctx) {
        const obj = ctx.getState(OBJ);
        const o = obj.value() ?? { n: 0, tags: [] };
        o.n++;
        o.tags.push(`t${e.v}`);
        obj.update(o);
        const typed = ctx.getState(TYPED);
        const t = typed.value();
        typed.update({ n: (t?.n ?? 0) + 1, sum: (t?.sum ?? 0) + e.v });
        ctx.getListState(LIST).add(e.v);
        ctx.getAggregatingState(AGG).add(e.v);
        const m = ctx.getMapState(MAP);
        const c = m.get("x") ?? { c: 0 };
        c.c += e.v;
        m.put("x", c);
        progress.add();
        ctx.collect(`${e.user}:${e.v}`);
      },
    }, { uid: "k", parallelism: opts.parallelism ?? 2 })
    .sinkTo(opts.sink ?? new CollectingSink<string>(), { uid: "out" });
  return { job, gate, events };
}

/** What each state holds per user after `items`. */
function expected(items: readonly Ev[]) {
  const out = new Map<string, { obj: { n: number; tags: string[] }; typed: { n: number; sum: number }; list: number[]; agg: { sum: number; seen: number[] }; map: { c: number } }>();
  for (const e of items) {
    let s = out.get(e.user);
    if (!s) out.set(e.user, s = { obj: { n: 0, tags: [] }, typed: { n: 0, sum: 0 }, list: [], agg: { sum: 0, seen: [] }, map: { c: 0 } });
    s.obj.n++;
    s.obj.tags.push(`t${e.v}`);
    s.typed = { n: s.typed.n + 1, sum: s.typed.sum + e.v };
    s.list.push(e.v);
    s.agg.sum += e.v;
    s.agg.seen.push(e.v);
    s.map.c += e.v;
  }
  return out;
}

/** The state of checkpoint `id` per user, in the shape of {@link expected}. */
async function stateOf(storage: Storage, id: number) {
  const snap = await openSnapshot(storage, checkpointDirName(id));
  const by = async (state: string) => {
    const rows = await readState(snap, "k", state);
    const m = new Map<string, unknown>();
    for (let i = 0; i < rows.length; i++) m.set(rows.keys![i] as string, rows.values[i]);
    return m;
  };
  const [obj, typed, list, agg, map] = await Promise.all(["obj", "typed", "list", "agg", "map"].map(by));
  const out = new Map<string, unknown>();
  for (const user of obj.keys()) out.set(user, { obj: obj.get(user), typed: typed.get(user), list: list.get(user), agg: agg.get(user), map: map.get(user) });
  return out;
}

function events(users: number, perUser: number, from = 0): Ev[] {
  const out: Ev[] = [];
  for (let r = 0; r < perUser; r++) for (let u = 0; u < users; u++) out.push({ user: `u${u}`, v: from + r * users + u + 1 });
  return out;
}

test("state changed in place right after the barrier stays out of the checkpoint; the changes go to the next delta", async () => {
  const storage = new MemoryStorage(uniq("async-consistent"));
  const first = events(6, 2);
  const second = events(6, 2, 100);
  const progress = new Progress();
  const { job, gate } = mutatingJob("consistent", storage, [...first, ...second], progress);
  const hold = latch();
  const waiting: string[] = [];
  const allWaiting = latch();
  asyncPhaseHooks.beforeEncode = (at) => {
    if (at.id !== 1 || at.uid !== "k") return undefined;
    waiting.push(`${at.uid}/${at.subtask}`);
    if (waiting.length === 2) allWaiting.open();
    return hold.promise;
  };
  try {
    await job.start();
    gate.allow(first.length);
    await progress.reach(first.length);
    const one = job.triggerCheckpoint();
    await allWaiting.promise; // both subtasks captured checkpoint 1 and wait before encoding it
    gate.allow(first.length + second.length);
    await progress.reach(first.length + second.length); // the same keys changed, mostly in place
    hold.open();
    const info1 = await one;
    assert.deepEqual(await stateOf(storage, info1.id), expected(first), "checkpoint 1 holds the values at its barrier");
    const info2 = await job.triggerCheckpoint();
    assert.deepEqual(await stateOf(storage, info2.id), expected([...first, ...second]), "checkpoint 2 holds the later changes");
    const k = info2.manifest.operators.find((o) => o.uid === "k")!;
    for (const st of k.states) {
      const mine = st.chunks.filter((c) => c.order === info2.id);
      assert.ok(mine.length > 0 && mine.every((c) => c.type === "delta"), `state ${st.name}: the changes after barrier 1 are checkpoint 2's delta`);
    }
    gate.end();
    await job.done;
  } finally {
    asyncPhaseHooks.beforeEncode = undefined;
  }
});

test("a failing asynchronous write fails that checkpoint only (tolerated): nothing of it becomes visible, the next one re-bases", async () => {
  const storage = new HeldStorage(uniq("async-fail"));
  const first = events(8, 2);
  const second = events(8, 1, 50);
  const progress = new Progress();
  const { job, gate, events: seen } = mutatingJob("fail", storage, [...first, ...second], progress, { tolerableFailures: 1 });
  await job.start();
  gate.allow(first.length);
  await progress.reach(first.length);
  storage.failIf = (path) => path.includes("chk-000001-") && path.includes("/list/");
  await assert.rejects(job.triggerCheckpoint(), /failed by the test/);
  assert.deepEqual(seen.slice(-1), ["checkpoint-failed"]);
  assert.equal(await storage.exists(manifestPath(checkpointDirName(1))), false, "no manifest: the failed checkpoint does not exist");
  assert.equal(job.status, "running", "one failure is tolerated");
  storage.failIf = () => false;
  gate.allow(first.length + second.length);
  await progress.reach(first.length + second.length);
  const info = await job.triggerCheckpoint();
  for (const st of info.manifest.operators.find((o) => o.uid === "k")!.states) {
    assert.ok(st.chunks.every((c) => c.type === "base" && c.order === info.id), `state ${st.name}: the chain lost a link, every subtask re-bases`);
  }
  assert.deepEqual(await stateOf(storage, info.id), expected([...first, ...second]));
  gate.end();
  await job.done;
});

test("a failing asynchronous write beyond the tolerated failures fails the job", async () => {
  const storage = new HeldStorage(uniq("async-fail-job"));
  const progress = new Progress();
  const items = events(4, 2);
  const { job, gate } = mutatingJob("fail-job", storage, items, progress);
  await job.start();
  gate.allow(items.length);
  await progress.reach(items.length);
  storage.failIf = (path) => path.includes("/obj/");
  await assert.rejects(job.triggerCheckpoint(), /failed by the test/);
  await assert.rejects(job.done, /failed by the test/);
  assert.equal(job.status, "failed");
});

test("a barrier that finds the previous asynchronous part still running waits for it (one part per subtask at a time)", async () => {
  const storage = new HeldStorage(uniq("async-busy"));
  const first = events(8, 2);
  const second = events(8, 1, 50);
  const progress = new Progress();
  const { job, gate } = mutatingJob("busy", storage, [...first, ...second], progress, { tolerableFailures: 1 });
  // Checkpoint 1: subtask 0's write fails (the checkpoint fails at once) while subtask 1's write is held.
  const release = latch();
  const held = latch();
  storage.failIf = (path) => path.includes("chk-000001-kg-0-") && path.includes("/obj/");
  storage.holdIf = (path) => {
    if (!path.includes("chk-000001-") || !path.includes("/obj/")) return undefined;
    if (path.includes("-kg-64-")) {
      held.open();
      return release.promise;
    }
    return held.promise; // subtask 0 fails only once subtask 1's write is under way
  };
  const order: string[] = [];
  const captured2 = latch();
  asyncPhaseHooks.beforeEncode = (at) => {
    if (at.uid !== "k") return undefined;
    order.push(`part ${at.id} of subtask ${at.subtask}`);
    if (at.id === 2 && at.subtask === 0) captured2.open();
    return undefined;
  };
  try {
    await job.start();
    gate.allow(first.length);
    await progress.reach(first.length);
    const one = job.triggerCheckpoint();
    await assert.rejects(one, /failed by the test/);
    await held.promise;
    const two = job.triggerCheckpoint();
    await captured2.promise; // the barrier of checkpoint 2 passed the source and subtask 0
    order.push("release");
    release.open();
    const info2 = await two;
    assert.ok(order.indexOf("part 2 of subtask 1") > order.indexOf("release"), `subtask 1 captured checkpoint 2 only after its part of checkpoint 1 ended: ${order.join(", ")}`);
    assert.equal(await storage.exists(manifestPath(checkpointDirName(1))), false, "checkpoint 1 never becomes visible, though subtask 1's chunk was written");
    assert.deepEqual(await stateOf(storage, info2.id), expected(first));
    gate.allow(first.length + second.length);
    await progress.reach(first.length + second.length);
    const info3 = await job.triggerCheckpoint();
    assert.deepEqual(await stateOf(storage, info3.id), expected([...first, ...second]));
    gate.end();
    await job.done;
  } finally {
    asyncPhaseHooks.beforeEncode = undefined;
  }
});

test("stop-with-savepoint during a checkpoint's asynchronous phase waits for it, then stops: output once, state restorable", async () => {
  const storage = new HeldStorage(uniq("async-stop"));
  const first = events(6, 2);
  const rest = events(6, 2, 100);
  const progress = new Progress();
  const sink = new CollectingSink<string>();
  const { job, gate } = mutatingJob("stop", storage, [...first, ...rest], progress, { sink });
  const release = latch();
  const held = latch();
  storage.holdIf = (path) => {
    if (path.includes("chk-000001-") && path.includes("/obj/")) {
      held.open();
      return release.promise;
    }
    return undefined;
  };
  await job.start();
  gate.allow(first.length);
  await progress.reach(first.length);
  const one = job.triggerCheckpoint();
  await held.promise; // checkpoint 1 is in its asynchronous phase
  const stop = job.stopWithSavepoint();
  gate.allow(first.length + rest.length); // read nothing more after stopWithSavepoint()
  release.open();
  const info1 = await one;
  const sp = await stop;
  assert.equal(job.status, "stopped");
  assert.equal(progress.n, first.length, "nothing read after the stop was asked");
  assert.deepEqual(await stateOf(storage, info1.id), expected(first));
  assert.deepEqual(sink.committed.slice().sort(), first.map((e) => `${e.user}:${e.v}`).sort(), "everything before the savepoint committed once");
  // Resume from the savepoint and read the rest.
  const progress2 = new Progress();
  const gate2 = gatedSource([...first, ...rest], "events", true);
  const again = new Job("stop", { maxParallelism: 128, checkpoints: { storage, retain: 10 }, restore: { from: sp.location } });
  const seen: number[] = [];
  again.fromSource(gate2.source, { uid: "events" })
    .keyBy((e) => e.user)
    .process<string>({
      open(ctx) {
        ctx.getState(OBJ);
        ctx.getState(TYPED);
        ctx.getListState(LIST);
        ctx.getAggregatingState(AGG);
        ctx.getMapState(MAP);
      },
      processElement(e, ctx) {
        seen.push(e.v);
        progress2.add();
        ctx.collect(`${e.user}:${e.v}`);
      },
    }, { uid: "k", parallelism: 3 })
    .sinkTo(sink, { uid: "out" });
  gate2.allow(first.length + rest.length);
  await again.run();
  assert.deepEqual(seen.slice().sort((a, b) => a - b), rest.map((e) => e.v).sort((a, b) => a - b), "the restored job reads exactly the rest");
  assert.equal(sink.committed.length, first.length + rest.length, "each record's output once");
});

test("the capture copies what user code could change in place, and nothing it cannot", () => {
  const struct = valueCopierOf({ kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }, { name: "b", type: "binary" }] } } });
  const scalar = valueCopierOf({ kind: "value", keyType: "string", value: { encoding: "arrow", type: "float64" } });
  const list = valueCopierOf({ kind: "list", keyType: "string", value: { encoding: "arrow", type: "int32" } });
  assert.equal(scalar, null, "numbers cannot change: no copy");
  const v = { n: 1, b: new Uint8Array([1, 2]) };
  const values: unknown[] = [v, null];
  copyValues(values, 2, struct);
  v.n = 2;
  v.b[0] = 9;
  assert.deepEqual(values, [{ n: 1, b: new Uint8Array([1, 2]) }, null]);
  const items = [1, 2];
  const lists: unknown[] = [items];
  copyValues(lists, 1, list);
  items.push(3);
  assert.deepEqual(lists, [[1, 2]]);
  class Point {
    constructor(public x: number) {}
    get double(): number {
      return this.x * 2;
    }
  }
  const p = new Point(2);
  const deep = { at: new Date(5), m: new Map([["a", [p]]]) };
  const copy = copyPlain(deep) as typeof deep;
  p.x = 10;
  deep.at.setTime(6);
  assert.equal(copy.at.getTime(), 5);
  const q = copy.m.get("a")![0];
  assert.equal(q.x, 2);
  assert.equal(q.double, 4, "the prototype is kept, so getters still read the copy");
});

test("a value-like table copies a captured value when user code first reaches it, not at the capture", () => {
  const desc = valueState<{ n: number }>("s", { value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }] } } });
  const lists = listState<number>("l", { value: { encoding: "arrow", type: "int32" } });
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const s = b.getState(desc);
  const l = b.getListState(lists);
  const at = (k: string) => b.setCurrentKey(k, assignKeyGroup(k, 128));
  for (const k of ["a", "b"]) {
    at(k);
    s.update({ n: k === "a" ? 1 : 2 });
    l.add(1);
  }
  const table = b.table("s")!;
  const rows = table.captureAll(0);
  const release = table.holdCaptured(valueCopierOf(table.layout)!)!;
  const listTable = b.table("l")!;
  const listRows = listTable.captureAll(0);
  const releaseList = listTable.holdCaptured(valueCopierOf(listTable.layout)!)!;
  const captured = rows.values.slice();
  at("a");
  s.value()!.n = 99; // in place, after the capture
  l.add(2); // pushes onto the stored array
  assert.equal(s.value()!.n, 99, "the change stays in the live state");
  assert.deepEqual(rows.values.map((v) => (v as { n: number }).n).sort(), [1, 2], "the captured rows keep the values of the barrier");
  assert.deepEqual(listRows.values, [[1], [1]]);
  release();
  releaseList();
  at("b");
  const bValue = s.value();
  assert.ok(captured.includes(bValue), "a value nobody reached while held was never copied");
});

test("a value-like table copies nothing for a write that replaces or removes a held value without reading it", () => {
  const desc = valueState<{ n: number }>("s", { value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }] } } });
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const s = b.getState(desc);
  const at = (k: string) => b.setCurrentKey(k, assignKeyGroup(k, 128));
  for (const k of ["a", "b"]) {
    at(k);
    s.update({ n: k === "a" ? 1 : 2 });
  }
  const table = b.table("s")!;
  const rows = table.captureAll(0);
  const copier = valueCopierOf(table.layout)!;
  let copies = 0;
  const release = table.holdCaptured((v) => (copies++, copier(v)))!;
  at("a");
  const fresh = { n: 7 };
  s.update(fresh); // a blind write: the captured value stays the snapshot's, nothing to copy
  at("b");
  s.clear();
  assert.equal(copies, 0, "neither the replaced nor the removed value was copied");
  at("a");
  assert.equal(s.value(), fresh, "the written value is the live one, not a copy of it");
  assert.equal(copies, 0, "a value written after the capture is not shared with it");
  assert.deepEqual(rows.values.map((v) => (v as { n: number }).n).sort(), [1, 2], "the captured rows keep the values of the barrier");
  release();
});
