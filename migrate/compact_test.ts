import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { FaultyStorage } from "../backends/faulty.ts";
import { AlreadyExistsError, IncompatibleSnapshotError } from "../format/errors.ts";
import { assignKeyGroup, keyGroupRangeFor } from "../format/key_group.ts";
import { decodeChunk } from "../format/decode_chunk.ts";
import { openSnapshot } from "../snapshot/read.ts";
import { scratchTestMode } from "../format/_scratch.ts";
import { compact } from "./compact.ts";
import { cnt, listAll, stateMap, writeChain } from "./_test_util.ts";

function chainSteps() {
  const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
  return [
    { set: keys.map((k, i) => [k, cnt(i)] as [string, ReturnType<typeof cnt>]) },
    { set: keys.slice(0, 50).map((k, i) => [k, cnt(1000 + i, "y")] as [string, ReturnType<typeof cnt>]), del: keys.slice(250, 270) },
    { set: [["new-1", cnt(1)], ["new-2", cnt(2)]] as [string, ReturnType<typeof cnt>][], del: ["user-0", "user-1", "new-1"] },
    { set: [["user-260", cnt(7, "back")]] as [string, ReturnType<typeof cnt>][] },
  ];
}

test("compact() of an incremental chain yields exactly the live state, self-contained, in the canonical layout", async () => {
  clearMemoryStorage("compact-chain");
  const root = await openStorage("memory:compact-chain");
  const live = await writeChain(root, chainSteps());
  const report = await compact("memory:compact-chain", "memory:compact-chain/savepoints/sp-4");
  assert.equal(report.id, "sp-4");
  assert.deepEqual(await stateMap("memory:compact-chain/savepoints/sp-4"), live);
  assert.equal(report.rows, live.size);

  const snap = await openSnapshot("memory:compact-chain/savepoints/sp-4");
  const m = snap.manifest;
  assert.equal(m.kind, "savepoint");
  assert.equal(m.chunkRoot, ".");
  assert.equal(m.checkpointId, 4);
  const st = m.operators[0].states[0];
  assert.deepEqual(st.chunks.map((c) => c.keyGroupRange), [0, 1, 2, 3].map((i) => keyGroupRangeFor(i, 4, 128)));
  for (const c of st.chunks) {
    assert.equal(c.type, "base");
    assert.match(c.path, /^counter\/counts\/kg-\d+-\d+\.arrow$/);
    const d = decodeChunk(await snap.storage.get(c.path));
    assert.equal(d.length, c.rows);
    for (let i = 0; i < d.length; i++) {
      assert.equal(d.keyGroups![i], assignKeyGroup(d.keys![i] as string, 128));
      if (i > 0) {
        // docs/format.md §6: rows sorted by key group; order within a key group is the writer's.
        assert.ok(d.keyGroups![i - 1] <= d.keyGroups![i], "sorted by key group");
      }
    }
  }
  // Nothing outside the savepoint's folder is referenced: its listing holds every chunk.
  const files = await listAll(root, "savepoints/sp-4/");
  assert.deepEqual(files.sort(), [...st.chunks.map((c) => `savepoints/sp-4/${c.path}`), "savepoints/sp-4/_manifest.json"].sort());
});

test("compact() at another parallelism and with small chunks still holds every row, ranges partition the key groups", async () => {
  clearMemoryStorage("compact-p");
  const root = await openStorage("memory:compact-p");
  const live = await writeChain(root, chainSteps());
  await compact("memory:compact-p/chk-000004", "memory:compact-p/sp-p2", { parallelism: 2, maxChunkRows: 40, batchRows: 16 });
  assert.deepEqual(await stateMap("memory:compact-p/sp-p2"), live);
  const snap = await openSnapshot("memory:compact-p/sp-p2");
  assert.equal(snap.manifest.operators[0].parallelism, 2);
  const chunks = snap.manifest.operators[0].states[0].chunks;
  assert.ok(chunks.length > 2, "split past maxChunkRows");
  let next = 0;
  for (const c of [...chunks].sort((a, b) => a.keyGroupRange!.start - b.keyGroupRange!.start)) {
    assert.equal(c.keyGroupRange!.start, next);
    next = c.keyGroupRange!.end + 1;
    assert.ok(c.keyGroupRange!.end < 64 || c.keyGroupRange!.start >= 64, "no chunk crosses a subtask boundary");
  }
  assert.equal(next, 128);
  // An older checkpoint of the chain compacts to its own state.
  await compact("memory:compact-p/chk-000001", "memory:compact-p/sp-1");
  assert.equal((await stateMap("memory:compact-p/sp-1")).size, 300);
});

test("compact() through the scratch pool with released buffers poisoned writes the same chunk bytes", async () => {
  clearMemoryStorage("compact-pool");
  const root = await openStorage("memory:compact-pool");
  await writeChain(root, chainSteps());
  // Same parallelism (source ranges end where windows end), and 3 (source chunks end inside windows and
  // inside the first batch of a window); output chunks split, so batches are held across chunk ends.
  for (const [name, opts] of [["p4", { maxChunkRows: 40, batchRows: 16 }], ["p3", { parallelism: 3, maxChunkRows: 60, batchRows: 50 }]] as const) {
    await compact("memory:compact-pool/chk-000004", `memory:compact-pool/${name}-plain`, opts);
    // Every buffer pooled (test chunks are small) and poisoned as it goes back: a source chunk handed back
    // while a pending output chunk still gathers from it would change the bytes written.
    const was = scratchTestMode(true);
    try {
      await compact("memory:compact-pool/chk-000004", `memory:compact-pool/${name}-pooled`, opts);
    } finally {
      scratchTestMode(was);
    }
    const a = await openSnapshot(`memory:compact-pool/${name}-plain`);
    const b = await openSnapshot(`memory:compact-pool/${name}-pooled`);
    const ca = a.manifest.operators[0].states[0].chunks;
    const cb = b.manifest.operators[0].states[0].chunks;
    assert.ok(ca.length > 3, "more output chunks than windows");
    assert.deepEqual(cb.map((c) => [c.path, c.rows, c.checksum]), ca.map((c) => [c.path, c.rows, c.checksum]));
    for (let i = 0; i < ca.length; i++) assert.deepEqual(await b.storage.get(cb[i].path), await a.storage.get(ca[i].path));
  }
});

test("compact() never writes in place or over an existing snapshot", async () => {
  clearMemoryStorage("compact-refuse");
  const root = await openStorage("memory:compact-refuse");
  await writeChain(root, chainSteps().slice(0, 1));
  await compact("memory:compact-refuse", "memory:compact-refuse/savepoints/sp-1");
  const before = await listAll(root);
  await assert.rejects(compact("memory:compact-refuse", "memory:compact-refuse/savepoints/sp-1"), AlreadyExistsError);
  await assert.rejects(compact("memory:compact-refuse/savepoints/sp-1", "memory:compact-refuse/savepoints/sp-1"), IncompatibleSnapshotError);
  await assert.rejects(compact("memory:compact-refuse", "memory:compact-refuse"), /contains the source snapshot/);
  await assert.rejects(compact("memory:compact-refuse/savepoints/sp-1", "memory:compact-refuse/savepoints/sp-1/inner"), /inside the source savepoint/);
  assert.deepEqual(await listAll(root), before);
});

test("a failed compact() commits nothing and removes the chunks it wrote", async () => {
  clearMemoryStorage("compact-fail");
  const root = await openStorage("memory:compact-fail");
  await writeChain(root, chainSteps());
  const before = await listAll(root);
  for (const failAt of [1, 3, 5]) {
    const dst = new FaultyStorage(await openStorage("memory:compact-fail/savepoints/sp-x"), { failAt, mode: "fail" });
    await assert.rejects(compact("memory:compact-fail", dst));
    assert.deepEqual(await listAll(root), before, `failAt ${failAt}`);
  }
});
