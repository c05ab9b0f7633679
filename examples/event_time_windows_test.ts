// Runs examples/event_time_windows.ts as a user would (tsx under Node, deno under Deno): a job with session
// and tumbling windows killed after a checkpoint and restored at another parallelism must print EQUAL.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTs } from "../backends/_test_exec.ts";


test("examples/event_time_windows.ts: killed and restored at another parallelism, its windows equal a failure-free run", async () => {
  const dir = await mkdtemp(join(tmpdir(), "arrowpoint-et-example-"));
  try {
    const file = "examples/event_time_windows.ts";
    const out = await runTs(file, [dir]);
    assert.match(out, /^killed: .*at committed of checkpoint 1 after 10000 events$/m);
    assert.match(out, /restored from .*checkpoints at parallelism 5: 10000 more events, 0 late/);
    assert.match(out, /^EQUAL: [1-9]\d* session windows and [1-9]\d* per-minute counts/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
