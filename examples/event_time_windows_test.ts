// Runs examples/event_time_windows.ts as a user would (tsx under Node, deno under Deno): a job with session
// and tumbling windows killed after a checkpoint and restored at another parallelism must print EQUAL.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const root = new URL("..", import.meta.url).pathname;
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

test("examples/event_time_windows.ts: killed and restored at another parallelism, its windows equal a failure-free run", async () => {
  const dir = await mkdtemp(join(tmpdir(), "arrowpoint-et-example-"));
  try {
    const file = "examples/event_time_windows.ts";
    const [cmd, args] = isDeno ? [join(root, "node_modules", ".bin", "deno"), ["run", "-A", file, dir]] : [process.execPath, ["--import", "tsx", file, dir]];
    const out = await new Promise<string>((resolve, reject) => {
      execFile(cmd, args, { cwd: root, timeout: 300_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${file} failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
    });
    assert.match(out, /^killed: .*at committed of checkpoint 1 after 10000 events$/m);
    assert.match(out, /restored from .*checkpoints at parallelism 5: 10000 more events, 0 late/);
    assert.match(out, /^EQUAL: [1-9]\d* session windows and [1-9]\d* per-minute counts/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
