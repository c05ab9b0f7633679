#!/usr/bin/env node
// Runs the code examples of the library's JSDoc (every ```ts block inside a /** … */ comment, as
// `deno test --doc` does) under Node (tsx) and under Deno, so that an example that stops working fails CI.
//
//   node scripts/doctest.mjs [--node | --deno] [--list] [path-filter ...]
//
// Each example is written to .tmp/doctest/ with its relative imports made absolute, type-checked
// (`deno check`, in the Deno pass), then imported by one runner process per runtime, one example at a
// time, each in an empty temporary working directory. An example passes when its module finishes without
// throwing: examples state what they show with `node:assert/strict` (both runtimes have it), not with
// `// expected` comments. ```ts no-run marks an example that cannot run (a fragment, a real bucket): it
// is type-checked only. Console output of a passing example is dropped; a failing one's is printed.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const only = args.includes("--node") ? "node" : args.includes("--deno") ? "deno" : "both";
const filters = args.filter((a) => !a.startsWith("--"));
const out = join(root, ".tmp", "doctest");

function sources(dir, acc = []) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, acc);
    else if (name.endsWith(".ts") && !name.endsWith("_test.ts") && !name.endsWith(".d.ts")) acc.push(path);
  }
  return acc;
}

/** The fenced TypeScript blocks of a file's JSDoc comments: { line, words, code }. */
function examples(text) {
  const found = [];
  const lines = text.split("\n");
  let inDoc = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!inDoc) {
      if (/^\s*\/\*\*/.test(line) && !/\*\/\s*$/.test(line)) inDoc = true;
      continue;
    }
    if (/\*\/\s*$/.test(line)) {
      inDoc = false;
      continue;
    }
    const open = /^\s*\*\s?```(ts|typescript|js|javascript)\b(.*)$/.exec(line);
    if (!open) continue;
    const start = i + 1;
    const body = [];
    while (++i < lines.length && !/^\s*\*\s?```\s*$/.test(lines[i])) body.push(lines[i].replace(/^\s*\* ?/, ""));
    found.push({ line: start + 1, words: open[2].trim().split(/\s+/).filter(Boolean), code: body.join("\n") });
  }
  return found;
}

/** Relative module specifiers resolved against the source file, so the copy imports the same modules. */
function absolutise(code, file) {
  return code.replace(/(\bfrom\s+|\bimport\s*\(\s*|^import\s+)(["'])(\.{1,2}\/[^"']+)\2/gm, (_, pre, q, spec) =>
    `${pre}${q}${resolve(dirname(file), spec)}${q}`);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const all = [];
for (const file of sources(root).sort()) {
  const rel = relative(root, file);
  if (filters.length && !filters.some((f) => rel.includes(f))) continue;
  for (const ex of examples(readFileSync(file, "utf8"))) {
    const name = `${rel.replace(/[^A-Za-z0-9]+/g, "_")}_L${ex.line}.ts`;
    const path = join(out, name);
    writeFileSync(path, `// ${rel}:${ex.line}\n${absolutise(ex.code, file)}\nexport {};\n`);
    all.push({ from: `${rel}:${ex.line}`, path, run: !ex.words.includes("no-run") && !ex.words.includes("ignore") });
  }
}
if (args.includes("--list")) {
  for (const e of all) console.log(`${e.run ? "run " : "type"} ${e.from}`);
  process.exit(0);
}
if (all.length === 0) {
  console.error("no examples found");
  process.exit(1);
}

const runnable = all.filter((e) => e.run);
writeFileSync(join(out, "examples.json"), JSON.stringify(runnable.map((e) => ({ from: e.from, url: pathToFileURL(e.path).href }))));
writeFileSync(
  join(out, "_runner.ts"),
  `// Imports every example in turn, each from an empty working directory; prints the failures.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const list: { from: string; url: string }[] = JSON.parse(readFileSync(new URL("./examples.json", import.meta.url), "utf8"));
const home = process.cwd();
let failed = 0;
let late: unknown[] = [];
process.on("unhandledRejection", (e) => late.push(e));
const original = { log: console.log, info: console.info, warn: console.warn, error: console.error };
for (const ex of list) {
  const printed: string[] = [];
  const keep = (...a: unknown[]) => { printed.push(a.map((x) => typeof x === "string" ? x : show(x)).join(" ")); };
  console.log = console.info = console.warn = console.error = keep;
  const dir = mkdtempSync(join(tmpdir(), "arrowpoint-doctest-"));
  process.chdir(dir);
  late = [];
  let error: unknown;
  try {
    await import(ex.url);
    await new Promise((r) => setTimeout(r, 0));
    if (late.length) error = late[0];
  } catch (e) {
    error = e;
  }
  Object.assign(console, original);
  process.chdir(home);
  rmSync(dir, { recursive: true, force: true });
  if (error !== undefined) {
    failed++;
    console.error(\`FAIL \${ex.from}\\n  \${String((error as Error)?.stack ?? error).split("\\n").slice(0, 6).join("\\n  ")}\`);
    if (printed.length) console.error("  printed:\\n    " + printed.join("\\n    "));
  }
}
console.log(\`\${list.length - failed} of \${list.length} examples passed\`);
process.exit(failed ? 1 : 0);

function show(x: unknown): string {
  try { return JSON.stringify(x, (_k, v) => typeof v === "bigint" ? v.toString() + "n" : v); } catch { return String(x); }
}
`,
);

const bin = (name) => join(root, "node_modules", ".bin", name);
const run = (title, cmd, cmdArgs) => {
  console.log(`\n=== ${title}`);
  const t0 = Date.now();
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: "inherit", env: process.env });
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return r.status === 0;
};
console.log(`${all.length} examples in JSDoc, ${runnable.length} run, ${all.length - runnable.length} only type-checked`);
let ok = true;
if (only !== "node") ok = run("Deno: type-check every example", bin("deno"), ["check", "--quiet", "--config", join(root, "deno.json"), ...all.map((e) => e.path)]) && ok;
if (only !== "deno") ok = run(`Node ${process.version}: run the examples`, process.execPath, ["--import", "tsx", join(out, "_runner.ts")]) && ok;
if (only !== "node") ok = run("Deno: run the examples", bin("deno"), ["run", "-A", "--no-check", "--config", join(root, "deno.json"), join(out, "_runner.ts")]) && ok;
console.log(ok ? "doc examples passed" : "DOC EXAMPLES FAILED");
process.exit(ok ? 0 : 1);
