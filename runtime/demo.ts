/**
 * The arrowpoint demo: a realistic keyed job (per-user sessions with value, map, list and reducing state)
 * over a generated stream, with incremental checkpoints; it kills itself mid-stream, restores at another
 * parallelism, stops with a savepoint, resumes from the savepoint at a third parallelism, and proves that
 * the output equals a failure-free run.
 *
 * `npm run demo -- --dir <path or storage URI>` (default `./arrowpoint-demo`), `--events N`,
 * `--users N`. Exits non-zero if the proof fails.
 *
 * @module
 */
import { resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { subStorage } from "../backends/sub.ts";
import { JobKilledError } from "./errors.ts";
import { Job, type JobEvent, type RestoreOptions, type SnapshotInfo } from "./job.ts";
import { CollectingSink, ndjsonFileSink, readNdjsonParts, type Sink } from "./sinks.ts";
import { generatorSource, type Source } from "./sources.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { listState, mapState, reducingState, valueState } from "./state.ts";
import type { KeyedProcessFunction } from "./stream.ts";

/** One click of a user. */
interface Click {
  user: string;
  page: string;
  amount: number;
  /** Event time, ms. */
  ts: number;
}

/** What the job emits per click. */
interface SessionUpdate {
  user: string;
  session: number;
  clicks: number;
  amount: number;
  pages: number;
  recent: number[];
  lifetime: number;
}

const SPLITS = 4;
const GAP_MS = 30 * 60_000;
const PAGES = ["home", "search", "item", "cart", "checkout", "help", "account", "deals", "blog", "about"];

/** The current session of a user, as typed Arrow columns. */
const SESSION = valueState<{ id: number; start: number; last: number; clicks: number; amount: number }>("session", {
  value: {
    encoding: "arrow",
    type: {
      struct: [
        { name: "id", type: "int32" },
        { name: "start", type: "timestamp" },
        { name: "last", type: "timestamp" },
        { name: "clicks", type: "int32" },
        { name: "amount", type: "float64" },
      ],
    },
  },
});
/** Clicks per page in the current session. */
const PAGES_SEEN = mapState<string, number>("pages", { value: { encoding: "arrow", type: "int32" } });
/** The last five amounts. */
const RECENT = listState<number>("recent", { value: { encoding: "arrow", type: "float64" } });
/** Lifetime amount. */
const LIFETIME = reducingState<number>("lifetime", (a, b) => Math.round((a + b) * 100) / 100, { value: { encoding: "arrow", type: "float64" } });

/** The generated click stream: deterministic from the seed; every user belongs to one split. */
function clicks(count: number, users: number, ratePerSecond?: number): Source<Click> {
  const perSplit = Math.max(1, Math.floor(users / SPLITS));
  return generatorSource<Click>({
    count,
    splits: SPLITS,
    seed: 42,
    ratePerSecond: ratePerSecond && ratePerSecond / SPLITS,
    name: "clicks",
    make: (i, rng, split) => ({
      user: `user-${String(rng.int(perSplit) * SPLITS + split).padStart(6, "0")}`,
      page: PAGES[rng.int(PAGES.length)],
      amount: rng.int(10_000) / 100,
      ts: 1_767_225_600_000 + i * 50 + rng.int(40),
    }),
  });
}

/** Per-user sessions: a new session after 30 minutes of (event-time) silence. */
function sessions(): KeyedProcessFunction<string, Click, SessionUpdate> {
  return {
    open(ctx) {
      ctx.getState(SESSION);
      ctx.getMapState(PAGES_SEEN);
      ctx.getListState(RECENT);
      ctx.getReducingState(LIFETIME);
    },
    processElement(c, ctx) {
      const session = ctx.getState(SESSION);
      const pages = ctx.getMapState(PAGES_SEEN);
      const recent = ctx.getListState(RECENT);
      const lifetime = ctx.getReducingState(LIFETIME);
      let s = session.value();
      if (!s || c.ts - s.last > GAP_MS) {
        s = { id: (s?.id ?? 0) + 1, start: c.ts, last: c.ts, clicks: 0, amount: 0 };
        pages.clear();
      }
      s = { ...s, last: Math.max(s.last, c.ts), clicks: s.clicks + 1, amount: Math.round((s.amount + c.amount) * 100) / 100 };
      session.update(s);
      pages.put(c.page, (pages.get(c.page) ?? 0) + 1);
      recent.add(c.amount);
      if (recent.get().length > 5) recent.update(recent.get().slice(-5));
      lifetime.add(c.amount);
      ctx.collect({ user: c.user, session: s.id, clicks: s.clicks, amount: s.amount, pages: pages.size(), recent: [...recent.get()], lifetime: lifetime.get()! });
    },
  };
}

/** Options of {@link sessionsJob}. */
interface DemoJobOptions {
  source: Source<Click>;
  sink: Sink<SessionUpdate, unknown>;
  parallelism: number;
  checkpoints?: Storage;
  restore?: RestoreOptions;
  killAfter?: number;
  onEvent?: (e: JobEvent) => void;
}

/** clicks → keyBy(user) → sessions → sink. */
function sessionsJob(o: DemoJobOptions): Job {
  const job = new Job("user-sessions", {
    maxParallelism: 128,
    checkpoints: o.checkpoints && { storage: o.checkpoints, intervalMs: 100, retain: 3, fullEvery: 5 },
    restore: o.restore,
    faults: o.killAfter ? { killAfterRecords: o.killAfter } : undefined,
    onEvent: o.onEvent,
  });
  job.fromSource(o.source, { uid: "clicks", parallelism: 2 })
    .keyBy((c) => c.user)
    .process(sessions, { uid: "sessions", parallelism: o.parallelism })
    .sinkTo(o.sink, { uid: "output", parallelism: o.parallelism });
  return job;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : fallback;
}

const tty = Boolean(process.stdout.isTTY);
const fmt = (n: number) => n.toLocaleString("en-US");

function line(text: string): void {
  if (tty) process.stdout.write(`\r\x1b[2K${text}`);
}

function say(text: string): void {
  if (tty) process.stdout.write(`\r\x1b[2K${text}\n`);
}

async function run(job: Job, title: string, total: number, base: () => number, onTick?: () => void): Promise<"finished" | "stopped" | "killed"> {
  let checkpoints = 0;
  let last = "";
  const listen = (e: JobEvent) => {
    if (e.type === "checkpoint" && e.info.kind === "checkpoint") {
      checkpoints++;
      last = ` · last delta ${fmt(e.info.newRows)} rows, ${e.info.durationMs.toFixed(0)} ms`;
    }
  };
  events.push(listen);
  const timer = setInterval(() => {
    line(`${title} ▸ ${fmt(base() + job.records)} / ${fmt(total)} clicks · ${checkpoints} checkpoints${last}`);
    onTick?.();
  }, 20);
  try {
    return (await job.run()).status === "stopped" ? "stopped" : "finished";
  } catch (e) {
    if (e instanceof JobKilledError) return "killed";
    throw e;
  } finally {
    clearInterval(timer);
    events.splice(events.indexOf(listen), 1);
  }
}

/** The stream position of a snapshot: the sum of the generator's split positions (records per split). */
async function positionOf(location: string): Promise<number> {
  const snap = await openSnapshot(location);
  try {
    const rows = await readState(snap, "clicks", "positions");
    return rows.values.reduce<number>((n, v) => n + Number((v as { position?: number }).position ?? 0), 0);
  } finally {
    await snap.storage.close();
  }
}

const events: ((e: JobEvent) => void)[] = [];
const onEvent = (e: JobEvent) => {
  for (const l of events) l(e);
};

async function prepare(dir: string): Promise<Storage> {
  const root = await openStorage(dir);
  const marker = "arrowpoint-demo.json";
  let foreign = false;
  const ours: string[] = [];
  for await (const o of root.list("")) {
    if (o.path === marker || o.path.startsWith("checkpoints/") || o.path.startsWith("output/")) ours.push(o.path);
    else foreign = true;
  }
  if (ours.length > 0 && !ours.includes(marker)) foreign = true;
  if (foreign) {
    await root.close();
    throw new Error(`${root.uri} holds files the demo did not write; choose an empty folder with --dir`);
  }
  await root.delete(ours);
  await root.put(marker, new TextEncoder().encode(JSON.stringify({ demo: "arrowpoint", createdAt: new Date().toISOString() }) + "\n"));
  return root;
}

async function main(): Promise<number> {
  const dir = arg("dir", "./arrowpoint-demo");
  const total = Number(arg("events", "200000"));
  const users = Number(arg("users", "5000"));
  if (!Number.isInteger(total) || total < 1000) throw new RangeError(`--events must be an integer ≥ 1000: current value is ${total}`);
  if (!Number.isInteger(users) || users < SPLITS) throw new RangeError(`--users must be an integer ≥ ${SPLITS}: current value is ${users}`);
  const rate = Math.max(20_000, Math.round(total / 4)); // ~4 s of streaming, so checkpoints happen mid-stream
  const started = performance.now();
  const root = await prepare(dir);
  const checkpoints = subStorage(root, "checkpoints");
  const sink = () => ndjsonFileSink<SessionUpdate>(root, { prefix: "output" });
  say(`arrowpoint demo → ${root.uri}: ${fmt(total)} clicks of ${fmt(users)} users, keyed sessions with value, map, list and reducing state`);

  // 1. A failure-free run, in memory: the reference.
  const reference = new CollectingSink<SessionUpdate>();
  await sessionsJob({ source: clicks(total, users), sink: reference, parallelism: 2 }).run();
  say(`① failure-free reference run: ${fmt(reference.committed.length)} session updates`);

  // 2. Parallelism 2, incremental checkpoints; a crash 40% into the stream.
  const killAt = Math.floor(total * 0.4);
  const a = sessionsJob({ source: clicks(total, users, rate), sink: sink(), parallelism: 2, checkpoints, killAfter: killAt, onEvent });
  const s1 = await run(a, "② parallelism 2", total, () => 0);
  if (s1 !== "killed") throw new Error(`run 1 should have been killed, but it ${s1}`);
  const chk = a.snapshots.filter((s) => s.kind === "checkpoint");
  const deltas = chk.reduce((n, s) => n + s.manifest.operators.flatMap((o) => o.states).flatMap((st) => st.chunks).filter((c) => c.type === "delta" && c.order === s.id).length, 0);
  say(`② parallelism 2: ${chk.length} incremental checkpoints (${deltas} delta chunks), then 💥 killed after ${fmt(a.records)} clicks (simulated crash)`);

  // 3. Restore the latest checkpoint at parallelism 4; stop with a savepoint 75% into the stream.
  const b = sessionsJob({ source: clicks(total, users, rate), sink: sink(), parallelism: 4, checkpoints, restore: { from: "latest" }, onEvent });
  let baseB = -1;
  let stopping: Promise<SnapshotInfo> | undefined;
  const s2 = await run(b, "③ restored at parallelism 4", total, () => Math.max(baseB, 0), () => {
    if (baseB < 0 && b.restoreReport) {
      baseB = 0;
      positionOf(b.restoreReport.location).then((n) => (baseB = n), () => {});
    }
    if (!stopping && baseB > 0 && b.status === "running" && baseB + b.records >= total * 0.75) {
      stopping = b.stopWithSavepoint();
      stopping.catch(() => {});
    }
  });
  if (s2 !== "stopped" || !stopping) throw new Error(`run 2 should have stopped with a savepoint, but it ${s2}`);
  const savepoint = await stopping;
  const spAt = await positionOf(savepoint.location);
  say(`③ restored checkpoint ${b.restoreReport?.checkpointId} (${fmt(baseB)} clicks) at parallelism 4, stopped with a savepoint at ${fmt(spAt)} clicks`);

  // 4. Resume from the savepoint at parallelism 3 and run to the end of the stream.
  const c = sessionsJob({ source: clicks(total, users, rate), sink: sink(), parallelism: 3, checkpoints, restore: { from: savepoint.location }, onEvent });
  const s3 = await run(c, "④ resumed from the savepoint at parallelism 3", total, () => spAt);
  if (s3 !== "finished") throw new Error(`run 3 should have finished, but it ${s3}`);
  const latest = c.snapshots[c.snapshots.length - 1];
  say(`④ resumed from the savepoint at parallelism 3 and finished the stream`);

  // 5. The proof: the committed output equals the failure-free run's, line for line (as a multiset).
  const got = (await readNdjsonParts<SessionUpdate>(root, "output")).map((u) => JSON.stringify(u)).sort();
  const want = reference.committed.map((u) => JSON.stringify(u)).sort();
  let same = got.length === want.length;
  for (let i = 0; same && i < got.length; i++) same = got[i] === want[i];
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const allCheckpoints = [a, b, c].reduce((n, j) => n + j.snapshots.filter((s) => s.kind === "checkpoint").length, 0);
  const verdict = same
    ? `exactly-once: the output equals the failure-free run (${fmt(got.length)} lines)`
    : `PROOF FAILED: ${fmt(got.length)} output lines vs ${fmt(want.length)} in the failure-free run`;
  if (tty) {
    say(`⑤ ${same ? "✅" : "❌"} ${verdict}`);
    say("");
    say(`  checkpoints  ${checkpoints.uri}   (${allCheckpoints} taken, latest ${latest ? latest.location : "-"})`);
    say(`  savepoint    ${savepoint.location}`);
    say(`  output       ${root.uri.replace(/\/+$/, "")}/output   (NDJSON part files, committed per checkpoint)`);
    say("");
    say("  next:");
    say(`    npx arrowpoint inspect ${savepoint.location}`);
    say(`    npx arrowpoint validate ${savepoint.location}`);
    say(`    npx arrowpoint export ${savepoint.location} --operator sessions --state session | head`);
    say(`    npx arrowpoint ls ${checkpoints.uri}`);
    say(`    npx arrowpoint rekey ${savepoint.location} ${root.uri.replace(/\/+$/, "")}/rekeyed --max-parallelism 256`);
    say(`  (${seconds} s)`);
  } else {
    console.log(
      `arrowpoint demo ${same ? "OK" : "FAILED"}: ${verdict}; ${fmt(total)} clicks, killed at ${fmt(killAt)} (p=2), restored at p=4, ` +
        `stopped with savepoint ${savepoint.location}, resumed at p=3; ${allCheckpoints} checkpoints in ${checkpoints.uri}; ${seconds} s`,
    );
  }
  await root.close();
  return same ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      if (tty) process.stdout.write("\n");
      console.error(`arrowpoint demo failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
