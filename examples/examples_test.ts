// Runs every example as a user would, so they never rot: the Node ones under the runtime running this test
// (tsx under Node, deno under Deno), the Deno one under deno against a local S3 server.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import { exec, ROOT, runTs } from "../backends/_test_exec.ts";

const deno = join(ROOT, "node_modules", ".bin", "deno");
const runExample = (file: string, ...args: string[]): Promise<string> => runTs(file, args);

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
  const r = await exec(deno, ["run", "-A", "examples/deno_s3.ts", `s3://${server.bucket}/examples/counter`], { env: server.env });
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  const out = r.out;
  assert.match(out, /^stopped after \d+ events and [3-9]\d* checkpoints on S3$/m);
  assert.match(out, /savepoint s3:\/\/arrowpoint-test\/examples\/counter\/savepoints\/sp-final: valid, \d+ rows/);
});
