import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { DamagedShardError, DestinationExistsError, ForeignShardError, MissingShardError } from "../format/errors.ts";
import type { Manifest } from "../format/manifest.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { commitShards, receiptPath, SHARDS_DIR } from "../snapshot/shards.ts";
import { gc } from "../snapshot/retention.ts";
import { compact } from "./compact.ts";
import { rekey } from "./rekey.ts";
import { migrate } from "./migrate.ts";
import { addField, defineMigrations } from "./migrations.ts";
import type { WriteReport } from "./_rewrite.ts";
import type { WriteOptions } from "./_sink.ts";
import { cnt, entries, listAll, writeChain, writeSavepoint } from "./_test_util.ts";
import { planShards } from "./plan_shards.ts";

/** A manifest without what differs between two runs of the same plan. */
function comparable(m: Manifest): unknown {
  const { createdAt: _c, ...rest } = m;
  return rest;
}

async function rowsOf(uri: string): Promise<unknown[]> {
  const snap = await openSnapshot(uri);
  try {
    const out: unknown[] = [];
    for (const op of snap.manifest.operators) {
      for (const st of op.states) {
        const r = await readState(snap, op.uid, st.name);
        out.push([op.uid, st.name, r.keys ?? null, r.values, r.subtasks ?? null]);
      }
    }
    return out;
  } finally {
    await snap.storage.close();
  }
}

async function source(name: string, parallelism = 4, maxP = 128): Promise<string> {
  clearMemoryStorage(name);
  await writeSavepoint(await openStorage(`memory:${name}/sp`), entries(3000), { parallelism, maxP, offsets: [[1, 2], [3], [4, 5, 6], [7]] });
  return `memory:${name}/sp`;
}

type Tool = (src: string, dst: string, opts: WriteOptions) => Promise<WriteReport>;

/** Runs `tool` once whole and once as `n` shards + commit; the two savepoints must be the same. */
async function sameAsSingle(src: string, base: string, n: number, tool: Tool): Promise<void> {
  // The same folder name: the savepoint id is the folder's name.
  const single = await tool(src, `${base}-single/out`, {});
  for (let i = n - 1; i >= 0; i--) {
    const r = await tool(src, `${base}-sharded/out`, { shard: { index: i, count: n } });
    assert.equal(r.receipt?.shard.index, i);
  }
  assert.equal(await (await openStorage(`${base}-sharded/out`)).exists("_manifest.json"), false, "nothing visible before the commit");
  const committed = await commitShards(`${base}-sharded/out`);
  assert.equal(committed.alreadyCommitted, false);
  assert.deepEqual(comparable(committed.manifest), comparable(single.manifest));
  assert.deepEqual(await rowsOf(`${base}-sharded/out`), await rowsOf(`${base}-single/out`));
  assert.deepEqual(await listAll(await openStorage(`${base}-sharded/out`)), await listAll(await openStorage(`${base}-single/out`)), "receipts removed, same files");
}

test("rekey --shard: 4 shards + commit equal one run (parallelism, maxParallelism, key function)", async () => {
  const src = await source("shards-rekey");
  await sameAsSingle(src, "memory:shards-rekey/p7", 4, (s, d, o) => rekey(s, d, { ...o, parallelism: 7 }));
  await sameAsSingle(src, "memory:shards-rekey/p3", 4, (s, d, o) => rekey(s, d, { ...o, parallelism: 3 }));
  await sameAsSingle(src, "memory:shards-rekey/m512", 4, (s, d, o) => rekey(s, d, { ...o, maxParallelism: 512, parallelism: 5, maxChunkRows: 100 }));
  await sameAsSingle(src, "memory:shards-rekey/keyby", 3, (s, d, o) =>
    rekey(s, d, { ...o, keyBy: { counter: (k) => `x${String(k).slice(-2)}` }, merge: { counter: (a) => a }, spillRows: 500 }));
});

test("compact --shard of a checkpoint chain and migrate --shard equal one run", async () => {
  clearMemoryStorage("shards-chain");
  const root = await openStorage("memory:shards-chain");
  await writeChain(root, [
    { set: [...entries(800)] },
    { set: [["k1", cnt(9)], ["new", cnt(1)]], del: ["k2", "k3"] },
  ]);
  await sameAsSingle("memory:shards-chain", "memory:shards-chain/savepoints/c", 4, (s, d, o) => compact(s, d, { ...o, parallelism: 6 }));
  const src = await source("shards-migrate");
  const m = defineMigrations({ "counter/counts": [addField("seen", "bool", false)] });
  await sameAsSingle(src, "memory:shards-migrate/a", 4, async (s, d, o) => (await migrate(s, d, m, o)).written!);
});

test("commitShards() refuses a missing shard, two plans and a damaged chunk by name; nothing becomes visible", async () => {
  const src = await source("shards-refuse");
  const dst = "memory:shards-refuse/out";
  const storage = await openStorage(dst);
  const before = await listAll(await openStorage("memory:shards-refuse/sp"));
  await assert.rejects(commitShards(dst), (e) => e instanceof MissingShardError && /no shard receipts/.test(e.message));
  for (const i of [0, 2, 3]) await rekey(src, dst, { parallelism: 8, shard: { index: i, count: 4 } });
  await assert.rejects(commitShards(dst), (e) => e instanceof MissingShardError && e.shards.join() === "1" && /shard 1\/4 has no receipt/.test(e.message));
  // A shard of another plan (another parallelism) beside them.
  const other = await rekey(src, dst, { parallelism: 2, shard: { index: 1, count: 4 } });
  await assert.rejects(commitShards(dst), (e) => e instanceof ForeignShardError && e.message.includes(other.receipt!.fingerprint));
  await storage.delete((await listAll(storage, `${SHARDS_DIR}/${other.receipt!.fingerprint}/`)));
  const mine = await rekey(src, dst, { parallelism: 8, shard: { index: 1, count: 4 } });
  // Damage one chunk of shard 2 (same size, one byte flipped): only the checksum can tell.
  const victim = mine.receipt!.fingerprint && (await rekey(src, dst, { parallelism: 8, shard: { index: 2, count: 4 } })).receipt!.operators[0].states[0].chunks[0].path;
  const bytes = await storage.get(victim);
  bytes[bytes.length >> 1] ^= 0xff;
  await storage.put(victim, bytes);
  await assert.rejects(commitShards(dst), (e) => e instanceof DamagedShardError && e.shards.join() === "2" && e.path === victim && /run shard 2\/4 again/.test(e.message));
  assert.equal(await storage.exists("_manifest.json"), false);
  assert.deepEqual(await listAll(await openStorage("memory:shards-refuse/sp")), before, "source untouched");
  // Re-running the damaged shard repairs it; the receipt is the same bytes.
  const receipt = await storage.get(receiptPath(mine.receipt!.fingerprint, { index: 2, count: 4 }));
  await rekey(src, dst, { parallelism: 8, shard: { index: 2, count: 4 } });
  assert.deepEqual(await storage.get(receiptPath(mine.receipt!.fingerprint, { index: 2, count: 4 })), receipt);
  const done = await commitShards(dst);
  assert.equal(done.shards, 4);
  assert.equal(done.rows, 3000 + 7);
  await assert.rejects(commitShards(dst), DestinationExistsError);
  await assert.rejects(rekey(src, dst, { parallelism: 8, shard: { index: 0, count: 4 } }), DestinationExistsError);
});

test("gc removes an abandoned sharded attempt after the grace period, and receipts left in a committed savepoint", async () => {
  const src = await source("shards-gc");
  const root: Storage = await openStorage("memory:shards-gc");
  await rekey(src, "memory:shards-gc/savepoints/abandoned", { parallelism: 4, shard: { index: 0, count: 2 } });
  await rekey(src, "memory:shards-gc/savepoints/done", { parallelism: 4, shard: { index: 0, count: 1 } });
  await commitShards("memory:shards-gc/savepoints/done");
  // A receipt left behind by a commit interrupted after its manifest.
  await root.put("savepoints/done/_shards/0123456789abcdef/shard-0-of-1.json", new Uint8Array(3));
  const young = await gc(root, { dryRun: true });
  assert.deepEqual(young.deleted, []);
  assert.ok(young.young > 0);
  const later = await gc(root, { now: new Date(Date.now() + 2 * 3600_000) });
  assert.ok(later.deleted.some((p) => p.startsWith("savepoints/abandoned/_shards/")));
  assert.ok(later.deleted.some((p) => p.startsWith("savepoints/abandoned/counter/")));
  assert.ok(later.deleted.includes("savepoints/done/_shards/0123456789abcdef/shard-0-of-1.json"));
  assert.ok(!later.deleted.some((p) => p.startsWith("savepoints/done/") && !p.includes("/_shards/")), "the committed savepoint is kept");
  assert.ok(!later.deleted.some((p) => p.startsWith("sp/")));
});

test("planShards() splits the destination key groups and estimates rows and bytes per shard", async () => {
  const src = await source("shards-plan");
  const plan = await planShards(src, 4, { parallelism: 8 });
  assert.equal(plan.shards.length, 4);
  assert.deepEqual(plan.shards.map((s) => s.keyGroups), [{ start: 0, end: 31 }, { start: 32, end: 63 }, { start: 64, end: 95 }, { start: 96, end: 127 }]);
  assert.equal(plan.shards.reduce((n, s) => n + s.rows, 0), 3000 + 7);
  assert.ok(plan.shards.every((s) => s.rows > 500 && s.bytes > 0));
  assert.equal(plan.shards[0].operators[0].subtasks.first, 0);
  assert.equal(plan.shards[3].operators[0].subtasks.end, 8);
});

test("fewer destination subtasks than shards: each shard takes its share of key groups; the committed savepoint holds the same rows", async () => {
  const src = await source("shards-narrow");
  for (const [name, opts] of [["p2", { parallelism: 2 }], ["p1m512", { parallelism: 1, maxParallelism: 512 }]] as const) {
    const single = await rekey(src, `memory:shards-narrow/single-${name}/out`, opts);
    const rows: number[] = [];
    for (let index = 0; index < 4; index++) rows.push((await rekey(src, `memory:shards-narrow/sharded-${name}/out`, { ...opts, shard: { index, count: 4 } })).rows);
    assert.ok(rows.every((n) => n > 0), `every shard has work: ${rows}`);
    const committed = await commitShards(`memory:shards-narrow/sharded-${name}/out`);
    assert.equal(committed.rows, single.rows);
    assert.deepEqual(await rowsOf(`memory:shards-narrow/sharded-${name}/out`), await rowsOf(`memory:shards-narrow/single-${name}/out`));
    const kgs = committed.manifest.operators[0].states[0].chunks.map((c) => c.keyGroupRange!);
    const maxP = committed.manifest.maxParallelism;
    assert.ok(kgs.some((r) => r.end === maxP / 4 - 1), "cut at the first shard boundary");
    const plan = await planShards(src, 4, opts);
    assert.ok(plan.shards.every((s) => s.rows > 0), "the plan gives every shard rows");
  }
});
