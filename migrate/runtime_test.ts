// The offline tools on snapshots the runtime wrote: compact an incremental chain, validate, rekey, and
// restore a job from the result.
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { CollectingSink, Job, valueState } from "../runtime/mod.ts";
import { gatedSource, waitWhileRunning } from "../runtime/_test_util.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { compact } from "./compact.ts";
import { rekey } from "./rekey.ts";
import { validate } from "./validate.ts";
import { stateMap } from "./_test_util.ts";

interface Upd {
  user: string;
  del?: boolean;
}
const COUNT = valueState<number>("count");

function counterJob(storage: string, source: ReturnType<typeof gatedSource<Upd>>["source"], parallelism: number, maxParallelism = 128, restore?: string): Job {
  const job = new Job("tools-it", { maxParallelism, checkpoints: { storage, retain: 10 }, restore: restore ? { from: restore } : undefined });
  job.fromSource(source, { uid: "upd" })
    .keyBy((u) => u.user)
    .process<string>({
      open(ctx) {
        ctx.getState(COUNT);
      },
      processElement(u, ctx) {
        const s = ctx.getState(COUNT);
        if (u.del) s.clear();
        else s.update((s.value() ?? 0) + 1);
      },
    }, { uid: "counter", parallelism })
    .sinkTo(new CollectingSink<string>(), { uid: "out" });
  return job;
}

test("compact() of a runtime's incremental chain equals the live state; rekey 3 → 7 and maxParallelism 128 → 256 restores", async () => {
  clearMemoryStorage("tools-it");
  const items: Upd[] = [];
  for (let i = 0; i < 3000; i++) items.push({ user: `user-${i % 1200}` });
  for (let i = 0; i < 50; i++) items.push({ user: `user-${i * 7}`, del: true });
  for (let i = 0; i < 200; i++) items.push({ user: `late-${i}` });
  const live = new Map<string, number>();
  for (const u of items) {
    if (u.del) live.delete(u.user);
    else live.set(u.user, (live.get(u.user) ?? 0) + 1);
  }
  const gate = gatedSource(items);
  const job = counterJob("memory:tools-it", gate.source, 3);
  await job.start();
  gate.allow(2000);
  await waitWhileRunning(job, "2000 records", () => job.records >= 2000);
  await job.triggerCheckpoint();
  gate.allow(items.length);
  await waitWhileRunning(job, "all records", () => job.records >= items.length);
  const last = await job.triggerCheckpoint();
  await job.cancel();
  const chain = (await openSnapshot("memory:tools-it")).manifest.operators.find((o) => o.uid === "counter")!.states.find((s) => s.name === "count")!;
  assert.ok(chain.chunks.some((c) => c.type === "delta"), "the runtime wrote an incremental chain");
  assert.equal(last.id, (await openSnapshot("memory:tools-it")).manifest.checkpointId);

  await compact("memory:tools-it", "memory:tools-it/savepoints/compacted");
  assert.deepEqual(await stateMap("memory:tools-it/savepoints/compacted", "counter", "count"), live);
  assert.deepEqual(await validate("memory:tools-it/savepoints/compacted"), []);
  assert.deepEqual(await validate("memory:tools-it"), []);

  await rekey("memory:tools-it/savepoints/compacted", "memory:tools-it/savepoints/p7-m256", { maxParallelism: 256, parallelism: { counter: 7 } });
  assert.deepEqual(await validate("memory:tools-it/savepoints/p7-m256"), []);

  // A job at parallelism 7 with 256 key groups restores the rekeyed savepoint and holds every value.
  const gate2 = gatedSource<Upd>([]);
  const job2 = counterJob("memory:tools-it-2", gate2.source, 7, 256, "memory:tools-it/savepoints/p7-m256");
  await job2.start();
  const sp = await job2.savepoint();
  await job2.cancel();
  const rows = await readState(await openSnapshot(sp.location), "counter", "count");
  assert.deepEqual(new Map(rows.keys!.map((k, i) => [k, rows.values[i]])), live);
  assert.equal((await openSnapshot(sp.location)).manifest.maxParallelism, 256);
});
