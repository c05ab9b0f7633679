/**
 * A fault-injecting HTTP proxy for S3 tests: it listens on 127.0.0.1, forwards every request unchanged to
 * an S3 endpoint (s3rver from `_s3_test_server.ts`; headers are kept, so SigV4 signatures stay valid) and,
 * when a rule matches, answers with an S3 error (500 InternalError, 503 SlowDown / ServiceUnavailable),
 * resets the connection, never answers (a timeout), or forwards and then drops the response (the request
 * took effect, the client never hears it).
 *
 * No clock decides an outcome: a client made by `proxy.client(config)` has long timeouts, which healthy
 * requests never reach however busy the machine, and a request the proxy stalls (the "timeout" fault) is
 * ended at once by the client as its socket timeout would end it (a `TimeoutError`, which the SDK retries),
 * because the proxy tells that client's request handler which request it stalled.
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { startS3FaultProxy } from "./_s3_fault_proxy.ts";
 * import { startS3Server } from "./_s3_test_server.ts";
 * import { s3ClientConfig, S3Storage } from "./s3.ts";
 * const server = await startS3Server();
 * const proxy = await startS3FaultProxy(server.endpoint);
 * proxy.inject({ match: (r) => r.method === "PUT", fault: "slowdown", times: 2 });
 * const storage = new S3Storage(server.bucket, "prefix", { client: proxy.client(s3ClientConfig(server.storageOptions)) });
 * await storage.put("a.bin", new Uint8Array([1])); // the SDK retries past the two SlowDowns
 * assert.deepEqual(await storage.get("a.bin"), new Uint8Array([1]));
 * assert.equal(proxy.injected.get("slowdown"), 2);
 * await storage.close();
 * await proxy.stop();
 * await server.stop();
 * ```
 *
 * @module
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";

/** What the proxy knows about a request when matching rules. */
export interface ProxiedRequest {
  /** HTTP method. */
  readonly method: string;
  /** Bucket and key part of the path, decoded (`/bucket/key`). */
  readonly path: string;
  /** Query parameters (`uploadId`, `partNumber`, `list-type`, `continuation-token`, `uploads`, `delete`...). */
  readonly query: URLSearchParams;
  /** Request headers. */
  readonly headers: http.IncomingHttpHeaders;
  /** The S3 operation, as far as the proxy can tell. */
  readonly operation: S3Operation;
}

/** The S3 operations arrowpoint sends. */
export type S3Operation =
  | "PutObject"
  | "GetObject"
  | "HeadObject"
  | "DeleteObjects"
  | "ListObjectsV2"
  | "CreateMultipartUpload"
  | "UploadPart"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListMultipartUploads"
  | "Other";

/** A fault. */
export type Fault = "internal-error" | "slowdown" | "unavailable" | "reset" | "timeout" | "lost-response";

/** A rule: which requests, which fault, how many times. */
export interface FaultRule {
  /** Which requests it applies to (default: all). */
  match?: (r: ProxiedRequest) => boolean;
  /** The fault. */
  fault: Fault;
  /** How many matching requests get it (default: unlimited). */
  times?: number;
  /** Probability per matching request (default 1), drawn from the proxy's seeded generator. */
  probability?: number;
}

/** A running proxy. */
export interface S3FaultProxy {
  /** `http://127.0.0.1:<port>`: use as the S3 endpoint. */
  readonly endpoint: string;
  /** Requests seen, by operation. */
  readonly requests: Map<S3Operation, number>;
  /** Faults injected, by fault. */
  readonly injected: Map<Fault, number>;
  /**
   * An S3 client that talks to s3rver through the proxy (`config`'s endpoint is replaced), with 10-minute
   * timeouts; a request the proxy stalls ends at once in a `TimeoutError`, as a socket timeout would end
   * it. Destroy it when done.
   */
  client(config: S3ClientConfig): S3Client;
  /** Adds a rule (rules are tried in order; the first that fires wins). */
  inject(rule: FaultRule): void;
  /** Removes every rule. */
  clear(): void;
  /** Stops listening and drops held connections; safe to call twice. */
  stop(): Promise<void>;
}

/** The header by which a client of {@linkcode S3FaultProxy.client} tags its requests (stripped by the proxy). */
const TAG = "x-arrowpoint-fault-proxy-tag";

/** The part of the SDK's HTTP handler that the proxy's clients use. */
interface Handler {
  metadata?: unknown;
  handle(request: { headers: Record<string, string> }, options?: { abortSignal?: AbortSignal; requestTimeout?: number }): Promise<unknown>;
  updateHttpClientConfig(key: never, value: never): void;
  httpHandlerConfigs(): unknown;
  destroy(): void;
}

function operationOf(method: string, path: string, q: URLSearchParams): S3Operation {
  const hasKey = /^\/[^/]+\/.+/.test(path);
  if (method === "GET" && !hasKey) return q.has("uploads") ? "ListMultipartUploads" : "ListObjectsV2";
  if (method === "POST" && !hasKey && q.has("delete")) return "DeleteObjects";
  if (method === "POST" && q.has("uploads")) return "CreateMultipartUpload";
  if (method === "POST" && q.has("uploadId")) return "CompleteMultipartUpload";
  if (method === "PUT" && q.has("uploadId")) return "UploadPart";
  if (method === "PUT") return "PutObject";
  if (method === "DELETE" && q.has("uploadId")) return "AbortMultipartUpload";
  if (method === "GET") return "GetObject";
  if (method === "HEAD") return "HeadObject";
  return "Other";
}

const ERRORS: Record<"internal-error" | "slowdown" | "unavailable", [number, string, string]> = {
  "internal-error": [500, "InternalError", "We encountered an internal error. Please try again."],
  slowdown: [503, "SlowDown", "Please reduce your request rate."],
  unavailable: [503, "ServiceUnavailable", "Service is unable to handle request."],
};

/**
 * Starts a proxy in front of `target` (e.g. `http://127.0.0.1:40123`). `seed` makes probabilistic rules
 * repeatable.
 *
 * @example
 * ```ts
 * import { startS3FaultProxy } from "./_s3_fault_proxy.ts";
 * const proxy = await startS3FaultProxy("http://127.0.0.1:9000");
 * proxy.inject({ fault: "reset", times: 1 });
 * await proxy.stop();
 * ```
 */
export async function startS3FaultProxy(target: string, seed = 1): Promise<S3FaultProxy> {
  const upstream = new URL(target);
  const rules: (FaultRule & { used: number })[] = [];
  const requests = new Map<S3Operation, number>();
  const injected = new Map<Fault, number>();
  const sockets = new Set<Socket>();
  const agent = new http.Agent({ keepAlive: false });
  // Requests in flight from this proxy's clients, by the tag their handler gave them: aborted when stalled.
  const stallable = new Map<string, AbortController>();
  let tags = 0;
  let state = seed >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };

  const server = http.createServer((req, res) => {
    const tag = req.headers[TAG];
    delete req.headers[TAG]; // not forwarded: s3rver sees the client's request as it was signed
    const url = new URL(req.url ?? "/", "http://proxy");
    let path = url.pathname;
    try {
      path = decodeURIComponent(path);
    } catch {
      // keep it encoded
    }
    const r: ProxiedRequest = { method: req.method ?? "GET", path, query: url.searchParams, headers: req.headers, operation: operationOf(req.method ?? "GET", path, url.searchParams) };
    requests.set(r.operation, (requests.get(r.operation) ?? 0) + 1);
    let fault: Fault | undefined;
    for (const rule of rules) {
      if (rule.times !== undefined && rule.used >= rule.times) continue;
      if (rule.match && !rule.match(r)) continue;
      if (rule.probability !== undefined && random() >= rule.probability) continue;
      rule.used++;
      fault = rule.fault;
      break;
    }
    if (fault) injected.set(fault, (injected.get(fault) ?? 0) + 1);

    if (fault === "reset") {
      req.socket.destroy();
      return;
    }
    if (fault === "timeout") {
      req.resume(); // read the body, never answer; stop() drops the socket
      if (typeof tag === "string") stallable.get(tag)?.abort(); // the client gives up on it, as on a timeout
      return;
    }
    if (fault === "internal-error" || fault === "slowdown" || fault === "unavailable") {
      const [status, code, message] = ERRORS[fault];
      req.resume();
      req.on("end", () => {
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
        res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), "x-amz-request-id": "fault-proxy" });
        res.end(body);
      });
      return;
    }
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        if (fault === "lost-response") {
          ur.resume();
          ur.on("end", () => req.socket.destroy()); // it happened; the client never learns
          return;
        }
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on("error", () => req.socket.destroy());
    req.pipe(up);
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    injected,
    client(config) {
      const target = { ...config, endpoint: `http://127.0.0.1:${port}`, requestHandler: { connectionTimeout: 600_000, socketTimeout: 600_000 } };
      // The SDK's own handler, built from the options above, does the work; the wrapper only tags requests
      // and turns the proxy's "stalled" into the error a socket timeout gives.
      const inner = new S3Client(target).config.requestHandler as unknown as Handler;
      const handler: Handler = {
        metadata: inner.metadata,
        async handle(request, options = {}) {
          const tag = String(++tags);
          const stalled = new AbortController();
          stallable.set(tag, stalled);
          request.headers[TAG] = tag;
          const abortSignal = options.abortSignal ? AbortSignal.any([options.abortSignal, stalled.signal]) : stalled.signal;
          try {
            return await inner.handle(request, { ...options, abortSignal });
          } catch (e) {
            if (stalled.signal.aborted) throw Object.assign(new Error("the S3 endpoint stalled the request (the fault proxy's timeout)"), { name: "TimeoutError" });
            throw e;
          } finally {
            stallable.delete(tag);
          }
        },
        updateHttpClientConfig: (key, value) => inner.updateHttpClientConfig(key, value),
        httpHandlerConfigs: () => inner.httpHandlerConfigs(),
        destroy: () => inner.destroy(),
      };
      return new S3Client({ ...target, requestHandler: handler as unknown as S3ClientConfig["requestHandler"] });
    },
    inject(rule) {
      rules.push({ ...rule, used: 0 });
    },
    clear() {
      rules.length = 0;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      agent.destroy();
      await closed;
    },
  };
}
