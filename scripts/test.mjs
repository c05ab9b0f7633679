#!/usr/bin/env node
// Runs the whole suite under Node (via tsx) and under Deno, and fails if either fails.
// Node 20's test runner has no glob support, so the files are found here.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const only = args.includes("--node") ? "node" : args.includes("--deno") ? "deno" : "both";
const filters = args.filter((a) => !a.startsWith("--"));

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith("_test.ts")) out.push(relative(root, path));
  }
  return out;
}

let files = findTests(root).sort();
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}

function run(title, cmd, cmdArgs) {
  console.log(`\n=== ${title}: ${cmd} ${cmdArgs.join(" ")}\n`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: "inherit", env: process.env });
  return r.status === 0;
}

const bin = (name) => join(root, "node_modules", ".bin", name);
let ok = true;
if (only !== "deno") {
  // Two test files at a time: most of a file's wall time is child processes, servers starting and fsyncs,
  // not this process's CPU, and Node's default on 2 cores (availableParallelism − 1) ran them one by one.
  ok = run("Node " + process.version, process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files]) && ok;
}
if (only !== "node") {
  ok = run("Deno type check", bin("deno"), ["check", "mod.ts"]) && ok;
  // Deno type-checks the files of one `deno test` as one program. With the PostgreSQL test files in it, the
  // npm @types/node that their dependencies reference displaces Deno's own node types for the others, and
  // node:child_process types lose their EventEmitter methods (TS2339 in crash_test, demo_test, …): so the
  // PostgreSQL files run in a `deno test` of their own.
  const postgres = files.filter((f) => /postgres/.test(f));
  const rest = files.filter((f) => !postgres.includes(f));
  if (rest.length) ok = run("Deno", bin("deno"), ["test", "-A", "--quiet", ...rest]) && ok;
  if (postgres.length) ok = run("Deno (PostgreSQL)", bin("deno"), ["test", "-A", "--quiet", ...postgres]) && ok;
}
console.log(ok ? "\nall suites passed" : "\nSOME SUITES FAILED");
process.exit(ok ? 0 : 1);
