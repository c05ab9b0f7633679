import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { AlreadyExistsError, DestinationExistsError, IncompatibleSnapshotError } from "../format/errors.ts";
import type { Storage } from "../backends/storage.ts";
import { copySnapshot } from "./copy.ts";
import { checkDestination } from "./destination.ts";
import { openSnapshot } from "./read.ts";
import { type Value, writeCheckpoint } from "./_test_util.ts";

const v = (i: number): Value => ({ count: BigInt(i), label: `l${i}` });

/** A checkpoint chk-000001 of `n` keys under `root`, and a savepoint copied from it at `root/<sp>`. */
async function fixture(root: string, n: number, sp?: string): Promise<void> {
  await writeCheckpoint(await openStorage(root), 1, Array.from({ length: n }, (_, i) => [`k${i}`, v(i)]), [], true);
  if (sp) await copySnapshot(`${root}/chk-000001`, `${root}/${sp}`);
}

async function listAll(storage: Storage): Promise<string[]> {
  const out: string[] = [];
  for await (const o of storage.list("")) out.push(o.path);
  return out;
}

test("copySnapshot() refuses a destination inside the source savepoint and writes nothing (regression)", async () => {
  // Before: `cp <sp> <sp>/inner` exited 0 and nested a savepoint inside itself (rekey refused the same).
  clearMemoryStorage("dest-nest");
  await fixture("memory:dest-nest", 30, "sp");
  const root = await openStorage("memory:dest-nest");
  const before = await listAll(root);
  await assert.rejects(copySnapshot("memory:dest-nest/sp", "memory:dest-nest/sp/inner"), (e: unknown) => {
    assert.ok(e instanceof IncompatibleSnapshotError, String(e));
    assert.match(e.message, /the destination memory:dest-nest\/sp\/inner is inside the source (savepoint|checkpoint) memory:dest-nest\/sp; choose a folder outside it/);
    return true;
  });
  await assert.rejects(copySnapshot("memory:dest-nest/sp", "memory:dest-nest"), /contains the source snapshot/);
  await assert.rejects(copySnapshot("memory:dest-nest/chk-000001", "memory:dest-nest/chk-000001/inner"), /inside the source checkpoint/);
  await assert.rejects(copySnapshot("memory:dest-nest/sp", "memory:dest-nest/sp"), /is the source snapshot/);
  assert.deepEqual(await listAll(root), before);
});

test("checkDestination() refuses a copy inside a checkpoint's folder and the checkpoint root that holds it", async () => {
  clearMemoryStorage("dest-chk");
  await fixture("memory:dest-chk", 20);
  const snap = await openSnapshot("memory:dest-chk/chk-000001");
  await assert.rejects(checkDestination(snap, await openStorage("memory:dest-chk/chk-000001/copy")), /inside the source checkpoint/);
  await assert.rejects(checkDestination(snap, await openStorage("memory:dest-chk")), /contains the source snapshot/);
  await checkDestination(snap, await openStorage("memory:dest-chk/savepoints/sp-1"));
});

test("copySnapshot() to a folder that holds a snapshot is refused before any chunk is copied, naming the destination", async () => {
  clearMemoryStorage("dest-exists");
  await fixture("memory:dest-exists", 40, "a");
  await copySnapshot("memory:dest-exists/a", "memory:dest-exists/b");
  const b = await openStorage("memory:dest-exists/b");
  const before = await listAll(b);
  await assert.rejects(copySnapshot("memory:dest-exists/a", "memory:dest-exists/b"), (e: unknown) => {
    assert.ok(e instanceof DestinationExistsError && e instanceof AlreadyExistsError, String(e));
    assert.equal(e.destination, "memory:dest-exists/b");
    assert.match(e.message, /^write to memory:dest-exists\/b failed: the destination already holds a snapshot .*choose a new destination folder, or delete that snapshot first/);
    return true;
  });
  assert.deepEqual(await listAll(b), before);
});
