// Fuzzing of storage URIs and paths (issue 7): parseStorageUri, formatStorageUri, joinUri, openStorage,
// subStorage and every path check, over generated and hostile strings. Every case ends in a valid result
// that satisfies the invariants below, or a named InvalidUriError / PathEscapeError — never a bare error.
// No I/O is done: storages are opened and closed without a request.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isAbsolute } from "node:path";
import fc from "fast-check";
import { InvalidUriError, PathEscapeError } from "../format/errors.ts";
import { checkSnapshotPath } from "../format/snapshot_path.ts";
import { cases, SEED, Target } from "../format/_test_fuzz.ts";
import { openStorage } from "./open.ts";
import { isValidPath, joinPath, validatePath, validatePrefix } from "./path.ts";
import { MemoryStorage } from "./memory.ts";
import { subStorage } from "./sub.ts";
import { formatStorageUri, joinUri, parseStorageUri, type StorageLocation } from "./uri.ts";

const PIECES = [
  "s3://", "s3:/", "S3://", "file://", "file:", "FILE:///", "memory:", "memory://", "http://", "ftp://", "c:", "C:\\", "\\\\?\\",
  "/", "//", "\\", ".", "..", "../", "./", "%2e", "%2E%2e", "%2f", "%00", "%", "%zz", "\u0000", "?", "#", " ", "+", "~", "@",
  ":", "bucket", "my-bucket", "a.b-c", "BUCKET", "xn--b", "a", "ab", "a".repeat(64), "prefix", "chk-000001", "savepoints",
  "ü", "😀", "\ud800", "\u202e", "\r\n", "*", "localhost:9000", "user:pass@", "[::1]",
];

const uriArb = fc.oneof(
  fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 8 }).map((p) => p.join("")),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.tuple(fc.constantFrom("s3://", "memory:", "file://", ""), fc.string({ maxLength: 30 })).map(([a, b]) => a + b),
);

const pathArb = fc.oneof(
  fc.array(fc.constantFrom("a", "b", "chk-000001", "_manifest.json", ".", "..", "", " ", "%2e%2e", "\\", "\u0000", "ü", "x y", ".hidden", "~"), { minLength: 1, maxLength: 5 }).map((s) => s.join("/")),
  fc.string({ unit: "binary", maxLength: 30 }),
);

function checkLocation(loc: StorageLocation, input: string): void {
  switch (loc.scheme) {
    case "file":
      assert.ok(isAbsolute(loc.path), `file path not absolute for ${JSON.stringify(input)}`);
      assert.ok(!loc.path.includes("\0"), `NUL in ${JSON.stringify(loc.path)}`);
      break;
    case "s3":
      assert.match(loc.bucket, /^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$/);
      if (loc.prefix !== "") assert.ok(isValidPath(loc.prefix), `s3 prefix ${JSON.stringify(loc.prefix)} from ${JSON.stringify(input)}`);
      break;
    case "memory":
      assert.ok(loc.name.length > 0 && !loc.name.includes("\\"), `memory name ${JSON.stringify(loc.name)} from ${JSON.stringify(input)}`);
      if (loc.prefix !== "") assert.ok(isValidPath(loc.prefix), `memory prefix ${JSON.stringify(loc.prefix)} from ${JSON.stringify(input)}`);
      break;
  }
  // The canonical URI parses back to the same place.
  assert.deepEqual(parseStorageUri(formatStorageUri(loc)), loc, `round trip of ${JSON.stringify(input)}`);
}

test("parseStorageUri() and openStorage() of generated and hostile URIs end in a valid location or InvalidUriError/PathEscapeError", async () => {
  const t = new Target("URIs: parseStorageUri/openStorage/joinUri");
  const samples = fc.sample(fc.tuple(uriArb, pathArb), { numRuns: cases(400), seed: SEED });
  for (const [uri, path] of samples) {
    const parsed = t.check(() => parseStorageUri(uri), () => JSON.stringify(uri));
    if (parsed.ok) checkLocation(parsed.value as StorageLocation, uri);
    else assert.ok(parsed.error instanceof InvalidUriError, parsed.error.name);
    const opened = await t.checkAsync(async () => {
      const s = await openStorage(uri);
      try {
        assert.deepEqual(parseStorageUri(s.uri), parseStorageUri(uri));
      } finally {
        await s.close();
      }
    }, () => JSON.stringify(uri));
    assert.equal(opened.ok, parsed.ok, `openStorage and parseStorageUri disagree on ${JSON.stringify(uri)}`);
    if (parsed.ok) {
      const joined = t.check(() => joinUri(uri, path), () => `${JSON.stringify(uri)} + ${JSON.stringify(path)}`);
      if (joined.ok) {
        assert.ok(isValidPath(path.replace(/\/+$/, "")), `joinUri accepted path ${JSON.stringify(path)}`);
        // The joined URI stays under the base location.
        const base = parsed.value as StorageLocation;
        const child = parseStorageUri(joined.value as string);
        assert.equal(child.scheme, base.scheme);
        if (child.scheme === "s3" && base.scheme === "s3") {
          assert.equal(child.bucket, base.bucket);
          assert.ok(base.prefix === "" || child.prefix.startsWith(base.prefix + "/"), `${joined.value} escapes ${uri}`);
        }
        if (child.scheme === "file" && base.scheme === "file") assert.ok(child.path.startsWith(base.path), `${child.path} escapes ${base.path}`);
      } else assert.ok(joined.error instanceof PathEscapeError || joined.error instanceof InvalidUriError, joined.error.name);
    }
  }
  t.record();
});

test("path checks agree with each other and never let a path leave its root", async () => {
  const t = new Target("paths: validatePath/validatePrefix/checkSnapshotPath/subStorage");
  const root = new MemoryStorage();
  const samples = fc.sample(pathArb, { numRuns: cases(400), seed: SEED });
  for (const path of samples) {
    const v = t.check(() => validatePath(path));
    assert.equal(v.ok, isValidPath(path));
    if (v.ok) {
      const segments = path.split("/");
      assert.ok(!segments.includes("..") && !segments.includes(".") && !segments.includes("") && !path.includes("\\") && !path.includes("\0"));
      assert.equal(joinPath("x", path), `x/${path}`);
    } else assert.ok(v.error instanceof PathEscapeError);
    const snap = t.check(() => checkSnapshotPath(path));
    if (snap.ok) assert.ok(v.ok, `checkSnapshotPath is stricter than validatePath: ${JSON.stringify(path)}`);
    const prefix = t.check(() => validatePrefix(path));
    if (v.ok) assert.ok(prefix.ok, `a valid path is a valid prefix: ${JSON.stringify(path)}`);
    const sub = t.check(() => subStorage(root, path));
    if (sub.ok) {
      const view = sub.value as MemoryStorage;
      await view.put("f", new Uint8Array([1]));
      assert.ok(await root.exists(`${path.replace(/\/+$/, "")}/f`), `subStorage(${JSON.stringify(path)}) wrote elsewhere`);
    }
    // Every public storage method refuses an invalid path before doing anything.
    if (!v.ok) {
      const ops: (() => Promise<unknown>)[] = [() => root.put(path, new Uint8Array(1)), () => root.get(path), () => root.exists(path), () => root.delete([path]), () => root.putIfAbsent(path, new Uint8Array(1))];
      for (const op of ops) {
        const r = await t.checkAsync(op);
        assert.ok(!r.ok && r.error instanceof PathEscapeError);
      }
    }
  }
  t.record();
});

test("URIs that named another place are refused or encoded: lone surrogates, encoded NUL, trailing control characters (regression)", async () => {
  // Found by the fuzzer: "\ud800x" and "\udc00x" were accepted and both stored as "\ufffdx" on a
  // filesystem, and the storage's canonical URI did not parse back to its own location.
  for (const bad of ["\ud800x", "a/\udc00", "x\ud83d", "\ude00y"]) {
    assert.throws(() => parseStorageUri(bad), InvalidUriError);
    assert.throws(() => parseStorageUri(`s3://bucket/${bad}`), InvalidUriError);
    assert.throws(() => validatePath(bad), PathEscapeError);
    assert.throws(() => validatePrefix(bad), PathEscapeError);
    await assert.rejects(new MemoryStorage().put(bad, new Uint8Array(1)), PathEscapeError);
  }
  // Found by the fuzzer too: an encoded NUL survived decoding ("file:///%00" → "/\0"), and Node 20's
  // pathToFileURL drops trailing control characters, so a folder's canonical URI named its parent.
  assert.throws(() => parseStorageUri("file:///tmp/%00x"), InvalidUriError);
  for (const p of ["/tmp/a\x04", "/tmp/x\x1f", "/tmp/b\x04c"]) assert.deepEqual(parseStorageUri(formatStorageUri({ scheme: "file", path: p })), { scheme: "file", path: p });
  validatePath("ok/😀"); // a pair is fine
  assert.equal(parseStorageUri("memory:x/😀").scheme, "memory");
});
