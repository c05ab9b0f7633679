import { test } from "node:test";
import assert from "node:assert/strict";
import { openStorage } from "../backends/open.ts";
import { clearMemoryStorage } from "../backends/memory.ts";
import { FaultyStorage } from "../backends/faulty.ts";
import { AlreadyExistsError, ChecksumMismatchError, IncompatibleSnapshotError, NotFoundError, SnapshotFormatError } from "../format/errors.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import { committedCheckpoints, latestCheckpoint, openSnapshot, readState, splitUri } from "./read.ts";
import { commitManifest } from "./write.ts";
import { manifestOf, writeCheckpoint } from "./_test_util.ts";

const v = (count: number, label = "x") => ({ count: BigInt(count), label });

test("readState() applies a chain of base and deltas: upserts win, deletes drop, order by key group", async () => {
  clearMemoryStorage("chain");
  const root = await openStorage("memory:chain");
  let chunks = await writeCheckpoint(root, 1, [["a", v(1)], ["b", v(2)], ["c", v(3)]], [], true);
  chunks = await writeCheckpoint(root, 2, [["b", v(20)], ["d", v(4)]], chunks, false);
  chunks = await writeCheckpoint(root, 3, [["a", undefined], ["d", v(40, "y")]], chunks, false);
  const snap = await openSnapshot("memory:chain");
  assert.equal(snap.manifest.id, "chk-000003");
  const rows = await readState(snap, "op", "s");
  const got = new Map(rows.keys!.map((k, i) => [k, rows.values[i]]));
  assert.deepEqual(got, new Map<unknown, unknown>([["b", v(20)], ["c", v(3)], ["d", v(40, "y")]]));
  for (let i = 0; i < rows.length; i++) assert.equal(rows.keyGroups![i], assignKeyGroup(rows.keys![i] as string, 128));
  for (let i = 1; i < rows.length; i++) assert.ok(rows.keyGroups![i - 1] <= rows.keyGroups![i]);
});

test("readState() with a range returns only key groups in it", async () => {
  clearMemoryStorage("range");
  const root = await openStorage("memory:range");
  const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
  await writeCheckpoint(root, 1, keys.map((k, i) => [k, v(i)]), [], true);
  const snap = await openSnapshot("memory:range");
  const part = await readState(snap, "op", "s", { start: 10, end: 40 });
  const expected = keys.filter((k) => { const kg = assignKeyGroup(k, 128); return kg >= 10 && kg <= 40; });
  assert.deepEqual(new Set(part.keys), new Set(expected));
  assert.ok(part.length > 0 && part.length < 200);
});

test("openSnapshot() opens a chk folder URI, a root URI (latest), and refuses folders without a manifest", async () => {
  clearMemoryStorage("open");
  const root = await openStorage("memory:open");
  const c1 = await writeCheckpoint(root, 1, [["a", v(1)]], [], true);
  await writeCheckpoint(root, 2, [["a", v(2)]], c1, false);
  await root.put("chk-000003/partial.arrow", new Uint8Array([1, 2, 3])); // an interrupted checkpoint
  assert.deepEqual(await committedCheckpoints(root), [1, 2]);
  assert.equal(await latestCheckpoint(root), 2);
  assert.equal((await openSnapshot("memory:open/chk-000001")).manifest.id, "chk-000001");
  assert.equal((await openSnapshot("memory:open")).manifest.id, "chk-000002");
  await assert.rejects(openSnapshot("memory:open/chk-000003"), NotFoundError);
  await assert.rejects(openSnapshot("memory:nothing-here"), /no _manifest.json/);
});

test("readState() names a missing operator or state and what exists", async () => {
  clearMemoryStorage("names");
  await writeCheckpoint(await openStorage("memory:names"), 1, [["a", v(1)]], [], true);
  const snap = await openSnapshot("memory:names");
  await assert.rejects(readState(snap, "nope", "s"), (e: unknown) => e instanceof IncompatibleSnapshotError && /operators: op/.test(e.message));
  await assert.rejects(readState(snap, "op", "t"), /states of op: s/);
});

test("a corrupted, truncated or missing chunk is a named error, never wrong rows", async () => {
  clearMemoryStorage("corrupt");
  const root = await openStorage("memory:corrupt");
  const [ref] = await writeCheckpoint(root, 1, [["a", v(1)], ["b", v(2)]], [], true);
  const good = await root.get(ref.path);
  const flipped = good.slice();
  flipped[Math.floor(flipped.length / 2)] ^= 0x40;
  await root.put(ref.path, flipped);
  await assert.rejects(readState(await openSnapshot("memory:corrupt"), "op", "s"), ChecksumMismatchError);
  await root.put(ref.path, good.subarray(0, good.length - 5));
  await assert.rejects(readState(await openSnapshot("memory:corrupt"), "op", "s"), (e: unknown) => e instanceof SnapshotFormatError && /truncated/.test(e.message));
  await root.delete([ref.path]);
  await assert.rejects(readState(await openSnapshot("memory:corrupt"), "op", "s"), /missing/);
});

test("commitManifest() never overwrites: the second commit of one checkpoint fails and the first stays", async () => {
  clearMemoryStorage("commit");
  const root = await openStorage("memory:commit");
  await writeCheckpoint(root, 1, [["a", v(1)]], [], true);
  const before = await root.get("chk-000001/_manifest.json");
  await assert.rejects(commitManifest(root, "chk-000001", manifestOf(1, 128, [])), AlreadyExistsError);
  assert.deepEqual(await root.get("chk-000001/_manifest.json"), before);
});

test("a failure at every step of a commit leaves earlier checkpoints intact and no half checkpoint visible", async () => {
  clearMemoryStorage("crash");
  const inner = await openStorage("memory:crash");
  const c1 = await writeCheckpoint(inner, 1, [["a", v(1)], ["b", v(2)]], [], true);
  // A checkpoint is one chunk put and one manifest commit: try failing each.
  for (const failAt of [1, 2]) {
    const faulty = new FaultyStorage(inner, { failAt, mode: "kill" });
    await assert.rejects(writeCheckpoint(faulty, 2, [["b", v(5)]], c1, false));
    assert.deepEqual(await committedCheckpoints(inner), [1], `failAt ${failAt}`);
    const rows = await readState(await openSnapshot("memory:crash"), "op", "s");
    assert.deepEqual(new Map(rows.keys!.map((k, i) => [k, rows.values[i]])), new Map<unknown, unknown>([["a", v(1)], ["b", v(2)]]));
  }
});

test("splitUri() finds the parent of paths, file:, s3: and memory: URIs", () => {
  assert.deepEqual(splitUri("/data/ckpt/chk-000001"), { parent: "/data/ckpt", name: "chk-000001" });
  assert.deepEqual(splitUri("/chk-000001"), { parent: "/", name: "chk-000001" });
  assert.deepEqual(splitUri("ckpt/chk-000001/"), { parent: "ckpt", name: "chk-000001" });
  assert.deepEqual(splitUri("chk-000001"), { parent: ".", name: "chk-000001" });
  assert.deepEqual(splitUri("file:///data/chk-000001"), { parent: "file:///data", name: "chk-000001" });
  assert.deepEqual(splitUri("file:///chk-000001"), { parent: "file:///", name: "chk-000001" });
  assert.deepEqual(splitUri("s3://bucket/jobs/chk-000001"), { parent: "s3://bucket/jobs", name: "chk-000001" });
  assert.deepEqual(splitUri("s3://bucket/chk-000001"), { parent: "s3://bucket", name: "chk-000001" });
  assert.deepEqual(splitUri("s3://bucket"), { parent: "s3://bucket", name: "" });
  assert.deepEqual(splitUri("memory:x/chk-000001"), { parent: "memory:x", name: "chk-000001" });
  assert.deepEqual(splitUri("memory:x"), { parent: "memory:x", name: "" });
});

test("openSnapshot(uri, dir) opens the folder dir inside the URI, not the latest checkpoint (regression)", async () => {
  clearMemoryStorage("dir-arg");
  const root = await openStorage("memory:dir-arg");
  let chunks = await writeCheckpoint(root, 1, [["a", v(1)]], [], true);
  chunks = await writeCheckpoint(root, 2, [["a", v(2)]], chunks, false);
  const first = await openSnapshot("memory:dir-arg", "chk-000001");
  assert.equal(first.manifest.id, "chk-000001");
  assert.deepEqual((await readState(first, "op", "s")).values, [v(1)]);
  assert.equal((await openSnapshot("memory:dir-arg")).manifest.id, "chk-000002");
  await assert.rejects(openSnapshot("memory:dir-arg", "chk-000009"), NotFoundError);
});
