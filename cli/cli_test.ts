import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { tableFromIPC } from "apache-arrow";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import type { Manifest } from "../format/manifest.ts";
import { readManifest } from "../format/manifest.ts";
import { entries, listAll, stateMap, writeChain, writeSavepoint } from "../migrate/_test_util.ts";
import { main } from "./main.ts";
import { ProgressBar } from "./progress.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-cli-"));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  out: string;
  err: string;
  bytes: Uint8Array;
}

async function run(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const bytes: Uint8Array[] = [];
  const code = await main(argv, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    write: (b) => {
      bytes.push(b.slice());
      return Promise.resolve();
    },
    tty: false,
  });
  const all = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bytes) {
    all.set(b, at);
    at += b.length;
  }
  return { code, out: out.join("\n"), err: err.join("\n"), bytes: all };
}

function noStack(r: Run): void {
  assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
  assert.equal(r.err.split("\n").length, 1, `one line: ${r.err}`);
  assert.match(r.err, /^arrowpoint: /);
}

test("arrowpoint --help lists every verb; no verb is a usage error", async () => {
  const r = await run("--help");
  assert.equal(r.code, 0);
  for (const v of ["inspect", "validate", "ls", "compact", "rekey", "migrate", "diff", "export", "cp", "gc"]) assert.match(r.out, new RegExp(`\\n  ${v} `));
  assert.equal((await run()).code, 2);
  const unknown = await run("frobnicate");
  assert.equal(unknown.code, 2);
  noStack(unknown);
});

test("arrowpoint inspect prints a tree with a skew chart, or JSON", async () => {
  clearMemoryStorage("cli-insp");
  await writeSavepoint(await openStorage("memory:cli-insp/sp"), entries(1000), { offsets: [[1], [2, 3]] });
  const r = await run("inspect", "memory:cli-insp/sp");
  assert.equal(r.code, 0);
  assert.match(r.out, /^savepoint sp-test/);
  assert.match(r.out, /└─ counter {2}parallelism 4 · 1,003 rows/);
  assert.match(r.out, /counts {2}value<string → \{count: int64, label: utf8\}> {2}v1 · 1,000 rows/);
  assert.match(r.out, /key groups [▁▂▃▄▅▆▇█ ]+ {2}max\/mean \d\.\d\d/);
  assert.match(r.out, /offsets {2}operator-list \(split\) msgpack {2}v1 · 3 items/);
  const j = await run("inspect", "memory:cli-insp/sp", "--json");
  const info = JSON.parse(j.out);
  assert.equal(info.operators[0].states[0].rows, 1000);
  assert.equal(info.operators[0].states[0].keyGroupRows.length, 128);
});

test("arrowpoint validate exits 0 when valid, 1 with findings, 2 when there is no snapshot", async () => {
  clearMemoryStorage("cli-val");
  const s = await openStorage("memory:cli-val/sp");
  const m = await writeSavepoint(s, entries(300));
  const ok = await run("validate", "memory:cli-val/sp");
  assert.deepEqual([ok.code, ok.out], [0, "valid: memory:cli-val/sp"]);
  const path = m.operators[0].states[0].chunks[1].path;
  const bytes = await s.get(path);
  bytes[bytes.length - 20] ^= 0xff;
  await s.put(path, bytes);
  const bad = await run("validate", "memory:cli-val/sp");
  assert.equal(bad.code, 1);
  assert.match(bad.out, new RegExp(`checksum-mismatch {2}counter/counts ${path.replace(/[.]/g, "\\.")}`));
  const j = await run("validate", "memory:cli-val/sp", "--json");
  assert.equal(j.code, 1);
  assert.deepEqual(JSON.parse(j.out).findings.map((f: { code: string }) => f.code), ["checksum-mismatch"]);
  const none = await run("validate", "memory:cli-val/nothing");
  assert.equal(none.code, 2);
  noStack(none);
  assert.match(none.err, /not found; no _manifest\.json there/);
});

test("user errors print one clear line and exit 2; --debug adds the stack", async () => {
  clearMemoryStorage("cli-err");
  await writeSavepoint(await openStorage("memory:cli-err/sp"), entries(10));
  const cases: [string[], RegExp][] = [
    [["inspect", "ftp://nowhere"], /cannot open storage "ftp:\/\/nowhere": unknown scheme/],
    [["rekey", "memory:cli-err/sp", "memory:cli-err/b", "--parallelism", "zero"], /--parallelism must be a positive integer: got "zero"/],
    [["rekey", "memory:cli-err/sp", "memory:cli-err/b"], /give --parallelism and\/or --max-parallelism/],
    [["rekey", "memory:cli-err/sp", "memory:cli-err/b", "--parallelism", "500"], /parallelism 500 for operator "counter"/],
    [["inspect", "memory:cli-err/sp", "--colour"], /Unknown option '--colour'.*usage: arrowpoint inspect/],
    [["export", "memory:cli-err/sp", "--operator", "counter", "--state", "nope"], /no state "nope" in operator "counter" \(states of counter: counts\)/],
    [["export", "memory:cli-err/sp"], /--operator and --state are required/],
    [["migrate", "memory:cli-err/sp", "memory:cli-err/m"], /--migrations <module> is required/],
    [["migrate", "memory:cli-err/sp", "memory:cli-err/m", "--migrations", join(dir, "missing.mts")], /cannot load migrations module/],
    [["compact", "memory:cli-err/sp", "memory:cli-err/sp"], /never write in place/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(...argv);
    assert.equal(r.code, 2, argv.join(" "));
    noStack(r);
    assert.match(r.err, message);
  }
  // A newer format version names both versions.
  const s = await openStorage("memory:cli-err/future");
  const m = JSON.parse(new TextDecoder().decode(await (await openStorage("memory:cli-err/sp")).get("_manifest.json")));
  delete m.checksum;
  m.formatVersion = 7;
  await s.put("_manifest.json", new TextEncoder().encode(JSON.stringify(m)));
  const fut = await run("inspect", "memory:cli-err/future");
  assert.equal(fut.code, 2);
  noStack(fut);
  assert.match(fut.err, /formatVersion 7 is newer than this arrowpoint understands \(up to 1\); upgrade arrowpoint/);
  const dbg = await run("inspect", "ftp://nowhere", "--debug");
  assert.match(dbg.err, /\n\s+at /);
});

test("arrowpoint compact, rekey, diff and ls work on a checkpoint root", async () => {
  clearMemoryStorage("cli-tools");
  const live = await writeChain(await openStorage("memory:cli-tools"), [{ set: [...entries(500)] }, { del: ["k1", "k2"] }]);
  const c = await run("compact", "memory:cli-tools", "memory:cli-tools/savepoints/sp-2");
  assert.equal(c.code, 0);
  assert.match(c.out, /^compact: wrote savepoint sp-2 to memory:cli-tools\/savepoints\/sp-2: 498 rows, 4 chunks/);
  assert.deepEqual(await stateMap("memory:cli-tools/savepoints/sp-2"), live);
  const r = await run("rekey", "memory:cli-tools/savepoints/sp-2", "memory:cli-tools/savepoints/sp-2-p3", "--parallelism", "3", "--max-parallelism", "256");
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(await stateMap("memory:cli-tools/savepoints/sp-2-p3"), live);
  const v = await run("validate", "memory:cli-tools/savepoints/sp-2-p3");
  assert.equal(v.code, 0, v.out);
  const same = await run("diff", "memory:cli-tools/savepoints/sp-2", "memory:cli-tools/chk-000002");
  assert.equal(same.code, 0, same.out);
  assert.match(same.out, /^identical/);
  const d = await run("diff", "memory:cli-tools/chk-000001", "memory:cli-tools/savepoints/sp-2", "--json");
  assert.equal(d.code, 1);
  assert.equal(JSON.parse(d.out).states[0].removed, 2);
  const l = await run("ls", "memory:cli-tools");
  assert.equal(l.code, 0);
  assert.match(l.out, /chk-000001 +checkpoint/);
  assert.match(l.out, /savepoints\/sp-2-p3 +savepoint/);
  const lj = JSON.parse((await run("ls", "memory:cli-tools", "--json")).out);
  assert.equal(lj.snapshots.length, 4);
});

test("arrowpoint migrate loads a migrations module; --dry-run prints the plan and writes nothing", async () => {
  clearMemoryStorage("cli-mig");
  await writeSavepoint(await openStorage("memory:cli-mig/v1"), entries(100));
  const mod = join(dir, "migrations.mts");
  const lib = pathToFileURL(join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "migrate", "mod.ts")).href;
  await writeFile(mod, `import { addField, defineMigrations, renameField } from ${JSON.stringify(lib)};\n` +
    `export default defineMigrations({ "counter/counts": [addField("seen", "bool", false), renameField("label", "tag")] });\n`);
  const root = await openStorage("memory:cli-mig");
  const before = await listAll(root);
  const dry = await run("migrate", "memory:cli-mig/v1", "memory:cli-mig/v3", "--migrations", mod, "--dry-run");
  assert.equal(dry.code, 0, dry.err);
  assert.match(dry.out, /counter\/counts: v1 → v3 · 100 rows/);
  assert.match(dry.out, /v1 → v2: addField seen: bool\n\s+v2 → v3: renameField label → tag/);
  assert.match(dry.out, /dry run: nothing written/);
  assert.deepEqual(await listAll(root), before);
  const real = await run("migrate", "memory:cli-mig/v1", "memory:cli-mig/v3", "--migrations", mod);
  assert.equal(real.code, 0, real.err);
  const got = await stateMap("memory:cli-mig/v3");
  assert.deepEqual(got.get("k7"), { count: 7n, tag: "l2", seen: false });
});

test("arrowpoint export writes NDJSON to stdout and Arrow to a file; cp and gc work", async () => {
  clearMemoryStorage("cli-exp");
  const data = entries(200);
  await writeSavepoint(await openStorage("memory:cli-exp/sp"), data);
  const nd = await run("export", "memory:cli-exp/sp", "--operator", "counter", "--state", "counts");
  assert.equal(nd.code, 0);
  const lines = new TextDecoder().decode(nd.bytes).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 200);
  assert.deepEqual(lines.find((l) => l.key === "k5").value, { count: 5, label: "l0" });
  const file = join(dir, "counts.arrow");
  const ar = await run("export", "memory:cli-exp/sp", "--operator", "counter", "--state", "counts", "--format", "arrow", "--out", file);
  assert.equal(ar.code, 0, ar.err);
  assert.equal(tableFromIPC(await readFile(file)).numRows, 200);
  const target = join(dir, "copied-sp");
  const cp = await run("cp", "memory:cli-exp/sp", target);
  assert.equal(cp.code, 0, cp.err);
  assert.equal((await run("validate", target)).code, 0);
  const again = await run("cp", "memory:cli-exp/sp", target);
  assert.equal(again.code, 2);
  noStack(again);
  const root = await openStorage("memory:cli-exp");
  await root.put("chk-000009/orphan.arrow", new Uint8Array(5));
  const dry = await run("gc", "memory:cli-exp", "--dry-run", "--grace-ms", "0");
  assert.match(dry.out, /would delete chk-000009\/orphan\.arrow/);
  assert.ok(await root.exists("chk-000009/orphan.arrow"));
  const gc = await run("gc", "memory:cli-exp", "--grace-ms", "0");
  assert.equal(gc.code, 0);
  assert.equal(await root.exists("chk-000009/orphan.arrow"), false);
  assert.ok(readManifest(await root.get("sp/_manifest.json")) as Manifest);
});

test("the progress bar draws rows, rate and ETA on a terminal and nothing otherwise", () => {
  const drawn: string[] = [];
  const bar = new ProgressBar((s) => drawn.push(s), true, 120);
  assert.match(bar.line({ phase: "rekey", rows: 250_000, bytes: 8 * 1024 * 1024, totalRows: 1_000_000, elapsedMs: 1000 }), /rekey +\[██████░+\] +25% {2}250,000\/1,000,000 rows {2}8\.0 MiB {2}250,000 rows\/s {2}ETA 3\.0 s/);
  bar.update({ phase: "rekey", rows: 1, bytes: 1, elapsedMs: 1 });
  bar.done();
  assert.equal(drawn.length, 2);
  assert.ok(drawn[0].startsWith("\r") && drawn[0].endsWith("\u001b[K"), JSON.stringify(drawn[0]));
  const silent: string[] = [];
  const off = new ProgressBar((s) => silent.push(s), false);
  off.update({ phase: "x", rows: 1, bytes: 1, elapsedMs: 1 });
  off.done();
  assert.deepEqual(silent, []);
});

test("export --out into a folder that does not exist creates it; a folder given as the file is one line", async () => {
  // Before: "unexpected error: ENOENT … x.arrow.tmp-…".
  clearMemoryStorage("cli-out");
  await writeSavepoint(await openStorage("memory:cli-out/sp"), entries(20));
  const file = join(dir, "no", "such", "dir", "x.arrow");
  const r = await run("export", "memory:cli-out/sp", "--operator", "counter", "--state", "counts", "--format", "arrow", "--out", file);
  assert.equal(r.code, 0, r.err);
  assert.equal(tableFromIPC(await readFile(file)).numRows, 20);
  const folder = await run("export", "memory:cli-out/sp", "--operator", "counter", "--state", "counts", "--out", dir);
  assert.equal(folder.code, 2);
  noStack(folder);
  assert.match(folder.err, /^arrowpoint: export .* failed: it is a folder; give a file path/);
});

test("gc of a root that holds nothing is not found, exit 2", async () => {
  // Before: `gc <missing-folder> --dry-run` exited 0 with "would free 0 B".
  for (const uri of [join(dir, "missing-root"), "memory:cli-gc-missing"]) {
    const r = await run("gc", uri, "--dry-run");
    assert.equal(r.code, 2, uri);
    noStack(r);
    assert.match(r.err, /^arrowpoint: gc .*missing.* failed: not found; nothing is stored under this root/);
  }
});

test("a negative number as a flag's value says what the value must be", async () => {
  // Before: parseArgs' "argument is ambiguous … use '--parallelism=-XYZ'".
  clearMemoryStorage("cli-neg");
  await writeSavepoint(await openStorage("memory:cli-neg/sp"), entries(10));
  const cases: [string[], RegExp][] = [
    [["rekey", "memory:cli-neg/sp", "memory:cli-neg/b", "--parallelism", "-3"], /--parallelism must be a positive integer: got "-3"/],
    [["rekey", "memory:cli-neg/sp", "memory:cli-neg/b", "--parallelism=-3"], /--parallelism must be a positive integer: got "-3"/],
    [["compact", "memory:cli-neg/sp", "memory:cli-neg/c", "--parallelism", "-1.5"], /--parallelism must be a positive integer: got "-1\.5"/],
    [["diff", "memory:cli-neg/sp", "memory:cli-neg/sp", "--sample", "-1"], /--sample must be an integer ≥ 0: got "-1"/],
    [["gc", "memory:cli-neg", "--grace-ms", "-10"], /--grace-ms must be an integer ≥ 0: got "-10"/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(...argv);
    assert.equal(r.code, 2, argv.join(" "));
    noStack(r);
    assert.match(r.err, message);
    assert.doesNotMatch(r.err, /ambiguous/);
  }
});

test("cp refuses to nest a snapshot inside itself, exit 2", async () => {
  // Before: `cp <sp> <sp>/inner` exited 0 and wrote a savepoint inside the source savepoint.
  clearMemoryStorage("cli-nest");
  await writeSavepoint(await openStorage("memory:cli-nest/sp"), entries(30));
  const root = await openStorage("memory:cli-nest");
  const before = await listAll(root);
  const r = await run("cp", "memory:cli-nest/sp", "memory:cli-nest/sp/inner");
  assert.equal(r.code, 2);
  noStack(r);
  assert.match(r.err, /the destination memory:cli-nest\/sp\/inner is inside the source savepoint memory:cli-nest\/sp; choose a folder outside it/);
  assert.deepEqual(await listAll(root), before);
});

test("compact, rekey, cp and migrate to a destination holding a snapshot are refused up front, naming it", async () => {
  // Before: the generic "putIfAbsent …/_manifest.json failed: already exists".
  clearMemoryStorage("cli-dst");
  await writeChain(await openStorage("memory:cli-dst/ck"), [{ set: [...entries(300)] }]);
  await writeSavepoint(await openStorage("memory:cli-dst/sp"), entries(300));
  await writeSavepoint(await openStorage("memory:cli-dst/taken"), entries(3));
  const mod = join(dir, "noop-migrations.mts");
  const lib = pathToFileURL(join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "migrate", "mod.ts")).href;
  await writeFile(mod, `import { addField, defineMigrations } from ${JSON.stringify(lib)};\nexport default defineMigrations({ "counter/counts": [addField("seen", "bool", false)] });\n`);
  const taken = await openStorage("memory:cli-dst/taken");
  const before = await listAll(taken);
  for (const argv of [
    ["compact", "memory:cli-dst/ck", "memory:cli-dst/taken"],
    ["rekey", "memory:cli-dst/sp", "memory:cli-dst/taken", "--parallelism", "2"],
    ["cp", "memory:cli-dst/sp", "memory:cli-dst/taken"],
    ["migrate", "memory:cli-dst/sp", "memory:cli-dst/taken", "--migrations", mod],
  ]) {
    const r = await run(...argv);
    assert.equal(r.code, 2, argv.join(" "));
    noStack(r);
    assert.match(r.err, /^arrowpoint: write to memory:cli-dst\/taken failed: the destination already holds a snapshot .*choose a new destination folder/, argv[0]);
    assert.deepEqual(await listAll(taken), before, argv[0]);
  }
});

test("ls and gc agree on what is unreferenced, and say when the grace period is why nothing is freed", async () => {
  // Before: ls said "… unreferenced (see arrowpoint gc)", counting a user's own files, while gc --dry-run
  // said "would free 0 B" without a reason.
  clearMemoryStorage("cli-unref");
  const root = await openStorage("memory:cli-unref");
  await writeChain(root, [{ set: [...entries(100)] }]);
  await root.put("pages.arrow", new Uint8Array(5000));
  const clean = await run("ls", "memory:cli-unref");
  assert.doesNotMatch(clean.out, /unreferenced/);
  await root.put("shared/orphan.arrow", new Uint8Array(2048));
  const l = await run("ls", "memory:cli-unref");
  assert.match(l.out, /, 2\.0 KiB unreferenced, younger than gc's 1 h 0 min grace period/);
  const dry = await run("gc", "memory:cli-unref", "--dry-run");
  assert.equal(dry.code, 0);
  assert.match(dry.out, /^gc: would free 0 B in 0 file\(s\); \d+ kept, of which 1 unreferenced file\(s\) \(2\.0 KiB\) only because they are younger than the grace period \(1 h 0 min\).*--grace-ms 0/);
  const now = await run("gc", "memory:cli-unref", "--dry-run", "--grace-ms", "0");
  assert.match(now.out, /would delete shared\/orphan\.arrow\ngc: would free 2\.0 KiB in 1 file\(s\)/);
  const j = JSON.parse((await run("ls", "memory:cli-unref", "--json")).out);
  assert.deepEqual([j.unreferencedBytes, j.freeableBytes], [2048, 0]);
});

test("a migrations module with a syntax error is reported as file:line:col and the compiler's message", async () => {
  // Before: Node said "Transform failed with 1 error:; give a path to a .ts…" (the error itself lost, even
  // with --debug) and Deno gave no line.
  clearMemoryStorage("cli-syntax");
  await writeSavepoint(await openStorage("memory:cli-syntax/sp"), entries(5));
  for (const name of ["broken.ts", "broken.mjs"]) {
    const file = join(dir, name);
    await writeFile(file, `export const ok = 1;\nconst x = ;\nexport default x;\n`);
    const r = await run("migrate", "memory:cli-syntax/sp", "memory:cli-syntax/out", "--migrations", file);
    assert.equal(r.code, 2, name);
    noStack(r);
    assert.ok(r.err.includes(`: ${file}:2:11: syntax error: `), r.err);
    assert.match(r.err, /syntax error: (Unexpected|Expression expected)/, name);
  }
});

test("arrowpoint <verb> --help says what the verb does, explains each flag and gives examples", async () => {
  for (const verb of ["inspect", "validate", "ls", "compact", "rekey", "migrate", "diff", "export", "cp", "gc"]) {
    const r = await run(verb, "--help");
    assert.equal(r.code, 0, verb);
    const [usage, blank, ...rest] = r.out.split("\n");
    assert.match(usage, new RegExp(`^Usage: arrowpoint ${verb} `));
    assert.equal(blank, "");
    const text = rest.join("\n");
    const description = text.slice(0, text.indexOf("\n\nFlags:"));
    assert.ok(description.length > 80, `${verb}: a description, not a one-liner: ${description}`);
    const flags = text.slice(text.indexOf("Flags:\n"), text.indexOf("\n\nExamples:"));
    const documented = [...flags.matchAll(/^ {2}--([a-z-]+)(?: <value>)? {2,}\S/gm)].map((m) => m[1]);
    const parsed = new Set((r.out.match(/--[a-z-]+/g) ?? []).map((f) => f.slice(2)));
    for (const f of documented) assert.ok(parsed.has(f));
    // Every documented flag is one the verb accepts (parseArgs refuses any other as unknown).
    for (const f of documented.filter((x) => x !== "help")) {
      const probe = await run(verb, `--${f}=x`, "--help");
      assert.doesNotMatch(probe.err, /Unknown option/, `${verb} --${f}`);
    }
    assert.ok(documented.includes("debug") && documented.length >= 2, `${verb}: ${documented.join(", ")}`);
    const examples = text.slice(text.indexOf("Examples:\n") + 10).split("\n").filter((l) => l.startsWith("  arrowpoint "));
    assert.ok(examples.length >= 1 && examples.every((e) => e.startsWith(`  arrowpoint ${verb} `)), `${verb}: ${examples.join(" | ")}`);
  }
});

test("--json on the writing verbs (compact, rekey, migrate, cp, gc) prints one result object", async () => {
  clearMemoryStorage("cli-json");
  const live = await writeChain(await openStorage("memory:cli-json"), [{ set: [...entries(120)] }]);
  const parse = (r: Run) => {
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out);
  };
  const c = parse(await run("compact", "memory:cli-json", "memory:cli-json/savepoints/sp-1", "--json"));
  assert.deepEqual([c.verb, c.source, c.destination, c.id, c.rows], ["compact", "memory:cli-json", "memory:cli-json/savepoints/sp-1", "sp-1", live.size]);
  assert.ok(c.chunks > 0 && c.bytes > 0 && typeof c.elapsedMs === "number");
  const k = parse(await run("rekey", "memory:cli-json/savepoints/sp-1", "memory:cli-json/savepoints/sp-1-p2", "--parallelism", "2", "--json"));
  assert.deepEqual([k.verb, k.destination, k.rows], ["rekey", "memory:cli-json/savepoints/sp-1-p2", live.size]);
  const p = parse(await run("cp", "memory:cli-json/savepoints/sp-1", "memory:cli-json/backup/sp-1", "--json"));
  assert.deepEqual([p.verb, p.source, p.destination], ["cp", "memory:cli-json/savepoints/sp-1", "memory:cli-json/backup/sp-1"]);
  assert.ok(p.chunks > 0 && p.bytes > 0);
  const mod = join(dir, "json-migrations.mts");
  const lib = pathToFileURL(join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..", "migrate", "mod.ts")).href;
  await writeFile(mod, `import { addField, defineMigrations } from ${JSON.stringify(lib)};\nexport default defineMigrations({ "counter/counts": [addField("seen", "bool", false)] });\n`);
  const m = parse(await run("migrate", "memory:cli-json/savepoints/sp-1", "memory:cli-json/savepoints/sp-1-v2", "--migrations", mod, "--json"));
  assert.equal(m.dryRun, false);
  assert.equal(m.written.rows, live.size);
  const g = parse(await run("gc", "memory:cli-json", "--dry-run", "--json"));
  assert.deepEqual([g.dryRun, g.bytesFreed, g.graceMs], [true, 0, 3_600_000]);
});
