/**
 * The behaviour every {@linkcode Storage} must have, as one `node:test` suite that each backend's test file
 * runs against its own factory (memory_test.ts, fs_test.ts, s3_test.ts). Uses only `node:test` and
 * `node:assert/strict`, so it runs under Node and Deno.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NotFoundError, PathEscapeError, StorageError } from "../format/errors.ts";
import { comparePaths } from "./path.ts";
import type { ObjectInfo, Storage } from "./storage.ts";

/**
 * What a backend under test can additionally show the suite.
 *
 * @example
 * ```ts
 * import type { SuiteCapabilities } from "./storage_suite.ts";
 * const caps: SuiteCapabilities = { manyObjects: 1100, writeConcurrency: 32, requests: () => 0 };
 * ```
 */
export interface SuiteCapabilities {
  /** Objects written by the listing and batched-delete tests (default 1100: more than one S3 page). */
  manyObjects?: number;
  /** Concurrent writers used to write them (default 32). */
  writeConcurrency?: number;
  /**
   * How many requests of an SDK command (e.g. `"UploadPartCommand"`) the storages' client has sent so
   * far (S3), to check that paging, batching and multipart really happened.
   */
  requests?(command: string): number;
  /** Multipart introspection (S3). */
  multipart?: {
    /** Multipart uploads still open under the root of `storage`. */
    openUploads(storage: Storage): Promise<number>;
    /** Starts a multipart upload for `path` and leaves it open; returns a function that aborts it. */
    startUpload(storage: Storage, path: string): Promise<() => Promise<void>>;
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (xorshift32), fast enough for tens of MiB. */
function noise(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, message = "bytes differ"): void {
  assert.ok(actual instanceof Uint8Array, "a Uint8Array is returned");
  assert.equal(actual.byteLength, expected.byteLength, `${message}: length`);
  let first = -1;
  for (let i = 0; i < actual.byteLength; i++) {
    if (actual[i] !== expected[i]) {
      first = i;
      break;
    }
  }
  assert.equal(first, -1, `${message}: first difference at byte ${first}`);
}

async function collect(iterable: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of iterable) out.push(o);
  return out;
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function* chunked(bytes: Uint8Array, size: number, failAfter?: number, error?: Error): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += size) {
    if (failAfter !== undefined && at >= failAfter) throw error ?? new Error("injected failure");
    yield bytes.subarray(at, Math.min(at + size, bytes.byteLength));
  }
  if (failAfter !== undefined) throw error ?? new Error("injected failure");
}

/**
 * Registers the shared storage tests under `describe(name)`. `open` must return a fresh, empty storage
 * (its own folder, prefix or memory name) on every call; each test closes it after emptying it.
 *
 * @example
 * ```ts no-run
 * import { storageSuite } from "./storage_suite.ts";
 * import { MemoryStorage } from "./memory.ts";
 * storageSuite("memory", async () => new MemoryStorage());
 * ```
 */
export function storageSuite(name: string, open: () => Promise<Storage>, capabilities: SuiteCapabilities = {}): void {
  const many = capabilities.manyObjects ?? 1100;
  const requests = (command: string) => capabilities.requests?.(command) ?? 0;
  const concurrency = capabilities.writeConcurrency ?? 32;

  /** Runs `body` with a fresh storage, then empties and closes it. */
  const withStorage = (body: (s: Storage) => Promise<void>) => async () => {
    const s = await open();
    try {
      await body(s);
    } finally {
      const left = await collect(s.list("")).catch(() => []);
      await s.delete(left.map((o) => o.path)).catch(() => {});
      await s.close();
    }
  };

  describe(`storage suite: ${name}`, () => {
    test("put/get round-trip, including an empty object and unusual names", withStorage(async (s) => {
      const cases: [string, Uint8Array][] = [
        ["a.bin", new Uint8Array([0, 1, 2, 255])],
        ["dir/sub/deep/x.json", enc.encode('{"k":1}')],
        ["empty", new Uint8Array(0)],
        ["dir/ünïcödé 文件 +&=,;@$~!'()[]{}%20.bin", enc.encode("unicode")],
      ];
      for (const [path, bytes] of cases) await s.put(path, bytes);
      for (const [path, bytes] of cases) assertBytes(await s.get(path), bytes, path);
      for (const [path] of cases) assert.equal(await s.exists(path), true, path);
      const listed = await collect(s.list(""));
      assert.deepEqual(listed.map((o) => o.path), cases.map(([p]) => p).sort(comparePaths));
      const empty = listed.find((o) => o.path === "empty");
      assert.equal(empty?.size, 0);
    }));

    test("stored bytes are independent of the caller's buffers", withStorage(async (s) => {
      const input = new Uint8Array([1, 2, 3]);
      await s.put("a", input);
      input[0] = 99;
      const first = await s.get("a");
      assert.equal(first[0], 1, "mutating the input after put does not change the object");
      first[1] = 99;
      assert.equal((await s.get("a"))[1], 2, "mutating a returned array does not change the object");
    }));

    test("overwrite replaces the whole object", withStorage(async (s) => {
      await s.put("x", enc.encode("first version, longer"));
      await s.put("x", enc.encode("second"));
      assert.equal(dec.decode(await s.get("x")), "second");
      const listed = await collect(s.list("x"));
      assert.equal(listed.length, 1);
      assert.equal(listed[0].size, 6);
    }));

    test("getRange returns [offset, offset+length) clipped at the end", withStorage(async (s) => {
      await s.put("r", enc.encode("0123456789"));
      const r = async (o: number, n: number) => dec.decode(await s.getRange("r", o, n));
      assert.equal(await r(0, 3), "012");
      assert.equal(await r(0, 1), "0"); // s3rver answers bytes=0-0 with the whole object
      assert.equal(await r(3, 4), "3456");
      assert.equal(await r(9, 1), "9");
      assert.equal(await r(8, 10), "89");
      assert.equal(await r(0, 10), "0123456789");
      assert.equal(await r(0, 1000), "0123456789");
      assert.equal(await r(10, 5), "");
      assert.equal(await r(25, 5), "");
      assert.equal(await r(4, 0), "");
      await s.put("e", new Uint8Array(0));
      assert.equal((await s.getRange("e", 0, 10)).byteLength, 0);
      await assert.rejects(s.getRange("missing", 0, 1), NotFoundError);
      await assert.rejects(s.getRange("missing", 0, 0), NotFoundError);
      await assert.rejects(s.getRange("r", -1, 1), RangeError);
      await assert.rejects(s.getRange("r", 0, 1.5), RangeError);
    }));

    test("getRange into a caller's buffer gives the same bytes as without it, and never writes past them", withStorage(async (s) => {
      await s.put("r", enc.encode("0123456789"));
      const into = new Uint8Array(16).fill(0x2a);
      const r = async (o: number, n: number) => {
        into.fill(0x2a);
        const got = await s.getRange("r", o, n, into);
        // A view of `into` (the backend read into it) or new memory (it may not): the result is what counts.
        if (got.buffer === into.buffer) assert.ok(into.subarray(got.byteLength).every((b) => b === 0x2a), "bytes past the result untouched");
        return dec.decode(got);
      };
      assert.equal(await r(0, 3), "012");
      assert.equal(await r(3, 4), "3456");
      assert.equal(await r(8, 10), "89");
      assert.equal(await r(0, 11), "0123456789");
      assert.equal(await r(10, 5), "");
      // Too small for the range: ignored, not overrun.
      const small = new Uint8Array(2);
      assert.equal(dec.decode(await s.getRange("r", 0, 5, small)), "01234");
      assert.deepEqual(small, new Uint8Array(2));
      await assert.rejects(s.getRange("missing", 0, 1, into), NotFoundError);
    }));

    test("missing objects: get → NotFoundError, exists → false, delete is fine", withStorage(async (s) => {
      await assert.rejects(s.get("nope/missing.bin"), (e: unknown) => {
        assert.ok(e instanceof NotFoundError);
        assert.equal(e.code, "ARROWPOINT_NOT_FOUND");
        assert.match(e.message, /nope\/missing\.bin/);
        return true;
      });
      assert.equal(await s.exists("nope/missing.bin"), false);
      await s.put("dir/file", enc.encode("x"));
      assert.equal(await s.exists("dir"), false, "a folder-like prefix is not an object");
      await assert.rejects(s.get("dir"), NotFoundError);
      await s.delete(["nope/missing.bin", "also-missing"]);
      await s.delete([]);
      assert.equal(await s.exists("dir/file"), true);
    }));

    test("list filters by prefix and sorts by code point", withStorage(async (s) => {
      const names = ["b", "a/b", "a-b", "a0", "a/a", "A", "é", "z", "ab", "a/c/d", "😀", "\uffff"];
      await Promise.all(names.map((n) => s.put(n, enc.encode(n))));
      const all = await collect(s.list(""));
      assert.deepEqual(all.map((o) => o.path), ["A", "a-b", "a/a", "a/b", "a/c/d", "a0", "ab", "b", "z", "é", "\uffff", "😀"]);
      assert.deepEqual((await collect(s.list("a/"))).map((o) => o.path), ["a/a", "a/b", "a/c/d"]);
      assert.deepEqual((await collect(s.list("a"))).map((o) => o.path), ["a-b", "a/a", "a/b", "a/c/d", "a0", "ab"]);
      assert.deepEqual((await collect(s.list("a/c"))).map((o) => o.path), ["a/c/d"]);
      assert.deepEqual((await collect(s.list("q"))).map((o) => o.path), []);
      const info = all.find((o) => o.path === "a/c/d")!;
      assert.equal(info.size, 5);
      assert.ok(info.modified instanceof Date);
      assert.ok(Math.abs(info.modified.getTime() - Date.now()) < 24 * 3600 * 1000, "modified is a plausible time");
    }));

    test(`list over ${many} objects (every page) and batched delete`, withStorage(async (s) => {
      const names = Array.from({ length: many }, (_, i) => `many/k-${String(i).padStart(5, "0")}`);
      const decoys = ["many-not/x", "man", "other/many/y"];
      await pool([...names, ...decoys], concurrency, (n) => s.put(n, enc.encode(n)));
      const pagesBefore = requests("ListObjectsV2Command");
      const listed = await collect(s.list("many/"));
      if (capabilities.requests) {
        const pages = requests("ListObjectsV2Command") - pagesBefore;
        assert.equal(pages, Math.ceil(many / 1000), `listed in pages of 1000 (${pages} requests)`);
      }
      assert.equal(listed.length, many);
      assert.deepEqual(listed.map((o) => o.path), names);
      assert.ok(listed.every((o) => o.size === "many/k-00000".length));
      assert.equal((await collect(s.list(""))).length, many + decoys.length);
      const deletesBefore = requests("DeleteObjectsCommand");
      await s.delete([...names, "many/not-there"]);
      if (capabilities.requests) {
        const batches = requests("DeleteObjectsCommand") - deletesBefore;
        assert.equal(batches, Math.ceil((many + 1) / 1000), `deleted in batches of at most 1000 (${batches} requests)`);
      }
      assert.deepEqual((await collect(s.list("many/"))).map((o) => o.path), []);
      assert.deepEqual((await collect(s.list(""))).map((o) => o.path), ["man", "many-not/x", "other/many/y"]);
    }));

    test("exists tracks put and delete", withStorage(async (s) => {
      assert.equal(await s.exists("e/x"), false);
      await s.put("e/x", enc.encode("1"));
      assert.equal(await s.exists("e/x"), true);
      await s.delete(["e/x"]);
      assert.equal(await s.exists("e/x"), false);
      await assert.rejects(s.get("e/x"), NotFoundError);
    }));

    test("putDeferred writes whole objects (new folders too) that syncDeferred makes durable", withStorage(async (s) => {
      assert.ok(s.putDeferred && s.syncDeferred, "every backend has deferred writes");
      const a = new Uint8Array(100_000).fill(3);
      await s.putDeferred!("d/e/f.bin", a);
      await s.putDeferred!("d/g.bin", new Uint8Array([1, 2]));
      await s.putDeferred!("d/g.bin", new Uint8Array([4]));
      assert.deepEqual(await s.get("d/e/f.bin"), a);
      await s.syncDeferred!(["d/e/f.bin", "d/g.bin", "d/g.bin"]);
      assert.deepEqual(await s.get("d/g.bin"), new Uint8Array([4]));
      const listed: string[] = [];
      for await (const o of s.list("d/")) listed.push(o.path);
      assert.deepEqual(listed, ["d/e/f.bin", "d/g.bin"]);
    }));

    test("putIfAbsent writes once and never replaces", withStorage(async (s) => {
      assert.equal(await s.putIfAbsent("m/_manifest.json", enc.encode("one")), true);
      assert.equal(await s.putIfAbsent("m/_manifest.json", enc.encode("two")), false);
      assert.equal(dec.decode(await s.get("m/_manifest.json")), "one");
      await s.put("m/other", enc.encode("x"));
      assert.equal(await s.putIfAbsent("m/other", enc.encode("y")), false);
      assert.equal(dec.decode(await s.get("m/other")), "x");
      assert.deepEqual((await collect(s.list("m/"))).map((o) => o.path), ["m/_manifest.json", "m/other"]);
    }));

    test("putIfAbsent: of 8 concurrent writers exactly one wins, and its bytes are stored", withStorage(async (s) => {
      for (let round = 0; round < 3; round++) {
        const path = `race/${round}/_manifest.json`;
        const bodies = Array.from({ length: 8 }, (_, i) => enc.encode(`writer ${i} round ${round} `.repeat(50 + i)));
        const results = await Promise.all(bodies.map((b) => s.putIfAbsent(path, b)));
        assert.equal(results.filter((r) => r).length, 1, `round ${round}: ${results}`);
        const winner = results.indexOf(true);
        assertBytes(await s.get(path), bodies[winner], "the winner's bytes");
      }
    }));

    test("putStream of a small and an empty source", withStorage(async (s) => {
      const body = noise(100_003, 7);
      await s.putStream("small", chunked(body, 4096));
      assertBytes(await s.get("small"), body);
      await s.putStream("none", (async function* () {})());
      assert.equal((await s.get("none")).byteLength, 0);
      await s.putStream("with-empty-chunks", (async function* () {
        yield new Uint8Array(0);
        yield new Uint8Array([1]);
        yield new Uint8Array(0);
        yield new Uint8Array([2, 3]);
      })());
      assertBytes(await s.get("with-empty-chunks"), new Uint8Array([1, 2, 3]));
    }));

    test("putStream reuses nothing of the caller's chunk buffers", withStorage(async (s) => {
      const buffer = new Uint8Array(1000);
      const expected = new Uint8Array(3000);
      await s.putStream("reused", (async function* () {
        for (let i = 0; i < 3; i++) {
          buffer.fill(i + 1);
          expected.fill(i + 1, i * 1000, (i + 1) * 1000);
          yield buffer;
        }
      })());
      assertBytes(await s.get("reused"), expected);
    }));

    test("putStream of a body over 16 MiB (multipart on S3) reads back byte-identical", withStorage(async (s) => {
      const body = noise(17 * MiB + 12_345, 42);
      const before = requests("UploadPartCommand");
      await s.putStream("big/chunk.arrow", chunked(body, 1 * MiB + 17));
      assertBytes(await s.get("big/chunk.arrow"), body, "streamed body");
      if (capabilities.requests) {
        const parts = requests("UploadPartCommand") - before;
        assert.ok(parts >= 3, `multipart upload used (${parts} UploadPart calls)`);
      }
      if (capabilities.multipart) assert.equal(await capabilities.multipart.openUploads(s), 0);
      assertBytes(await s.getRange("big/chunk.arrow", 16 * MiB - 3, 10), body.subarray(16 * MiB - 3, 16 * MiB + 7), "range across parts");
      const listed = await collect(s.list("big/"));
      assert.equal(listed.length, 1);
      assert.equal(listed[0].size, body.byteLength);
      // put of a large body, too
      const body2 = noise(17 * MiB, 43);
      const before2 = requests("UploadPartCommand");
      await s.put("big/put.arrow", body2);
      assertBytes(await s.get("big/put.arrow"), body2, "put body");
      if (capabilities.requests) assert.ok(requests("UploadPartCommand") - before2 >= 3, "put of a large body used multipart");
    }));

    test("a source failing midway leaves the previous object intact and nothing partial", withStorage(async (s) => {
      const previous = enc.encode("previous version");
      await s.put("victim", previous);
      const injected = new Error("injected source failure");
      const body = noise(20 * MiB, 5);
      await assert.rejects(s.putStream("victim", chunked(body, 1 * MiB, 18 * MiB, injected)), (e: unknown) => e === injected);
      assertBytes(await s.get("victim"), previous, "previous object intact");
      await assert.rejects(s.putStream("fresh", chunked(body, 1 * MiB, 18 * MiB, injected)), (e: unknown) => e === injected);
      assert.equal(await s.exists("fresh"), false, "no partial object");
      await assert.rejects(s.putStream("fresh-small", chunked(body.subarray(0, 1000), 100, 500, injected)), (e: unknown) => e === injected);
      assert.equal(await s.exists("fresh-small"), false, "no partial small object");
      assert.deepEqual((await collect(s.list(""))).map((o) => [o.path, o.size]), [["victim", previous.byteLength]]);
      if (capabilities.multipart) assert.equal(await capabilities.multipart.openUploads(s), 0, "aborted uploads leave nothing");
    }));

    if (capabilities.multipart) {
      const mp = capabilities.multipart;
      test("openUploads sees an open upload (so 'no uploads left' above is meaningful)", withStorage(async (s) => {
        const abort = await mp.startUpload(s, "dangling");
        try {
          assert.equal(await mp.openUploads(s), 1);
        } finally {
          await abort();
        }
        assert.equal(await mp.openUploads(s), 0);
      }));
    }

    test("bad paths raise PathEscapeError before touching storage", withStorage(async (s) => {
      const bad = ["../x", "/abs", "a//b", "a/./b", "a\\b", "", ".", "..", "a/..", "a/", "x\0y", "a/../../etc/passwd"];
      for (const p of bad) {
        const is = (e: unknown) => e instanceof PathEscapeError && e.code === "ARROWPOINT_PATH_ESCAPE";
        await assert.rejects(s.put(p, new Uint8Array([1])), is, `put ${JSON.stringify(p)}`);
        await assert.rejects(s.putIfAbsent(p, new Uint8Array([1])), is, `putIfAbsent ${JSON.stringify(p)}`);
        await assert.rejects(s.putStream(p, chunked(new Uint8Array([1]), 1)), is, `putStream ${JSON.stringify(p)}`);
        await assert.rejects(s.get(p), is, `get ${JSON.stringify(p)}`);
        await assert.rejects(s.getRange(p, 0, 1), is, `getRange ${JSON.stringify(p)}`);
        await assert.rejects(s.exists(p), is, `exists ${JSON.stringify(p)}`);
        await assert.rejects(s.delete(["ok", p]), is, `delete ${JSON.stringify(p)}`);
      }
      for (const prefix of ["/", "../", "a//", "./x", "a\\", "x/../"]) {
        await assert.rejects(collect(s.list(prefix)), PathEscapeError, `list ${JSON.stringify(prefix)}`);
      }
      assert.deepEqual(await collect(s.list("")), [], "nothing was written");
    }));

    test("close is idempotent and later calls fail clearly", async () => {
      const s = await open();
      await s.put("c", new Uint8Array([1]));
      await s.delete(["c"]);
      await s.close();
      await s.close();
      await assert.rejects(s.get("c"), (e: unknown) => e instanceof StorageError && !(e instanceof NotFoundError) && /closed/.test(e.message));
      await assert.rejects(s.put("c", new Uint8Array([1])), (e: unknown) => e instanceof StorageError && /closed/.test(e.message));
    });
  });
}
