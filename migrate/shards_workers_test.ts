import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { openStorage } from "../backends/open.ts";
import type { Manifest } from "../format/manifest.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { compact } from "./compact.ts";
import { migrate } from "./migrate.ts";
import type { Progress } from "./progress.ts";
import { rekey } from "./rekey.ts";
import { listAll, entries, writeSavepoint } from "./_test_util.ts";
import { AUTO_MIN_ROWS_COLD, AUTO_MIN_ROWS_WARM, autoLimits, cores, workerCount } from "./_workers.ts";

let dir: string;
let src: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-workers-"));
  src = join(dir, "sp");
  await writeSavepoint(await openStorage(src), entries(3000), { offsets: [[1, 2], [3], [4, 5], [6]] });
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

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
  assert.deepEqual(await listAll(await openStorage(a)), await listAll(await openStorage(b)), "no receipts left");
}

test("workers: 2 runs rekey and compact as shards in worker threads, commits, and equals one run; progress adds up across threads", async () => {
  const seen: Progress[] = [];
  const two = await rekey(src, join(dir, "w2", "m256"), { maxParallelism: 256, parallelism: 3, workers: 2, onProgress: (p) => seen.push(p) });
  await rekey(src, join(dir, "w1", "m256"), { maxParallelism: 256, parallelism: 3 });
  await same(join(dir, "w2", "m256"), join(dir, "w1", "m256"));
  assert.equal(two.rows, 3000 + 6);
  assert.equal(seen.at(-1)!.phase, "commit");
  assert.equal(seen.at(-1)!.rows, 3000 + 6);
  assert.ok(seen.some((p) => p.phase !== "commit" && p.rows > 0), "progress from the threads");
  await compact(src, join(dir, "w2", "c"), { parallelism: 5, workers: 2 });
  await compact(src, join(dir, "w1", "c"), { parallelism: 5 });
  await same(join(dir, "w2", "c"), join(dir, "w1", "c"));
});

test("workers: migrations from a module run in worker threads; functions and memory: storages do not cross threads", async () => {
  const lib = pathToFileURL(join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "migrations.ts")).href;
  const mod = join(dir, "m.mts");
  await writeFile(mod, `import { addField, defineMigrations } from ${JSON.stringify(lib)};\nexport default defineMigrations({ "counter/counts": [addField("seen", "bool", () => true)] });\n`);
  const { default: migrations } = await import(pathToFileURL(mod).href);
  await migrate(src, join(dir, "w2", "mig"), migrations, { workers: 2, migrationsModule: pathToFileURL(mod).href });
  await migrate(src, join(dir, "w1", "mig"), migrations);
  await same(join(dir, "w2", "mig"), join(dir, "w1", "mig"));
  // A function default cannot be sent to a thread: refused when asked for, this thread under "auto".
  await assert.rejects(migrate(src, join(dir, "w2", "mig-fn"), migrations, { workers: 2 }), (e) => e instanceof TypeError && /cannot cross threads/.test(e.message));
  // "auto" stays in this thread for them (and for a source this small).
  await migrate(src, join(dir, "auto", "mig"), migrations, { workers: "auto" });
  await same(join(dir, "auto", "mig"), join(dir, "w1", "mig"));
  await assert.rejects(rekey(src, "memory:w/out", { parallelism: 2, workers: 2 }), (e) => e instanceof TypeError && /memory: storage lives in one thread/.test(e.message));
  await rekey(src, "memory:w/out", { parallelism: 2, workers: "auto" });
  assert.equal(workerCount("auto", 2), 1);
  assert.equal(workerCount(undefined, 1e9), 1);
  assert.throws(() => workerCount(0, 1), RangeError);
});

test("workers: \"auto\" takes more threads only where they were measured to win", () => {
  // A small source stays here even with warm threads; a cold start pays off only for a large one.
  assert.equal(workerCount("auto", AUTO_MIN_ROWS_WARM - 1, { warm: 4 }), 1);
  assert.equal(workerCount("auto", AUTO_MIN_ROWS_COLD - 1), 1);
  assert.equal(workerCount("auto", AUTO_MIN_ROWS_COLD), cores());
  // Warm threads lost to one thread at 1M and 4M rows (docs/scale-out.md): "auto" stays here there.
  assert.equal(workerCount("auto", 1_000_000, { warm: 4 }), 1);
  assert.equal(workerCount("auto", 4_000_000, { warm: 4 }), 1);
  // Below the cold limit, warm threads only (when a test lowers the warm limit).
  const saved = { ...autoLimits };
  try {
    autoLimits.warm = 1000;
    assert.equal(workerCount("auto", 1000, { warm: 1 }), Math.min(cores(), 2));
    assert.equal(workerCount("auto", 1000, { warm: 0 }), 1);
  } finally {
    Object.assign(autoLimits, saved);
  }
  // A re-hash reads the whole source in every shard: never split by "auto".
  assert.equal(workerCount("auto", AUTO_MIN_ROWS_COLD * 10, { rehash: true, warm: 4 }), 1);
  // An explicit count is taken as given.
  assert.equal(workerCount(2, 10, { rehash: true }), 2);
});
