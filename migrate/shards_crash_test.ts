// Crash points of sharded runs, on memory, filesystem and S3 (see snapshot/_test_crash.ts): a shard killed
// at each storage operation of its destination, then run again, then committed; and the commit itself
// crashed at each of its storage operations, then run again. After each: the source is untouched, the
// destination is either no snapshot or the clean run's savepoint, and the re-run completes it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../backends/memory.ts";
import type { Storage } from "../backends/storage.ts";
import { subStorage } from "../backends/sub.ts";
import { MissingShardError } from "../format/errors.ts";
import { longOr, prng, recordFigure, SEED } from "../format/_test_fuzz.ts";
import { openSnapshot } from "../snapshot/read.ts";
import { gc } from "../snapshot/retention.ts";
import { commitShards } from "../snapshot/shards.ts";
import { allPaths, type CrashBackend, crashBackends, type CrashMode, CrashStorage, runCrashing, snapshotFacts, stateText } from "../snapshot/_test_crash.ts";
import { rekey } from "./rekey.ts";
import { validate } from "./validate.ts";
import { entries, writeSavepoint } from "./_test_util.ts";

const MODES: CrashMode[] = ["fail", "kill", "torn"];
const DST = "savepoints/out";
const N = 4;
// More rows in long mode: more chunks per shard, so more storage operations to crash at.
const ENTRIES = longOr(160, 1000);

let env: Awaited<ReturnType<typeof crashBackends>>;
before(async () => {
  env = await crashBackends();
});
after(async () => {
  await env?.stop();
});

async function setup(root: Storage): Promise<void> {
  await writeSavepoint(subStorage(root, "savepoints/sp-1"), entries(ENTRIES), { offsets: [[{ p: 1 }], [{ p: 2 }], [{ p: 3 }]] });
}

/** Shard `i` of a re-hash into 5 subtasks over 256 key groups, small chunks (many operations). */
const shard = async (root: Storage, dst: Storage, i: number) =>
  await rekey(await openSnapshot(root, "savepoints/sp-1"), dst, { maxParallelism: 256, parallelism: 5, maxChunkRows: 37, shard: { index: i, count: N } });

async function clean(): Promise<string> {
  const ref = new MemoryStorage();
  await setup(ref);
  await rekey(await openSnapshot(ref, "savepoints/sp-1"), subStorage(ref, DST), { maxParallelism: 256, parallelism: 5, maxChunkRows: 37 });
  return await stateText(ref, DST);
}

function points(n: number, sample: number): number[] {
  const rnd = prng(SEED ^ n);
  return Array.from({ length: n }, (_, i) => i + 1).filter((k) => sample >= n || k === n || rnd() < sample / n);
}

async function killShard(backend: CrashBackend, sample: number, want: string): Promise<void> {
  const probeRoot = await backend.root("shard-probe");
  await setup(probeRoot.storage);
  const probe = new CrashStorage(probeRoot.storage);
  await shard(probeRoot.storage, subStorage(probe, DST), 1);
  const n = probe.operations;
  await probeRoot.close();
  const figures = { kind: "crash", operation: `rekey shard 1/${N} killed, re-run, commitShards`, backend: backend.name, operations: n, points: 0, intact: 0, modes: MODES };
  for (const mode of MODES) {
    for (const k of points(n, sample)) {
      const where = `shard 1/${N} on ${backend.name}, ${mode} at operation ${k}/${n}`;
      const root = await backend.root(`shard-${mode}-${k}`);
      try {
        await setup(root.storage);
        const before = await snapshotFacts(root.storage);
        for (const i of [0, 2, 3]) await shard(root.storage, subStorage(root.storage, DST), i);
        const crashing = new CrashStorage(root.storage, k, mode, root.debris);
        const outcome = await runCrashing(() => shard(root.storage, subStorage(crashing, DST), 1), `${where} (${crashing.log[k - 1] ?? "?"})`);
        await crashing.settled();
        assert.equal(outcome, "failed", `${where}: the crash point was not reached`);
        // The killed shard left no receipt: the commit refuses it by name, nothing becomes visible.
        await assert.rejects(commitShards(subStorage(root.storage, DST)), (e) => e instanceof MissingShardError && e.shards.join() === "1", where);
        assert.equal(await root.storage.exists(`${DST}/_manifest.json`), false, `${where}: visible before the commit`);
        await root.sweepInvisible();
        // Run again over its leftovers, then commit: the clean savepoint.
        await shard(root.storage, subStorage(root.storage, DST), 1);
        await commitShards(subStorage(root.storage, DST));
        assert.equal(await stateText(root.storage, DST), want, `${where}: the committed savepoint differs`);
        assert.deepEqual(await validate(await openSnapshot(root.storage, DST)), [], `${where}: invalid`);
        const now = await snapshotFacts(root.storage);
        assert.equal(now.savepoints.get("sp-1"), before.savepoints.get("sp-1"), `${where}: the source changed`);
        assert.deepEqual((await allPaths(root.storage)).filter((p) => p.includes("/_shards/")), [], `${where}: receipts left`);
        figures.points++;
        figures.intact++;
      } finally {
        await root.close();
      }
    }
  }
  recordFigure(figures);
}

async function crashCommit(backend: CrashBackend, want: string): Promise<void> {
  const probeRoot = await backend.root("commit-probe");
  await setup(probeRoot.storage);
  for (let i = 0; i < N; i++) await shard(probeRoot.storage, subStorage(probeRoot.storage, DST), i);
  const probe = new CrashStorage(probeRoot.storage);
  await commitShards(subStorage(probe, DST));
  const n = probe.operations;
  await probeRoot.close();
  assert.ok(n >= 2, `the commit writes the manifest and removes the receipts (${n} operations)`);
  const figures = { kind: "crash", operation: "commitShards", backend: backend.name, operations: n, points: 0, intact: 0, committedAnyway: 0, modes: MODES };
  for (const mode of MODES) {
    for (let k = 1; k <= n; k++) {
      const where = `commit on ${backend.name}, ${mode} at operation ${k}/${n}`;
      const root = await backend.root(`commit-${mode}-${k}`);
      try {
        await setup(root.storage);
        const before = await snapshotFacts(root.storage);
        for (let i = 0; i < N; i++) await shard(root.storage, subStorage(root.storage, DST), i);
        const crashing = new CrashStorage(root.storage, k, mode, root.debris);
        await runCrashing(() => commitShards(subStorage(crashing, DST)), `${where} (${crashing.log[k - 1] ?? "?"})`);
        await crashing.settled();
        const now = await snapshotFacts(root.storage);
        assert.equal(now.savepoints.get("sp-1"), before.savepoints.get("sp-1"), `${where}: the source changed`);
        if (now.savepoints.has("out")) assert.equal(now.savepoints.get("out"), want, `${where}: committed but different`);
        await root.sweepInvisible();
        // Committing again completes it, whichever side of the manifest write the crash fell on.
        if (now.savepoints.has("out")) figures.committedAnyway++;
        const again = await commitShards(subStorage(root.storage, DST));
        assert.equal(again.alreadyCommitted, now.savepoints.has("out"), where);
        assert.equal(await stateText(root.storage, DST), want, `${where}: the re-run differs`);
        assert.deepEqual(await validate(await openSnapshot(root.storage, DST)), [], `${where}: invalid`);
        assert.deepEqual((await allPaths(root.storage)).filter((p) => p.includes("/_shards/")), [], `${where}: receipts left`);
        assert.deepEqual((await gc(root.storage, { graceMs: 0, dryRun: true })).deleted, [], `${where}: debris after the commit`);
        figures.points++;
        figures.intact++;
      } finally {
        await root.close();
      }
    }
  }
  recordFigure(figures);
}

test("a shard killed at any storage operation, run again, then committed: the clean savepoint; the commit refuses it until then (a sample of crash points in quick mode, all in long mode)", async () => {
  const want = await clean();
  await killShard(env.backends[0], longOr(10, Infinity), want);
  await killShard(env.backends[1], longOr(3, Infinity), want);
  await killShard(env.backends[2], longOr(2, Infinity), want);
});

test("commitShards crashed at each of its storage operations, then run again: the clean savepoint, the source untouched", async () => {
  const want = await clean();
  for (const backend of env.backends) await crashCommit(backend, want);
});
