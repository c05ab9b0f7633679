// Crash-point harness for the reliability campaign (docs/reliability.md), shared by snapshot/, runtime/ and
// migrate/ crash tests.
//
// - CrashStorage wraps a storage and, at its k-th mutating operation (put, putStream, putIfAbsent — the
//   manifest commit —, delete), either fails that one operation ("fail"), dies there ("kill": it and every
//   later operation, reads included, throw), or dies half-way ("torn"): a batched delete removes only the
//   first half of its paths, a write leaves the debris a real crash inside it leaves (a filesystem temp
//   file next to the target; an S3 multipart upload with one part and no completion), then dies.
// - crashBackends() gives fresh memory, filesystem and S3 (s3rver) roots, with their debris makers and
//   counters of invisible debris (filesystem temp files, incomplete multipart uploads).
// - snapshotFacts() is what "intact" is compared on: every committed checkpoint and savepoint, read whole.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from "@aws-sdk/client-s3";
import { InjectedFault } from "../backends/faulty.ts";
import { FsStorage, isTempFileName } from "../backends/fs.ts";
import { MemoryStorage } from "../backends/memory.ts";
import { S3Storage } from "../backends/s3.ts";
import type { ObjectInfo, Storage, SyncDeferredOptions } from "../backends/storage.ts";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import { ArrowpointError } from "../format/errors.ts";
import { checkpointDirName, manifestPath } from "./layout.ts";
import { chunkPath } from "./chunks.ts";
import { committedCheckpoints, openSnapshot, readState } from "./read.ts";

/** How a crash point behaves. */
export type CrashMode = "fail" | "kill" | "torn";

/** Makes the debris a crash inside a write of `path` would leave. */
export type DebrisMaker = (path: string, bytes: Uint8Array) => Promise<void>;

/** A storage that crashes at its k-th mutating operation. */
export class CrashStorage implements Storage {
  operations = 0;
  tripped = false;
  /** Mutating operations seen, as `op path`, for messages. */
  readonly log: string[] = [];
  readonly #inner: Storage;
  #at: number;
  #mode: CrashMode;
  readonly #debris: DebrisMaker;

  constructor(inner: Storage, at = 0, mode: CrashMode = "kill", debris: DebrisMaker = async () => {}) {
    this.#inner = inner;
    this.#at = at;
    this.#mode = mode;
    this.#debris = debris;
  }

  get uri(): string {
    return this.#inner.uri;
  }

  /** Mutations passed to the inner storage that have not ended yet. */
  readonly #inflight = new Set<Promise<unknown>>();

  /** Runs an inner mutation, tracked until it ends. */
  #track<T>(op: Promise<T>): Promise<T> {
    this.#inflight.add(op);
    const done = () => this.#inflight.delete(op);
    op.then(done, done);
    return op;
  }

  /**
   * Waits for the mutations that had reached the inner storage before the crash point: a killed process's
   * writes end with it, but here they run on after the job reported its failure (an fsync is slow), and a
   * check made before they end sees a file appear behind it.
   */
  async settled(): Promise<void> {
    while (this.#inflight.size) await Promise.allSettled([...this.#inflight]);
  }

  #dead(op: string, path: string): void {
    if (this.tripped && this.#mode !== "fail") throw new InjectedFault(op, path);
  }

  /** Counts a mutating operation; returns true when this is the crash point. */
  #hit(op: string, path: string): boolean {
    this.#dead(op, path);
    this.operations++;
    this.log.push(`${op} ${path}`);
    if (this.#at > 0 && this.operations === this.#at) {
      this.tripped = true;
      return true;
    }
    return false;
  }

  async put(path: string, bytes: Uint8Array): Promise<void> {
    if (this.#hit("put", path)) {
      if (this.#mode === "torn") await this.#debris(path, bytes.subarray(0, bytes.length >> 1));
      throw new InjectedFault("put", path);
    }
    await this.#track(this.#inner.put(path, bytes));
  }
  // The deferred writes the tools use are crash points too, forwarded as they are (a wrapper without them
  // would turn every tool's writes into plain puts and leave the deferred path untested).
  async putDeferred(path: string, bytes: Uint8Array): Promise<void> {
    if (this.#hit("putDeferred", path)) {
      if (this.#mode === "torn") await this.#debris(path, bytes.subarray(0, bytes.length >> 1));
      throw new InjectedFault("putDeferred", path);
    }
    const inner = this.#inner;
    await this.#track(inner.putDeferred ? inner.putDeferred(path, bytes) : inner.put(path, bytes));
  }
  async syncDeferred(paths: readonly string[], options?: SyncDeferredOptions): Promise<void> {
    if (this.#hit("syncDeferred", `${paths[0] ?? ""} (+${Math.max(0, paths.length - 1)})`)) throw new InjectedFault("syncDeferred", paths[0] ?? "");
    if (this.#inner.syncDeferred) await this.#track(this.#inner.syncDeferred(paths, options));
  }
  async putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.#hit("putStream", path)) {
      if (this.#mode === "torn") {
        for await (const chunk of source) {
          await this.#debris(path, chunk);
          break;
        }
      }
      throw new InjectedFault("putStream", path);
    }
    await this.#track(this.#inner.putStream(path, source));
  }
  async putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    if (this.#hit("putIfAbsent", path)) {
      if (this.#mode === "torn") await this.#debris(path, bytes.subarray(0, bytes.length >> 1));
      throw new InjectedFault("putIfAbsent", path);
    }
    return await this.#track(this.#inner.putIfAbsent(path, bytes));
  }
  async delete(paths: readonly string[]): Promise<void> {
    if (this.#hit("delete", `${paths[0] ?? ""} (+${Math.max(0, paths.length - 1)})`)) {
      if (this.#mode === "torn") await this.#inner.delete(paths.slice(0, Math.ceil(paths.length / 2)));
      throw new InjectedFault("delete", paths[0] ?? "");
    }
    await this.#track(this.#inner.delete(paths));
  }
  async get(path: string): Promise<Uint8Array> {
    this.#dead("get", path);
    return await this.#inner.get(path);
  }
  async getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.#dead("getRange", path);
    return await this.#inner.getRange(path, offset, length, into);
  }
  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    this.#dead("list", prefix);
    for await (const o of this.#inner.list(prefix)) {
      this.#dead("list", prefix);
      yield o;
    }
  }
  async exists(path: string): Promise<boolean> {
    this.#dead("exists", path);
    return await this.#inner.exists(path);
  }
  async close(): Promise<void> {
    // The wrapped storage belongs to the test.
  }
}

/** A fresh root on one backend. */
export interface CrashRoot {
  readonly storage: Storage;
  /** A URI that opens the same root. */
  readonly uri: string;
  readonly debris: DebrisMaker;
  /** Debris the Storage interface cannot see: filesystem temp files, incomplete multipart uploads. */
  invisibleDebris(): Promise<number>;
  /** Removes invisible debris the way an operator would (temp files / an abort-incomplete-uploads rule). */
  sweepInvisible(): Promise<void>;
  close(): Promise<void>;
}

/** A backend that makes fresh roots. */
export interface CrashBackend {
  readonly name: "memory" | "filesystem" | "s3";
  root(tag: string): Promise<CrashRoot>;
}

async function walkTemp(dir: string, out: string[] = []): Promise<string[]> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walkTemp(p, out);
    else if (isTempFileName(e.name)) out.push(p);
  }
  return out;
}

/**
 * The three backends of the crash tests. The S3 one starts s3rver (stopped by `stop`).
 */
export async function crashBackends(): Promise<{ backends: CrashBackend[]; server: S3TestServer; stop(): Promise<void> }> {
  const server = await startS3Server();
  const base = await fsp.mkdtemp(join(tmpdir(), "arrowpoint-crash-"));
  let n = 0;
  const memory: CrashBackend = {
    name: "memory",
    async root(tag) {
      const name = `crash-${tag}-${++n}-${randomBytes(3).toString("hex")}`;
      const storage = new MemoryStorage(name);
      return { storage, uri: `memory:${name}`, debris: async () => {}, invisibleDebris: async () => 0, sweepInvisible: async () => {}, close: () => storage.close() };
    },
  };
  const filesystem: CrashBackend = {
    name: "filesystem",
    async root(tag) {
      const dir = join(base, `${tag}-${++n}`);
      const storage = new FsStorage(dir);
      return {
        storage,
        uri: dir,
        async debris(path, bytes) {
          const full = join(dir, ...path.split("/"));
          await fsp.mkdir(dirname(full), { recursive: true });
          await fsp.writeFile(join(dirname(full), `.${basename(full)}.tmp-${randomBytes(8).toString("hex")}`), bytes);
        },
        invisibleDebris: async () => (await walkTemp(dir)).length,
        async sweepInvisible() {
          for (const f of await walkTemp(dir)) await fsp.rm(f, { force: true });
        },
        close: () => storage.close(),
      };
    },
  };
  const s3: CrashBackend = {
    name: "s3",
    async root(tag) {
      const prefix = `crash/${tag}-${++n}`;
      const storage = new S3Storage(server.bucket, prefix, server.storageOptions);
      const uploads = async () => {
        const r = await (await storage.client()).send(new ListMultipartUploadsCommand({ Bucket: server.bucket, Prefix: prefix + "/" }));
        return r.Uploads ?? [];
      };
      return {
        storage,
        uri: `s3://${server.bucket}/${prefix}`,
        async debris(path, bytes) {
          const key = `${prefix}/${path}`;
          const up = await (await storage.client()).send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: key }));
          await (await storage.client()).send(new UploadPartCommand({ Bucket: server.bucket, Key: key, UploadId: up.UploadId, PartNumber: 1, Body: bytes, ContentLength: bytes.length }));
        },
        invisibleDebris: async () => (await uploads()).length,
        async sweepInvisible() {
          const { AbortMultipartUploadCommand } = await import("@aws-sdk/client-s3");
          for (const u of await uploads()) await (await storage.client()).send(new AbortMultipartUploadCommand({ Bucket: server.bucket, Key: u.Key, UploadId: u.UploadId }));
        },
        close: () => storage.close(),
      };
    },
  };
  return {
    backends: [memory, filesystem, s3],
    server,
    async stop() {
      await server.stop();
      await fsp.rm(base, { recursive: true, force: true });
    },
  };
}

function canonical(x: unknown): unknown {
  if (typeof x === "bigint") return `${x}n`;
  if (x instanceof Uint8Array) return `0x${Buffer.from(x).toString("hex")}`;
  if (Array.isArray(x)) return x.map(canonical);
  if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, canonical(v)]));
  return x;
}

/** Every state of a snapshot, read whole, as canonical JSON (rows sorted, so chain shape does not matter). */
export async function stateText(storage: Storage, dir: string): Promise<string> {
  const snap = await openSnapshot(storage, dir);
  const out: Record<string, unknown> = {};
  for (const op of snap.manifest.operators) {
    for (const st of op.states) {
      const rows = await readState(snap, op.uid, st.name);
      const list: string[] = [];
      for (let i = 0; i < rows.length; i++) {
        list.push(JSON.stringify(canonical([rows.keys?.[i], rows.namespaces?.[i], rows.userKeys?.[i], rows.subtasks?.[i], rows.values[i]])));
      }
      out[`${op.uid}/${st.name}`] = list.sort();
    }
  }
  return JSON.stringify(out);
}

/** What "intact" is checked on: every committed checkpoint and savepoint of a root, read whole. */
export interface SnapshotFacts {
  checkpoints: Map<number, string>;
  savepoints: Map<string, string>;
}

/** Reads every committed checkpoint and savepoint under `storage` completely (throws if any is unreadable). */
export async function snapshotFacts(storage: Storage): Promise<SnapshotFacts> {
  const checkpoints = new Map<number, string>();
  for (const id of await committedCheckpoints(storage)) checkpoints.set(id, await stateText(storage, checkpointDirName(id)));
  const savepoints = new Map<string, string>();
  for await (const o of storage.list("savepoints/")) {
    const parts = o.path.split("/");
    if (parts.length === 3 && parts[2] === "_manifest.json") savepoints.set(parts[1], await stateText(storage, `savepoints/${parts[1]}`));
  }
  return { checkpoints, savepoints };
}

/**
 * Asserts a crash left the root intact: every snapshot committed before is still committed and reads the
 * same, unless `mayDelete` says the operation may remove it (retention, only once the newer one exists);
 * every snapshot committed now reads completely and equals what a clean run commits under its name.
 */
export function assertIntact(before: SnapshotFacts, now: SnapshotFacts, clean: SnapshotFacts, where: string, mayDelete: (id: number, now: SnapshotFacts) => boolean = () => false): void {
  for (const [id, text] of before.checkpoints) {
    if (!now.checkpoints.has(id)) {
      assert.ok(mayDelete(id, now), `${where}: checkpoint ${id} vanished`);
      continue;
    }
    assert.equal(now.checkpoints.get(id), text, `${where}: checkpoint ${id} changed`);
  }
  for (const [id, text] of now.checkpoints) {
    if (before.checkpoints.has(id)) continue;
    assert.ok(clean.checkpoints.has(id), `${where}: checkpoint ${id} appeared, a clean run has no such checkpoint`);
    assert.equal(text, clean.checkpoints.get(id), `${where}: new checkpoint ${id} differs from the clean run's`);
  }
  for (const [id, text] of before.savepoints) assert.equal(now.savepoints.get(id), text, `${where}: savepoint ${id} changed or vanished`);
  for (const [id, text] of now.savepoints) {
    if (before.savepoints.has(id)) continue;
    assert.ok(clean.savepoints.has(id), `${where}: savepoint ${id} appeared, a clean run has no such savepoint`);
    assert.equal(text, clean.savepoints.get(id), `${where}: new savepoint ${id} differs from the clean run's`);
  }
}

/** Every object path under a storage. */
export async function allPaths(storage: Storage): Promise<string[]> {
  const out: string[] = [];
  for await (const o of storage.list("")) out.push(o.path);
  return out;
}

/** Runs `fn` expecting either success or a named error (an injected fault or what it caused). */
export async function runCrashing(fn: () => Promise<unknown>, where: string): Promise<"completed" | "failed"> {
  try {
    await fn();
    return "completed";
  } catch (e) {
    assert.ok(e instanceof ArrowpointError, `${where}: crashed with ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack}`);
    return "failed";
  }
}

/** Per-operation, per-backend crash figures. */
export interface CrashFigures {
  operation: string;
  backend: string;
  operations: number;
  points: number;
  intact: number;
  completedAnyway: number;
  invisibleDebris: number;
  modes: string[];
}

/** Visible objects no committed snapshot references (savepoint folders with a manifest count as referenced). */
export async function unreferenced(storage: Storage): Promise<string[]> {
  const refs = new Set<string>();
  for (const id of await committedCheckpoints(storage)) {
    const dir = checkpointDirName(id);
    const snap = await openSnapshot(storage, dir);
    refs.add(manifestPath(dir));
    for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) refs.add(chunkPath(snap, c));
  }
  const paths = await allPaths(storage);
  const savepoints = new Set(paths.filter((p) => /^savepoints\/[^/]+\/_manifest\.json$/.test(p)).map((p) => p.split("/")[1]));
  return paths.filter((p) => !refs.has(p) && !(p.startsWith("savepoints/") && savepoints.has(p.split("/")[1])));
}
