#!/usr/bin/env node
// Packs the npm tarball, installs it into an empty temporary project with plain Node (no tsx, no
// TypeScript at run time), imports it, type-checks a consumer against its .d.ts, and runs the CLI:
// what a user of `npm install arrowpoint` gets. Prints the tarball's size and file count.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const root = new URL("..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "arrowpoint-pack-"));
const run = (cmd, args, cwd, extra = {}) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...extra });

try {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work], root));
  const { filename, size, unpackedSize, files } = packed[0];
  const tarball = join(work, filename);
  console.log(`tarball ${filename}: ${size} bytes packed, ${unpackedSize} unpacked, ${files.length} files`);
  for (const f of files) assert.ok(!/_test\.ts$|\.ts$/.test(f.path) || f.path.endsWith(".d.ts"), `no TypeScript sources in the tarball: ${f.path}`);
  assert.ok(files.some((f) => f.path === "dist/mod.js") && files.some((f) => f.path === "dist/mod.d.ts"), "dist/mod.js and .d.ts are packed");

  const app = join(work, "app");
  run("mkdir", ["-p", app], work);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", tarball], app);

  writeFileSync(
    join(app, "use.mjs"),
    `import assert from "node:assert/strict";
import { assignKeyGroup, keyGroupRangeFor, openStorage, Job, inspect } from "arrowpoint";
assert.equal(assignKeyGroup("hello", 128), 35);
assert.deepEqual(keyGroupRangeFor(1, 3, 128), { start: 43, end: 85 });
const storage = await openStorage("./data");
assert.match(storage.uri, /^file:/);
console.log(typeof Job, typeof inspect);
`,
  );
  console.log(run(process.execPath, ["use.mjs"], app).trim());

  writeFileSync(
    join(app, "typed.ts"),
    `import { assignKeyGroup, type KeyGroupRange, type Manifest } from "arrowpoint";
const kg: number = assignKeyGroup("a", 128);
const r: KeyGroupRange = { start: kg, end: kg };
const m: Partial<Manifest> = { maxParallelism: 128 };
console.log(r, m);
`,
  );
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { strict: true, module: "NodeNext", moduleResolution: "NodeNext", noEmit: true, skipLibCheck: false, types: [] }, files: ["typed.ts"] }),
  );
  run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app);
  console.log("types: a strict consumer type-checks against dist/*.d.ts");

  const help = run("npx", ["--no-install", "arrowpoint", "--help"], app);
  assert.match(help, /Usage: arrowpoint <verb>/);
  console.log("npx arrowpoint --help: ok");

  writeFileSync(
    join(app, "make.mjs"),
    `import { Job, generatorSource, CollectingSink, valueState, compact } from "arrowpoint";
const COUNT = valueState("count", { value: { encoding: "arrow", type: "int32" } });
const job = new Job("packed", { checkpoints: { storage: "./ckpt" } });
job.fromSource(generatorSource({ count: 1000, make: (i) => ({ user: "u" + (i % 10) }) }), { uid: "events" })
  .keyBy((e) => e.user)
  .process({ open(ctx) { ctx.getState(COUNT); }, processElement(e, ctx) { const s = ctx.getState(COUNT); s.update((s.value() ?? 0) + 1); ctx.collect(e.user); } }, { uid: "count" })
  .sinkTo(new CollectingSink(), { uid: "out" });
await job.run();
await compact("./ckpt", "./ckpt/savepoints/sp-1");
`,
  );
  run(process.execPath, ["make.mjs"], app);
  const inspected = run("npx", ["--no-install", "arrowpoint", "inspect", "./ckpt/savepoints/sp-1"], app);
  assert.match(inspected, /maxParallelism 128/);
  assert.match(inspected, /10 rows/);
  const valid = run("npx", ["--no-install", "arrowpoint", "validate", "./ckpt/savepoints/sp-1"], app);
  console.log("npx arrowpoint inspect / validate <savepoint>: ok — " + valid.trim().split("\n")[0]);
  console.log(`pack test passed (${statSync(tarball).size} bytes)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
