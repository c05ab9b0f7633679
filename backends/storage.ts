/**
 * The storage interface every layer codes against, and {@linkcode BaseStorage}, the abstract class whose
 * public methods validate arguments once and then call a backend's protected hooks.
 *
 * Storage knows nothing about snapshots: it stores opaque objects under relative "/"-separated paths.
 *
 * @module
 */

import { StorageError } from "../format/errors.ts";
import { concatBytes, copyBytes } from "./bytes.ts";
import { validatePath, validatePrefix } from "./path.ts";

/**
 * One stored object, as listed.
 *
 * @example
 * ```ts
 * import type { ObjectInfo } from "./storage.ts";
 * const info: ObjectInfo = { path: "chk-1/_manifest.json", size: 812, modified: new Date() };
 * ```
 */
export interface ObjectInfo {
  /** The path relative to the storage root, "/"-separated. */
  path: string;
  /** The size in bytes. */
  size: number;
  /** When the object was last written. */
  modified: Date;
}

/**
 * Where bytes live: memory, a filesystem folder or an S3 prefix, behind one small interface.
 *
 * Paths are relative, "/"-separated, without a leading "/", `.`/`..` or empty segments, backslashes or
 * NUL; any other path raises `PathEscapeError`. Missing objects raise `NotFoundError`; other backend
 * failures raise `StorageError` (with the operation and location, never credentials).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "./open.ts";
 * const storage = await openStorage("memory:example");
 * await storage.put("a/b.bin", new Uint8Array([1, 2, 3]));
 * assert.deepEqual(await storage.get("a/b.bin"), new Uint8Array([1, 2, 3]));
 * await storage.close();
 * ```
 */
export interface Storage {
  /** Canonical URI of the root, e.g. `file:///abs/dir`, `s3://bucket/prefix`, `memory:name`. */
  readonly uri: string;
  /** Writes a whole object; atomic replace (no partial object is ever visible). */
  put(path: string, bytes: Uint8Array): Promise<void>;
  /** Writes a large or streamed object (multipart on S3); atomic. If `source` throws, nothing changes. */
  putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void>;
  /**
   * Writes the object only if no object exists at `path`: `true` = written, `false` = already existed
   * (nothing changed). Of two concurrent writers exactly one gets `true`.
   */
  putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean>;
  /** Reads a whole object; `NotFoundError` if it is missing. */
  get(path: string): Promise<Uint8Array>;
  /**
   * Reads bytes `[offset, offset + length)`, clipped at the end of the object. With `into` (at least
   * `length` bytes), a storage may read into it and return a view of it instead of new memory (a reused
   * buffer is much cheaper to fill than fresh memory); it may also ignore it: use the result, not `into`.
   */
  getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Every object whose path starts with `prefix` (`""` = all), across all pages, sorted ascending. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes objects (batched); paths that do not exist are fine. */
  delete(paths: readonly string[]): Promise<void>;
  /** Whether an object exists at `path`. */
  exists(path: string): Promise<boolean>;
  /** Releases connections; safe to call twice. */
  close(): Promise<void>;
  /**
   * Optional: writes a whole object atomically, as `put`, but durable only once {@link Storage.syncDeferred}
   * has returned for it (filesystem: no fsync per object). For writers whose commit point comes later (a
   * manifest written after every chunk): one sync pass before the commit instead of fsyncs per object.
   * Without it, use `put`.
   */
  putDeferred?(path: string, bytes: Uint8Array): Promise<void>;
  /**
   * Optional: makes objects written by {@link Storage.putDeferred} durable: their bytes and their names (the
   * folders holding them, and folders the writes created). `only: "bytes"` does the first part alone (to
   * start early, beside other work), `only: "names"` the second (once, for many objects at the end).
   */
  syncDeferred?(paths: readonly string[], options?: SyncDeferredOptions): Promise<void>;
}

/**
 * Options of {@link Storage.syncDeferred}.
 *
 * @example
 * ```ts
 * import type { SyncDeferredOptions } from "./storage.ts";
 * const early: SyncDeferredOptions = { only: "bytes" };
 * ```
 */
export interface SyncDeferredOptions {
  /** `bytes`: only the objects' contents; `names`: only the folder entries; default both. */
  only?: "bytes" | "names";
}

function checkBytes(bytes: Uint8Array, what = "bytes"): void {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
}

function checkCount(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

async function* checkedChunks(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    checkBytes(chunk, "every chunk of the source");
    if (chunk.byteLength > 0) yield chunk;
  }
}

/**
 * The abstract level of every backend: each public method validates its arguments (paths in exactly one
 * place), refuses use after {@linkcode BaseStorage.close}, then calls a protected hook (`_put`, `_get`, ...)
 * that the backend implements. Hooks receive only valid paths, non-negative integer ranges and non-empty
 * chunks.
 *
 * @example A minimal (non-durable) backend
 * ```ts
 * import assert from "node:assert/strict";
 * import { BaseStorage, type ObjectInfo } from "./storage.ts";
 * import { NotFoundError } from "../format/errors.ts";
 * class MapStorage extends BaseStorage {
 *   readonly uri = "memory:doc-example";
 *   #m = new Map<string, Uint8Array>();
 *   protected async _put(p: string, b: Uint8Array) { this.#m.set(p, b.slice()); }
 *   protected async _putIfAbsent(p: string, b: Uint8Array) { if (this.#m.has(p)) return false; this.#m.set(p, b.slice()); return true; }
 *   protected async _get(p: string) { const b = this.#m.get(p); if (!b) throw new NotFoundError("get", p); return b.slice(); }
 *   protected async _getRange(p: string, o: number, n: number) { return (await this._get(p)).slice(o, o + n); }
 *   protected async *_list(prefix: string): AsyncGenerator<ObjectInfo> {
 *     for (const [path, b] of [...this.#m].sort()) if (path.startsWith(prefix)) yield { path, size: b.length, modified: new Date() };
 *   }
 *   protected async _delete(ps: readonly string[]) { for (const p of ps) this.#m.delete(p); }
 *   protected async _exists(p: string) { return this.#m.has(p); }
 * }
 * const s = new MapStorage();
 * await s.put("x", new Uint8Array([1]));
 * assert.equal(await s.exists("x"), true);
 * ```
 */
export abstract class BaseStorage implements Storage {
  /** Canonical URI of the root. */
  abstract readonly uri: string;
  #closed = false;

  /** Whether {@linkcode BaseStorage.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The location of `path` for error messages: the root URI joined with the path. */
  protected location(path: string): string {
    return path === "" ? this.uri : `${this.uri.replace(/\/+$/, "")}/${path}`;
  }

  #open(operation: string, path: string): void {
    if (this.#closed) throw new StorageError(operation, this.location(path), "the storage is closed; open it again");
  }

  /** Writes a whole object atomically. */
  async put(path: string, bytes: Uint8Array): Promise<void> {
    validatePath(path);
    checkBytes(bytes);
    this.#open("put", path);
    await this._put(path, bytes);
  }

  /** Writes a streamed object atomically; if `source` throws, its error is rethrown and nothing changes. */
  async putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    validatePath(path);
    if (source == null || typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] !== "function") {
      throw new TypeError("source must be an AsyncIterable<Uint8Array>");
    }
    this.#open("putStream", path);
    await this._putStream(path, checkedChunks(source));
  }

  /** Writes only if absent; `true` = written, `false` = already existed. */
  async putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    validatePath(path);
    checkBytes(bytes);
    this.#open("putIfAbsent", path);
    return await this._putIfAbsent(path, bytes);
  }

  /** Reads a whole object. */
  async get(path: string): Promise<Uint8Array> {
    validatePath(path);
    this.#open("get", path);
    return await this._get(path);
  }

  /** Reads `[offset, offset + length)`, clipped at the end of the object (into `into` where the backend can). */
  async getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    validatePath(path);
    checkCount(offset, "offset");
    checkCount(length, "length");
    if (into !== undefined) checkBytes(into, "into");
    this.#open("getRange", path);
    return await this._getRange(path, offset, length, into !== undefined && into.byteLength >= length ? into : undefined);
  }

  /** Lists every object under `prefix`, sorted ascending by path. Errors surface on iteration. */
  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    validatePrefix(prefix);
    this.#open("list", prefix);
    yield* this._list(prefix);
  }

  /** Deletes objects; missing ones are fine. All paths are validated before anything is deleted. */
  async delete(paths: readonly string[]): Promise<void> {
    if (!Array.isArray(paths)) throw new TypeError("paths must be an array of paths");
    for (const p of paths) validatePath(p);
    this.#open("delete", "");
    const unique = [...new Set(paths)];
    if (unique.length > 0) await this._delete(unique);
  }

  /** Whether an object exists at `path`. */
  async exists(path: string): Promise<boolean> {
    validatePath(path);
    this.#open("exists", path);
    return await this._exists(path);
  }

  /** Writes atomically like `put`; durable once {@linkcode BaseStorage.syncDeferred} returned for it. */
  async putDeferred(path: string, bytes: Uint8Array): Promise<void> {
    validatePath(path);
    checkBytes(bytes);
    this.#open("put", path);
    await this._putDeferred(path, bytes);
  }

  /** Makes objects written by {@linkcode BaseStorage.putDeferred} durable (their bytes, names, or both). */
  async syncDeferred(paths: readonly string[], options: SyncDeferredOptions = {}): Promise<void> {
    if (!Array.isArray(paths)) throw new TypeError("paths must be an array of paths");
    for (const p of paths) validatePath(p);
    if (options.only !== undefined && options.only !== "bytes" && options.only !== "names") throw new TypeError(`options.only must be "bytes" or "names": current value is ${JSON.stringify(options.only)}`);
    this.#open("sync", "");
    const unique = [...new Set(paths)];
    if (unique.length > 0) await this._syncDeferred(unique, options.only);
  }

  /** Releases resources; later calls do nothing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this._close();
  }

  /** Hook: atomic whole-object write. */
  protected abstract _put(path: string, bytes: Uint8Array): Promise<void>;
  /** Hook: atomic streamed write; chunks are non-empty. The default collects the chunks and calls `_put`. */
  protected async _putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const c of source) chunks.push(copyBytes(c));
    const all = concatBytes(chunks);
    await this._put(path, all);
  }
  /** Hook: atomic create-if-absent. */
  protected abstract _putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean>;
  /** Hook: whole read, `NotFoundError` if missing. */
  protected abstract _get(path: string): Promise<Uint8Array>;
  /** Hook: ranged read, clipped at the end, `NotFoundError` if missing; into `into` (≥ `length` bytes) if given and the backend can. */
  protected abstract _getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Hook: sorted listing of every object under a validated prefix. */
  protected abstract _list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Hook: delete unique valid paths; missing ones are fine. */
  protected abstract _delete(paths: readonly string[]): Promise<void>;
  /** Hook: existence test. */
  protected abstract _exists(path: string): Promise<boolean>;
  /** Hook: a write made durable later by `_syncDeferred`. The default is a durable `_put`. */
  protected async _putDeferred(path: string, bytes: Uint8Array): Promise<void> {
    await this._put(path, bytes);
  }
  /** Hook: make deferred writes durable (unique valid paths; both parts unless `only`). The default has nothing to do. */
  protected async _syncDeferred(_paths: readonly string[], _only?: "bytes" | "names"): Promise<void> {}
  /** Hook: release resources (called once). */
  protected async _close(): Promise<void> {}
}
