import assert from "node:assert/strict";
import { after, test } from "node:test";
import { siblingModule } from "./worker.ts";
import { acquireWorker, drainWorkerPool, idleWorkers, maxIdleWorkers, releaseStart, releaseWorker } from "./worker_pool.ts";

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

test("a start handed over with releaseStart is what the next acquireWorker gets, not a second thread", async () => {
  await drainWorkerPool(echo);
  const start = acquireWorker(echo);
  releaseStart(echo, start);
  const w = await acquireWorker(echo);
  assert.equal(w, await start, "the same thread");
  assert.equal(idleWorkers(echo), 0, "taken, so not also idle");
  const reply = next(w);
  w.post({ echo: 3 });
  assert.deepEqual(await reply, { echo: 3 });
  releaseWorker(echo, w);
  await drainWorkerPool(echo);
});

test("a start handed over and not taken joins the idle workers once up; drainWorkerPool ends it", async () => {
  await drainWorkerPool(echo);
  const start = acquireWorker(echo);
  releaseStart(echo, start);
  // releaseStart's own handler on the start runs before this await resumes: the worker is idle by then.
  const w = await start;
  assert.equal(idleWorkers(echo), 1);
  assert.equal(await acquireWorker(echo), w);
  releaseWorker(echo, w);
  // Handed over and not yet resolved: drained all the same (waited for, then terminated).
  releaseStart(echo, acquireWorker(echo));
  await drainWorkerPool(echo);
  assert.equal(idleWorkers(echo), 0);
});
