/**
 * In-process storage for tests, examples and short-lived jobs. Stores live in a registry by name, so
 * two `openStorage("memory:x")` calls see the same objects; {@linkcode clearMemoryStorage} empties it.
 * Bytes are copied in and out: callers can never mutate a stored object.
 *
 * @module
 */

import { InvalidUriError, NotFoundError } from "../format/errors.ts";
import { copyBytes } from "./bytes.ts";
import { comparePaths, validatePath } from "./path.ts";
import { BaseStorage, type ObjectInfo } from "./storage.ts";

interface Entry {
  bytes: Uint8Array;
  modified: Date;
}

const registry = new Map<string, Map<string, Entry>>();
let anonymous = 0;

function store(name: string): Map<string, Entry> {
  let objects = registry.get(name);
  if (!objects) {
    objects = new Map();
    registry.set(name, objects);
  }
  return objects;
}

/**
 * Empties the in-process memory registry: one named store, or every store when `name` is omitted.
 * Storages already open on a cleared name see an empty store afterwards.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryStorage, clearMemoryStorage } from "./memory.ts";
 * const s = new MemoryStorage("tmp");
 * await s.put("a", new Uint8Array([1]));
 * clearMemoryStorage("tmp");
 * assert.equal(await s.exists("a"), false);
 * ```
 */
export function clearMemoryStorage(name?: string): void {
  if (name === undefined) {
    for (const objects of registry.values()) objects.clear();
    registry.clear();
  } else {
    registry.get(name)?.clear();
    registry.delete(name);
  }
}

/**
 * A storage in process memory, in a store shared by name (`memory:<name>`), optionally rooted at a
 * prefix inside it (`memory:<name>/<prefix>`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryStorage } from "./memory.ts";
 * const a = new MemoryStorage("shared");
 * const b = new MemoryStorage("shared");
 * await a.put("x.bin", new Uint8Array([7]));
 * assert.deepEqual(await b.get("x.bin"), new Uint8Array([7]));
 * assert.equal(a.uri, "memory:shared");
 * ```
 */
export class MemoryStorage extends BaseStorage {
  /** `memory:<name>` or `memory:<name>/<prefix>`. */
  readonly uri: string;
  /** The store's name in the registry. */
  readonly name: string;
  readonly #prefix: string;

  /**
   * Opens the named store (a fresh unique name when omitted). `prefix`, if given, must be a valid path:
   * this storage then sees only objects under it, with paths relative to it.
   */
  constructor(name?: string, prefix = "") {
    super();
    this.name = name ?? `anonymous-${++anonymous}-${Math.random().toString(36).slice(2, 8)}`;
    if (this.name === "" || /[/\\\0]/.test(this.name)) {
      throw new InvalidUriError(`memory:${this.name}`, "a memory store name must be non-empty, without '/', '\\' or NUL");
    }
    if (prefix !== "") validatePath(prefix);
    this.#prefix = prefix === "" ? "" : `${prefix}/`;
    this.uri = `memory:${this.name}${prefix === "" ? "" : `/${prefix}`}`;
  }

  get #objects(): Map<string, Entry> {
    return store(this.name);
  }

  /** The `put` hook of {@linkcode BaseStorage} for this backend. */
  protected async _put(path: string, bytes: Uint8Array): Promise<void> {
    this.#objects.set(this.#prefix + path, { bytes: copyBytes(bytes), modified: new Date() });
  }

  /** The `putIfAbsent` hook of {@linkcode BaseStorage} for this backend. */
  protected async _putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    const objects = this.#objects;
    const key = this.#prefix + path;
    if (objects.has(key)) return false;
    objects.set(key, { bytes: copyBytes(bytes), modified: new Date() });
    return true;
  }

  #entry(operation: string, path: string): Entry {
    const entry = this.#objects.get(this.#prefix + path);
    if (!entry) throw new NotFoundError(operation, this.location(path));
    return entry;
  }

  /** The `get` hook of {@linkcode BaseStorage} for this backend. */
  protected async _get(path: string): Promise<Uint8Array> {
    return copyBytes(this.#entry("get", path).bytes);
  }

  /** The `getRange` hook of {@linkcode BaseStorage} for this backend. */
  protected async _getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const { bytes } = this.#entry("getRange", path);
    const part = bytes.subarray(Math.min(offset, bytes.byteLength), Math.min(offset + length, bytes.byteLength));
    if (!into) return part.slice();
    into.set(part);
    return into.subarray(0, part.byteLength);
  }

  /** The `list` hook of {@linkcode BaseStorage} for this backend. */
  protected async *_list(prefix: string): AsyncGenerator<ObjectInfo> {
    const full = this.#prefix + prefix;
    const found: ObjectInfo[] = [];
    for (const [key, entry] of this.#objects) {
      if (key.startsWith(full)) {
        found.push({ path: key.slice(this.#prefix.length), size: entry.bytes.byteLength, modified: new Date(entry.modified) });
      }
    }
    found.sort((a, b) => comparePaths(a.path, b.path));
    yield* found;
  }

  /** The `delete` hook of {@linkcode BaseStorage} for this backend. */
  protected async _delete(paths: readonly string[]): Promise<void> {
    const objects = this.#objects;
    for (const p of paths) objects.delete(this.#prefix + p);
  }

  /** The `exists` hook of {@linkcode BaseStorage} for this backend. */
  protected async _exists(path: string): Promise<boolean> {
    return this.#objects.has(this.#prefix + path);
  }
}
