import assert from "node:assert/strict";
import { test } from "node:test";
import { fromWire, isWorkerThread, NotInWorkerError, parentLink, siblingModule, startWorker, toWire, WorkerStartError } from "./worker.ts";

const echo = siblingModule(import.meta.url, "_test_worker");

function next(w: { onMessage(h: (m: unknown) => void): void }): Promise<unknown> {
  return new Promise((resolve) => w.onMessage(resolve));
}

test("a worker receives messages posted right after start, and answers", async () => {
  const w = await startWorker(echo, { name: "echo" });
  try {
    const replies: unknown[] = [];
    const all = new Promise<void>((resolve) =>
      w.onMessage((m) => {
        replies.push(m);
        if (replies.length === 3) resolve();
      })
    );
    for (let i = 0; i < 3; i++) w.post({ echo: { i, s: "é" } });
    await all;
    assert.deepEqual(replies, [0, 1, 2].map((i) => ({ echo: { i, s: "é" } })));
  } finally {
    await w.terminate();
  }
});

test("transferred buffers move: detached on the sender, changed by the worker, moved back", async () => {
  const w = await startWorker(echo);
  try {
    const buffer = new Uint8Array([1, 2, 3]).buffer;
    const reply = next(w);
    w.post({ buffer }, [buffer]);
    assert.equal(buffer.byteLength, 0);
    const back = (await reply) as { buffer: ArrayBuffer };
    assert.deepEqual([...new Uint8Array(back.buffer)], [2, 3, 4]);
  } finally {
    await w.terminate();
  }
});

test("a message crosses as a form whose for…in visits nothing under Deno (its worker_threads walks each message so), and arrives as posted", async () => {
  const rows = new Uint32Array(100_000).map((_, i) => i);
  const message = { echo: { rows, map: new Map([["k", 1]]), list: [1, "two"] } };
  const wire = toWire(message);
  const visited: string[] = [];
  for (const k in wire as object) visited.push(k);
  const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
  assert.deepEqual(visited, isDeno ? [] : ["echo"], "what for…in walks");
  const w = await startWorker(echo);
  try {
    const reply = next(w);
    w.post(message);
    const back = (await reply) as typeof message;
    assert.deepEqual(back, message);
    assert.ok(back.echo.rows instanceof Uint32Array);
  } finally {
    await w.terminate();
  }
  assert.deepEqual(fromWire(structuredClone(wire)), message);
});

test("an uncaught error in a worker ends it and is reported to the parent, which lives on", async () => {
  const w = await startWorker(echo);
  w.post({ fail: "boom 17" });
  const exit = await w.exited;
  assert.ok(exit.error instanceof Error);
  assert.match(exit.error.message, /boom 17/);
});

test("terminate settles exited without an error", async () => {
  const w = await startWorker(echo);
  await w.terminate();
  assert.deepEqual(await w.exited, {});
});

test("a module that fails before parentLink() is a WorkerStartError naming it", async () => {
  await assert.rejects(startWorker(siblingModule(import.meta.url, "_test_worker_broken")), (e: unknown) => {
    assert.ok(e instanceof WorkerStartError);
    assert.match(e.message, /_test_worker_broken/);
    assert.match(e.message, /broken on purpose/);
    return true;
  });
});

test("on the main thread there is no parent link", () => {
  assert.equal(isWorkerThread(), false);
  assert.throws(() => parentLink(), NotInWorkerError);
});

test("siblingModule keeps the caller's extension", () => {
  assert.equal(siblingModule("file:///a/b/c.ts", "w").href, "file:///a/b/w.ts");
  assert.equal(siblingModule("file:///a/b/c.js", "w").href, "file:///a/b/w.js");
  assert.equal(siblingModule("file:///a/b/c.mjs", "w").href, "file:///a/b/w.mjs");
});

test("availableCores() counts the cores where navigator is missing (Node 20) too", async () => {
  const { availableParallelism } = await import("node:os");
  const { availableCores } = await import("./worker.ts");
  assert.equal(availableCores(), availableParallelism());
});
