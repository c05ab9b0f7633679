import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { readState } from "../snapshot/read.ts";
import { commitShards } from "../snapshot/shards.ts";
import { migrate } from "./migrate.ts";
import { addField, defineMigrations } from "./migrations.ts";
import { keptSource, openSource } from "./_open.ts";
import { cnt, entries, writeChain, writeSavepoint } from "./_test_util.ts";

test("openSource() reuses the manifest of the last source opened while its bytes are unchanged", async () => {
  clearMemoryStorage("open-src");
  await writeSavepoint(await openStorage("memory:open-src/sp"), entries(50));
  const a = await openSource("memory:open-src/sp");
  await a.storage.close();
  assert.equal(keptSource(), "memory:open-src/sp");
  const b = await openSource("memory:open-src/sp");
  await b.storage.close();
  assert.equal(b.manifest, a.manifest);
  assert.ok(Object.isFrozen(b.manifest.operators[0].states[0].chunks[0]), "a shared manifest is read-only");
  clearMemoryStorage("open-src");
});

test("openSource() never serves a source rewritten at the same location from what it kept", async () => {
  clearMemoryStorage("open-stale");
  const uri = "memory:open-stale/sp";
  await writeSavepoint(await openStorage(uri), entries(50));
  const first = await openSource(uri);
  await first.storage.close();
  // The same location, another savepoint (other rows, so other chunks and checksums).
  clearMemoryStorage("open-stale");
  await writeSavepoint(await openStorage(uri), entries(80, "z"));
  const second = await openSource(uri);
  assert.notEqual(second.manifest, first.manifest);
  assert.equal(second.manifest.operators[0].states[0].chunks.reduce((n, c) => n + c.rows, 0), 80);
  assert.equal((await readState(second, "counter", "counts")).length, 80);
  await second.storage.close();
  // Shards of a migration after the rewrite read the new source: the commit holds its 80 rows.
  const m = defineMigrations({ "counter/counts": [addField("seen", "bool", true)] });
  for (let index = 0; index < 2; index++) await migrate(uri, "memory:open-stale/out", m, { shard: { index, count: 2 } });
  assert.equal((await commitShards("memory:open-stale/out")).rows, 80);
  clearMemoryStorage("open-stale");
});

test("openSource() resolves a checkpoint root afresh each time: a newer checkpoint is seen", async () => {
  clearMemoryStorage("open-root");
  const root = await openStorage("memory:open-root/ck");
  await writeChain(root, [{ set: [["a", cnt(1)]] }]);
  const one = await openSource("memory:open-root/ck");
  await one.storage.close();
  assert.equal(one.dir, "chk-000001");
  clearMemoryStorage("open-root");
  await writeChain(await openStorage("memory:open-root/ck"), [{ set: [["a", cnt(1)]] }, { set: [["b", cnt(3)]] }]);
  const two = await openSource("memory:open-root/ck");
  await two.storage.close();
  assert.equal(two.dir, "chk-000002");
  clearMemoryStorage("open-root");
});
