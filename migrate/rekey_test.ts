import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { IncompatibleSnapshotError, KeyGroupError, SchemaViolationError } from "../format/errors.ts";
import { assignKeyGroup, keyGroupRangeFor } from "../format/key_group.ts";
import { decodeChunk } from "../format/decode_chunk.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { scratchTestMode } from "../format/_scratch.ts";
import { rekey } from "./rekey.ts";
import { entries, listAll, stateMap, writeSavepoint } from "./_test_util.ts";

/** Checks every chunk of the counter/counts state: rows in range, each key in the group its hash gives. */
async function checkPlacement(uri: string, maxP: number, parallelism: number): Promise<number> {
  const snap = await openSnapshot(uri);
  assert.equal(snap.manifest.maxParallelism, maxP);
  const op = snap.manifest.operators.find((o) => o.uid === "counter")!;
  assert.equal(op.parallelism, parallelism);
  const ranges = Array.from({ length: parallelism }, (_, i) => keyGroupRangeFor(i, parallelism, maxP));
  let rows = 0;
  let next = 0;
  const chunks = [...op.states.find((s) => s.name === "counts")!.chunks].sort((a, b) => a.keyGroupRange!.start - b.keyGroupRange!.start);
  for (const c of chunks) {
    const r = c.keyGroupRange!;
    assert.equal(r.start, next, "chunk ranges partition [0, maxP)");
    next = r.end + 1;
    assert.ok(ranges.some((s) => r.start >= s.start && r.end <= s.end), `chunk [${r.start}, ${r.end}] inside one subtask range`);
    const d = decodeChunk(await snap.storage.get(c.path), { checksum: c.checksum, compression: c.compression });
    assert.equal(d.length, c.rows);
    for (let i = 0; i < d.length; i++) {
      assert.equal(d.keyGroups![i], assignKeyGroup(d.keys![i] as string, maxP));
      assert.ok(d.keyGroups![i] >= r.start && d.keyGroups![i] <= r.end);
    }
    rows += d.length;
  }
  assert.equal(next, maxP);
  await snap.storage.close();
  return rows;
}

test("rekey() 4 → 7 → 2 keeps every row; parallelism changes only move whole key groups", async () => {
  clearMemoryStorage("rekey-p");
  const data = entries(2000);
  await writeSavepoint(await openStorage("memory:rekey-p/sp-4"), data, { parallelism: 4, offsets: [[1, 2], [3], [4, 5, 6], []] });
  const r7 = await rekey("memory:rekey-p/sp-4", "memory:rekey-p/sp-7", { parallelism: 7 });
  assert.equal(r7.rows, 2000 + 6);
  assert.equal(await checkPlacement("memory:rekey-p/sp-7", 128, 7), 2000);
  assert.deepEqual(await stateMap("memory:rekey-p/sp-7"), data);
  // Whole key groups moved: one chunk per (old range ∩ new range), cut from the old chunks, none merged.
  const pieces = (await openSnapshot("memory:rekey-p/sp-7")).manifest.operators[0].states[0].chunks;
  let intersections = 0;
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 7; j++) {
      const a = keyGroupRangeFor(i, 4, 128);
      const b = keyGroupRangeFor(j, 7, 128);
      if (Math.max(a.start, b.start) <= Math.min(a.end, b.end)) intersections++;
    }
  }
  assert.equal(pieces.length, intersections);
  await rekey("memory:rekey-p/sp-7", "memory:rekey-p/sp-2", { parallelism: 2 });
  assert.equal(await checkPlacement("memory:rekey-p/sp-2", 128, 2), 2000);
  assert.deepEqual(await stateMap("memory:rekey-p/sp-2"), data);
  // Operator state (split): every item kept once, dealt round-robin.
  const snap = await openSnapshot("memory:rekey-p/sp-2");
  const offsets = await readState(snap, "counter", "offsets");
  assert.deepEqual([...offsets.values].sort(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(snap.manifest.operators[0].states[1].chunks.map((c) => c.subtask).sort(), [0, 1]);
});

test("rekey() maxParallelism 128 → 512 → 128 re-hashes every key and keeps every row", async () => {
  clearMemoryStorage("rekey-m");
  const data = entries(3000, "user-");
  await writeSavepoint(await openStorage("memory:rekey-m/a"), data, { parallelism: 4 });
  await rekey("memory:rekey-m/a", "memory:rekey-m/b", { maxParallelism: 512, spillRows: 500, batchRows: 300 });
  assert.equal(await checkPlacement("memory:rekey-m/b", 512, 4), 3000);
  assert.deepEqual(await stateMap("memory:rekey-m/b"), data);
  await rekey("memory:rekey-m/b", "memory:rekey-m/c", { maxParallelism: 128, parallelism: 3, tempUri: "memory:rekey-m-tmp" });
  assert.equal(await checkPlacement("memory:rekey-m/c", 128, 3), 3000);
  assert.deepEqual(await stateMap("memory:rekey-m/c"), data);
  assert.deepEqual(await listAll(await openStorage("memory:rekey-m-tmp")), [], "spill pieces removed");
});

test("rekey() maxParallelism in memory (small sources) and through spilled pieces write the same rows, chunks split at maxChunkRows", async () => {
  clearMemoryStorage("rekey-mem");
  const data = entries(3000, "user-");
  await writeSavepoint(await openStorage("memory:rekey-mem/a"), data, { parallelism: 4 });
  await rekey("memory:rekey-mem/a", "memory:rekey-mem/mem", { maxParallelism: 300, parallelism: 3, maxChunkRows: 250 });
  await rekey("memory:rekey-mem/a", "memory:rekey-mem/spill", { maxParallelism: 300, parallelism: 3, maxChunkRows: 250, spillRows: 700 });
  assert.equal(await checkPlacement("memory:rekey-mem/mem", 300, 3), 3000);
  assert.deepEqual(await stateMap("memory:rekey-mem/mem"), data);
  assert.deepEqual(await stateMap("memory:rekey-mem/spill"), data);
  const chunks = (await openSnapshot("memory:rekey-mem/mem")).manifest.operators[0].states[0].chunks;
  assert.ok(chunks.length > 3, "split below the subtask ranges");
  for (const c of chunks) assert.ok(c.rows <= 250 || c.keyGroupRange!.start === c.keyGroupRange!.end, `chunk of ${c.rows} rows over key groups ${JSON.stringify(c.keyGroupRange)}`);
});

test("rekey() maxParallelism through the poisoned scratch pool (sources and picks pooled) writes the same chunk bytes", async () => {
  clearMemoryStorage("rekey-pool");
  await writeSavepoint(await openStorage("memory:rekey-pool/a"), entries(3000, "user-"), { parallelism: 4 });
  const opts = { maxParallelism: 300, parallelism: 3, maxChunkRows: 250 };
  await rekey("memory:rekey-pool/a", "memory:rekey-pool/plain", opts);
  // Every buffer pooled (test chunks are small) and poisoned as it goes back: a source chunk or a picks
  // array handed back while later target ranges still gather from it would change the bytes written.
  const was = scratchTestMode(true);
  try {
    await rekey("memory:rekey-pool/a", "memory:rekey-pool/pooled", opts);
  } finally {
    scratchTestMode(was);
  }
  const a = await openSnapshot("memory:rekey-pool/plain");
  const b = await openSnapshot("memory:rekey-pool/pooled");
  const ca = a.manifest.operators[0].states[0].chunks;
  const cb = b.manifest.operators[0].states[0].chunks;
  assert.ok(ca.length > 3);
  assert.deepEqual(cb.map((c) => [c.path, c.rows, c.checksum]), ca.map((c) => [c.path, c.rows, c.checksum]));
  for (let i = 0; i < ca.length; i++) assert.deepEqual(await b.storage.get(cb[i].path), await a.storage.get(ca[i].path));
});

test("rekey() with a key function merges colliding keys with the merge rule", async () => {
  clearMemoryStorage("rekey-k");
  const data = entries(400, "user-");
  await writeSavepoint(await openStorage("memory:rekey-k/a"), data);
  const byBucket = (k: unknown) => `bucket-${Number(String(k).slice(5)) % 10}`;
  await rekey("memory:rekey-k/a", "memory:rekey-k/b", {
    keyBy: { counter: byBucket },
    merge: { "counter/counts": (a, b) => ({ count: (a as { count: bigint }).count + (b as { count: bigint }).count, label: "sum" }) },
  });
  const got = await stateMap("memory:rekey-k/b");
  const expected = new Map<string, { count: bigint; label: string }>();
  for (const [k, v] of data) {
    const nk = byBucket(k);
    expected.set(nk, { count: (expected.get(nk)?.count ?? 0n) + v.count, label: "sum" });
  }
  assert.deepEqual(got, expected);
  assert.equal(await checkPlacement("memory:rekey-k/b", 128, 4), 10);
});

test("rekey() with a key function and no merge rule fails naming the colliding keys, committing nothing", async () => {
  clearMemoryStorage("rekey-c");
  await writeSavepoint(await openStorage("memory:rekey-c/a"), entries(50, "user-"));
  await assert.rejects(
    rekey("memory:rekey-c/a", "memory:rekey-c/b", { keyBy: { counter: (k) => (String(k) === "user-7" ? "user-3" : k) } }),
    (e: unknown) => e instanceof IncompatibleSnapshotError && /"user-(3|7)" and "user-(3|7)" both map to the new key "user-3"/.test(e.message) && /merge/.test(e.message),
  );
  assert.deepEqual(await listAll(await openStorage("memory:rekey-c/b")), []);
});

test("rekey() refuses bad arguments with messages naming the operator or value", async () => {
  clearMemoryStorage("rekey-bad");
  await writeSavepoint(await openStorage("memory:rekey-bad/a"), entries(12));
  await assert.rejects(rekey("memory:rekey-bad/a", "memory:rekey-bad/b", { parallelism: 200 }), (e: unknown) => e instanceof KeyGroupError && /"counter"/.test(e.message));
  await assert.rejects(rekey("memory:rekey-bad/a", "memory:rekey-bad/b", { maxParallelism: 40000 }), KeyGroupError);
  await assert.rejects(rekey("memory:rekey-bad/a", "memory:rekey-bad/b", { operators: ["nope"], parallelism: 2 }), /operators: counter/);
  await assert.rejects(
    rekey("memory:rekey-bad/a", "memory:rekey-bad/b", { keyBy: { counter: (k) => String(k).length } }),
    (e: unknown) => e instanceof SchemaViolationError && /key type string/.test(e.message),
  );
  // With the new key type declared it works.
  await rekey("memory:rekey-bad/a", "memory:rekey-bad/c", { keyBy: { counter: (k) => String(k).length }, keyTypes: { counter: "int32" }, merge: { counter: (a) => a } });
  const snap = await openSnapshot("memory:rekey-bad/c");
  assert.equal(snap.manifest.operators[0].states[0].keyType, "int32");
  assert.deepEqual([...(await stateMap("memory:rekey-bad/c")).keys()].sort(), [2, 3]);
});
