// Runs examples/postgres_cdc.ts as a user would (tsx under Node, deno under Deno) against a real
// PostgreSQL server started for this file.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runTs } from "../backends/_test_exec.ts";
import { startPostgres, type TestPostgres } from "../runtime/connectors/_test_postgres.ts";


let pg: TestPostgres;
let dir: string;
before(async () => {
  pg = await startPostgres();
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-pg-example-"));
});
after(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("examples/postgres_cdc.ts keeps per-customer totals exactly once through a crash between PREPARE and COMMIT PREPARED", async () => {
  const c = pg.connection;
  const url = `postgres://${c.user}:${c.password}@${c.host}:${c.port}/${c.database}`;
  const out = await runTs("examples/postgres_cdc.ts", [url, join(dir, "ckpt")]);
  assert.match(out, /run 1 killed at committed of checkpoint \d+; prepared transactions waiting: [1-9]\d*/);
  assert.match(out, /totals match the orders table: 7 customers/);
  assert.match(out, /prepared transactions left: 0/);
});
