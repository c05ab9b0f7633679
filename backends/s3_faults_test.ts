// S3 faults (issue 7): a fault-injecting proxy (_s3_fault_proxy.ts) in front of s3rver answers 500
// InternalError, 503 SlowDown / ServiceUnavailable, resets connections, never answers (timeouts), or drops
// responses after the request took effect; multipart parts, completions and listing pages fail. Writes
// retry with the SDK's strategy (S3Storage's maxAttempts/retryMode) and succeed, or fail with a named error
// leaving earlier objects and snapshots intact; aborted multipart uploads leave no parts.
// No outcome depends on time: requests go through proxy.client(), whose timeouts no healthy request
// reaches, and a request the proxy stalls ends when the proxy says it stalled it (as a timeout would).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import { StorageError } from "../format/errors.ts";
import { longOr, prng, recordFigure, SEED } from "../format/_test_fuzz.ts";
import { openSnapshot } from "../snapshot/read.ts";
import { checkpointDirName } from "../snapshot/layout.ts";
import { applyRetention } from "../snapshot/retention.ts";
import { writeCheckpoint } from "../snapshot/_test_util.ts";
import { snapshotFacts } from "../snapshot/_test_crash.ts";
import type { ChunkRef } from "../format/manifest.ts";
import { s3ClientConfig, S3Storage } from "./s3.ts";
import { startS3Server, type S3TestServer } from "./_s3_test_server.ts";
import { type Fault, type S3FaultProxy, startS3FaultProxy } from "./_s3_fault_proxy.ts";

const MiB = 1024 * 1024;
let server: S3TestServer;
let proxy: S3FaultProxy;
let direct: S3Storage;
const clients: S3Client[] = [];
let n = 0;

before(async () => {
  server = await startS3Server();
  proxy = await startS3FaultProxy(server.endpoint, SEED);
  direct = new S3Storage(server.bucket, "", server.storageOptions);
});
after(async () => {
  for (const c of clients) c.destroy();
  await direct?.close();
  await proxy?.stop();
  await server?.stop();
});

/** A storage that talks to s3rver through the proxy (stalled requests end as timed out, see above). */
function flaky(options: { maxAttempts?: number; multipartThreshold?: number } = {}): { storage: S3Storage; prefix: string } {
  const client = proxy.client(s3ClientConfig({ ...server.storageOptions, maxAttempts: options.maxAttempts ?? 4 }));
  clients.push(client);
  const prefix = `faults/${++n}`;
  return { storage: new S3Storage(server.bucket, prefix, { client, partSize: 5 * MiB, multipartThreshold: options.multipartThreshold ?? 16 * MiB }), prefix };
}

async function uploadsUnder(prefix: string): Promise<number> {
  const r = await (await direct.client()).send(new ListMultipartUploadsCommand({ Bucket: server.bucket, Prefix: prefix + "/" }));
  return (r.Uploads ?? []).length;
}

function bytes(size: number, seed: number): Uint8Array {
  const rnd = prng(seed);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) out[i] = Math.floor(rnd() * 256);
  return out;
}

const TRANSIENT: Fault[] = ["internal-error", "slowdown", "unavailable", "reset", "timeout"];

test("writes and reads retry through 500, 503 SlowDown/ServiceUnavailable, connection resets and timeouts, then succeed", async () => {
  for (const fault of TRANSIENT) {
    const { storage } = flaky();
    const data = bytes(2048, 1);
    proxy.clear();
    const before = proxy.requests.get("PutObject") ?? 0;
    proxy.inject({ match: (r) => r.operation === "PutObject", fault, times: 2 });
    await storage.put("a.bin", data);
    assert.equal((proxy.requests.get("PutObject") ?? 0) - before, 3, `${fault}: two failed attempts and one success`);
    proxy.inject({ match: (r) => r.operation === "GetObject", fault, times: 1 });
    assert.deepEqual(await storage.get("a.bin"), data, fault);
    proxy.inject({ match: (r) => r.operation === "ListObjectsV2", fault, times: 1 });
    const listed: string[] = [];
    for await (const o of storage.list("")) listed.push(o.path);
    assert.deepEqual(listed, ["a.bin"], fault);
    proxy.inject({ match: (r) => r.operation === "DeleteObjects", fault, times: 1 });
    await storage.delete(["a.bin"]);
    assert.equal(await storage.exists("a.bin"), false, fault);
  }
  proxy.clear();
});

test("an S3 endpoint that stops answering fails the request after timeoutMs and retries (regression)", async () => {
  // Before: S3Storage set no timeout and the SDK's default is none, so a stalled connection (no reset, no
  // answer) hung the write, and the checkpoint with it, forever. Here the S3Storage's own client and its
  // real timeout: every request stalls, so only the timeout can end each attempt, however long it takes.
  assert.equal((s3ClientConfig({}).requestHandler as { socketTimeout?: number }).socketTimeout, 60_000);
  const storage = new S3Storage(server.bucket, `faults/timeout-${++n}`, { ...server.storageOptions, endpoint: proxy.endpoint, timeoutMs: 300, maxAttempts: 2 });
  try {
    proxy.clear();
    proxy.inject({ match: (r) => r.operation === "PutObject", fault: "timeout" });
    await assert.rejects(storage.put("y", new Uint8Array([1])), (e: unknown) => {
      assert.ok(e instanceof StorageError, String(e));
      assert.match(e.message, /did not answer within 300 ms/);
      assert.equal((e.cause as { $metadata?: { attempts?: number } }).$metadata?.attempts, 2, "one attempt and one retry");
      return true;
    });
  } finally {
    proxy.clear();
    await storage.close();
  }
});

test("persistent failures end in a named StorageError and leave earlier objects as they were", async () => {
  for (const fault of TRANSIENT) {
    const { storage } = flaky({ maxAttempts: 2 });
    proxy.clear();
    await storage.put("old.bin", bytes(100, 2));
    proxy.inject({ match: (r) => r.operation === "PutObject" || r.operation === "DeleteObjects", fault });
    await assert.rejects(storage.put("old.bin", bytes(100, 3)), StorageError, fault);
    await assert.rejects(storage.put("new.bin", bytes(100, 3)), StorageError, fault);
    await assert.rejects(storage.putIfAbsent("new.bin", bytes(100, 3)), StorageError, fault);
    await assert.rejects(storage.delete(["old.bin"]), StorageError, fault);
    proxy.clear();
    assert.deepEqual(await storage.get("old.bin"), bytes(100, 2), fault);
    assert.equal(await storage.exists("new.bin"), false, fault);
  }
});

test("multipart uploads: a failing part or completion is retried; one that keeps failing aborts the upload and leaves no parts", async () => {
  const data = bytes(11 * MiB, 4); // three parts of 5 MiB
  for (const fault of ["internal-error", "slowdown", "reset"] as Fault[]) {
    const { storage, prefix } = flaky({ multipartThreshold: 5 * MiB });
    proxy.clear();
    proxy.inject({ match: (r) => r.operation === "UploadPart" && r.query.get("partNumber") === "2", fault, times: 1 });
    proxy.inject({ match: (r) => r.operation === "CompleteMultipartUpload", fault, times: 1 });
    await storage.put("big.bin", data);
    assert.deepEqual(await direct.get(`${prefix}/big.bin`), data, fault);
    for (const op of ["UploadPart", "CompleteMultipartUpload", "CreateMultipartUpload"] as const) {
      proxy.clear();
      proxy.inject({ match: (r) => r.operation === op && (op !== "UploadPart" || r.query.get("partNumber") === "3"), fault });
      await assert.rejects(storage.put("big2.bin", data), StorageError, `${fault} on ${op}`);
      await assert.rejects(storage.putStream("big3.bin", (async function* () {
        for (let at = 0; at < data.length; at += MiB) yield data.subarray(at, at + MiB);
      })()), StorageError, `${fault} on ${op} (stream)`);
      proxy.clear();
      assert.equal(await uploadsUnder(prefix), 0, `${fault} on ${op}: parts left behind`);
      assert.equal(await storage.exists("big2.bin"), false);
      assert.deepEqual(await direct.get(`${prefix}/big.bin`), data, "the earlier object is untouched");
    }
  }
  // If the abort itself fails too, the upload stays (an "abort incomplete multipart uploads" lifecycle rule
  // cleans it up); the caller still gets the original error.
  const { storage, prefix } = flaky({ multipartThreshold: 5 * MiB, maxAttempts: 1 });
  proxy.inject({ match: (r) => r.operation === "UploadPart" || r.operation === "AbortMultipartUpload", fault: "internal-error" });
  await assert.rejects(storage.put("big4.bin", data), (e: unknown) => e instanceof StorageError && /InternalError/.test(e.message));
  proxy.clear();
  assert.equal(await uploadsUnder(prefix), 1);
});

test("listing pages that fail are retried; a page that keeps failing is a named error, never a silently short listing", async () => {
  const { storage, prefix } = flaky({ maxAttempts: 3 });
  const count = 1005; // two pages of at most 1000
  const names = Array.from({ length: count }, (_, i) => `k${String(i).padStart(5, "0")}`);
  for (let i = 0; i < count; i += 50) await Promise.all(names.slice(i, i + 50).map((k) => direct.put(`${prefix}/${k}`, new Uint8Array([1]))));
  proxy.clear();
  proxy.inject({ match: (r) => r.operation === "ListObjectsV2" && r.query.has("continuation-token"), fault: "internal-error", times: 2 });
  const listed: string[] = [];
  for await (const o of storage.list("")) listed.push(o.path);
  assert.deepEqual(listed, names);
  proxy.inject({ match: (r) => r.operation === "ListObjectsV2" && r.query.has("continuation-token"), fault: "slowdown" });
  let seen = 0;
  await assert.rejects(async () => {
    for await (const _ of storage.list("")) seen++;
  }, StorageError);
  assert.equal(seen, 1000, "the first page was delivered, then the failure surfaced");
  proxy.clear();
});

test("a conditional PUT whose response is lost still reports the commit it made (regression)", async () => {
  // Before: the SDK retried the PUT, S3 answered 412 (the object was there: ours), and putIfAbsent returned
  // false, so commitManifest reported another writer had won and the runtime failed a checkpoint that was
  // committed.
  const { storage } = flaky();
  proxy.clear();
  proxy.inject({ match: (r) => r.operation === "PutObject" && r.headers["if-none-match"] === "*", fault: "lost-response", times: 1 });
  assert.equal(await storage.putIfAbsent("m.json", bytes(300, 5)), true);
  assert.deepEqual(await storage.get("m.json"), bytes(300, 5));
  assert.equal(await storage.putIfAbsent("m.json", bytes(300, 6)), false, "another writer's bytes: not ours");
  assert.deepEqual(await storage.get("m.json"), bytes(300, 5));
  proxy.clear();
});

test("incremental checkpoints through a flaky S3 complete or fail cleanly; committed checkpoints stay intact", async () => {
  const { storage } = flaky({ maxAttempts: 3 });
  const reader = new S3Storage(server.bucket, storage.prefix, server.storageOptions); // not through the proxy
  const rnd = prng(SEED);
  const rounds = longOr(12, 60);
  let chunks: ChunkRef[] = [];
  let id = 0;
  const figures = { operation: "checkpoints through a flaky S3 proxy", rounds, completed: 0, failedCleanly: 0, unknownOutcome: 0, faults: 0 };
  const injectedBefore = [...proxy.injected.values()].reduce((a, b) => a + b, 0);
  try {
    for (let round = 0; round < rounds; round++) {
      proxy.clear();
      const before = await snapshotFacts(reader);
      proxy.inject({ fault: TRANSIENT[Math.floor(rnd() * TRANSIENT.length)], probability: 0.25 });
      const next = id + 1;
      try {
        chunks = await writeCheckpoint(storage, next, [[`k${round % 7}`, { count: BigInt(round), label: "r" }]], chunks, next === 1);
        id = next;
        await applyRetention(storage, { retain: 2 });
        figures.completed++;
      } catch (e) {
        assert.ok(e instanceof StorageError, `round ${round}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        figures.failedCleanly++;
        proxy.clear();
        const now = await snapshotFacts(reader);
        for (const [cid, text] of before.checkpoints) {
          if (now.checkpoints.has(cid)) assert.equal(now.checkpoints.get(cid), text, `round ${round}: checkpoint ${cid} changed`);
          else assert.ok(now.checkpoints.has(id) && cid < id, `round ${round}: checkpoint ${cid} vanished`);
        }
        if (id !== next && now.checkpoints.has(next)) {
          // The commit's outcome was unknown to the writer (its PUT went through, every way of learning so
          // failed): the checkpoint is complete (snapshotFacts read it whole) and the chain continues from it.
          figures.unknownOutcome++;
          id = next;
          chunks = (await openSnapshot(reader, checkpointDirName(next))).manifest.operators[0].states[0].chunks;
        }
      }
    }
  } finally {
    proxy.clear();
    await reader.close();
  }
  figures.faults = [...proxy.injected.values()].reduce((a, b) => a + b, 0) - injectedBefore;
  recordFigure({ kind: "s3-faults", ...figures });
  assert.ok(figures.completed > 0);
});
