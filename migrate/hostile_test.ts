// Hostile snapshots through the offline tools (issue 7): validate() reads an oversized chunk at most one
// byte past its recorded size and reports it as a finding.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsStorage } from "../backends/fs.ts";
import { externalBytes } from "../format/_test_fuzz.ts";
import { openSnapshot } from "../snapshot/read.ts";
import { validate } from "./validate.ts";
import { entries, writeSavepoint } from "./_test_util.ts";

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), "arrowpoint-migrate-hostile-"));
});
after(async () => {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

test("validate() reports an oversized chunk without reading it whole (regression)", async () => {
  // Before: validate() read the whole file (here a sparse 300 MiB one) before comparing its size.
  const root = join(dir, "sp");
  const manifest = await writeSavepoint(new FsStorage(root), entries(50), { parallelism: 1 });
  const ref = manifest.operators[0].states[0].chunks[0];
  const fh = await fsp.open(join(root, ...ref.path.split("/")), "r+");
  await fh.truncate(300 * 1024 * 1024);
  await fh.close();
  const before = externalBytes();
  const findings = await validate(await openSnapshot(root));
  const grew = externalBytes() - before;
  assert.deepEqual(findings.map((f) => f.code), ["size-mismatch"]);
  assert.ok(grew <= ref.bytes + (8 << 20), `validate() allocated ${grew} bytes for a ${ref.bytes}-byte chunk`);
});
