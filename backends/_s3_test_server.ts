/**
 * A real S3-speaking HTTP server on loopback for tests and benchmarks: s3rver (npm, v3.7.1) on
 * 127.0.0.1, a free port, a fresh temporary folder and one bucket, started in ~100 ms, in Node and Deno.
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { startS3Server } from "./_s3_test_server.ts";
 * import { S3Storage } from "./s3.ts";
 * const server = await startS3Server();
 * const storage = new S3Storage(server.bucket, "prefix", server.storageOptions);
 * await storage.put("a.bin", new Uint8Array([1]));
 * assert.deepEqual(await storage.get("a.bin"), new Uint8Array([1]));
 * await storage.close();
 * await server.stop();
 * ```
 *
 * s3rver quirks, measured with s3rver 3.7.1 and @aws-sdk/client-s3 3.1175.0, and what this helper does:
 *
 * 1. **Paged listings fail (HTTP 500)**: s3rver makes ListObjectsV2 continuation tokens with single DES
 *    (`crypto.createCipheriv("des", ...)`), which OpenSSL 3 (Node 17+) and Deno no longer provide. The
 *    helper wraps `crypto.createCipheriv`/`createDecipheriv` (once, before loading s3rver) so that `des` /
 *    `des-cbc` with an 8-byte key runs as `des-ede3-cbc` with the key repeated three times, which is
 *    byte-identical to single DES (EDE with K1 = K2 = K3 reduces to one DES encryption). Every other
 *    algorithm goes to the original functions untouched.
 * 2. **Listings are not sorted**, so pages skip and repeat keys: s3rver walks its folders in `readdir`
 *    order (hash order on ext4) and pages with "key > last key of the previous page". The helper replaces
 *    the store's `listObjects` with one that sorts keys (by code point, like S3) before paging.
 * 3. **Flexible checksums**: the SDK's default "aws-chunked" uploads with trailing checksums are stored
 *    with their chunk framing. Clients must use `requestChecksumCalculation`/`responseChecksumValidation`
 *    = `"WHEN_REQUIRED"`, which `S3Storage` does whenever a custom endpoint is set.
 * 4. **`If-None-Match: *` is ignored on PUT** (and on CompleteMultipartUpload). The helper adds a Koa
 *    middleware that enforces it: 412 PreconditionFailed if the object exists, with conditional writes to
 *    one key serialized so that of concurrent writers exactly one succeeds, as on S3.
 * 5. **Ranges**: suffix ranges (`bytes=-n`) are read as `bytes=0-n` (wrong), and `bytes=0-0` returns the
 *    whole object (s3rver reads end 0 as "no end"). `S3Storage` never sends suffix ranges and slices the
 *    body by the Content-Range the server returns. Nothing to do here.
 * 6. **AbortMultipartUpload and ListMultipartUploads are not implemented** (405/501). The middleware
 *    implements both over s3rver's upload folders, so tests can check that no upload is left behind.
 * 7. **A ranged GET of an empty object hangs**: s3rver announces `Content-Length: 1` and sends nothing,
 *    so the client waits until the socket is reset. The middleware answers 416 InvalidRange, as S3 does.
 *
 * Not handled (not needed by arrowpoint): s3rver writes objects in place (a concurrent GET can see a
 * partial object), and does not check part sizes.
 *
 * Logging is silenced (`silent: true`; Koa's error printing too).
 *
 * @module
 */

import crypto from "node:crypto";
import { constants as fsConstants, promises as fsp, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import nodePath from "node:path";
import process from "node:process";
import { finished } from "node:stream";
import { comparePaths } from "./path.ts";

/**
 * A running s3rver and how to reach it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startS3Server } from "./_s3_test_server.ts";
 * const server = await startS3Server();
 * assert.match(server.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
 * assert.equal(server.bucket, "arrowpoint-test");
 * await server.stop();
 * ```
 */
export interface S3TestServer {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** The bucket created at start. */
  bucket: string;
  /** `us-east-1` (s3rver's only region). */
  region: string;
  /** s3rver's fixed credentials (`S3RVER` / `S3RVER`); not secret. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Options for `S3Storage`/`openStorage` that reach this server. */
  storageOptions: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  /**
   * The AWS SDK environment variables that reach this server (endpoint, credentials, region), as a user
   * would set them: for child processes, or see the `setEnv` option.
   */
  env: Readonly<Record<string, string>>;
  /** The temporary folder holding the server's data (removed by `stop`). */
  directory: string;
  /** Stops the server, drops open connections and removes its folder; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Options of {@linkcode startS3Server}.
 *
 * @example
 * ```ts
 * import { startS3Server } from "./_s3_test_server.ts";
 * const lax = await startS3Server({ bucket: "lax", enforceIfNoneMatch: false });
 * await lax.stop();
 * ```
 */
export interface S3TestServerOptions {
  /** Bucket name; default `arrowpoint-test`. */
  bucket?: string;
  /** Extra buckets to create. */
  extraBuckets?: string[];
  /**
   * Enforce `If-None-Match: *` (quirk 4); default true. `false` keeps s3rver's own behaviour, to test
   * code paths for servers that ignore conditional writes.
   */
  enforceIfNoneMatch?: boolean;
  /**
   * Parent folder of the server's temporary folder. Default: `/dev/shm` when it is a writable tmpfs
   * with at least 1 GiB free (s3rver writes three files per object; on tmpfs that is ~2.5x faster),
   * else `os.tmpdir()`.
   */
  directory?: string;
  /**
   * Also set {@linkcode S3TestServer.env} (plus these extra variables, when an object) in `process.env`, so
   * that `s3://` URIs reach this server as they would for a user; `stop()` restores the variables as they
   * were. Default false.
   */
  setEnv?: boolean | Record<string, string>;
}

/**
 * Sets `vars` in `process.env` and returns a function that puts back what was there before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import process from "node:process";
 * import { setProcessEnv } from "./_s3_test_server.ts";
 * const restore = setProcessEnv({ ARROWPOINT_EXAMPLE_VAR: "1" });
 * assert.equal(process.env.ARROWPOINT_EXAMPLE_VAR, "1");
 * restore();
 * assert.equal(process.env.ARROWPOINT_EXAMPLE_VAR, undefined);
 * ```
 */
export function setProcessEnv(vars: Readonly<Record<string, string>>): () => void {
  const saved = new Map<string, string | undefined>();
  for (const [k, v] of Object.entries(vars)) {
    if (!saved.has(k)) saved.set(k, process.env[k]);
    process.env[k] = v;
  }
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

// ---------------------------------------------------------------------------------------------------
// Quirk 1: single DES for continuation tokens.

type CipherFactory = (algorithm: string, key: Uint8Array, iv: Uint8Array | null, options?: unknown) => unknown;
let desShimInstalled = false;

function installDesShim(): void {
  if (desShimInstalled) return;
  desShimInstalled = true;
  try {
    crypto.createCipheriv("des", new Uint8Array(8), new Uint8Array(8));
    return; // this runtime still has single DES
  } catch {
    // install the shim below
  }
  const target = crypto as unknown as Record<"createCipheriv" | "createDecipheriv", CipherFactory>;
  const widen = (original: CipherFactory): CipherFactory =>
    function (algorithm, key, iv, options) {
      if (typeof algorithm === "string" && /^des(-cbc)?$/i.test(algorithm) && key?.length === 8) {
        const key3 = new Uint8Array(24);
        key3.set(key, 0);
        key3.set(key, 8);
        key3.set(key, 16);
        return original.call(crypto, "des-ede3-cbc", key3, iv, options);
      }
      return original.call(crypto, algorithm, key, iv, options);
    };
  target.createCipheriv = widen(target.createCipheriv);
  target.createDecipheriv = widen(target.createDecipheriv);
}

// ---------------------------------------------------------------------------------------------------
// The parts of s3rver (untyped CommonJS) that the helper touches.

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface S3rverStore {
  getBucket(name: string): Promise<unknown>;
  existsObject(bucket: string, key: string): Promise<boolean>;
  getMetadata(bucket: string, key: string): Promise<Record<string, unknown>>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  listObjects(bucket: string, options: ListOptions): Promise<ListResult>;
}
interface ListOptions {
  delimiter?: string;
  startAfter?: string;
  prefix?: string;
  maxKeys?: number;
}
interface ListResult {
  objects: unknown[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface S3rverApp {
  middleware: Middleware[];
  store: S3rverStore;
  silent: boolean;
  run(): Promise<AddressInfo>;
  httpServer?: Server;
  close(): Promise<void>;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverApp;
type S3ErrorClass = new (code: string, message: string, detail?: Record<string, unknown>) => Error;
type S3ObjectClass = new (bucket: string, key: string, content: null, metadata: Record<string, unknown>) => unknown;

interface S3rverModules {
  S3rver: S3rverClass;
  S3Error: S3ErrorClass;
  S3Object: S3ObjectClass;
}
let modules: S3rverModules | undefined;

function loadS3rver(): S3rverModules {
  if (modules) return modules;
  installDesShim(); // before s3rver (and its `crypto` use) is loaded
  const require = createRequire(import.meta.url);
  modules = {
    S3rver: require("s3rver") as S3rverClass,
    S3Error: require("s3rver/lib/models/error") as S3ErrorClass,
    S3Object: require("s3rver/lib/models/object") as S3ObjectClass,
  };
  return modules;
}

// ---------------------------------------------------------------------------------------------------
// Quirk 2: sorted listings.

const OBJECT_SUFFIX = "._S3rver_object";

function sortedListObjects(store: S3rverStore, S3Object: S3ObjectClass) {
  return async (bucket: string, options: ListOptions): Promise<ListResult> => {
    const { delimiter = "", startAfter = "", prefix = "", maxKeys = Infinity } = options;
    const bucketDir = nodePath.join((store as unknown as { rootDirectory: string }).rootDirectory, bucket);
    const keys: string[] = [];
    const slash = prefix.lastIndexOf("/");
    const startDir = slash < 0 ? "" : prefix.slice(0, slash);
    const walk = (dir: string, rel: string) => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const name of names) {
        if (rel === "" && name === "._S3rver_uploads") continue;
        const full = nodePath.join(dir, name);
        let isDir: boolean;
        try {
          isDir = statSync(full).isDirectory();
        } catch {
          continue;
        }
        if (isDir) {
          const sub = rel === "" ? name : `${rel}/${name}`;
          if (`${sub}/`.startsWith(prefix) || prefix.startsWith(`${sub}/`)) walk(full, sub);
        } else if (name.endsWith(OBJECT_SUFFIX)) {
          const key = (rel === "" ? "" : `${rel}/`) + name.slice(0, -OBJECT_SUFFIX.length);
          if (key.startsWith(prefix) && comparePaths(key, startAfter) > 0) keys.push(key);
        }
      }
    };
    walk(startDir === "" ? bucketDir : nodePath.join(bucketDir, ...startDir.split("/")), startDir);
    keys.sort(comparePaths);

    const commonPrefixes = new Set<string>();
    const page: string[] = [];
    let isTruncated = false;
    for (const key of keys) {
      if (delimiter) {
        const at = key.slice(prefix.length).indexOf(delimiter);
        if (at !== -1) {
          commonPrefixes.add(key.slice(0, prefix.length + at + delimiter.length));
          continue;
        }
      }
      if (page.length < maxKeys) page.push(key);
      else {
        isTruncated = true;
        break;
      }
    }
    const objects: unknown[] = [];
    for (const key of page) {
      try {
        objects.push(new S3Object(bucket, key, null, await store.getMetadata(bucket, key)));
      } catch {
        // deleted meanwhile
      }
    }
    return { objects, commonPrefixes: [...commonPrefixes].sort(comparePaths), isTruncated };
  };
}

// ---------------------------------------------------------------------------------------------------
// Quirks 4 and 6: conditional writes, abort and list of multipart uploads.

function header(ctx: KoaContext, name: string): string | undefined {
  const value = ctx.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function query(ctx: KoaContext, name: string): string | undefined {
  const value = ctx.query[name];
  return Array.isArray(value) ? value[0] : value;
}

function extrasMiddleware(store: S3rverStore, S3Error: S3ErrorClass, enforceIfNoneMatch: boolean): Middleware {
  const locks = new Map<string, Promise<void>>();
  const withLock = async (key: string, run: () => Promise<void>) => {
    const previous = locks.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const chained = previous.then(() => mine);
    locks.set(key, chained);
    await previous;
    try {
      await run();
    } finally {
      release();
      if (locks.get(key) === chained) locks.delete(key);
    }
  };
  const uploadsDir = (bucket: string) => store.getResourcePath(bucket, undefined, "uploads");

  return async (ctx, next) => {
    const match = /^\/([^/]+)(?:\/(.*))?$/.exec(ctx.path);
    if (!match) return next();
    const bucket = decodeURIComponent(match[1]);
    const key = match[2] === undefined || match[2] === "" ? undefined : decodeURIComponent(match[2]);
    const has = (name: string) => name in ctx.query;

    // ListMultipartUploads: GET /bucket?uploads
    if (ctx.method === "GET" && key === undefined && has("uploads")) {
      if (!(await store.getBucket(bucket))) throw new S3Error("NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
      const prefix = query(ctx, "prefix") ?? "";
      const uploads: { Key: string; UploadId: string; Initiated: string }[] = [];
      let ids: string[] = [];
      try {
        ids = readdirSync(uploadsDir(bucket));
      } catch {
        // no uploads folder yet
      }
      for (const id of ids) {
        try {
          const uploadKey = readFileSync(nodePath.join(uploadsDir(bucket), id, "key"), "utf8");
          const initiated = statSync(nodePath.join(uploadsDir(bucket), id)).mtime.toISOString();
          if (uploadKey.startsWith(prefix)) uploads.push({ Key: uploadKey, UploadId: id, Initiated: initiated });
        } catch {
          // completed or aborted meanwhile
        }
      }
      uploads.sort((a, b) => comparePaths(a.Key, b.Key));
      ctx.body = {
        ListMultipartUploadsResult: {
          "@": { xmlns: "http://s3.amazonaws.com/doc/2006-03-01/" },
          Bucket: bucket,
          Prefix: prefix,
          MaxUploads: 1000,
          IsTruncated: false,
          ...(uploads.length > 0 ? { Upload: uploads } : {}),
        },
      };
      return;
    }
    if (key === undefined) return next();

    // AbortMultipartUpload: DELETE /bucket/key?uploadId=...
    if (ctx.method === "DELETE" && has("uploadId")) {
      const id = query(ctx, "uploadId") ?? "";
      if (!/^[0-9a-f]+$/.test(id)) throw new S3Error("NoSuchUpload", "The specified upload does not exist.", { UploadId: id });
      const dir = nodePath.join(uploadsDir(bucket), id);
      try {
        await fsp.access(dir);
      } catch {
        throw new S3Error("NoSuchUpload", "The specified upload does not exist.", { UploadId: id });
      }
      await fsp.rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = "";
      return;
    }

    // Ranged GET of an empty object: 416 like S3 (s3rver would announce one byte and hang).
    if ((ctx.method === "GET" || ctx.method === "HEAD") && header(ctx, "range") !== undefined && !has("partNumber")) {
      let size: unknown;
      try {
        size = (await store.getMetadata(bucket, key))["content-length"];
      } catch {
        // missing: let s3rver answer NoSuchKey
      }
      if (size === 0 || size === "0") {
        throw new S3Error("InvalidRange", "The requested range is not satisfiable", { RangeRequested: header(ctx, "range"), ActualObjectSize: 0 });
      }
    }

    // If-None-Match: * on PutObject and CompleteMultipartUpload.
    const conditional = enforceIfNoneMatch && header(ctx, "if-none-match") === "*";
    const isPut = ctx.method === "PUT" && !has("uploadId") && !has("tagging") && !has("acl") && header(ctx, "x-amz-copy-source") === undefined;
    const isComplete = ctx.method === "POST" && has("uploadId");
    if (conditional && (isPut || isComplete)) {
      await withLock(`${bucket}/${key}`, async () => {
        if (await store.existsObject(bucket, key)) {
          throw new S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", { Condition: "If-None-Match" });
        }
        await next();
      });
      return;
    }
    return next();
  };
}

// ---------------------------------------------------------------------------------------------------

async function defaultParent(): Promise<string> {
  try {
    const stats = await fsp.statfs("/dev/shm");
    if (stats.bavail * stats.bsize >= 1024 ** 3) {
      await fsp.access("/dev/shm", fsConstants.W_OK);
      return "/dev/shm";
    }
  } catch {
    // not Linux, no statfs, or not writable
  }
  return os.tmpdir();
}

/**
 * Starts s3rver on 127.0.0.1 (a free port) with a fresh temporary folder and a bucket, with the quirks
 * above handled. Call `stop()` when done (e.g. in `after`).
 *
 * @example
 * ```ts
 * import { startS3Server } from "./_s3_test_server.ts";
 * import { S3Storage } from "./s3.ts";
 * const server = await startS3Server();
 * const storage = new S3Storage(server.bucket, "", server.storageOptions);
 * await storage.put("a", new Uint8Array([1]));
 * await storage.close();
 * await server.stop();
 * ```
 */
export async function startS3Server(options: S3TestServerOptions = {}): Promise<S3TestServer> {
  const { S3rver, S3Error, S3Object } = loadS3rver();
  const bucket = options.bucket ?? "arrowpoint-test";
  const directory = await fsp.mkdtemp(nodePath.join(options.directory ?? (await defaultParent()), "arrowpoint-s3rver-"));
  const app = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    resetOnClose: false,
    vhostBuckets: false,
    configureBuckets: [bucket, ...(options.extraBuckets ?? [])].map((name) => ({ name })),
  });
  app.silent = true; // Koa: do not print errors
  app.store.listObjects = sortedListObjects(app.store, S3Object);
  // Insert before the router (the last middleware), after s3rver's XML encoder and vhost rewriting.
  app.middleware.splice(app.middleware.length - 1, 0, extrasMiddleware(app.store, S3Error, options.enforceIfNoneMatch ?? true));
  // Requests still being handled when the server stops (a client that exited mid-request) must finish
  // before the folder goes: a handler that then opened a file in it threw ENOENT outside any test. A GET's
  // body streams on after the handler returned, and opens its file only then: it is waited for too, and
  // its errors (the object deleted meanwhile, the client gone) end the response, never the process.
  const inflight = new Set<Promise<unknown>>();
  app.middleware.unshift(async (ctx: KoaContext, next: () => Promise<unknown>) => {
    const handled = next();
    inflight.add(handled);
    try {
      await handled;
    } finally {
      inflight.delete(handled);
    }
    const body = ctx.body as NodeJS.ReadableStream | undefined;
    if (body && typeof body.pipe === "function" && typeof body.on === "function") {
      body.on("error", () => {});
      const streamed = new Promise<void>((resolve) => finished(body, () => resolve()));
      inflight.add(streamed);
      void streamed.then(() => inflight.delete(streamed));
    }
  });
  let address: AddressInfo;
  try {
    address = await app.run();
  } catch (e) {
    await fsp.rm(directory, { recursive: true, force: true });
    throw e;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
  const env = {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_REGION: "us-east-1",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  };
  const restoreEnv = options.setEnv ? setProcessEnv(options.setEnv === true ? env : { ...env, ...options.setEnv }) : () => {};
  let stopped = false;
  return {
    endpoint,
    bucket,
    region: "us-east-1",
    credentials,
    storageOptions: { endpoint, region: "us-east-1", credentials },
    env,
    directory,
    async stop() {
      if (stopped) return;
      stopped = true;
      restoreEnv();
      const server = app.httpServer as (Server & { closeAllConnections?: () => void }) | undefined;
      const closed = app.close().catch(() => {});
      server?.closeAllConnections?.();
      await closed;
      while (inflight.size) await Promise.allSettled([...inflight]);
      await fsp.rm(directory, { recursive: true, force: true });
    },
  };
}
