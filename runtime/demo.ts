/**
 * The arrowpoint demo: a realistic keyed job (per-user sessions with value, map, list and reducing state)
 * over a generated stream, with incremental checkpoints; it crashes mid-stream, restores at another
 * parallelism, stops with a savepoint, resumes from the savepoint at a third parallelism, and proves that
 * the output equals a failure-free run.
 *
 * Every step happens at a position in the stream, never at a time: the source checkpoints every
 * `--events / 20` clicks and waits for each checkpoint (`tapSource`), the crash comes half an interval
 * after the 7th completed checkpoint, the stop at 75% of the stream. So the demo does the same on an idle
 * laptop and on a loaded CI machine, and each step checks what it needs from the one before and says so
 * if it does not hold.
 *
 * `npm run demo -- --dir <path or storage URI>` (default `./arrowpoint-demo`), `--events N`,
 * `--users N`, `--json` (a JSON summary instead of prose). The demo owns `checkpoints/`, `output/` and
 * `arrowpoint-demo.json` in its folder and clears only those; anything else there is left alone.
 * Exits non-zero if a step or the proof fails.
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
import { Job, type JobEvent, type JobResult, type RestoreOptions, type SnapshotInfo } from "./job.ts";
import { CollectingSink, ndjsonFileSink, readNdjsonParts, type Sink } from "./sinks.ts";
import { generatorSource, type Source } from "./sources.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { listState, mapState, reducingState, valueState } from "./state.ts";
import type { KeyedProcessFunction } from "./stream.ts";
import { tapSource } from "./tap_source.ts";

/** One click of a user. */
export interface Click {
  user: string;
  page: string;
  amount: number;
  /** Event time, ms. */
  ts: number;
}

/** What the job emits per click. */
export interface SessionUpdate {
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
/** Checkpoints per stream length: one every `total / CHECKPOINTS_PER_STREAM` clicks. */
const CHECKPOINTS_PER_STREAM = 20;
/** Run 1 crashes half a checkpoint interval after its CRASH_AFTER-th completed checkpoint. */
export const CRASH_AFTER = 7;
/** Run 2 stops with a savepoint at this fraction of the stream. */
export const STOP_AT = 0.75;
const MARKER = "arrowpoint-demo.json";
/** What the demo writes in its folder, and so what it clears before a run. */
const OWNED = ["checkpoints/", "output/"];

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
export function clicks(count: number, users: number): Source<Click> {
  const perSplit = Math.max(1, Math.floor(users / SPLITS));
  return generatorSource<Click>({
    count,
    splits: SPLITS,
    seed: 42,
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
export interface DemoJobOptions {
  source: Source<Click>;
  sink: Sink<SessionUpdate, unknown>;
  parallelism: number;
  checkpoints?: Storage;
  restore?: RestoreOptions;
  onEvent?: (e: JobEvent) => void;
}

/**
 * clicks → keyBy(user) → sessions → sink. Checkpoints happen only when asked (the demo asks at stream
 * positions) and at the end of the input.
 */
export function sessionsJob(o: DemoJobOptions): Job {
  const job = new Job("user-sessions", {
    maxParallelism: 128,
    checkpoints: o.checkpoints && { storage: o.checkpoints, retain: 3, fullEvery: 5 },
    restore: o.restore,
    onEvent: o.onEvent,
  });
  job.fromSource(o.source, { uid: "clicks", parallelism: 2 })
    .keyBy((c) => c.user)
    .process(sessions, { uid: "sessions", parallelism: o.parallelism })
    .sinkTo(o.sink, { uid: "output", parallelism: o.parallelism });
  return job;
}

/** What `--json` prints: every figure the demo's steps checked. */
export interface DemoSummary {
  /** The proof held: the output equals the failure-free run's. */
  ok: boolean;
  /** The demo's folder. */
  storage: string;
  clicks: number;
  users: number;
  /** Clicks between two checkpoints. */
  checkpointEvery: number;
  /** Session updates of the failure-free reference run. */
  referenceLines: number;
  /** Run 1 (parallelism 2): checkpoints completed, the last one, and where it crashed. */
  crash: { parallelism: number; checkpoints: number; lastCheckpoint: { id: number; location: string; position: number }; at: number };
  /** Run 2: what it restored, where it was asked to stop and where the savepoint is. */
  restore: { parallelism: number; checkpointId: number; position: number; checkpoints: number };
  savepoint: { id: number; location: string; askedAt: number; position: number };
  /** Run 3: records read after resuming from the savepoint. */
  resume: { parallelism: number; records: number; checkpoints: number };
  /** The committed output. */
  outputLines: number;
  /** The checkpoint folder and the checkpoints taken in all runs. */
  checkpoints: { uri: string; taken: number };
  /** Entries of the folder that are not the demo's, left untouched. */
  kept: string[];
}

/** A step's precondition or outcome did not hold: the message says which, and what it means. */
class DemoStepError extends Error {
  constructor(readonly step: string, message: string) {
    super(`${step}: ${message}`);
    this.name = "DemoStepError";
  }
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : fallback;
}

const json = process.argv.includes("--json");
const tty = Boolean(process.stdout.isTTY) && !json;
const fmt = (n: number) => n.toLocaleString("en-US");

/** A progress line (a terminal only; it decides nothing). */
function line(text: string): void {
  if (tty) process.stdout.write(`\r\x1b[2K${text}`);
}

function say(text: string): void {
  if (json) return;
  if (tty) process.stdout.write(`\r\x1b[2K${text}\n`);
  else console.log(text);
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

/**
 * The click source of one run, tapped: a checkpoint at every multiple of `every` past `base` (reading
 * waits for it to complete, so it lands exactly there whatever the machine's speed), and `at(position)`
 * after every read for the run's own step (crash or stop; it returns true once that happened). `base` is
 * where the run resumes.
 */
function pacedClicks(o: { total: number; users: number; base: number; every: number; job: () => Job; progress: (position: number) => void; at?: (position: number) => boolean }): Source<Click> {
  let next = (Math.floor(o.base / o.every) + 1) * o.every;
  let shown = 0;
  return tapSource(clicks(o.total, o.users), (records) => {
    const position = o.base + records;
    if (position - shown >= 2_000) {
      shown = position;
      o.progress(position);
    }
    if (o.at?.(position)) return; // crashed or stopping: no checkpoint after that
    const job = o.job();
    if (position >= next && position < o.total && job.status === "running") {
      while (next <= position) next += o.every;
      return job.triggerCheckpoint();
    }
  });
}

/** Runs a job to its end: its result, or the error it died of. */
async function outcome(job: Job): Promise<{ result?: JobResult; error?: unknown }> {
  try {
    return { result: await job.run() };
  } catch (error) {
    return { error };
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Makes the folder ready: clears what an earlier demo wrote there (`checkpoints/`, `output/`), keeps
 * everything else, and refuses only when `checkpoints/` or `output/` exist without the demo's marker
 * (someone else's data, which a run would mix with its own).
 */
async function prepare(dir: string): Promise<{ root: Storage; kept: string[]; cleared: number }> {
  const root = await openStorage(dir);
  let marked = false;
  const ours: string[] = [];
  const kept = new Set<string>();
  for await (const o of root.list("")) {
    if (o.path === MARKER) marked = true;
    else if (OWNED.some((p) => o.path.startsWith(p))) ours.push(o.path);
    else kept.add(o.path.includes("/") ? o.path.slice(0, o.path.indexOf("/") + 1) : o.path);
  }
  if (ours.length > 0 && !marked) {
    await root.close();
    throw new DemoStepError(
      "preparing the folder",
      `${root.uri} holds ${OWNED.filter((p) => ours.some((o) => o.startsWith(p))).join(" and ")} without the demo's ${MARKER}: ` +
        "they were not written by the demo, and a run would mix its checkpoints and output with them. Choose another folder with --dir, or remove them",
    );
  }
  await root.delete(ours);
  await root.put(MARKER, new TextEncoder().encode(JSON.stringify({ demo: "arrowpoint", owns: OWNED, createdAt: new Date().toISOString() }) + "\n"));
  return { root, kept: [...kept].sort(), cleared: ours.length };
}

async function main(): Promise<number> {
  const dir = arg("dir", "./arrowpoint-demo");
  const total = Number(arg("events", "200000"));
  const users = Number(arg("users", "5000"));
  // Below 20,000 clicks a checkpoint interval would be shorter than a read (512 clicks), and two marks could share one checkpoint.
  if (!Number.isInteger(total) || total < 20_000) throw new RangeError(`Cannot run the demo as --events must be an integer ≥ 20000: current value is ${arg("events", "")}`);
  if (!Number.isInteger(users) || users < SPLITS) throw new RangeError(`Cannot run the demo as --users must be an integer ≥ ${SPLITS}: current value is ${arg("users", "")}`);
  const every = Math.floor(total / CHECKPOINTS_PER_STREAM);
  const crashAt = (CRASH_AFTER + 0.5) * every;
  const stopAt = Math.floor(total * STOP_AT);
  const started = performance.now();
  const { root, kept, cleared } = await prepare(dir);
  try {
    const checkpoints = subStorage(root, "checkpoints");
    const sink = () => ndjsonFileSink<SessionUpdate>(root, { prefix: "output" });
    say(`arrowpoint demo → ${root.uri}: ${fmt(total)} clicks of ${fmt(users)} users, keyed sessions with value, map, list and reducing state`);
    if (cleared > 0 || kept.length > 0) {
      const keptText = kept.length > 0 ? `kept ${kept.length} ${kept.length === 1 ? "entry" : "entries"} that ${kept.length === 1 ? "is" : "are"} not the demo's (${kept.slice(0, 4).join(", ")}${kept.length > 4 ? ", …" : ""})` : "";
      say(`  ${[cleared > 0 ? "cleared the previous demo's checkpoints and output" : "", keptText].filter(Boolean).join("; ")}`);
    }
    say(`  a checkpoint every ${fmt(every)} clicks, triggered by the source at that position (the same on any machine, at any load)`);

    // ① A failure-free run, in memory: the reference.
    const reference = new CollectingSink<SessionUpdate>();
    await sessionsJob({ source: clicks(total, users), sink: reference, parallelism: 2 }).run();
    say(`① failure-free reference run: ${fmt(reference.committed.length)} session updates`);

    // ② Parallelism 2 with incremental checkpoints; a crash half an interval after the CRASH_AFTER-th checkpoint.
    let doneA = 0;
    let crashedAt = -1;
    const a: Job = sessionsJob({
      source: pacedClicks({
        total, users, base: 0, every, job: () => a,
        progress: (p) => line(`② parallelism 2 ▸ ${fmt(p)} / ${fmt(total)} clicks · ${doneA} checkpoints`),
        at: (p) => {
          if (crashedAt < 0 && p >= crashAt && doneA >= CRASH_AFTER) {
            crashedAt = p;
            a.kill(`simulated crash at ${p} clicks`);
          }
          return crashedAt >= 0;
        },
      }),
      sink: sink(), parallelism: 2, checkpoints,
      onEvent: (e) => {
        if (e.type === "checkpoint" && e.info.kind === "checkpoint") doneA++;
      },
    });
    const s1 = await outcome(a);
    const chkA = a.snapshots.filter((s) => s.kind === "checkpoint");
    if (!(s1.error instanceof JobKilledError) || crashedAt < 0) {
      const how = s1.result ? `it ${s1.result.status}` : `it failed: ${describe(s1.error)}`;
      throw new DemoStepError("step ②", `run 1 should have crashed ${fmt(every / 2)} clicks after its checkpoint ${CRASH_AFTER}, but ${how} (${chkA.length} checkpoints completed)`);
    }
    if (chkA.length < CRASH_AFTER) {
      throw new DemoStepError("step ②", `run 1 crashed after only ${chkA.length} completed checkpoints, not ${CRASH_AFTER}: "restore from latest" would have less to restore than the demo shows`);
    }
    const lastA = chkA[chkA.length - 1];
    const lastAt = await positionOf(lastA.location);
    const deltas = chkA.reduce((n, s) => n + s.manifest.operators.flatMap((o) => o.states).flatMap((st) => st.chunks).filter((c) => c.type === "delta" && c.order === s.id).length, 0);
    say(`② parallelism 2: ${chkA.length} incremental checkpoints (${deltas} delta chunks), the last at ${fmt(lastAt)} clicks`);
    say(`   💥 crashed at ${fmt(crashedAt)} clicks (simulated): what the job did after checkpoint ${lastA.id} was never committed`);

    // ③ Restore the latest checkpoint at parallelism 4; stop with a savepoint at STOP_AT of the stream.
    let doneB = 0;
    let askedAt = -1;
    let stopping: Promise<SnapshotInfo> | undefined;
    const b: Job = sessionsJob({
      source: pacedClicks({
        total, users, base: lastAt, every, job: () => b,
        progress: (p) => line(`③ restored at parallelism 4 ▸ ${fmt(p)} / ${fmt(total)} clicks · ${doneB} checkpoints`),
        at: (p) => {
          if (!stopping && p >= stopAt && b.status === "running") {
            askedAt = p;
            stopping = b.stopWithSavepoint();
            stopping.catch(() => {}); // observed below
          }
          return stopping !== undefined;
        },
      }),
      sink: sink(), parallelism: 4, checkpoints, restore: { from: "latest" },
      onEvent: (e) => {
        if (e.type === "checkpoint" && e.info.kind === "checkpoint") doneB++;
      },
    });
    const s2 = await outcome(b);
    const restored = s2.result?.restore ?? b.restoreReport;
    if (restored?.checkpointId !== lastA.id) {
      const what = restored ? `${restored.kind} ${restored.checkpointId ?? restored.location}` : "nothing (a fresh start)";
      throw new DemoStepError("step ③", `run 2 should have restored checkpoint ${lastA.id}, the last one run 1 completed, but it restored ${what} from ${checkpoints.uri}`);
    }
    if (!stopping || s2.result?.status !== "stopped") {
      const how = s2.result ? `it ${s2.result.status}` : `it failed: ${describe(s2.error)}`;
      throw new DemoStepError("step ③", `run 2 should have stopped with a savepoint at ${fmt(stopAt)} clicks, but ${how}`);
    }
    const savepoint = await stopping;
    const spAt = await positionOf(savepoint.location);
    if (spAt !== askedAt || spAt >= total) {
      throw new DemoStepError("step ③", `the savepoint should hold the stream up to ${fmt(askedAt)} clicks, where the stop was asked, but it holds ${fmt(spAt)} of ${fmt(total)}`);
    }
    say(`③ restored checkpoint ${restored.checkpointId} (${fmt(lastAt)} clicks) at parallelism 4, ${doneB} more checkpoints, stopped with a savepoint at ${fmt(spAt)} clicks`);

    // ④ Resume from the savepoint at parallelism 3 and run to the end of the stream.
    let doneC = 0;
    const c: Job = sessionsJob({
      source: pacedClicks({
        total, users, base: spAt, every, job: () => c,
        progress: (p) => line(`④ resumed from the savepoint at parallelism 3 ▸ ${fmt(p)} / ${fmt(total)} clicks · ${doneC} checkpoints`),
      }),
      sink: sink(), parallelism: 3, checkpoints, restore: { from: savepoint.location },
      onEvent: (e) => {
        if (e.type === "checkpoint" && e.info.kind === "checkpoint") doneC++;
      },
    });
    const s3 = await outcome(c);
    if (s3.result?.status !== "finished" || s3.result.restore?.location !== savepoint.location) {
      const how = s3.result ? `it ${s3.result.status}${s3.result.restore ? "" : " without restoring"}` : `it failed: ${describe(s3.error)}`;
      throw new DemoStepError("step ④", `run 3 should have resumed from ${savepoint.location} and finished the stream, but ${how}`);
    }
    if (s3.result.records !== total - spAt) {
      throw new DemoStepError("step ④", `run 3 should have read the ${fmt(total - spAt)} clicks after the savepoint, but it read ${fmt(s3.result.records)}`);
    }
    const latest = c.snapshots[c.snapshots.length - 1];
    say(`④ resumed from the savepoint at parallelism 3, read the remaining ${fmt(s3.result.records)} clicks, ${doneC} checkpoints`);

    // ⑤ The proof: the committed output equals the failure-free run's, line for line (as a multiset).
    const got = (await readNdjsonParts<SessionUpdate>(root, "output")).map((u) => JSON.stringify(u)).sort();
    const want = reference.committed.map((u) => JSON.stringify(u)).sort();
    let same = got.length === want.length;
    for (let i = 0; same && i < got.length; i++) same = got[i] === want[i];
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const allCheckpoints = [a, b, c].reduce((n, j) => n + j.snapshots.filter((s) => s.kind === "checkpoint").length, 0);
    const verdict = same
      ? `exactly-once: the output equals the failure-free run (${fmt(got.length)} lines)`
      : `PROOF FAILED: ${fmt(got.length)} output lines vs ${fmt(want.length)} in the failure-free run, or different lines`;
    if (json) {
      const summary: DemoSummary = {
        ok: same,
        storage: root.uri,
        clicks: total,
        users,
        checkpointEvery: every,
        referenceLines: want.length,
        crash: { parallelism: 2, checkpoints: chkA.length, lastCheckpoint: { id: lastA.id, location: lastA.location, position: lastAt }, at: crashedAt },
        restore: { parallelism: 4, checkpointId: lastA.id, position: lastAt, checkpoints: doneB },
        savepoint: { id: savepoint.id, location: savepoint.location, askedAt, position: spAt },
        resume: { parallelism: 3, records: s3.result.records, checkpoints: doneC },
        outputLines: got.length,
        checkpoints: { uri: checkpoints.uri, taken: allCheckpoints },
        kept,
      };
      console.log(JSON.stringify(summary));
    } else {
      const base = root.uri.replace(/\/+$/, "");
      say(`⑤ ${same ? "✅" : "❌"} ${verdict}`);
      say("");
      say(`  checkpoints  ${checkpoints.uri}   (${allCheckpoints} taken, latest ${latest ? latest.location : "-"})`);
      say(`  savepoint    ${savepoint.location}`);
      say(`  output       ${base}/output   (NDJSON part files, committed per checkpoint)`);
      say("");
      say("  next:");
      say(`    npx arrowpoint inspect ${savepoint.location}`);
      say(`    npx arrowpoint validate ${savepoint.location}`);
      say(`    npx arrowpoint export ${savepoint.location} --operator sessions --state session | head`);
      say(`    npx arrowpoint ls ${checkpoints.uri}`);
      say(`    npx arrowpoint rekey ${savepoint.location} ${base}/rekeyed --max-parallelism 256`);
      say(`  (${seconds} s; the demo clears only checkpoints/ and output/ when run again)`);
    }
    return same ? 0 : 1;
  } finally {
    await root.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      if (tty) process.stdout.write("\n");
      console.error(`arrowpoint demo failed: ${describe(e)}`);
      process.exit(1);
    },
  );
}
