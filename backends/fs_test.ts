import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import os from "node:os";
import nodePath from "node:path";
import process from "node:process";
import { after, describe, test } from "node:test";
import { NotFoundError, PathEscapeError, StorageError } from "../format/errors.ts";
import { FsStorage, isTempFileName } from "./fs.ts";
import { openStorage } from "./open.ts";
import { storageSuite } from "./storage_suite.ts";

const base = await fsp.mkdtemp(nodePath.join(os.tmpdir(), "arrowpoint-fs-test-"));
after(async () => {
  await fsp.rm(base, { recursive: true, force: true });
});

let counter = 0;
const freshDir = () => nodePath.join(base, `root-${++counter}`);

storageSuite("fs", async () => new FsStorage(freshDir()));

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const full = nodePath.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(full)).map((f) => `${e.name}/${f}`));
    else out.push(e.name);
  }
  return out.sort();
}

const enc = new TextEncoder();
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe("fs specifics", () => {
  test("no temporary file is left or visible after writes, successful or failed", async () => {
    const dir = freshDir();
    const s = new FsStorage(dir);
    await s.put("a/x.bin", enc.encode("1"));
    await s.put("a/x.bin", enc.encode("22"));
    assert.equal(await s.putIfAbsent("a/m.json", enc.encode("m")), true);
    assert.equal(await s.putIfAbsent("a/m.json", enc.encode("n")), false);
    await s.putStream("a/s.bin", (async function* () {
      yield enc.encode("s1");
      yield enc.encode("s2");
    })());
    await assert.rejects(s.putStream("a/fail.bin", (async function* () {
      yield enc.encode("partial");
      throw new Error("boom");
    })()), /boom/);
    assert.deepEqual(await allFiles(dir), ["a/m.json", "a/s.bin", "a/x.bin"]);
    assert.equal(await s.exists("a/fail.bin"), false);
  });

  test("putDeferred fsyncs nothing; syncDeferred fsyncs each file and every folder given a new entry", async () => {
    const dir = freshDir();
    const s = new FsStorage(dir);
    const probe = await fsp.open(nodePath.join(base, "probe"), "w");
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const original = proto.sync;
    let syncs = 0;
    proto.sync = function (this: unknown) {
      syncs++;
      return original.call(this);
    };
    try {
      await s.putDeferred("a/b/x.bin", enc.encode("1"));
      await s.putDeferred("a/y.bin", enc.encode("2"));
      assert.equal(syncs, 0);
      assert.deepEqual(await allFiles(dir), ["a/b/x.bin", "a/y.bin"]);
      await s.syncDeferred(["a/b/x.bin", "a/y.bin"]);
      // 2 files; folders a/b, a (new entries), the root (new folder a), the root's parent (new root).
      assert.equal(syncs, 2 + 4);
      syncs = 0;
      await s.syncDeferred(["a/y.bin"]);
      assert.equal(syncs, 2, "folders already synced are not synced again, the file's own folder is");
      await s.putDeferred("a/c/z.bin", enc.encode("3"));
      syncs = 0;
      await s.syncDeferred(["a/c/z.bin"], { only: "bytes" });
      assert.equal(syncs, 1, "bytes: the file alone");
      syncs = 0;
      await s.syncDeferred(["a/c/z.bin", "a/y.bin"], { only: "names" });
      assert.equal(syncs, 2, "names: folders a/c and a (the files' folders, a also for its new a/c), each once, no file");
    } finally {
      proto.sync = original;
    }
    await assert.rejects(s.syncDeferred(["a/missing.bin"]), (e: unknown) => e instanceof StorageError && /a\/missing\.bin/.test(e.message));
  });

  test("temporary-looking files are not listed, other dot files are", async () => {
    const dir = freshDir();
    const s = new FsStorage(dir);
    await s.put("d/real", enc.encode("1"));
    await fsp.writeFile(nodePath.join(dir, "d", ".real.tmp-0123456789abcdef"), "crash leftover");
    await fsp.writeFile(nodePath.join(dir, "d", ".hidden"), "h");
    assert.equal(isTempFileName(".real.tmp-0123456789abcdef"), true);
    const listed = [];
    for await (const o of s.list("")) listed.push(o.path);
    assert.deepEqual(listed, ["d/.hidden", "d/real"]);
  });

  test("symlinks leading outside the root are refused; inside ones work", async () => {
    const dir = freshDir();
    const outside = nodePath.join(base, `outside-${counter}`);
    await fsp.mkdir(outside, { recursive: true });
    await fsp.writeFile(nodePath.join(outside, "secret"), "top secret");
    const s = new FsStorage(dir);
    await s.put("inside/file", enc.encode("in"));
    await fsp.symlink(outside, nodePath.join(dir, "escape-dir"));
    await fsp.symlink(nodePath.join(outside, "secret"), nodePath.join(dir, "escape-file"));
    await fsp.symlink(nodePath.join(dir, "inside", "file"), nodePath.join(dir, "ok-link"));

    await assert.rejects(s.get("escape-dir/secret"), PathEscapeError);
    await assert.rejects(s.get("escape-file"), PathEscapeError);
    await assert.rejects(s.getRange("escape-file", 0, 3), PathEscapeError);
    await assert.rejects(s.exists("escape-file"), PathEscapeError);
    await assert.rejects(s.put("escape-dir/new", enc.encode("x")), PathEscapeError);
    await assert.rejects(s.putIfAbsent("escape-dir/new2", enc.encode("x")), PathEscapeError);
    await assert.rejects(s.putIfAbsent("escape-dir/secret", enc.encode("x")), PathEscapeError, "no existence answer outside the root");
    await assert.rejects(s.put("escape-dir/deeper/new", enc.encode("x")), PathEscapeError);
    await assert.rejects(s.delete(["escape-dir/secret"]), PathEscapeError);
    assert.deepEqual((await fsp.readdir(outside)).sort(), ["secret"], "nothing written or deleted outside");
    assert.equal(await fsp.readFile(nodePath.join(outside, "secret"), "utf8"), "top secret");

    assert.equal(new TextDecoder().decode(await s.get("ok-link")), "in");
    const listed = [];
    for await (const o of s.list("")) listed.push(o.path);
    assert.deepEqual(listed, ["inside/file", "ok-link"], "escaping links are not listed");
  });

  test("a missing root lists empty, reads not-found, and is created by the first write", async () => {
    const dir = nodePath.join(freshDir(), "not", "yet");
    const s = new FsStorage(dir);
    const listed = [];
    for await (const o of s.list("")) listed.push(o);
    assert.deepEqual(listed, []);
    await assert.rejects(s.get("x"), NotFoundError);
    assert.equal(await s.exists("x"), false);
    await s.delete(["x"]);
    await s.put("x", enc.encode("1"));
    assert.equal((await fsp.stat(dir)).isDirectory(), true);
  });

  test("delete removes folders it leaves empty, but never the root", async () => {
    const dir = freshDir();
    const s = new FsStorage(dir);
    await s.put("a/b/c/1", enc.encode("1"));
    await s.put("a/keep", enc.encode("k"));
    await s.delete(["a/b/c/1"]);
    assert.deepEqual(await allFiles(dir), ["a/keep"]);
    assert.deepEqual(await fsp.readdir(nodePath.join(dir, "a")), ["keep"]);
    await s.delete(["a/keep"]);
    assert.deepEqual(await fsp.readdir(dir), []);
    await s.put("a/b/again", enc.encode("2"));
    assert.equal(await s.exists("a/b/again"), true);
  });

  test("concurrent writes and deletes in one folder do not fail", async () => {
    const s = new FsStorage(freshDir());
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      work.push(s.put(`shared/x-${i}`, enc.encode(String(i))));
      if (i % 3 === 0) work.push(s.delete([`shared/x-${i - 1}`]));
    }
    await Promise.all(work);
    let n = 0;
    for await (const _ of s.list("shared/")) n++;
    assert.ok(n >= 133 && n <= 200, `${n} objects remain`);
  });

  test("objects and folders in the way give StorageError, not crashes", async () => {
    const s = new FsStorage(freshDir());
    await s.put("f", enc.encode("file"));
    await assert.rejects(s.put("f/child", enc.encode("x")), (e: unknown) => e instanceof StorageError && !(e instanceof NotFoundError));
    await s.put("d/child", enc.encode("x"));
    await assert.rejects(s.put("d", enc.encode("x")), StorageError);
    await assert.rejects(s.get("d"), NotFoundError);
    await s.delete(["d"]);
    assert.equal(await s.exists("d/child"), true, "deleting a folder name deletes nothing");
  });

  test("permission denied maps to StorageError", async () => {
    if (isRoot) {
      // Folder modes do not stop root; sysfs refuses new files to everyone (EACCES).
      const sys = new FsStorage("/sys/kernel");
      await assert.rejects(sys.put("arrowpoint-probe", enc.encode("2")), (e: unknown) => e instanceof StorageError && /permission denied/.test(e.message));
      return;
    }
    const dir = freshDir();
    const s = new FsStorage(dir);
    await s.put("ro/x", enc.encode("1"));
    await fsp.chmod(nodePath.join(dir, "ro"), 0o500);
    try {
      await assert.rejects(s.put("ro/y", enc.encode("2")), (e: unknown) => e instanceof StorageError && /permission denied/.test(e.message));
    } finally {
      await fsp.chmod(nodePath.join(dir, "ro"), 0o700);
    }
  });

  test("uri is a percent-encoded file URL and openStorage accepts paths and file URIs", async () => {
    const dir = nodePath.join(freshDir(), "with space");
    const s = new FsStorage(dir);
    assert.ok(s.uri.startsWith("file:///"));
    assert.ok(s.uri.endsWith("/with%20space"), s.uri);
    await s.put("x", enc.encode("1"));
    assert.equal(await (await openStorage(s.uri)).exists("x"), true);
    assert.equal(await (await openStorage(dir)).exists("x"), true);
    const relative = nodePath.relative(process.cwd(), dir);
    const viaRelative = await openStorage(relative);
    assert.equal(viaRelative.uri, s.uri);
  });
});

test("concurrent deletes in one folder never fail because the other removed the folder", async () => {
  const root = await fsp.mkdtemp(nodePath.join(os.tmpdir(), "arrowpoint-fs-race-"));
  try {
    const s = new FsStorage(root);
    for (let round = 0; round < 60; round++) {
      const names = Array.from({ length: 6 }, (_, i) => `d${round}/f${i}`);
      for (const n of names) await s.put(n, new Uint8Array([1]));
      // A batch delete empties the folder and removes it while single deletes still fsync it.
      await Promise.all([s.delete(names.slice(0, 5)), ...names.map((n, i) => new Promise((r) => setTimeout(r, i % 3)).then(() => s.delete([n])))]);
      assert.equal(await s.exists(names[0]), false);
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});

test("a put whose folders a concurrent delete removes (emptied) redoes them instead of failing with ENOENT", async () => {
  // A failed shard's clean-up deletes its chunks and removes the folders left empty while a healthy shard
  // creates its chunk's folders there: the put's folder walk met a folder that had just vanished (CI: "put
  // …/counter/counts/kg-0-31.arrow failed: a folder vanished during the operation (ENOENT)").
  const root = await fsp.mkdtemp(nodePath.join(os.tmpdir(), "arrowpoint-fs-race-"));
  try {
    const s = new FsStorage(root);
    for (let round = 0; round < 300; round++) {
      await s.put("r/a/b/c/old", new Uint8Array([1]));
      // The put starts a varying number of event-loop turns after the delete, so that over the rounds its
      // folder walk meets every step of the delete's removal of the emptied folders.
      const later = async () => {
        for (let i = 0; i < round % 60; i++) await new Promise((r) => setImmediate(r));
        await s.put(`r/a/b/c/d/new-${round}`, new Uint8Array([2]));
      };
      await Promise.all([s.delete(["r/a/b/c/old"]), later()]);
      assert.deepEqual(await s.get(`r/a/b/c/d/new-${round}`), new Uint8Array([2]));
      await s.delete([`r/a/b/c/d/new-${round}`]);
    }
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
