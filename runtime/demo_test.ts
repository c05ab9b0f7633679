// The quick start cannot flake (issue 11): `npm run demo` run as a child process, the way a user runs it,
// with three busy loops hogging the machine's cores, several times, once on S3 (s3rver), and in a folder
// that holds what the README's CLI section writes there. Every run must pass, and each is checked from
// what it printed (--json) and what it left behind, never from how long it took: checkpoints completed
// before the crash, the restore of the last of them, a valid savepoint well before the end of the
// stream, and committed output equal to a failure-free run's.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type S3TestServer, startS3Server } from "../backends/_s3_test_server.ts";
import { openStorage } from "../backends/open.ts";
import { validate } from "../mod.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { CRASH_AFTER, clicks, type DemoSummary, STOP_AT, sessionsJob, type SessionUpdate } from "./demo.ts";
import { CollectingSink, readNdjsonParts } from "./sinks.ts";

const isDeno = "Deno" in globalThis;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DEMO = join(ROOT, "runtime", "demo.ts");
/**
 * Loaded runs per runtime, the first at the demo's default size (200,000 clicks), the others smaller:
 * the demo decides only by positions, so its size changes nothing but the time, and the suite runs
 * under Node and Deno on 2 cores within its budget.
 */
const SIZES = isDeno ? [200_000, 50_000] : [200_000, 50_000, 50_000];
const SMALL = 20_000;
/** The demo's default. */
const USERS = 5_000;
/** A generous guard against a hung child (it decides nothing: a pass never comes near it). */
const GUARD_MS = 15 * 60_000;

/** The sorted output lines of a failure-free run, per stream length. */
const references = new Map<number, string[]>();
async function reference(total: number): Promise<string[]> {
  let r = references.get(total);
  if (!r) {
    const sink = new CollectingSink<SessionUpdate>();
    await sessionsJob({ source: clicks(total, USERS), sink, parallelism: 2 }).run();
    r = sink.committed.map((u) => JSON.stringify(u)).sort();
    references.set(total, r);
  }
  return r;
}

let server: S3TestServer;
let scratch: string;

before(async () => {
  scratch = await mkdtemp(join(os.tmpdir(), "arrowpoint-demo-test-"));
  // The test reads the demo's s3:// savepoint the way a user would: through the SDK's environment.
  server = await startS3Server({ setEnv: true });
  for (const total of new Set([...SIZES, SMALL])) await reference(total); // before any busy loop
});

after(async () => {
  await server?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Three processes spinning forever, so the demo gets a small share of the 2 cores. */
async function withBusyLoops<T>(run: () => Promise<T>): Promise<T> {
  const loops: ChildProcess[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      loops.push(spawn(process.execPath, isDeno ? ["eval", "for(;;){}"] : ["-e", "for(;;){}"], { stdio: "ignore" }));
    }
    return await run();
  } finally {
    await Promise.all(loops.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once("exit", () => resolve());
      p.kill("SIGKILL");
    })));
  }
}

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo as `npm run demo` does (tsx under Node; `deno run -A` under Deno). */
function runDemo(args: string[], env: Record<string, string> = {}): Promise<DemoRun> {
  const cmd = isDeno ? process.execPath : join(ROOT, "node_modules", ".bin", "tsx");
  const cmdArgs = isDeno ? ["run", "-A", DEMO, ...args] : [DEMO, ...args];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, cmdArgs, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    p.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const guard = setTimeout(() => p.kill("SIGKILL"), GUARD_MS);
    p.on("error", (e) => {
      clearTimeout(guard);
      reject(e);
    });
    p.on("close", (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

function summaryOf(run: DemoRun, what: string): DemoSummary {
  assert.equal(run.code, 0, `${what}: the demo exited ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`);
  const last = run.stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last) as DemoSummary;
}

/** Everything a passing demo promises, from its summary and from what it left in its folder. */
async function checkRun(s: DemoSummary, total: number, what: string): Promise<void> {
  assert.equal(s.ok, true, `${what}: the demo's own proof failed`);
  assert.equal(s.clicks, total);
  // ② crashed after at least CRASH_AFTER completed checkpoints, past the last one.
  assert.ok(s.crash.checkpoints >= CRASH_AFTER, `${what}: ${s.crash.checkpoints} checkpoints before the crash`);
  assert.ok(s.crash.at > s.crash.lastCheckpoint.position && s.crash.at < total, `${what}: crash at ${s.crash.at}, last checkpoint at ${s.crash.lastCheckpoint.position}`);
  assert.ok(s.crash.lastCheckpoint.position >= CRASH_AFTER * s.checkpointEvery);
  // ③ restored exactly that checkpoint, stopped with a savepoint where it asked, well before the end.
  assert.equal(s.restore.checkpointId, s.crash.lastCheckpoint.id, `${what}: restored the last checkpoint of run 1`);
  assert.equal(s.savepoint.position, s.savepoint.askedAt);
  assert.ok(s.savepoint.position >= total * STOP_AT && s.savepoint.position < total - s.checkpointEvery, `${what}: savepoint at ${s.savepoint.position} of ${total}`);
  const snap = await openSnapshot(s.savepoint.location);
  try {
    assert.equal(snap.manifest.kind, "savepoint");
    const positions = await readState(snap, "clicks", "positions");
    assert.equal(positions.values.reduce<number>((n, v) => n + Number((v as { position: number }).position), 0), s.savepoint.position, `${what}: the savepoint's own source positions`);
    assert.equal(snap.manifest.operators.find((o) => o.uid === "sessions")?.parallelism, 4);
  } finally {
    await snap.storage.close();
  }
  assert.deepEqual(await validate(s.savepoint.location), [], `${what}: the savepoint is valid`);
  // ④ resumed from it at another parallelism and read exactly the rest.
  assert.equal(s.resume.records, total - s.savepoint.position);
  // ⑤ the committed output equals a failure-free run's, checked here, not only by the demo.
  const root = await openStorage(s.storage);
  try {
    const got = (await readNdjsonParts<SessionUpdate>(root, "output")).map((u) => JSON.stringify(u)).sort();
    const want = await reference(total);
    assert.equal(got.length, want.length, `${what}: output lines`);
    assert.ok(got.every((line, i) => line === want[i]), `${what}: the output differs from a failure-free run`);
  } finally {
    await root.close();
  }
}

test(`npm run demo passes ${SIZES.length} times out of ${SIZES.length} with three busy loops hogging the cores`, { timeout: GUARD_MS * SIZES.length }, async () => {
  await withBusyLoops(async () => {
    for (const [i, total] of SIZES.entries()) {
      const dir = join(scratch, `loaded-${i + 1}`);
      const args = ["--dir", dir, "--json", ...(total === 200_000 ? [] : ["--events", String(total)])];
      const s = summaryOf(await runDemo(args), `run ${i + 1}`);
      await checkRun(s, total, `run ${i + 1} (${total} clicks)`);
      assert.deepEqual(s.kept, []);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test("npm run demo -- --dir s3://… passes on S3 (s3rver) with three busy loops", { timeout: GUARD_MS }, async () => {
  const uri = `s3://${server.bucket}/demo-${isDeno ? "deno" : "node"}`;
  const s = await withBusyLoops(async () => summaryOf(await runDemo(["--dir", uri, "--json", "--events", String(SMALL)], server.env), "S3 run"));
  assert.equal(s.storage, uri);
  assert.ok(s.savepoint.location.startsWith(`${uri}/checkpoints/savepoints/`));
  await checkRun(s, SMALL, "S3 run");
});

/** What the README's CLI section writes into the demo's folder (names as in the README). */
const FOREIGN: Record<string, string> = {
  "sp-1/_manifest.json": '{"not":"the demo\'s"}\n',
  "sp-1/sessions/pages/kg-0-127.arrow": "arrow bytes",
  "sp-1-m512/_manifest.json": "{}\n",
  "copy-of-sp-1/_manifest.json": "{}\n",
  "pages.arrow": "exported",
  "rekeyed/_manifest.json": "{}\n",
};

test("the demo runs again after the README's commands wrote into its folder, and leaves their files untouched", { timeout: GUARD_MS }, async () => {
  const total = SMALL;
  const dir = join(scratch, "readme");
  const first = summaryOf(await runDemo(["--dir", dir, "--json", "--events", String(total)]), "first run");
  await checkRun(first, total, "first run");
  for (const [path, text] of Object.entries(FOREIGN)) {
    await mkdir(join(dir, path, ".."), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  const again = summaryOf(await runDemo(["--dir", dir, "--json", "--events", String(total)]), "second run");
  // It cleared its own checkpoints and output (else the output would hold both runs' lines) and kept the rest.
  await checkRun(again, total, "second run");
  assert.notEqual(again.savepoint.location, first.savepoint.location);
  assert.deepEqual(again.kept, ["copy-of-sp-1/", "pages.arrow", "rekeyed/", "sp-1-m512/", "sp-1/"]);
  for (const [path, text] of Object.entries(FOREIGN)) assert.equal(await readFile(join(dir, path), "utf8"), text, `${path} is untouched`);
});

test("the demo refuses a folder whose checkpoints/ it did not write, and says what to do", { timeout: GUARD_MS }, async () => {
  const dir = join(scratch, "not-ours");
  await mkdir(join(dir, "checkpoints", "chk-000001"), { recursive: true });
  await writeFile(join(dir, "checkpoints", "chk-000001", "_manifest.json"), "{}\n");
  const run = await runDemo(["--dir", dir]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /holds checkpoints\/ without the demo's arrowpoint-demo\.json/);
  assert.match(run.stderr, /Choose another folder with --dir/);
  assert.equal(await readFile(join(dir, "checkpoints", "chk-000001", "_manifest.json"), "utf8"), "{}\n");
});
