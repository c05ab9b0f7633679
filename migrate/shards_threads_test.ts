// `workers`: that shards really run on worker threads (not quietly on this one), that progress adds up across
// threads, and what a shard failing on a worker thread leaves: the named error, no visible destination, an
// untouched source, and a pool that still works.
//
// Scheduling is decided by the code's structure, not by timing: with a warm thread in the pool, the pool
// hands it over within microtasks, while this thread's first shard waits for file I/O; so this thread runs
// shard 0 and the worker thread shard 1.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { openStorage } from "../backends/open.ts";
import { ChecksumMismatchError, MigrationError } from "../format/errors.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import type { Manifest } from "../format/manifest.ts";
import { siblingModule } from "../platform/worker.ts";
import { acquireWorker, drainWorkerPool, idleWorkers, releaseWorker } from "../platform/worker_pool.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { compact } from "./compact.ts";
import { migrate } from "./migrate.ts";
import type { Progress } from "./progress.ts";
import { rekey } from "./rekey.ts";
import type { WriteReport } from "./_rewrite.ts";
import { entries, listAll, writeSavepoint } from "./_test_util.ts";
import { autoLimits } from "./_workers.ts";
import { sharedRun } from "./_shard_cache.ts";
import { asShared, hashUnit, hashUnits, unitBuffersReused, unitsHashedHere } from "./_shared_hash.ts";
import type { Lease } from "../format/_scratch.ts";

// The module _workers.ts starts, beside this one.
const shardWorker = siblingModule(import.meta.url, "_shard_worker");
const here = import.meta.dirname ?? new URL(".", import.meta.url).pathname;
const lib = (file: string) => JSON.stringify(pathToFileURL(join(here, file)).href);

let dir: string;
let src: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-threads-"));
  src = join(dir, "sp");
  await writeSavepoint(await openStorage(src), entries(3000), { offsets: [[1, 2], [3], [4, 5], [6]] });
});
after(async () => {
  await drainWorkerPool();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One warm thread in the pool: the next run's second thread starts at once. */
async function warmOne(): Promise<void> {
  if (idleWorkers(shardWorker) > 0) return;
  releaseWorker(shardWorker, await acquireWorker(shardWorker));
}

/** Every file under `root` with a hash of its bytes. */
async function files(root: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const p of await listAll(await openStorage(root))) out.push([p, createHash("sha256").update(await readFile(join(root, p))).digest("hex")]);
  return out;
}

async function same(a: string, b: string): Promise<void> {
  const read = async (uri: string) => {
    const snap = await openSnapshot(uri);
    const { createdAt: _c, checksum: _s, ...m } = snap.manifest as Manifest & { checksum?: string };
    const rows: unknown[] = [];
    for (const op of snap.manifest.operators) for (const st of op.states) rows.push(await readState(snap, op.uid, st.name));
    await snap.storage.close();
    return { m, rows };
  };
  assert.deepEqual(await read(a), await read(b));
}

/** Checks that shard 0 ran here and shard 1 on a worker thread, and that progress added both up. */
function ranOnAWorker(report: WriteReport, seen: Progress[], what: string): void {
  assert.equal(report.shards?.length, 2, `${what}: two shards`);
  const [mine, theirs] = report.shards!;
  assert.deepEqual([mine.index, mine.thread], [0, 0], `${what}: shard 0 on this thread`);
  assert.equal(theirs.index, 1);
  assert.ok(theirs.thread > 0, `${what}: shard 1 on a worker thread (thread id ${theirs.thread})`);
  assert.ok(mine.rows > 0 && theirs.rows > 0, `${what}: both shards wrote rows`);
  assert.equal(mine.rows + theirs.rows, report.rows, `${what}: the shards' rows are the run's`);
  // Progress before the commit counts both threads' rows: the last count is every row, more than either
  // shard's alone, and no count passes the total (a re-hash's shards each scatter the whole source).
  const before = seen.filter((p) => p.phase !== "commit");
  assert.equal(before.at(-1)?.rows, report.rows, `${what}: progress across threads reached every row`);
  assert.ok(report.rows > Math.max(mine.rows, theirs.rows), `${what}: progress added the threads up`);
  assert.ok(before.every((p) => p.totalRows !== undefined && p.rows <= p.totalRows + 6), `${what}: no count beyond the total: ${JSON.stringify(before)}`);
  assert.equal(seen.at(-1)?.phase, "commit");
}

test("workers: 2 runs shard 1 of compact, rekey (parallelism and maxParallelism) and migrate on a worker thread; progress adds the threads up", async () => {
  const mod = join(dir, "add.mts");
  await writeFile(mod, `import { addField, defineMigrations } from ${lib("migrations.ts")};\nexport default defineMigrations({ "counter/counts": [addField("seen", "bool", true)] });\n`);
  const { default: migrations } = await import(pathToFileURL(mod).href);
  const runs: [string, (dst: string, workers: 2 | undefined, onProgress?: (p: Progress) => void) => Promise<WriteReport>][] = [
    ["compact", (dst, workers, onProgress) => compact(src, dst, { parallelism: 5, workers, onProgress })],
    ["rekey parallelism", (dst, workers, onProgress) => rekey(src, dst, { parallelism: 3, workers, onProgress })],
    ["rekey maxParallelism", (dst, workers, onProgress) => rekey(src, dst, { maxParallelism: 256, parallelism: 3, workers, onProgress })],
    ["migrate", async (dst, workers, onProgress) => (await migrate(src, dst, migrations, { workers, onProgress, migrationsModule: pathToFileURL(mod).href })).written!],
  ];
  for (const [what, run] of runs) {
    const name = what.replace(/ /g, "-");
    await warmOne();
    const seen: Progress[] = [];
    const report = await run(join(dir, "w2", name, "out"), 2, (p) => seen.push(p));
    ranOnAWorker(report, seen, what);
    // The thread went back to the pool for the next run.
    assert.equal(idleWorkers(shardWorker), 1, `${what}: the worker thread is idle in the pool again`);
    const one = await run(join(dir, "w1", name, "out"), undefined);
    assert.equal(one.shards, undefined, `${what}: a run in this thread alone lists no shards`);
    await same(join(dir, "w2", name, "out"), join(dir, "w1", name, "out"));
  }
});

test("workers: \"auto\" runs on the warm worker thread where it picks threads, also for a re-hash the threads share, and stays here for one they cannot", async () => {
  const saved = { ...autoLimits };
  autoLimits.warm = 1000; // this source's 3006 rows count as large
  try {
    await warmOne();
    const seen: Progress[] = [];
    const report = await rekey(src, join(dir, "auto", "a", "out"), { parallelism: 3, workers: "auto", onProgress: (p) => seen.push(p) });
    ranOnAWorker(report, seen, "auto");
    await rekey(src, join(dir, "auto", "b", "out"), { parallelism: 3 });
    await same(join(dir, "auto", "a", "out"), join(dir, "auto", "b", "out"));
    // A new maxParallelism: the threads hash the source a chunk each, so "auto" splits it as any run.
    await warmOne();
    const shared = await rekey(src, join(dir, "auto", "m256"), { maxParallelism: 256, workers: "auto" });
    assert.equal(shared.shards?.length, 2);
    // Spilled (spillRows given), every shard would hash the whole source: "auto" keeps it in this thread.
    const spilled = await rekey(src, join(dir, "auto", "m256-spilled"), { maxParallelism: 256, workers: "auto", spillRows: 1000 });
    assert.equal(spilled.shards, undefined);
    assert.equal(idleWorkers(shardWorker), 1, "the warm thread was left alone");
  } finally {
    Object.assign(autoLimits, saved);
  }
});

test("workers: a damaged source chunk read on a worker thread fails the run by name; the destination stays invisible, the source untouched, the pool usable", async () => {
  const damaged = join(dir, "damaged");
  await cp(src, damaged, { recursive: true });
  // Key groups 96–127 feed shard 1 of 2 (64–127) only; flip a byte in the middle of their chunk.
  const chunk = join(damaged, "counter/counts/kg-96-127.arrow");
  const bytes = await readFile(chunk);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(chunk, bytes);
  const sourceBefore = await files(damaged);
  await warmOne();
  const dst = join(dir, "fail", "p2");
  await assert.rejects(rekey(damaged, dst, { parallelism: 2, workers: 2 }), (e) => {
    assert.ok(e instanceof ChecksumMismatchError, `a ChecksumMismatchError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.equal(e.code, "ARROWPOINT_CHECKSUM_MISMATCH");
    assert.match(e.message, /^shard 1\/2 \(worker thread\): .*checksum mismatch/);
    assert.match(e.message, /kg-96-127\.arrow/);
    assert.equal(typeof e.expected, "string", "the error's fields crossed the thread");
    return true;
  });
  assert.equal(await (await openStorage(dst)).exists("_manifest.json"), false, "nothing visible");
  assert.deepEqual(await files(damaged), sourceBefore, "the source is untouched");
  // The failed thread was ended, not pooled; a new run starts another and works.
  assert.equal(idleWorkers(shardWorker), 0);
  await warmOne();
  const report = await rekey(src, join(dir, "fail", "again"), { parallelism: 2, workers: 2 });
  assert.ok(report.shards![1].thread > 0);
  await drainWorkerPool(shardWorker);
  assert.equal(idleWorkers(shardWorker), 0);
});

test("workers: a custom migration step that throws in one key group on a worker thread fails the run by name; nothing visible, source untouched", async () => {
  // A key of shard 1's key groups (64–127 of 128 at parallelism 4).
  const key = [...entries(3000).keys()].find((k) => assignKeyGroup(k, 128) >= 64)!;
  const mod = join(dir, "throws.mts");
  await writeFile(
    mod,
    `import { custom, defineMigrations } from ${lib("migrations.ts")};\n` +
      `export default defineMigrations({ "counter/counts": [custom((v, ctx) => { if (ctx.key === ${JSON.stringify(key)}) throw new Error("no value for " + ctx.key); return v; })] });\n`,
  );
  const { default: migrations } = await import(pathToFileURL(mod).href);
  const sourceBefore = await files(src);
  await warmOne();
  const dst = join(dir, "fail", "mig");
  await assert.rejects(migrate(src, dst, migrations, { workers: 2, migrationsModule: pathToFileURL(mod).href }), (e) => {
    assert.ok(e instanceof MigrationError, `a MigrationError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, /^shard 1\/2 \(worker thread\): /);
    assert.ok(e.message.includes(`no value for ${key}`), e.message);
    return true;
  });
  assert.equal(await (await openStorage(dst)).exists("_manifest.json"), false, "nothing visible");
  assert.deepEqual(await files(src), sourceBefore, "the source is untouched");
  assert.equal(idleWorkers(shardWorker), 0, "the failed thread was ended, not pooled");
});

test("workers: a re-hash hashed by both threads (a source chunk each) writes exactly the savepoint one thread writes", async () => {
  await warmOne();
  const before = unitsHashedHere.count;
  const report = await rekey(src, join(dir, "shared", "w2", "out"), { maxParallelism: 512, workers: 2 });
  // This thread takes the first source chunk at once, the warm worker the second within microtasks (the
  // rest go to whichever is free): both hashed, neither all four.
  const mine = unitsHashedHere.count - before;
  assert.ok(mine >= 1 && mine < 4, `this thread hashed ${mine} of 4 source chunks`);
  assert.deepEqual(report.shards?.map((s) => [s.index, s.thread > 0]), [[0, false], [1, true]]);
  assert.equal(sharedRun(), undefined, "this thread let the run's shared chunks go");
  assert.equal(idleWorkers(shardWorker), 1, "the worker thread is back in the pool");
  await rekey(src, join(dir, "shared", "w1", "out"), { maxParallelism: 512 });
  await same(join(dir, "shared", "w2", "out"), join(dir, "shared", "w1", "out"));
  // Byte for byte: the same chunks (rows in the same order), manifests aside (ids, times).
  const chunks = async (root: string) => (await files(root)).filter(([p]) => p.endsWith(".arrow"));
  assert.deepEqual(await chunks(join(dir, "shared", "w2", "out")), await chunks(join(dir, "shared", "w1", "out")));
});

test("a hashed unit crosses threads as its buffer alone (Deno's worker_threads walks every element of a typed array in a message) and reads back as the sorted rows", async () => {
  const snap = await openSnapshot(src);
  try {
    const [first] = hashUnits(snap);
    const leases: Lease[] = [];
    const { unit, file } = await hashUnit(snap, first, 512, leases);
    for (const [k, v] of Object.entries(unit)) assert.ok(!ArrayBuffer.isView(v), `unit.${k} is a typed array`);
    const copy = structuredClone(unit);
    const { order, starts } = asShared(copy);
    assert.equal(order.length, file.rows);
    assert.equal(starts.length, 513);
    assert.equal(starts[512], file.rows, "every row is in a key group");
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: file.rows }, (_, i) => i), "each row once");
    for (const l of leases) l.release();
  } finally {
    await snap.storage.close();
  }
});

test("workers: the next re-hash in workers reuses the last one's buffers of sorted rows (this thread lends them) and still writes what one thread writes", async () => {
  await warmOne();
  await rekey(src, join(dir, "reuse", "a"), { maxParallelism: 512, workers: 2 });
  const before = unitBuffersReused.count;
  // Another plan (another maxParallelism, rows sorted into other key groups) in the same buffers.
  await warmOne();
  const report = await rekey(src, join(dir, "reuse", "b"), { maxParallelism: 256, workers: 2 });
  assert.equal(unitBuffersReused.count - before, 4, "the 4 source chunks' sorted rows went into the first run's buffers");
  assert.deepEqual(report.shards?.map((s) => [s.index, s.thread > 0]), [[0, false], [1, true]]);
  await rekey(src, join(dir, "reuse", "one"), { maxParallelism: 256 });
  const chunks = async (root: string) => (await files(root)).filter(([p]) => p.endsWith(".arrow"));
  assert.deepEqual(await chunks(join(dir, "reuse", "b")), await chunks(join(dir, "reuse", "one")));
});

test("workers: a source chunk failing on the worker thread while the threads hash a re-hash together fails the run by name; nothing visible, source untouched", async () => {
  const damaged = join(dir, "damaged-hash");
  await cp(src, damaged, { recursive: true });
  // The second source chunk is the warm worker's share of the hashing (this thread takes the first).
  const manifest = JSON.parse(await readFile(join(damaged, "_manifest.json"), "utf8")) as Manifest;
  const second = manifest.operators[0].states.find((s) => s.keyed)!.chunks[1].path;
  const chunk = join(damaged, "counter/counts", second.split("/").at(-1)!);
  const bytes = await readFile(chunk);
  bytes[bytes.length >> 1] ^= 0xff;
  await writeFile(chunk, bytes);
  const sourceBefore = await files(damaged);
  await warmOne();
  const dst = join(dir, "fail", "m512");
  await assert.rejects(rekey(damaged, dst, { maxParallelism: 512, workers: 2 }), (e) => {
    assert.ok(e instanceof ChecksumMismatchError, `a ChecksumMismatchError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.match(e.message, /^hashing the source for 2 shards \(worker thread\): .*checksum mismatch/);
    assert.ok(e.message.includes(second.split("/").at(-1)!), e.message);
    return true;
  });
  assert.equal(await (await openStorage(dst)).exists("_manifest.json"), false, "nothing visible");
  assert.deepEqual(await files(damaged), sourceBefore, "the source is untouched");
  assert.equal(idleWorkers(shardWorker), 0, "the failed thread was ended, not pooled");
  assert.equal(sharedRun(), undefined, "this thread let the run's shared chunks go");
});
