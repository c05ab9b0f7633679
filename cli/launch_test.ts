// The command as a user starts it, in a child process: `node cli/bin.mjs` under Node, `deno run cli/main.ts`
// under Deno (and Deno with limited permissions from both). What an in-process main() cannot show lives
// here: which code a launch runs, what the runtime prints by itself, what a permission refusal looks like.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { openStorage } from "../backends/open.ts";
import { type Exit, exec, ROOT } from "../backends/_test_exec.ts";
import { entries, writeSavepoint } from "../migrate/_test_util.ts";

const DENO = join(ROOT, "node_modules", ".bin", "deno");
const IS_DENO = "Deno" in globalThis;
/** Node, also when Deno runs this file: cli/bin.mjs is the launcher of Node users. */
const NODE = IS_DENO ? "node" : process.execPath;

let dir: string;
let savepoint: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-launch-"));
  savepoint = join(dir, "sp");
  await writeSavepoint(await openStorage(savepoint), entries(50));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The CLI as this runtime's user starts it. */
export function cli(args: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<Exit> {
  return IS_DENO
    ? exec(process.execPath, ["run", "-A", join(ROOT, "cli", "main.ts"), ...args], options)
    : exec(process.execPath, [join(ROOT, "cli", "bin.mjs"), ...args], options);
}

test("Deno without -A: inspect of a local folder needs only --allow-read, and a missing permission is one line naming it", async () => {
  // Before: the AWS SDK was loaded for every URI and read the environment as it loaded, so `deno run
  // --allow-read cli/main.ts inspect ./sp` died with an uncaught NotCapable (--allow-env) and a stack.
  const main = join(ROOT, "cli", "main.ts");
  const ok = await exec(DENO, ["run", "--no-prompt", "--allow-read", main, "inspect", savepoint]);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /^savepoint sp-test /);
  const noRead = await exec(DENO, ["run", "--no-prompt", main, "inspect", savepoint]);
  assert.equal(noRead.code, 2);
  assert.equal(noRead.err.trim().split("\n").length, 1, noRead.err);
  assert.match(noRead.err, /^arrowpoint: .*read access.*--allow-read/);
  const noEnv = await exec(DENO, ["run", "--no-prompt", "--allow-read", main, "inspect", "s3://some-bucket/sp"]);
  assert.equal(noEnv.code, 2);
  assert.equal(noEnv.err.trim().split("\n").length, 1, noEnv.err);
  // The SDK loads on first S3 use; Deno's refusal then names every permission the SDK needs, not the first.
  assert.match(noEnv.err.trim(), /^arrowpoint: .* failed: cannot load the AWS SDK \(@aws-sdk\/client-s3\), which S3 storage needs: Deno refused it \(Requires env access to .*\); run again with --allow-env --allow-net --allow-read \(or -A\)$/);
});

test("an S3 command prints no AWS SDK NodeVersionSupportWarning, and a stalled endpoint ends within ARROWPOINT_S3_TIMEOUT_MS with one line", async () => {
  // Before: on Node 20 every S3 command printed the SDK's 8-line NodeVersionSupportWarning, and a stalled
  // endpoint took 3 × 60 s to fail whatever the user set.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const r = await cli(["ls", "s3://stalled-bucket/job"], {
      env: {
        AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        AWS_REGION: "us-east-1",
        AWS_MAX_ATTEMPTS: "1",
        ARROWPOINT_S3_TIMEOUT_MS: "200",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined,
      },
    });
    assert.equal(r.code, 2, r.err);
    assert.doesNotMatch(r.err, /NodeVersionSupportWarning|Warning/);
    assert.equal(r.err.trim().split("\n").length, 1, r.err);
    assert.match(r.err.trim(), /^arrowpoint: list s3:\/\/stalled-bucket\/job failed: the S3 endpoint did not answer within 200 ms .*ARROWPOINT_S3_TIMEOUT_MS/);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/**
 * A package laid out around a copy of cli/bin.mjs: `sources` adds cli/main.ts (a checkout), `dist` a
 * compiled dist/cli/main.js, `deps` a node_modules with tsx. Each main prints which one ran; the compiled
 * one imports argv[0] through the importer bin.mjs hands it, as the real one does for --migrations (a .ts
 * outside a "type": "module" package comes as CommonJS: its default export one level down).
 */
async function layout(name: string, parts: { sources?: boolean; dist?: boolean; deps?: boolean }): Promise<string> {
  const at = join(dir, name);
  await mkdir(join(at, "cli"), { recursive: true });
  await copyFile(join(ROOT, "cli", "bin.mjs"), join(at, "cli", "bin.mjs"));
  await writeFile(join(at, "package.json"), JSON.stringify({ name: "arrowpoint", type: "module" }));
  if (parts.sources) await writeFile(join(at, "cli", "main.ts"), `export async function main(): Promise<number> { console.log("sources"); return 0; }\n`);
  if (parts.dist) {
    await mkdir(join(at, "dist", "cli"), { recursive: true });
    await writeFile(
      join(at, "dist", "cli", "main.js"),
      `import { pathToFileURL } from "node:url";\n` +
        `export async function main(argv, io) {\n` +
        `  if (!argv[0]) { console.log("dist"); return 0; }\n` +
        `  try { const m = await io.importModule(pathToFileURL(argv[0]).href); console.log("loaded", m.default?.default ?? m.default); return 0; }\n` +
        `  catch (e) { console.log("failed", e.code, e.message); return 2; }\n` +
        `}\n`,
    );
  }
  if (parts.deps) await symlink(join(ROOT, "node_modules"), join(at, "node_modules"), "dir");
  return at;
}

test("bin.mjs in a checkout runs the sources, never a dist/ built earlier (regression)", async () => {
  // Before: whenever dist/ existed, bin.mjs ran it, so a stale build hid every later source change.
  const at = await layout("checkout", { sources: true, dist: true, deps: true });
  const r = await exec(NODE, [join(at, "cli", "bin.mjs")], { cwd: at });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), "sources");
  const noTsx = await layout("checkout-no-deps", { sources: true, dist: true });
  const n = await exec(NODE, [join(noTsx, "cli", "bin.mjs")], { cwd: noTsx });
  assert.equal(n.code, 2);
  assert.match(n.err.trim(), /^arrowpoint: this checkout runs its TypeScript sources through tsx, which is not installed; run npm install$/);
});

test("bin.mjs of a published package runs dist/ and loads a TypeScript module through tsx, or says what to do without it", async () => {
  // Before: the built CLI imported a .ts module with plain Node 20: "Unknown file extension .ts".
  const tsModule = join(dir, "answer.ts");
  await writeFile(tsModule, `const answer: number = 42;\nexport default answer;\n`);
  const published = await layout("published", { dist: true, deps: true });
  assert.equal((await exec(NODE, [join(published, "cli", "bin.mjs")], { cwd: published })).out.trim(), "dist");
  const r = await exec(NODE, [join(published, "cli", "bin.mjs"), tsModule], { cwd: published });
  assert.equal(r.code, 0, r.out + r.err);
  assert.equal(r.out.trim(), "loaded 42");
  const bare = await layout("published-no-deps", { dist: true });
  const n = await exec(NODE, [join(bare, "cli", "bin.mjs"), tsModule], { cwd: bare });
  assert.equal(n.code, 2);
  assert.match(n.out.trim(), /^failed ARROWPOINT_TYPESCRIPT_LOADER this Node \(v[\d.]+\) does not run TypeScript by itself and tsx was not found; install it in your project \(npm install --save-dev tsx\)/);
});

test("the command loads a .ts migrations module outside any \"type\": \"module\" package", async () => {
  // Before: Node's bin.mjs registered only tsx's ESM hooks, and such a file failed with "Cannot require()
  // ES Module … in a cycle".
  const mod = join(dir, "plain.ts");
  const lib = pathToFileURL(join(ROOT, "migrate", "mod.ts")).href;
  await writeFile(mod, `import { addField, defineMigrations } from ${JSON.stringify(lib)};\nexport default defineMigrations({ "counter/counts": [addField("seen", "bool", false)] });\n`);
  const r = await cli(["migrate", savepoint, join(dir, "migrated"), "--migrations", mod, "--dry-run"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /counter\/counts: v1 → v2 · 50 rows/);
  assert.match(r.out, /dry run: nothing written/);
});
