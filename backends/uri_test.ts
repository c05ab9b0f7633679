import assert from "node:assert/strict";
import nodePath from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { InvalidUriError, PathEscapeError } from "../format/errors.ts";
import { FsStorage } from "./fs.ts";
import { MemoryStorage } from "./memory.ts";
import { openStorage } from "./open.ts";
import { S3Storage } from "./s3.ts";
import { formatStorageUri, joinUri, parseStorageUri } from "./uri.ts";

describe("storage URIs", () => {
  test("plain paths resolve against the current directory", () => {
    assert.deepEqual(parseStorageUri("state/job"), { scheme: "file", path: nodePath.resolve(process.cwd(), "state/job") });
    assert.deepEqual(parseStorageUri("/var/lib/x/"), { scheme: "file", path: "/var/lib/x" });
    assert.deepEqual(parseStorageUri("./a/../b"), { scheme: "file", path: nodePath.resolve("b") });
  });

  test("file: URIs are percent-decoded; remote hosts are refused", () => {
    assert.deepEqual(parseStorageUri("file:///tmp/a%20b/"), { scheme: "file", path: "/tmp/a b" });
    assert.deepEqual(parseStorageUri(new URL("file:///tmp/x")), { scheme: "file", path: "/tmp/x" });
    if (process.platform !== "win32") assert.throws(() => parseStorageUri("file://otherhost/x"), InvalidUriError);
  });

  test("s3:// URIs: bucket and literal prefix", () => {
    assert.deepEqual(parseStorageUri("s3://bucket"), { scheme: "s3", bucket: "bucket", prefix: "" });
    assert.deepEqual(parseStorageUri("s3://bucket/"), { scheme: "s3", bucket: "bucket", prefix: "" });
    assert.deepEqual(parseStorageUri("S3://my.bucket-1/jobs/a%20b/"), { scheme: "s3", bucket: "my.bucket-1", prefix: "jobs/a%20b" });
    assert.throws(() => parseStorageUri("s3://Bucket/x"), InvalidUriError);
    assert.throws(() => parseStorageUri("s3:/bucket/x"), InvalidUriError);
    assert.throws(() => parseStorageUri("s3://bucket/a//b"), InvalidUriError);
    assert.throws(() => parseStorageUri("s3://bucket/../b"), InvalidUriError);
  });

  test("memory: URIs", () => {
    assert.deepEqual(parseStorageUri("memory:x"), { scheme: "memory", name: "x", prefix: "" });
    assert.deepEqual(parseStorageUri("memory://x/a/b"), { scheme: "memory", name: "x", prefix: "a/b" });
    assert.throws(() => parseStorageUri("memory:"), InvalidUriError);
    assert.throws(() => parseStorageUri("memory:x/../y"), InvalidUriError);
  });

  test("unknown schemes and empty URIs raise InvalidUriError", async () => {
    for (const bad of ["ftp://host/x", "gs://bucket/x", "http://example.com/x", "", "  "]) {
      assert.throws(() => parseStorageUri(bad), InvalidUriError, bad);
      await assert.rejects(openStorage(bad), InvalidUriError, bad);
    }
  });

  test("formatStorageUri is canonical and round-trips", () => {
    for (const uri of ["s3://bkt/p/q", "s3://bkt", "memory:m", "memory:m/x", "file:///tmp/a%20b"]) {
      assert.equal(formatStorageUri(parseStorageUri(uri)), uri);
    }
  });

  test("joinUri appends a validated relative path", () => {
    assert.equal(joinUri("s3://bucket/job", "savepoints/sp-1"), "s3://bucket/job/savepoints/sp-1");
    assert.equal(joinUri("s3://bucket", "sp-1/"), "s3://bucket/sp-1");
    assert.equal(joinUri("memory:m", "a"), "memory:m/a");
    assert.equal(joinUri("file:///tmp/a b", "c d"), "file:///tmp/a%20b/c%20d");
    assert.equal(joinUri("/tmp/x", "y"), "file:///tmp/x/y");
    assert.throws(() => joinUri("s3://bucket/job", "../other"), PathEscapeError);
    assert.throws(() => joinUri("s3://bucket/job", "/abs"), PathEscapeError);
  });

  test("openStorage picks the backend and sets a canonical uri", async () => {
    const f = await openStorage("/tmp/arrowpoint-uri-test/");
    assert.ok(f instanceof FsStorage);
    assert.equal(f.uri, "file:///tmp/arrowpoint-uri-test");
    const m = await openStorage("memory:uri-test");
    assert.ok(m instanceof MemoryStorage);
    assert.equal(m.uri, "memory:uri-test");
    const s = await openStorage("s3://bucket/p/", { s3: { region: "us-east-1", credentials: { accessKeyId: "x", secretAccessKey: "y" } } });
    assert.ok(s instanceof S3Storage);
    assert.equal(s.uri, "s3://bucket/p");
    assert.equal(s.bucket, "bucket");
    assert.equal(s.prefix, "p");
    for (const st of [f, m, s]) await st.close();
  });
});
