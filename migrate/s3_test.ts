// The tools over S3 URIs (s3rver on loopback, configured through the AWS SDK's environment variables as
// a user would): a savepoint copied fs → S3 → another folder still validates and holds the same rows.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStorage } from "../backends/open.ts";
import { type S3TestServer, startS3Server } from "../backends/_s3_test_server.ts";
import { main } from "../cli/main.ts";
import { copySnapshot } from "../snapshot/copy.ts";
import { compact } from "./compact.ts";
import { inspect } from "./inspect.ts";
import { rekey } from "./rekey.ts";
import { validate } from "./validate.ts";
import { cnt, entries, stateMap, writeChain } from "./_test_util.ts";

let server: S3TestServer;
let dir: string;

before(async () => {
  server = await startS3Server({ setEnv: true });
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-tools-s3-"));
});

after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("a savepoint copied fs → S3 → another folder still validates; the tools run on s3:// URIs", async () => {
  const ckpt = join(dir, "ckpt");
  const live = await writeChain(await openStorage(ckpt), [{ set: [...entries(800)] }, { set: [["k1", cnt(-1)]], del: ["k2", "k3"] }]);
  const sp = join(ckpt, "savepoints", "sp-2");
  await compact(ckpt, sp);
  const s3 = `s3://${server.bucket}/backup/job-a/sp-2`;
  const out: string[] = [];
  const cli = (...argv: string[]) => main(argv, { out: (s) => out.push(s), err: (s) => out.push(s), tty: false, write: async () => {} });
  assert.equal(await cli("cp", sp, s3), 0, out.join("\n"));
  assert.deepEqual(await validate(s3), []);
  assert.equal(await cli("validate", s3), 0, out.join("\n"));
  const elsewhere = join(dir, "restored", "sp-2");
  await copySnapshot(s3, elsewhere);
  assert.deepEqual(await validate(elsewhere), []);
  assert.deepEqual(await stateMap(elsewhere), live);
  // Byte for byte: a savepoint's relative paths travel unchanged.
  const a = await inspect(sp);
  const b = await inspect(elsewhere);
  assert.deepEqual(b.operators, a.operators);
  // Reading from S3 and writing to S3.
  await rekey(s3, `s3://${server.bucket}/backup/job-a/sp-2-p5`, { parallelism: 5, maxParallelism: 256 });
  assert.deepEqual(await validate(`s3://${server.bucket}/backup/job-a/sp-2-p5`), []);
  assert.deepEqual(await stateMap(`s3://${server.bucket}/backup/job-a/sp-2-p5`), live);
  out.length = 0;
  assert.equal(await cli("ls", `s3://${server.bucket}/backup/job-a`), 0);
  assert.match(out.join("\n"), /sp-2 +savepoint[\s\S]*sp-2-p5 +savepoint/);
});
