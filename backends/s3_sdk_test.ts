// The AWS SDK loads on first S3 use, never when arrowpoint is imported: a program that keeps its state in
// memory or on disk runs without the SDK (Node: the SDK made unresolvable; Deno: only --allow-read, which
// the SDK's loading alone would exceed), and a failed load is a named StorageError saying what to do.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { StorageError } from "../format/errors.ts";
import { S3_SDK_UNAVAILABLE, type S3Sdk, setS3SdkImporterForTests } from "./_s3_sdk.ts";
import { S3Storage } from "./s3.ts";
import { exec, ROOT } from "./_test_exec.ts";

const DENO = join(ROOT, "node_modules", ".bin", "deno");
const NODE = "Deno" in globalThis ? "node" : process.execPath;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-sdk-"));
  // Uses memory storage through mod.ts, lists the SDK modules loaded so far, then tries S3.
  await writeFile(
    join(dir, "program.mts"),
    `import { createRequire } from "node:module";
import { MemoryStorage, S3Storage, StorageError } from ${JSON.stringify(pathToFileURL(join(ROOT, "mod.ts")).href)};
const memory = new MemoryStorage();
await memory.put("a/b.bin", new Uint8Array([1, 2, 3]));
const got = [...(await memory.get("a/b.bin"))];
const sdkModules = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes("@aws-sdk"));
let s3: unknown;
try {
  await new S3Storage("my-bucket", "p", { region: "us-east-1", endpoint: "http://127.0.0.1:9" }).get("x");
  s3 = "no error";
} catch (e) {
  const err = e as StorageError;
  s3 = { storageError: e instanceof StorageError, code: err.code, message: err.message };
}
console.log(JSON.stringify({ got, sdkModules, s3 }));
`,
  );
  // Node: a resolve hook that hides the SDK, as if it were not installed.
  await writeFile(
    join(dir, "hooks.mjs"),
    `export async function resolve(specifier, context, next) {
  if (specifier.startsWith("@aws-sdk/")) throw Object.assign(new Error("Cannot find package '" + specifier + "' (hidden by the test)"), { code: "ERR_MODULE_NOT_FOUND" });
  return next(specifier, context);
}
`,
  );
  await writeFile(join(dir, "hide_sdk.mjs"), `import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url);\n`);
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Report {
  got: number[];
  sdkModules: string[];
  s3: { storageError: boolean; code: string; message: string } | string;
}

function report(run: { code: number | null; out: string; err: string }): Report {
  assert.equal(run.code, 0, `the program failed:\n${run.err}`);
  return JSON.parse(run.out.trim().split("\n").at(-1)!) as Report;
}

test("Node: a program importing mod.ts runs with the AWS SDK unresolvable; S3 use then fails with a named error", async () => {
  const r = report(await exec(NODE, ["--import", "tsx", "--import", pathToFileURL(join(dir, "hide_sdk.mjs")).href, join(dir, "program.mts")]));
  assert.deepEqual(r.got, [1, 2, 3]);
  assert.deepEqual(r.sdkModules, []);
  assert.ok(typeof r.s3 === "object" && r.s3.storageError, JSON.stringify(r.s3));
  assert.equal(r.s3.code, S3_SDK_UNAVAILABLE);
  assert.match(r.s3.message, /^get s3:\/\/my-bucket\/p\/x failed: cannot load the AWS SDK \(@aws-sdk\/client-s3\)/);
  assert.match(r.s3.message, /npm install @aws-sdk\/client-s3/);
});

test("Deno: a program importing mod.ts runs with only --allow-read (no env, no net); S3 use then names the permissions", async () => {
  const r = report(await exec(DENO, ["run", "--no-prompt", "--allow-read", "--config", join(ROOT, "deno.json"), join(dir, "program.mts")]));
  assert.deepEqual(r.got, [1, 2, 3]);
  assert.deepEqual(r.sdkModules, []);
  assert.ok(typeof r.s3 === "object" && r.s3.storageError, JSON.stringify(r.s3));
  assert.equal(r.s3.code, S3_SDK_UNAVAILABLE);
  assert.match(r.s3.message, /cannot load the AWS SDK/);
  assert.match(r.s3.message, /Deno refused it \(Requires env access to .*\); run again with --allow-env --allow-net --allow-read \(or -A\)$/);
});

test("a failed SDK load is not remembered: the next operation loads it again", async () => {
  const storage = new S3Storage("my-bucket", "p", { region: "us-east-1", endpoint: "http://127.0.0.1:9" });
  try {
    let attempts = 0;
    setS3SdkImporterForTests(() => {
      attempts++;
      return Promise.reject(new Error("Cannot find package '@aws-sdk/client-s3'"));
    });
    await assert.rejects(storage.client(), (e: unknown) => e instanceof StorageError && e.code === S3_SDK_UNAVAILABLE && /npm install/.test(e.message));
    await assert.rejects(storage.exists("x"), (e: unknown) => e instanceof StorageError && e.code === S3_SDK_UNAVAILABLE && e.location === "s3://my-bucket/p/x");
    assert.equal(attempts, 2);
    setS3SdkImporterForTests(() => import("@aws-sdk/client-s3") as Promise<S3Sdk>);
    const client = await storage.client();
    assert.equal(typeof client.send, "function");
    assert.equal(await storage.client(), client, "one client per storage");
  } finally {
    setS3SdkImporterForTests(undefined);
    await storage.close();
  }
});
