import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { InvalidUriError, NotFoundError, StorageError } from "../format/errors.ts";
import { type S3TestServer, startS3Server } from "./_s3_test_server.ts";
import { openStorage } from "./open.ts";
import { s3ClientConfig, S3Storage, type S3StorageOptions } from "./s3.ts";
import type { Storage } from "./storage.ts";
import { type SuiteCapabilities, storageSuite } from "./storage_suite.ts";
import { parseStorageUri } from "./uri.ts";

// The SDK warns once per process that it will soon need Node 22; that is not what these tests are about.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const enc = new TextEncoder();
const MiB = 1024 * 1024;
const run = Math.random().toString(36).slice(2, 10);

/** A client that counts UploadPart requests, and the suite capabilities built on it. */
function instrumented(config: S3ClientConfig): { client: S3Client; capabilities: SuiteCapabilities } {
  const client = new S3Client(config);
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? "unknown";
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: "initialize", name: "countRequests" },
  );
  const s3 = (storage: Storage): S3Storage => {
    assert.ok(storage instanceof S3Storage);
    return storage;
  };
  const capabilities: SuiteCapabilities = {
    requests: (command) => counts.get(command) ?? 0,
    multipart: {
      async openUploads(storage) {
        const { bucket, prefix } = s3(storage);
        const r = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/` }));
        return r.Uploads?.length ?? 0;
      },
      async startUpload(storage, path) {
        const { bucket, prefix } = s3(storage);
        const Key = `${prefix}/${path}`;
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
        return async () => {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
        };
      },
    },
  };
  return { client, capabilities };
}

describe("s3 on a local s3rver", () => {
  let server: S3TestServer;
  let client: S3Client;
  let capabilities: SuiteCapabilities;
  let n = 0;
  const open = async (prefix = `t-${++n}`, options: S3StorageOptions = {}) =>
    new S3Storage(server.bucket, prefix, { ...server.storageOptions, client, ...options });

  before(async () => {
    server = await startS3Server();
    ({ client, capabilities } = instrumented(s3ClientConfig(server.storageOptions)));
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  // The capabilities object is only read inside tests, after `before` has filled it in.
  storageSuite("s3 (s3rver)", () => open(), {
    writeConcurrency: 48,
    requests: (command) => capabilities.requests!(command),
    multipart: {
      openUploads: (s) => capabilities.multipart!.openUploads(s),
      startUpload: (s, p) => capabilities.multipart!.startUpload(s, p),
    },
  });

  describe("s3 specifics", () => {
    test("a failed part aborts the upload: nothing left, previous object intact", async () => {
      const failing = new S3Client(s3ClientConfig(server.storageOptions));
      failing.middlewareStack.add(
        (next, context) => async (args) => {
          const input = args.input as { PartNumber?: number };
          if (context.commandName === "UploadPartCommand" && input.PartNumber === 2) {
            throw Object.assign(new Error("injected part failure"), { name: "InternalError", $metadata: { httpStatusCode: 500 } });
          }
          return next(args);
        },
        { step: "initialize", name: "failPart2" },
      );
      const s = await open(undefined, { client: failing });
      try {
        await s.put("obj", enc.encode("previous"));
        await assert.rejects(s.put("obj", new Uint8Array(17 * MiB)), (e: unknown) => e instanceof StorageError && /InternalError/.test(e.message));
        await assert.rejects(s.putStream("obj", (async function* () {
          for (let i = 0; i < 20; i++) yield new Uint8Array(MiB);
        })()), StorageError);
        assert.equal(new TextDecoder().decode(await s.get("obj")), "previous");
        assert.equal(await capabilities.multipart!.openUploads(s), 0);
        await s.delete(["obj"]);
      } finally {
        await s.close();
        failing.destroy();
      }
    });

    test("large putIfAbsent completes conditionally (multipart + If-None-Match)", async () => {
      const s = await open(undefined, { partSize: 5 * MiB, multipartThreshold: 5 * MiB });
      const before = capabilities.requests!("UploadPartCommand");
      const bodies = [0, 1, 2].map((i) => new Uint8Array(6 * MiB).fill(i + 1));
      const results = await Promise.all(bodies.map((b) => s.putIfAbsent("big-manifest", b)));
      assert.equal(results.filter(Boolean).length, 1, String(results));
      assert.ok(capabilities.requests!("UploadPartCommand") - before >= 2, "multipart was used");
      const stored = await s.get("big-manifest");
      assert.equal(stored[0], results.indexOf(true) + 1);
      assert.equal(await s.putIfAbsent("big-manifest", bodies[0]), false);
      assert.equal(await capabilities.multipart!.openUploads(s), 0, "losing uploads were aborted");
      await s.delete(["big-manifest"]);
      await s.close();
    });

    test("a missing bucket is a StorageError naming it, not NotFound", async () => {
      const s = new S3Storage("no-such-bucket-here", "p", { ...server.storageOptions, client });
      const check = (e: unknown) => e instanceof StorageError && !(e instanceof NotFoundError) && /no-such-bucket-here/.test(e.message) && /does not exist/.test(e.message);
      await assert.rejects(s.put("x", enc.encode("1")), check);
      await assert.rejects(async () => {
        for await (const _ of s.list("")) break;
      }, check);
      await assert.rejects(s.get("x"), check);
      await s.close();
    });

    test("rejected credentials: StorageError without the key in message or cause", async () => {
      const s = new S3Storage(server.bucket, "p", {
        ...server.storageOptions,
        credentials: { accessKeyId: "AKIAWRONGKEY123", secretAccessKey: "very-secret-value" },
        maxAttempts: 1,
      });
      await assert.rejects(s.put("x", enc.encode("1")), (e: unknown) => {
        assert.ok(e instanceof StorageError);
        assert.match(e.message, /credentials were rejected \(InvalidAccessKeyId/);
        const text = `${e.message} ${String(e.cause)} ${JSON.stringify(e)}`;
        assert.ok(!text.includes("AKIAWRONGKEY123"), "no access key id");
        assert.ok(!text.includes("very-secret-value"), "no secret");
        assert.match(e.message, /s3:\/\/arrowpoint-test\/p\/x/);
        return true;
      });
      await s.close();
    });

    test("an unreachable endpoint is a StorageError", async () => {
      const s = new S3Storage("bucket", "", { ...server.storageOptions, endpoint: "http://127.0.0.1:9", maxAttempts: 1 });
      await assert.rejects(s.get("x"), (e: unknown) => e instanceof StorageError && !(e instanceof NotFoundError) && /s3:\/\/bucket\/x/.test(e.message));
      await s.close();
    });

    test("conditionalWrites: servers ignoring If-None-Match need check-then-put", async () => {
      const lax = await startS3Server({ enforceIfNoneMatch: false });
      try {
        const native = new S3Storage(lax.bucket, "n", lax.storageOptions);
        assert.equal(await native.putIfAbsent("m", enc.encode("1")), true);
        assert.equal(await native.putIfAbsent("m", enc.encode("2")), true, "the server ignored If-None-Match");
        await native.close();
        const fallback = new S3Storage(lax.bucket, "f", { ...lax.storageOptions, conditionalWrites: "check-then-put" });
        assert.equal(await fallback.putIfAbsent("m", enc.encode("1")), true);
        assert.equal(await fallback.putIfAbsent("m", enc.encode("2")), false);
        assert.equal(new TextDecoder().decode(await fallback.get("m")), "1");
        await fallback.close();
      } finally {
        await lax.stop();
      }
    });

    test("openStorage('s3://bucket/prefix') and subStorage reach the same objects", async () => {
      const a = await openStorage(`s3://${server.bucket}/open-test/`, { s3: server.storageOptions });
      assert.equal(a.uri, `s3://${server.bucket}/open-test`);
      await a.put("savepoints/sp-1/_manifest.json", enc.encode("{}"));
      const b = await openStorage(`s3://${server.bucket}/open-test/savepoints/sp-1`, { s3: server.storageOptions });
      assert.equal(await b.exists("_manifest.json"), true);
      const listed = [];
      for await (const o of b.list("")) listed.push(o.path);
      assert.deepEqual(listed, ["_manifest.json"]);
      await a.delete(["savepoints/sp-1/_manifest.json"]);
      await a.close();
      await b.close();
    });

    test("options are validated", () => {
      assert.throws(() => new S3Storage("bucket", "", { ...server.storageOptions, partSize: MiB }), /at least 5 MiB/);
      assert.throws(() => new S3Storage("bucket", "", { ...server.storageOptions, partConcurrency: 0 }), StorageError);
      assert.throws(() => new S3Storage("Bad_Bucket!", ""), InvalidUriError);
    });
  });
});

describe("s3ClientConfig follows the SDK's conventions", () => {
  const keys = ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"];
  const withEnv = (values: Record<string, string | undefined>, body: () => void) => {
    const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
    try {
      for (const k of keys) delete process.env[k];
      for (const [k, v] of Object.entries(values)) if (v !== undefined) process.env[k] = v;
      body();
    } finally {
      for (const k of keys) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  };

  test("defaults: us-east-1, no endpoint, SDK checksum defaults", () => {
    withEnv({}, () => {
      const c = s3ClientConfig();
      assert.equal(c.region, "us-east-1");
      assert.equal(c.endpoint, undefined);
      assert.equal(c.forcePathStyle, undefined);
      assert.equal(c.requestChecksumCalculation, undefined);
    });
  });

  test("AWS_REGION and AWS_ENDPOINT_URL_S3 (over AWS_ENDPOINT_URL) imply path style and WHEN_REQUIRED", () => {
    withEnv({ AWS_REGION: "eu-west-3", AWS_ENDPOINT_URL: "http://generic:1", AWS_ENDPOINT_URL_S3: "http://s3-specific:2" }, () => {
      const c = s3ClientConfig();
      assert.equal(c.region, "eu-west-3");
      assert.equal(c.endpoint, "http://s3-specific:2");
      assert.equal(c.forcePathStyle, true);
      assert.equal(c.requestChecksumCalculation, "WHEN_REQUIRED");
      assert.equal(c.responseChecksumValidation, "WHEN_REQUIRED");
    });
    withEnv({ AWS_DEFAULT_REGION: "ap-south-1", AWS_ENDPOINT_URL: "http://generic:1" }, () => {
      const c = s3ClientConfig({ forcePathStyle: false, checksums: "when-supported", maxAttempts: 7, retryMode: "adaptive" });
      assert.equal(c.region, "ap-south-1");
      assert.equal(c.endpoint, "http://generic:1");
      assert.equal(c.forcePathStyle, false);
      assert.equal(c.requestChecksumCalculation, "WHEN_SUPPORTED");
      assert.equal(c.maxAttempts, 7);
      assert.equal(c.retryMode, "adaptive");
    });
  });
});

// The same suite against a real endpoint, when one is configured.
const realUri = process.env.ARROWPOINT_TEST_S3_URI;
if (realUri) {
  describe("s3 on ARROWPOINT_TEST_S3_URI", () => {
    const location = parseStorageUri(realUri);
    if (location.scheme !== "s3") throw new InvalidUriError(realUri, "ARROWPOINT_TEST_S3_URI must be an s3:// URI");
    const { client, capabilities } = instrumented(s3ClientConfig());
    after(() => client.destroy());
    let n = 0;
    const base = `${location.prefix === "" ? "" : `${location.prefix}/`}arrowpoint-test-${run}`;
    storageSuite(`s3 (${realUri})`, async () => new S3Storage(location.bucket, `${base}/t-${++n}`, { client }), {
      ...capabilities,
      writeConcurrency: 64,
    });
  });
}
