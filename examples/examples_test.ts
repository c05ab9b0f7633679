// Runs every example as a user would, so they never rot: the Node ones under the runtime running this test
// (tsx under Node, deno under Deno), the Deno one under deno against a local S3 server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = join(root, "node_modules", ".bin", "deno");
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: root, env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${args.join(" ")} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function runExample(file: string, ...args: string[]): Promise<string> {
  return isDeno ? run(deno, ["run", "-A", file, ...args]) : run(process.execPath, ["--import", "tsx", file, ...args]);
}

let dir: string;
let server: S3TestServer;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-examples-"));
  server = await startS3Server();
});
after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("examples/node_counter.ts crashes mid-checkpoint, resumes, and counts every event once", async () => {
  const out = await runExample("examples/node_counter.ts", join(dir, "counter"));
  assert.match(out, /crashed: job killed/);
  assert.match(out, /resumed from checkpoint 2 /);
  assert.match(out, /exactly once: 1000000 outputs for 1000000 events, 97 users/);
});

test("examples/rescale_and_migrate.ts rescales 2 → 5, migrates int32 → int64, and restores", async () => {
  const out = await runExample("examples/rescale_and_migrate.ts", join(dir, "offline"));
  assert.match(out, /count\/count v1→v2, 500 rows/);
  assert.match(out, /parallelism 5, 500 rows, schema v2, valid/);
  assert.match(out, /20000 outputs in all, every event counted once, counts reach 40/);
});

test("examples/export_arrow.ts exports a state that an independent Arrow reader opens", async () => {
  const out = await runExample("examples/export_arrow.ts", join(dir, "export"));
  assert.match(out, /300 rows, columns kg, key, value; flechette reads 5000 events/);
  assert.match(out, /pages as NDJSON: \d+ rows/);
});

test("examples/deno_s3.ts checkpoints to S3 and stops with a valid savepoint (under Deno)", async () => {
  const out = await run(deno, ["run", "-A", "examples/deno_s3.ts", `s3://${server.bucket}/examples/counter`], server.env);
  assert.match(out, /^stopped after \d+ events and [3-9]\d* checkpoints on S3$/m);
  assert.match(out, /savepoint s3:\/\/arrowpoint-test\/examples\/counter\/savepoints\/sp-final: valid, \d+ rows/);
});
