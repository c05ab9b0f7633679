// Crash points of the runtime (issue 7): a job taking incremental checkpoints and then stopping with a
// savepoint, on memory, filesystem and S3 (s3rver), crashed at its k-th storage operation (fail, kill or
// torn, see snapshot/_test_crash.ts) for every k of a clean run. After each crash: every checkpoint and
// savepoint committed before reads exactly as when it was committed, nothing half-written is visible, GC
// frees the debris, and a restore (from the stop savepoint if it was committed, else the latest
// checkpoint) gives exactly the output of a failure-free run: nothing lost, nothing twice.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Storage } from "../backends/storage.ts";
import { MemoryStorage } from "../backends/memory.ts";
import { ArrowpointError } from "../format/errors.ts";
import { LONG, longOr, prng, recordFigure, SEED } from "../format/_test_fuzz.ts";
import { checkpointDirName, manifestPath } from "../snapshot/layout.ts";
import { gc } from "../snapshot/retention.ts";
import { setProcessEnv } from "../backends/_s3_test_server.ts";
import { type CrashBackend, crashBackends, type CrashMode, CrashStorage, snapshotFacts, stateText, unreferenced } from "../snapshot/_test_crash.ts";
import { Job, type SnapshotInfo } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { events, runKillable, sessionFunction, sessionJob, type SessionJobShape, sorted, withHook } from "./_test_util.ts";

const N = LONG ? 2400 : 1200;
const EVERY = LONG ? 500 : 400;
const STOP_AT = N - 200;
const DATA_SEED = 3;
const HANG_MS = 30_000;
/**
 * Starting worker threads shows no progress until every one is up, and each compiles the job's modules:
 * on a 2-core machine at load 28 that took 70 s. A start is judged over a window ten times as long.
 */
const HANG_STARTING_MS = 10 * HANG_MS;

let env: Awaited<ReturnType<typeof crashBackends>>;
let expected: string[];
let restoreEnv = (): void => {};
before(async () => {
  env = await crashBackends();
  // A restore from a savepoint URI (s3://…) opens it like a user would: through the SDK's environment.
  restoreEnv = setProcessEnv(env.server.env);
  const sink = new CollectingSink<string>();
  await sessionJob({ source: events(N, DATA_SEED), sink, parallelism: 2 }).run();
  expected = sorted(sink.committed);
});
after(async () => {
  restoreEnv();
  await env?.stop();
});

interface Run {
  status: "finished" | "stopped" | "failed";
  error?: unknown;
  /** State of every snapshot as read right after it was committed. */
  committed: Map<string, string>;
  stop?: SnapshotInfo;
}

/**
 * One run of the session job on `storage`: checkpoints every EVERY records, stop with a savepoint at
 * STOP_AT (when `stop`), restoring from `restore`.
 */
async function runJob(storage: Storage, reader: Storage, sink: CollectingSink<string>, opts: { stop: boolean; restore?: string; parallelism: number; workers?: number }): Promise<Run> {
  const committed = new Map<string, string>();
  const reads: Promise<void>[] = [];
  let job!: Job;
  let last = 0;
  let stopping: Promise<SnapshotInfo> | undefined;
  const source = withHook(events(N, DATA_SEED), (records) => {
    if (job.status !== "running") return;
    if (records - last >= EVERY) {
      last = records;
      job.triggerCheckpoint().catch(() => {});
    }
    if (opts.stop && !stopping && records >= STOP_AT) {
      stopping = job.stopWithSavepoint();
      stopping.catch(() => {});
    }
  });
  // sessionJob's graph, with an event hook: each snapshot is read as soon as it is committed (through the
  // plain storage, not the crashing one).
  job = new Job("sessions", {
    checkpoints: { storage, retain: 2, fullEvery: 4 },
    restore: opts.restore ? { from: opts.restore } : undefined,
    batchSize: 32,
    channelCapacity: 2,
    workers: opts.workers,
    definition: opts.workers ? { module: new URL("./_test_util.ts", import.meta.url).href, export: "sessionJobShape", args: { parallelism: opts.parallelism, sourceParallelism: 2 } satisfies SessionJobShape } : undefined,
    onEvent(e) {
      if (e.type !== "checkpoint") return;
      const dir = e.info.kind === "checkpoint" ? checkpointDirName(e.info.id) : e.info.location.slice(e.info.location.indexOf("savepoints/"));
      // Retention may retire it while it is read (the job goes on): then there is nothing to compare.
      reads.push(stateText(reader, dir).then((t) => void committed.set(dir, t), async (e) => {
        if (await reader.exists(manifestPath(dir))) throw e;
      }));
    },
  });
  job.fromSource(source, { uid: "events", parallelism: 2 })
    .keyBy((e) => e.user)
    .process(sessionFunction, { uid: "sessions", parallelism: opts.parallelism })
    .sinkTo(sink, { uid: "out", parallelism: Math.max(1, opts.parallelism - 1) });
  let status: Run["status"];
  let error: unknown;
  const watch = hangWatch(() => `status ${job.status}, ${job.records} records, snapshots ${job.snapshots.map((x) => `${x.kind}-${x.id}`).join(",")}, stopping ${stopping !== undefined}`);
  const hung = watch.hung;
  try {
    status = (await Promise.race([job.run(), hung])).status === "stopped" ? "stopped" : "finished";
  } catch (e) {
    if ((e as Error).message?.startsWith("HANG")) {
      job.kill("hang");
      throw e;
    }
    status = "failed";
    error = e;
  } finally {
    watch.stop();
  }
  await Promise.all(reads);
  let stop: SnapshotInfo | undefined;
  if (stopping) stop = await stopping.catch(() => undefined);
  return { status, error, committed, stop };
}


/**
 * A watchdog for a job: a job that neither finishes nor fails is a hang, the worst outcome of all. It judges
 * progress, not duration, so a slow run on a busy machine (worker threads still starting) is no hang: `hung`
 * rejects only once `progress()` reads the same for HANG_MS (HANG_STARTING_MS while the job starts).
 */
function hangWatch(progress: () => string): { hung: Promise<never>; stop(): void } {
  let timer: ReturnType<typeof setInterval> | undefined;
  const hung = new Promise<never>((_, reject) => {
    let last = progress();
    let still = 0;
    timer = setInterval(() => {
      const now = progress();
      still = now === last ? still + HANG_MS : 0;
      const limit = now.startsWith("status starting") ? HANG_STARTING_MS : HANG_MS;
      if (still >= limit) reject(new Error(`HANG: the job made no progress in ${still} ms (${now})`));
      last = now;
    }, HANG_MS);
  });
  hung.catch(() => {});
  return { hung, stop: () => clearInterval(timer) };
}

async function crashJob(backend: CrashBackend, modes: CrashMode[], sample: number, workers = 0): Promise<void> {
  // A clean run counts the storage operations.
  const probeRoot = await backend.root("job-probe");
  const probe = new CrashStorage(probeRoot.storage);
  const clean = await runJob(probe, probeRoot.storage, new CollectingSink<string>(), { stop: true, parallelism: 2, workers });
  assert.equal(clean.status, "stopped", String(clean.error));
  const n = probe.operations;
  const savepointOps = probe.log.filter((l) => l.includes("savepoints/")).length;
  await probeRoot.close();
  const rnd = prng(SEED ^ n);
  const ks = Array.from({ length: n }, (_, i) => i + 1).filter((k) => sample >= n || k === n || rnd() < sample / n);
  const figures = { kind: "crash", operation: "job: incremental checkpoints + stop-with-savepoint", backend: backend.name, operations: n, savepointOperations: savepointOps, points: 0, intact: 0, exactlyOnce: 0, crashedInSavepoint: 0, restoredFromSavepoint: 0, noCrash: 0, invisibleDebris: 0, modes };
  for (const mode of modes) {
    for (const k of ks) {
      const root = await backend.root(`job-${mode}-${k}`);
      const where = `job on ${backend.name}, ${mode} at storage operation ${k}/${n}`;
      try {
        const sink = new CollectingSink<string>();
        const crashing = new CrashStorage(root.storage, k, mode, root.debris);
        const first = await runJob(crashing, root.storage, sink, { stop: true, parallelism: 2, workers });
        // The process is dead only once the writes it had started have ended (see CrashStorage.settled).
        await crashing.settled();
        if (!crashing.tripped) figures.noCrash++;
        if (first.status === "failed") assert.ok(first.error instanceof ArrowpointError, `${where}: ${first.error}`);
        if ((crashing.log[k - 1] ?? "").includes("savepoints/")) figures.crashedInSavepoint++;
        // Intact: every snapshot committed reads exactly as it did when committed; nothing half-visible.
        const now = await snapshotFacts(root.storage);
        for (const [id, text] of now.checkpoints) {
          const dir = checkpointDirName(id);
          if (first.committed.has(dir)) assert.equal(text, first.committed.get(dir), `${where}: ${dir} changed after its commit`);
        }
        for (const [id, text] of now.savepoints) {
          const dir = `savepoints/${id}`;
          if (first.committed.has(dir)) assert.equal(text, first.committed.get(dir), `${where}: ${dir} changed after its commit`);
        }
        // GC frees the debris of the crashed attempt.
        await gc(root.storage, { graceMs: 0 });
        assert.deepEqual(await unreferenced(root.storage), [], `${where}: visible debris after gc`);
        figures.invisibleDebris += await root.invisibleDebris();
        await root.sweepInvisible();
        // Restore and finish: exactly-once output.
        if (first.status !== "finished") {
          const sp = [...now.savepoints.keys()][0];
          const from = sp ? `${root.uri.replace(/\/+$/, "")}/savepoints/${sp}` : "latest";
          if (sp) figures.restoredFromSavepoint++;
          const second = await runJob(root.storage, root.storage, sink, { stop: false, restore: from, parallelism: 3, workers });
          assert.equal(second.status, "finished", `${where}: the restored job ${second.status}: ${second.error}`);
        }
        assert.deepEqual(sorted(sink.committed), expected, `${where}: output lost or duplicated`);
        figures.exactlyOnce++;
        figures.points++;
        figures.intact++;
      } finally {
        await root.close();
      }
    }
  }
  recordFigure(figures);
}

test("a job crashed at every storage operation of its checkpoints and stop-with-savepoint keeps every snapshot intact and restores exactly-once (memory)", async () => {
  await crashJob(env.backends[0], ["fail", "kill", "torn"], Infinity);
});

test("the same on the filesystem (a sample of crash points in quick mode, all in long mode)", async () => {
  await crashJob(env.backends[1], LONG ? ["fail", "kill", "torn"] : ["kill", "torn"], longOr(10, Infinity));
});

test("the same on S3 (s3rver; a sample of crash points in quick mode, all in long mode)", async () => {
  await crashJob(env.backends[2], LONG ? ["fail", "kill", "torn"] : ["kill", "torn"], longOr(6, Infinity));
});

test("the same with the keyed subtasks in two worker threads (memory; a sample of crash points in quick mode, all in long mode)", async () => {
  await crashJob(env.backends[0], LONG ? ["fail", "kill", "torn"] : ["kill", "torn"], longOr(12, Infinity), 2);
});

test("a stop-with-savepoint that fails while the sources run dry neither hangs the job nor loses output (regression)", async () => {
  // Found by the crash points above: sources exhausted during a stop were left to the stop to end; when the
  // stop's savepoint failed, they were resumed but, already exhausted, never ended: the job ran forever.
  const count = 300;
  const reference = new CollectingSink<string>();
  await sessionJob({ source: events(count, DATA_SEED, 1), sink: reference, parallelism: 2, sourceParallelism: 1 }).run();
  for (let i = 0; i < 5; i++) {
    const storage = new CrashStorage(new MemoryStorage(), 1, "fail"); // the savepoint's first write fails
    const sink = new CollectingSink<string>();
    let job!: Job;
    let stopping: Promise<SnapshotInfo> | undefined;
    const source = withHook(events(count, DATA_SEED, 1), (records) => {
      if (job.status === "running" && !stopping && records >= count) {
        stopping = job.stopWithSavepoint();
        stopping.catch(() => {});
      }
    });
    job = sessionJob({ source, sink, parallelism: 2, sourceParallelism: 1, storage });
    const watch = hangWatch(() => `status ${job.status}, ${job.records} records, snapshots ${job.snapshots.length}`);
    const outcome = await Promise.race([
      job.run().then((r) => r.status, (e) => `failed: ${e}`),
      watch.hung.catch(() => "hang"),
    ]);
    watch.stop();
    if (outcome === "hang") job.kill("hang");
    assert.equal(outcome, "finished");
    await assert.rejects(stopping!, ArrowpointError);
    assert.deepEqual(sorted(sink.committed), sorted(reference.committed));
  }
});

for (const workers of [0, 2]) {
test(`real process kills: SIGKILL the job's process at random times, restart it, and the output equals a failure-free run (workers: ${workers})`, async () => {
  const { mkdtemp, rm, readdir } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { FsStorage } = await import("../backends/fs.ts");
  const { subStorage } = await import("../backends/sub.ts");
  const { readNdjsonParts } = await import("./sinks.ts");
  const count = LONG ? 250_000 : 20_000;
  const rate = 10_000;
  const kills = longOr(3, 25);
  const reference = new CollectingSink<string>();
  await sessionJob({ source: events(count, 11), sink: reference, parallelism: 2 }).run();
  const want = reference.committed.map((l) => JSON.stringify(l)).sort();
  const dir = await mkdtemp(join(tmpdir(), "arrowpoint-kill-"));
  const child = new URL("./_test_kill_child.ts", import.meta.url);
  const rnd = prng(SEED);
  const figures = { kind: "kills", operation: `SIGKILL of a running job process${workers ? ` with ${workers} worker threads` : ""}`, backend: "filesystem", kills: 0, killedAfterStart: 0, finishedBeforeKill: 0, checkpointsSeen: 0, tempFilesLeft: 0, exactlyOnce: false };
  const runChild = (parallelism: number, killAfterMs: number | undefined) =>
    runKillable(child, [dir, String(count), String(parallelism), String(rate), String(workers)], killAfterMs);
  const tempFiles = async (d: string): Promise<number> => {
    let n = 0;
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) n += await tempFiles(join(d, e.name));
      else if (/^\..*\.tmp-[0-9a-f]{16}$/.test(e.name)) n++;
    }
    return n;
  };
  try {
    for (let i = 0; i < kills; i++) {
      const outcome = await runChild(2 + (i % 3), Math.floor(50 + rnd() * 1500));
      if (outcome === "done") {
        figures.finishedBeforeKill++;
        break;
      }
      figures.kills++;
      figures.killedAfterStart++;
      // Whatever the kill interrupted, every committed checkpoint reads completely.
      const facts = await snapshotFacts(subStorage(new FsStorage(dir), "checkpoints"));
      // The kill was armed by the child's report of a committed checkpoint: one is there to restore from.
      assert.ok(facts.checkpoints.size > 0, `kill ${i + 1}: no committed checkpoint after the child reported one`);
      figures.checkpointsSeen = Math.max(figures.checkpointsSeen, ...facts.checkpoints.keys(), 0);
    }
    figures.tempFilesLeft = await tempFiles(dir);
    if (figures.finishedBeforeKill === 0) assert.equal(await runChild(3, undefined), "done");
    const got = (await readNdjsonParts<string>(new FsStorage(dir), "output")).map((l) => JSON.stringify(l)).sort();
    assert.equal(got.length, want.length, "output lines lost or duplicated");
    assert.deepEqual(got, want);
    figures.exactlyOnce = true;
  } finally {
    recordFigure(figures);
    await rm(dir, { recursive: true, force: true });
  }
});
}
