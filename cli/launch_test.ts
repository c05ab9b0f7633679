// The command as a user starts it, in a child process: `node cli/bin.mjs` under Node, `deno run cli/main.ts`
// under Deno (and Deno with limited permissions from both). What an in-process main() cannot show lives
// here: which code a launch runs, what the runtime prints by itself, what a permission refusal looks like.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { openStorage } from "../backends/open.ts";
import { entries, writeSavepoint } from "../migrate/_test_util.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = join(ROOT, "node_modules", ".bin", "deno");
const IS_DENO = "Deno" in globalThis;

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

export interface Exit {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a program to its end; never rejects on a non-zero exit. */
export function exec(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...options.env })) if (v !== undefined) env[k] = v;
    // A Node test runner started with --import tsx must not hand the loader to the child: the child shows
    // what a user's plain `node` does.
    delete env.NODE_OPTIONS;
    const child = spawn(cmd, args, { cwd: options.cwd ?? ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

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
  assert.match(noEnv.err.trim(), /^arrowpoint: missing Deno permission: Requires env access to .*; run again with --allow-env \(or -A\)$/);
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
