import assert from "node:assert/strict";
import { after, test } from "node:test";
import { siblingModule } from "./worker.ts";
import { acquireWorker, drainWorkerPool, idleWorkers, maxIdleWorkers, releaseWorker } from "./worker_pool.ts";

const echo = siblingModule(import.meta.url, "_test_worker");

after(() => drainWorkerPool());

function next(w: { onMessage(h: (m: unknown) => void): void }): Promise<unknown> {
  return new Promise((resolve) => w.onMessage(resolve));
}

test("a released worker is the next acquired one, and still answers", async () => {
  await drainWorkerPool(echo);
  const w = await acquireWorker(echo);
  releaseWorker(echo, w);
  assert.equal(idleWorkers(echo), 1);
  const again = await acquireWorker(echo);
  assert.equal(again, w);
  assert.equal(idleWorkers(echo), 0);
  const reply = next(again);
  again.post({ echo: 7 });
  assert.deepEqual(await reply, { echo: 7 });
  releaseWorker(echo, again);
  releaseWorker(echo, again); // twice: kept once
  assert.equal(idleWorkers(echo), 1);
  await drainWorkerPool(echo);
  assert.equal(idleWorkers(echo), 0);
});

test("a pooled worker that ends leaves the pool; beyond the cores a released worker is terminated", async () => {
  await drainWorkerPool(echo);
  const w = await acquireWorker(echo);
  releaseWorker(echo, w);
  w.ref(); // an idle worker lets the event loop end: this test waits for its exit
  w.post({ fail: "boom" });
  const exit = await w.exited;
  assert.match(String(exit.error?.message), /boom/);
  await Promise.resolve();
  assert.equal(idleWorkers(echo), 0);
  const n = maxIdleWorkers() + 1;
  const ws = await Promise.all(Array.from({ length: n }, () => acquireWorker(echo)));
  for (const x of ws) releaseWorker(echo, x);
  assert.equal(idleWorkers(echo), n - 1);
  await ws[n - 1].exited; // the one beyond the limit ends
  await drainWorkerPool(echo);
});
