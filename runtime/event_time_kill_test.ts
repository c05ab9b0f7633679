// Real process kills with timers and windows: the event-time job's process is SIGKILLed at random times
// and restarted (alternately at parallelism 1 and 7) until it finishes; its NDJSON output must equal a
// failure-free run: no window or timer output lost, none twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsStorage } from "../backends/fs.ts";
import { longOr, prng, recordFigure, SEED } from "../format/_test_fuzz.ts";
import { CollectingSink, readNdjsonParts } from "./sinks.ts";
import { clicks, eventTimeJob } from "./_test_event_time.ts";
import { runKillable } from "./_test_util.ts";

for (const workers of [0, 2]) {
test(`SIGKILL the event-time job's process at random times, restart it at parallelism 1 ↔ 7, and the output equals a failure-free run (workers: ${workers})`, async () => {
  const count = longOr(12_000, 100_000);
  const rate = 10_000;
  const kills = longOr(3, 15);
  const reference = new CollectingSink<string>();
  await eventTimeJob({ source: clicks(count, { seed: 13 }), sink: reference, parallelism: 2, maxParallelism: 128 }).run();
  const want = reference.committed.map((l) => JSON.stringify(l)).sort();
  const dir = await mkdtemp(join(tmpdir(), "arrowpoint-et-kill-"));
  const child = new URL("./_test_kill_child_event_time.ts", import.meta.url);
  const rnd = prng(SEED);
  const runChild = (parallelism: number, killAfterMs: number | undefined) =>
    runKillable(child, [dir, String(count), String(parallelism), String(rate), String(workers)], killAfterMs);
  const figures = { kind: "kills", operation: `SIGKILL of the event-time job's process${workers ? ` with ${workers} worker threads` : ""}`, backend: "filesystem", events: count, kills: 0, finishedBeforeKill: 0, exactlyOnce: false };
  try {
    let finished = false;
    for (let i = 0; i < kills && !finished; i++) {
      finished = (await runChild(i % 2 === 0 ? 7 : 1, Math.floor(100 + rnd() * 1200))) === "done";
      if (finished) figures.finishedBeforeKill++;
      else figures.kills++;
    }
    if (!finished) assert.equal(await runChild(7, undefined), "done");
    const got = (await readNdjsonParts<string>(new FsStorage(dir), "output")).map((l) => JSON.stringify(l)).sort();
    assert.equal(got.length, want.length, "output lines lost or duplicated");
    assert.deepEqual(got, want);
    figures.exactlyOnce = true;
  } finally {
    recordFigure(figures);
    await rm(dir, { recursive: true, force: true });
  }
});
}
