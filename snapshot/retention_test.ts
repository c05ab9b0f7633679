import { test } from "node:test";
import assert from "node:assert/strict";
import { openStorage } from "../backends/open.ts";
import { clearMemoryStorage } from "../backends/memory.ts";
import type { ChunkRef } from "../format/manifest.ts";
import { applyRetention, gc } from "./retention.ts";
import { committedCheckpoints, openSnapshot, readState } from "./read.ts";
import { writeCheckpoint } from "./_test_util.ts";

const v = (count: number) => ({ count: BigInt(count), label: "x" });

async function paths(root: Awaited<ReturnType<typeof openStorage>>): Promise<string[]> {
  const out: string[] = [];
  for await (const o of root.list("")) out.push(o.path);
  return out;
}

test("applyRetention() over 12 incremental checkpoints keeps shared chunks that retained ones reference", async () => {
  clearMemoryStorage("ret");
  const root = await openStorage("memory:ret");
  let chunks: ChunkRef[] = [];
  const live = new Map<string, ReturnType<typeof v>>();
  for (let id = 1; id <= 12; id++) {
    const base = id === 1 || id === 7; // a re-base every 6
    const entries: [string, ReturnType<typeof v>][] = [[`k${id}`, v(id)], ["shared", v(id)]];
    for (const [k, val] of entries) live.set(k, val);
    const all: [string, ReturnType<typeof v>][] = base ? [...live] : entries;
    chunks = await writeCheckpoint(root, id, all, chunks, base);
    const report = await applyRetention(root, { retain: 3 });
    if (id > 3) assert.deepEqual(report.deletedCheckpoints, [id - 3]);
    assert.deepEqual(await committedCheckpoints(root), Array.from({ length: Math.min(id, 3) }, (_, i) => id - Math.min(id, 3) + 1 + i));
    // Every retained checkpoint still reads completely.
    for (const kept of await committedCheckpoints(root)) {
      const rows = await readState(await openSnapshot(root, `chk-${String(kept).padStart(6, "0")}`), "op", "s");
      assert.ok(rows.length >= 2);
    }
  }
  const rows = await readState(await openSnapshot("memory:ret"), "op", "s");
  assert.deepEqual(new Map(rows.keys!.map((k, i) => [k, rows.values[i]])), live);
  // The base of checkpoint 7 is still referenced by 10..12; the chunks of 1..6 are gone.
  const left = await paths(root);
  assert.ok(left.includes("shared/chk-000007-op-s.arrow"));
  assert.ok(!left.some((p) => /chk-00000[1-6]/.test(p)), left.join(","));
});

test("applyRetention() never deletes a protected checkpoint (restored from in no-claim mode)", async () => {
  clearMemoryStorage("protect");
  const root = await openStorage("memory:protect");
  let chunks: ChunkRef[] = [];
  for (let id = 1; id <= 5; id++) {
    chunks = await writeCheckpoint(root, id, [[`k${id}`, v(id)]], chunks, id === 1);
    await applyRetention(root, { retain: 1, protect: [2] });
  }
  assert.deepEqual(await committedCheckpoints(root), [2, 5]);
  const rows = await readState(await openSnapshot(root, "chk-000002"), "op", "s");
  assert.deepEqual(new Set(rows.keys), new Set(["k1", "k2"]));
  await assert.rejects(applyRetention(root, { retain: 0 }), RangeError);
});

test("gc() removes only old unreferenced debris; a dry run reports the same and deletes nothing", async () => {
  clearMemoryStorage("gc");
  const root = await openStorage("memory:gc");
  const chunks = await writeCheckpoint(root, 1, [["a", v(1)]], [], true);
  await writeCheckpoint(root, 2, [["b", v(2)]], chunks, false);
  await root.put("shared/orphan.arrow", new Uint8Array(100));
  await root.put("chk-000003/half.arrow", new Uint8Array(50)); // interrupted checkpoint
  await root.put("savepoints/sp-broken/x.arrow", new Uint8Array(7)); // interrupted savepoint
  await root.put("savepoints/sp-ok/_manifest.json", new Uint8Array(1)); // a committed savepoint's folder
  await root.put("savepoints/sp-ok/op/s/kg-0-127.arrow", new Uint8Array(9));
  await root.put("README.txt", new Uint8Array(3)); // not ours
  const before = await paths(root);

  const young = await gc(root, { dryRun: true });
  assert.deepEqual(young.deleted, [], "everything is younger than the grace period");

  const later = new Date(Date.now() + 2 * 60 * 60 * 1000);
  const dry = await gc(root, { dryRun: true, now: later });
  assert.deepEqual(dry.deleted.sort(), ["chk-000003/half.arrow", "savepoints/sp-broken/x.arrow", "shared/orphan.arrow"]);
  assert.equal(dry.bytesFreed, 157);
  assert.deepEqual(await paths(root), before);

  const real = await gc(root, { now: later });
  assert.deepEqual(real.deleted.sort(), dry.deleted.sort());
  assert.equal(real.dryRun, false);
  const after = await paths(root);
  assert.deepEqual(after, before.filter((p) => !dry.deleted.includes(p)));
  const rows = await readState(await openSnapshot("memory:gc"), "op", "s");
  assert.equal(rows.length, 2);
});
