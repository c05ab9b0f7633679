// Hostile filesystem contents under an FsStorage root (issue 7): named pipes, symlink loops, folders and
// files where the other is expected, links that leave the root, odd and overlong names, a symlinked root.
// Every operation ends in a result or a named error (no clock judges it: a reader that would wait on a
// named pipe forever is caught opening it, see neverOpens), and nothing outside the root is touched.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, constants as fsConstants, existsSync, openSync, promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { ArrowpointError, NotFoundError, PathEscapeError, StorageError } from "../format/errors.ts";
import { FsStorage } from "./fs.ts";

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), "arrowpoint-fs-hostile-"));
});
after(async () => {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** Runs `op`: its result or its named ArrowpointError; any other error is a failure. */
async function outcome<T>(op: () => Promise<T>): Promise<T | ArrowpointError> {
  try {
    return await op();
  } catch (e) {
    if (e instanceof ArrowpointError) return e;
    throw e;
  }
}

/**
 * Runs `op` and checks, without a clock, that it never opens the named pipe `fifo` for reading (which would
 * block it until a writer came, i.e. forever): while `op` runs, a non-blocking open for writing, which
 * succeeds only while a reader has the pipe open, is tried again and again. One that succeeds also gives
 * the blocked reader its end of file, so `op` ends and the test fails instead of hanging.
 */
async function neverOpens<T>(fifo: string, what: string, op: () => Promise<T>): Promise<T | ArrowpointError> {
  let settled = false;
  const run = outcome(op).finally(() => (settled = true));
  let opened = false;
  while (!settled && !opened) {
    try {
      closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
      opened = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENXIO") throw e; // ENXIO: no reader has it open
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const r = await run;
  assert.ok(!opened, `${what} opened the named pipe`);
  return r;
}

const canFifo = process.platform !== "win32" && spawnSync("mkfifo", ["--version"]).status === 0;

test("a named pipe where an object should be is refused at once, never opened (regression)", { skip: !canFifo && "no mkfifo" }, async () => {
  // Before: get() and getRange() opened the pipe and waited for a writer forever (and held one of libuv's
  // four threads while waiting): a snapshot holding a FIFO as a chunk hung every reader.
  const root = join(dir, "fifo");
  await fsp.mkdir(join(root, "op"), { recursive: true });
  assert.equal(spawnSync("mkfifo", [join(root, "op", "x.arrow")]).status, 0);
  const s = new FsStorage(root);
  const fifo = join(root, "op", "x.arrow");
  assert.ok((await neverOpens(fifo, "get", () => s.get("op/x.arrow"))) instanceof NotFoundError);
  assert.ok((await neverOpens(fifo, "getRange", () => s.getRange("op/x.arrow", 0, 10))) instanceof NotFoundError);
  assert.equal(await neverOpens(fifo, "exists", () => s.exists("op/x.arrow")), false);
  const listed: string[] = [];
  await neverOpens(fifo, "list", async () => {
    for await (const o of s.list("")) listed.push(o.path);
  });
  assert.deepEqual(listed, []);
  await outcome(() => s.put("op/x.arrow", new Uint8Array([1, 2])));
  assert.deepEqual(await s.get("op/x.arrow"), new Uint8Array([1, 2]), "a write replaces the pipe with a file");
});

test("symlink loops, folders for files and files for folders are named errors", async () => {
  const root = join(dir, "shapes");
  const s = new FsStorage(root);
  await s.put("a/b.bin", new Uint8Array([1]));
  await fsp.symlink(join(root, "loop1"), join(root, "loop2"));
  await fsp.symlink(join(root, "loop2"), join(root, "loop1"));
  await fsp.mkdir(join(root, "dir.arrow"));
  for (const [what, op] of [
    ["get of a symlink loop", () => s.get("loop1")],
    ["getRange of a symlink loop", () => s.getRange("loop1", 0, 1)],
    ["exists of a symlink loop", () => s.exists("loop1")],
    ["put through a symlink loop", () => s.put("loop1/x", new Uint8Array(1))],
    ["get of a folder", () => s.get("dir.arrow")],
    ["put under a file", () => s.put("a/b.bin/c", new Uint8Array(1))],
    ["putIfAbsent under a file", () => s.putIfAbsent("a/b.bin/c", new Uint8Array(1))],
    ["put over a folder", () => s.put("dir.arrow", new Uint8Array(1))],
    ["an overlong name", () => s.put(`x/${"n".repeat(300)}`, new Uint8Array(1))],
    ["an overlong path", () => s.get(Array.from({ length: 200 }, () => "d".repeat(40)).join("/"))],
  ] as const) {
    const r = await outcome(op as () => Promise<unknown>);
    assert.ok(r === false || r instanceof StorageError || r instanceof PathEscapeError, `${what}: ${r}`);
  }
  const listed: string[] = [];
  for await (const o of s.list("")) listed.push(o.path);
  assert.deepEqual(listed, ["a/b.bin"]);
});

test("odd but valid names round-trip: spaces, unicode, '%', '+', newlines, leading dashes and tildes", async () => {
  const s = new FsStorage(join(dir, "names"));
  const names = ["a b/c d.arrow", "ünï/😀.bin", "%2e%2e/x", "+/-", "line\nbreak", "-rf", "~/x", "tab\there", "x.tmp-0123456789abcdeg"];
  for (const [i, n] of names.entries()) await s.put(n, new Uint8Array([i]));
  const listed: string[] = [];
  for await (const o of s.list("")) listed.push(o.path);
  assert.deepEqual(listed.sort(), [...names].sort());
  for (const [i, n] of names.entries()) assert.deepEqual(await s.get(n), new Uint8Array([i]), n);
  assert.ok(!existsSync(join(dir, "names", "..", "x")), "'%2e%2e' is a name, not a parent");
});

test("a symlinked root is followed (it is the user's choice), and links inside still may not leave it", async () => {
  const real = join(dir, "real-root");
  const outside = join(dir, "outside");
  await fsp.mkdir(real, { recursive: true });
  await fsp.mkdir(outside, { recursive: true });
  await fsp.writeFile(join(outside, "secret"), "x");
  await fsp.symlink(real, join(dir, "link-root"));
  const s = new FsStorage(join(dir, "link-root"));
  await s.put("a", new Uint8Array([1]));
  assert.ok(existsSync(join(real, "a")));
  await fsp.symlink(join(outside, "secret"), join(real, "escape"));
  assert.ok((await outcome(() => s.get("escape"))) instanceof PathEscapeError);
  await s.delete(["escape"]);
  assert.ok(existsSync(join(outside, "secret")), "delete removed the link, not its target");
});
