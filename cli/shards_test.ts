// Sharded runs as a batch runner starts them: 4 separate OS processes of the CLI (`--shard i/4`) against
// s3rver, then `arrowpoint commit`; the savepoint equals the one a single run writes (ids and times aside).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { openStorage } from "../backends/open.ts";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import type { Manifest } from "../format/manifest.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { entries, listAll, writeChain, writeSavepoint } from "../migrate/_test_util.ts";
import { subStorage } from "../backends/sub.ts";
import { type Exit, exec, ROOT } from "../backends/_test_exec.ts";
import { main } from "./main.ts";

let dir: string;
let server: S3TestServer;
let bucket: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-cli-shards-"));
  server = await startS3Server({ setEnv: true });
  bucket = `s3://${server.bucket}`;
  const root = await openStorage(`${bucket}/job`);
  await writeChain(root, [{ set: [...entries(1500)] }, { set: [["k1", { count: 9n, label: "y" }]], del: ["k2"] }]);
  await writeSavepoint(subStorage(root, "savepoints/sp-1"), entries(2000), { offsets: [[1, 2], [3], [4, 5], [6]] });
  await root.close();
  const lib = pathToFileURL(join(ROOT, "migrate", "mod.ts")).href;
  await writeFile(join(dir, "migrations.mts"), `import { addField, defineMigrations } from ${JSON.stringify(lib)};\nexport default defineMigrations({ "counter/counts": [addField("seen", "bool", false)] });\n`);
});

after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const IS_DENO = "Deno" in globalThis;

/** One child process running CLI command lines one after another (cli/_test_shard_batch.ts). */
function batch(commands: string[][], extra: Record<string, string>): Promise<Exit> {
  const script = join(ROOT, "cli", "_test_shard_batch.ts");
  const cmd = IS_DENO ? [process.execPath, "run", "-A", script] : [process.execPath, "--import", "tsx", script];
  return exec(cmd[0], [...cmd.slice(1), JSON.stringify(commands)], { env: extra });
}

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (s) => (out += s + "\n"), err: (s) => (err += s + "\n"), tty: false });
  return { code, out, err };
}

async function snapshotOf(uri: string): Promise<{ manifest: unknown; rows: unknown[] }> {
  const snap = await openSnapshot(uri);
  try {
    const rows: unknown[] = [];
    for (const op of snap.manifest.operators) {
      for (const st of op.states) {
        const r = await readState(snap, op.uid, st.name);
        rows.push([op.uid, st.name, r.keys ?? null, r.values, r.subtasks ?? null]);
      }
    }
    const { createdAt: _t, checksum: _c, ...manifest } = snap.manifest as Manifest & { checksum?: string };
    return { manifest, rows };
  } finally {
    await snap.storage.close();
  }
}

interface Case {
  name: string;
  verb: string;
  src: string;
  flags: string[];
}

const dstOf = (c: Case, kind: "single" | "sharded") => `${bucket}/${kind}/${c.name}/out`;

test("compact, rekey (parallelism; maxParallelism) and migrate as 4 shard processes + commit equal a single run", async () => {
  const cases: Case[] = [
    { name: "compact", verb: "compact", src: `${bucket}/job`, flags: ["--parallelism", "6"] },
    { name: "rekey-p", verb: "rekey", src: `${bucket}/job/savepoints/sp-1`, flags: ["--parallelism", "7"] },
    { name: "rekey-m", verb: "rekey", src: `${bucket}/job/savepoints/sp-1`, flags: ["--max-parallelism", "300", "--parallelism", "5"] },
    { name: "migrate", verb: "migrate", src: `${bucket}/job/savepoints/sp-1`, flags: ["--migrations", join(dir, "migrations.mts")] },
  ];
  // Shard i of every case runs in process i (4 processes, each one shard of each tool), all at once.
  const procs = await Promise.all([0, 1, 2, 3].map((i) => batch(cases.map((c) => [c.verb, c.src, dstOf(c, "sharded"), ...c.flags, "--shard", `${i}/4`]), server.env)));
  for (const [i, r] of procs.entries()) assert.equal(r.code, 0, `shard ${i}: ${r.err}`);
  for (const c of cases) {
    const single = await run(c.verb, c.src, dstOf(c, "single"), ...c.flags);
    assert.equal(single.code, 0, single.err);
    const dst = dstOf(c, "sharded");
    assert.equal(await (await openStorage(dst)).exists("_manifest.json"), false, "nothing visible before the commit");
    const commit = await run("commit", dst);
    assert.equal(commit.code, 0, commit.err);
    assert.match(commit.out, /^commit: committed savepoint out to .* from 4 shards/);
    assert.deepEqual(await snapshotOf(dst), await snapshotOf(dstOf(c, "single")), c.name);
    assert.deepEqual(await listAll(await openStorage(dst)), await listAll(await openStorage(dstOf(c, "single"))), c.name);
  }
});

test("arrowpoint plan --shards --json lists each shard's key groups and estimates; --shard --json names the shard; commit refuses a missing shard by name", async () => {
  const plan = await run("plan", "rekey", `${bucket}/job/savepoints/sp-1`, "--parallelism", "8", "--shards", "4", "--json");
  assert.equal(plan.code, 0, plan.err);
  const p = JSON.parse(plan.out);
  assert.equal(p.tool, "rekey");
  assert.deepEqual(p.shards.map((s: { shard: string }) => s.shard), ["0/4", "1/4", "2/4", "3/4"]);
  assert.deepEqual(p.shards[3].keyGroups, { start: 96, end: 127 });
  assert.equal(p.shards.reduce((n: number, s: { rows: number }) => n + s.rows, 0), 2000 + 6);
  const text = await run("plan", "compact", `${bucket}/job`, "--shards", "2");
  assert.match(text.out, /--shard 1\/2\s+key groups 64-127/);
  const dst = `${bucket}/partial/out`;
  const first = await run("rekey", `${bucket}/job/savepoints/sp-1`, dst, "--parallelism", "8", "--shard", "0/3", "--json");
  assert.equal(JSON.parse(first.out).shard, "0/3");
  const mig = await run("migrate", `${bucket}/job/savepoints/sp-1`, `${bucket}/partial/mig`, "--migrations", join(dir, "migrations.mts"), "--shard", "1/2", "--json");
  assert.equal(JSON.parse(mig.out).shard, "1/2", mig.err);
  const second = await run("rekey", `${bucket}/job/savepoints/sp-1`, dst, "--parallelism", "8", "--shard", "2/3");
  assert.match(second.out, /shard 2\/3 wrote .*nothing is committed: once all 3 shards ran, arrowpoint commit/);
  const refused = await run("commit", dst);
  assert.equal(refused.code, 2);
  assert.match(refused.err, /shard 1\/3 has no receipt/);
  assert.equal(await (await openStorage(dst)).exists("_manifest.json"), false);
  const bad = await run("rekey", `${bucket}/job/savepoints/sp-1`, dst, "--parallelism", "8", "--shard", "3/3");
  assert.equal(bad.code, 2);
  assert.match(bad.err, /index must be an integer in 0\.\.2/);
  const usage = await run("rekey", `${bucket}/job/savepoints/sp-1`, dst, "--parallelism", "8", "--shard", "one of two");
  assert.equal(usage.code, 2);
  assert.match(usage.err, /--shard .*i\/n/);
});

test("--workers 2 runs the shards in worker threads of this process and commits: the same savepoint as --workers 1", async () => {
  const local = join(dir, "local");
  const { openStorage: open } = await import("../backends/open.ts");
  await writeSavepoint(await open(join(local, "sp")), entries(1000), { offsets: [[1], [2]] });
  const two = await run("rekey", join(local, "sp"), join(local, "w2", "out"), "--max-parallelism", "512", "--parallelism", "3", "--workers", "2", "--json");
  assert.equal(two.code, 0, two.err);
  const one = await run("rekey", join(local, "sp"), join(local, "w1", "out"), "--max-parallelism", "512", "--parallelism", "3", "--workers", "1");
  assert.equal(one.code, 0, one.err);
  assert.deepEqual(await snapshotOf(join(local, "w2", "out")), await snapshotOf(join(local, "w1", "out")));
  assert.equal(JSON.parse(two.out).rows, 1000 + 2);
  const mixed = await run("rekey", join(local, "sp"), join(local, "x"), "--parallelism", "3", "--workers", "2", "--shard", "0/2");
  assert.equal(mixed.code, 2);
  assert.match(mixed.err, /--workers and --shard do not mix/);
});
