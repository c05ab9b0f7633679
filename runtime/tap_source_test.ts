// tapSource (a job acting at positions it reaches) and stop-with-savepoint from a tap: the snapshots land
// exactly at the positions asked, whatever the speed of the machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../backends/memory.ts";
import type { Storage } from "../backends/storage.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { Job, type SnapshotInfo } from "./job.ts";
import { CollectingSink, type Sink } from "./sinks.ts";
import { generatorSource, type Source } from "./sources.ts";
import { tapSource } from "./tap_source.ts";
import { events, ForwardingStorage, sessionJob, sorted } from "./_test_util.ts";

let unique = 0;

/** The records a snapshot's source positions account for (generator positions are records per split). */
async function positionOf(info: SnapshotInfo, uid: string): Promise<number> {
  const snap = await openSnapshot(info.location);
  const rows = await readState(snap, uid, "positions");
  return rows.values.reduce<number>((n, v) => n + Number((v as { position?: number }).position ?? 0), 0);
}

/** A storage whose writes wait while `closed` (a checkpoint that cannot finish yet). */
class GatedStorage extends ForwardingStorage {
  closed = false;
  private waiters: (() => void)[] = [];
  open(): void {
    this.closed = false;
    for (const w of this.waiters.splice(0)) w();
  }
  private async pass(): Promise<void> {
    while (this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
  override async put(path: string, bytes: Uint8Array): Promise<void> {
    await this.pass();
    return this.inner.put(path, bytes);
  }
  override async putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    await this.pass();
    return this.inner.putStream(path, source);
  }
  override async putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    await this.pass();
    return this.inner.putIfAbsent(path, bytes);
  }
}

/** Wraps a sink so `onWrite(total)` sees the records written so far by all its writers. */
function countingSink<T>(inner: Sink<T, unknown>, onWrite: (total: number) => void): Sink<T, unknown> {
  let total = 0;
  return {
    name: inner.name,
    createWriter(context) {
      const w = inner.createWriter(context);
      return {
        write(values) {
          w.write(values);
          total += values.length;
          onWrite(total);
        },
        prepareCommit: (id) => w.prepareCommit(id),
        close: () => w.close?.(),
      };
    },
    commit: (c) => inner.commit(c),
  };
}

test("tapSource: a checkpoint returned from the tap lands exactly where it was asked, on every split", async () => {
  const storage = new MemoryStorage(`tap-paced-${++unique}`);
  const sink = new CollectingSink<string>();
  const asked: number[] = [];
  let job!: Job;
  let next = 700;
  const source = tapSource(events(6000, 3), (records) => {
    if (records < next || job.status !== "running") return;
    next += 700;
    asked.push(records);
    return job.triggerCheckpoint();
  });
  job = sessionJob({ source, sink, parallelism: 3, sourceParallelism: 2, storage });
  const result = await job.run();
  const checkpoints = result.snapshots.filter((s) => s.kind === "checkpoint");
  assert.equal(checkpoints.length, asked.length + 1, "one checkpoint per mark, and the final one");
  assert.ok(asked.length >= 8);
  for (let i = 0; i < asked.length; i++) assert.equal(checkpoints[i].manifest.metadata?.records, String(asked[i]), `checkpoint ${i + 1} was taken at its mark`);
  // The retained ones (the job keeps 2) also say so by their source positions.
  assert.equal(await positionOf(checkpoints[asked.length - 1], "events"), asked[asked.length - 1]);
  assert.equal(await positionOf(checkpoints[asked.length], "events"), 6000);
});

test("tapSource: counts every reader's records, holds all of them while the tap's promise is pending, and passes close on", async () => {
  let closed = 0;
  const inner = generatorSource({ count: 4000, splits: 4, make: (i) => i });
  const base: Source<number> = { ...inner, close: () => void closed++ };
  let release: (() => void) | undefined;
  let heldAt = -1;
  let readWhileHeld = 0;
  const seen: number[] = [];
  const source = tapSource(base, (records) => {
    seen.push(records);
    if (release) readWhileHeld++;
    if (heldAt < 0 && records >= 1000) {
      heldAt = records;
      return new Promise<void>((resolve) => (release = resolve));
    }
  });
  const collected = new CollectingSink<number>();
  // The hold ends once the sink has every record read before it: nothing else can end it.
  const sink = countingSink(collected, (written) => {
    if (release && written >= heldAt) {
      const r = release;
      release = undefined;
      r();
    }
  });
  const job = new Job("tap-hold");
  job.fromSource(source, { uid: "numbers", parallelism: 2 }).sinkTo(sink, { uid: "out" });
  const result = await job.run();
  assert.equal(result.status, "finished");
  assert.ok(heldAt >= 1000);
  assert.equal(readWhileHeld, 0, "no reader read while the tap held the source");
  assert.equal(seen[seen.length - 1], 4000, "the count covers every split and subtask");
  assert.ok(seen.every((n, i) => i === 0 || n > seen[i - 1]));
  assert.deepEqual([...collected.committed].sort((a, b) => a - b), Array.from({ length: 4000 }, (_, i) => i));
  assert.equal(closed, 1, "close() reaches the wrapped source");
});

test("stopWithSavepoint() from a tap stops at that position even while a checkpoint is in progress (regression)", async () => {
  // Before: the sources read on while the savepoint waited behind the checkpoint, to the end of a bounded
  // stream under load (the demo's "savepoint at the very end of the stream, step ④ has nothing to do").
  const N = 50_000;
  const storage = new GatedStorage(new MemoryStorage(`tap-stop-${++unique}`));
  const reference = new CollectingSink<string>();
  await sessionJob({ source: events(N, 5), sink: reference, parallelism: 2 }).run();
  const collected = new CollectingSink<string>();
  let job!: Job;
  let askedAt = -1;
  let readAfterStop = 0;
  let stopping: Promise<SnapshotInfo> | undefined;
  const source = tapSource(events(N, 5), (records) => {
    if (stopping) {
      readAfterStop = records - askedAt;
      return;
    }
    if (records >= 1000 && !storage.closed && askedAt < 0 && job.snapshots.length === 0) {
      storage.closed = true; // the checkpoint's writes wait
      job.triggerCheckpoint().catch(() => {});
    } else if (records >= 2000) {
      askedAt = records;
      stopping = job.stopWithSavepoint();
      stopping.catch(() => {});
    }
  });
  // The checkpoint may finish once the sink has every record read before the stop.
  const sink = countingSink(collected, (written) => {
    if (askedAt >= 0 && written >= askedAt && storage.closed) storage.open();
  });
  job = sessionJob({ source, sink, parallelism: 2, storage });
  const result = await job.run();
  assert.equal(result.status, "stopped");
  assert.equal(readAfterStop, 0, "no read after stopWithSavepoint()");
  const sp = await stopping!;
  assert.equal(await positionOf(sp, "events"), askedAt, "the savepoint holds the stream up to where the stop was asked");
  assert.equal(collected.committed.length, askedAt, "everything before the stop is committed, nothing after");
  assert.equal(result.snapshots[0].kind, "checkpoint", "the checkpoint in progress completed first");

  // And the savepoint resumes to exactly the failure-free output.
  const resumed = sessionJob({ source: events(N, 5), sink: collected, parallelism: 3, restore: { from: sp.location } });
  await resumed.run();
  assert.deepEqual(sorted(collected.committed), sorted(reference.committed));
});
