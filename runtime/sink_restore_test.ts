// Restoring a sink's pending transactions (issue 11, defect 8): a transaction that the snapshot's own
// completion committed is never needed again, so a relocated savepoint resumes with the sink writing
// elsewhere; a transaction staged and never committed is an error that says what to do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clearMemoryStorage, MemoryStorage } from "../backends/memory.ts";
import { Job } from "./job.ts";
import { CollectingSink, ndjsonFileSink, readNdjsonParts, type Sink, UncommittedOutputError, UnknownTransactionError } from "./sinks.ts";
import { gatedSource } from "./_test_util.ts";

const ITEMS = Array.from({ length: 300 }, (_, i) => i);

function numbersJob(source: ReturnType<typeof gatedSource<number>>["source"], sink: Sink<number, unknown>, options: ConstructorParameters<typeof Job>[1], sinkUid = "out"): Job {
  const job = new Job("numbers", { batchSize: 16, ...options });
  job.fromSource(source, { uid: "nums" }).sinkTo(sink, { uid: sinkUid });
  return job;
}

async function recordsAtLeast(job: Job, n: number): Promise<void> {
  while (job.records < n) await new Promise((r) => setTimeout(r, 1));
}

test("a stop-with-savepoint copied elsewhere resumes with ndjsonFileSink writing to a new folder: each record once, old output untouched (regression)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sink-restore-"));
  try {
    const gate = gatedSource(ITEMS, "nums");
    const a = numbersJob(gate.source, ndjsonFileSink<number>(join(dir, "out-1")), { checkpoints: { storage: join(dir, "ckpt") } });
    await a.start();
    gate.allow(120);
    await recordsAtLeast(a, 120);
    const sp = await a.stopWithSavepoint(join(dir, "sp"));
    await a.done;
    const first = await readNdjsonParts<number>(join(dir, "out-1"));
    assert.deepEqual(first, ITEMS.slice(0, 120), "the stop committed everything before the savepoint");
    await cp(join(dir, "sp"), join(dir, "moved", "sp"), { recursive: true });
    await rm(join(dir, "sp"), { recursive: true });

    const rest = gatedSource(ITEMS, "nums", true);
    rest.allow(ITEMS.length);
    const b = numbersJob(rest.source, ndjsonFileSink<number>(join(dir, "out-2")), { restore: { from: join(dir, "moved", "sp") } });
    const result = await b.run();
    assert.equal(result.status, "finished");
    assert.equal(result.restore?.checkpointId, sp.id);
    assert.deepEqual(await readNdjsonParts<number>(join(dir, "out-2")), ITEMS.slice(120));
    assert.deepEqual(await readNdjsonParts<number>(join(dir, "out-1")), first, "the old folder is left as it was");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a stop-with-savepoint resumes into a new CollectingSink instance (regression)", async () => {
  const gate = gatedSource(ITEMS, "nums");
  const old = new CollectingSink<number>();
  const a = numbersJob(gate.source, old, { checkpoints: { storage: new MemoryStorage(`sink-restore-${Math.random()}`) } });
  await a.start();
  gate.allow(90);
  await recordsAtLeast(a, 90);
  const target = `memory:sink-restore-sp-${Math.random()}`;
  await a.stopWithSavepoint(target);
  await a.done;
  assert.deepEqual(old.committed, ITEMS.slice(0, 90));
  const rest = gatedSource(ITEMS, "nums", true);
  rest.allow(ITEMS.length);
  const fresh = new CollectingSink<number>();
  const b = numbersJob(rest.source, fresh, { restore: { from: target } });
  assert.equal((await b.run()).status, "finished");
  assert.deepEqual(fresh.committed, ITEMS.slice(90));
  clearMemoryStorage(target.slice("memory:".length));
});

test("output staged by a running savepoint and never committed: an error saying what to do with a sink that cannot find it, committed with the sink that staged it", async () => {
  const gate = gatedSource(ITEMS, "nums");
  const sink = new CollectingSink<number>();
  const a = numbersJob(gate.source, sink, { checkpoints: { storage: new MemoryStorage(`sink-running-${Math.random()}`) } });
  await a.start();
  gate.allow(70);
  await recordsAtLeast(a, 70);
  const target = `memory:sink-running-sp-${Math.random()}`;
  await a.savepoint(target); // stages the 70 records; only a later checkpoint would commit them
  a.kill("before any checkpoint committed the savepoint's output");
  await a.done.catch(() => {});
  assert.deepEqual(sink.committed, []);
  assert.equal(sink.pending, 1);

  const rest = () => {
    const g = gatedSource(ITEMS, "nums", true);
    g.allow(ITEMS.length);
    return g.source;
  };
  const elsewhere = numbersJob(rest(), new CollectingSink<number>(), { restore: { from: target } });
  await assert.rejects(elsewhere.run(), (e: unknown) => {
    assert.ok(e instanceof UncommittedOutputError, String(e));
    assert.equal(e.uid, "out");
    assert.equal(e.committables.length, 1);
    assert.ok(e.cause instanceof UnknownTransactionError);
    assert.match(e.message, /^Cannot restore sink "out" as the snapshot holds transaction out\/\w+\/0\/\d+ staged but never committed/);
    assert.match(e.message, /Restore with the sink writing where it wrote when the snapshot was taken/);
    assert.match(e.message, /give the sink a new uid and restore with allowNonRestoredState: true/);
    return true;
  });

  // What the message advises: a new sink uid drops the transaction, and says so.
  const dropped = new CollectingSink<number>();
  const renamed = numbersJob(rest(), dropped, { restore: { from: target, allowNonRestoredState: true } }, "out-v2");
  const r = await renamed.run();
  assert.deepEqual(r.restore?.nonRestored, [{ uid: "out", reason: "operator-missing" }]);
  assert.deepEqual(dropped.committed, ITEMS.slice(70));

  // The sink that staged it commits it on restore: every record exactly once.
  const same = numbersJob(rest(), sink, { restore: { from: target } });
  await same.run();
  assert.deepEqual(sink.committed, ITEMS);
  clearMemoryStorage(target.slice("memory:".length));
});
