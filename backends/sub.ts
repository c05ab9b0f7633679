/**
 * A view of a storage rooted at a sub-folder (key prefix), so that, for example, a savepoint folder inside
 * a checkpoint root can be read and written as its own root.
 *
 * @module
 */

import { validatePath } from "./path.ts";
import { joinUri } from "./uri.ts";
import { BaseStorage, type ObjectInfo, type Storage } from "./storage.ts";

/** The view returned by {@linkcode subStorage}. */
class SubStorage extends BaseStorage {
  readonly uri: string;
  readonly #parent: Storage;
  readonly #prefix: string;

  constructor(parent: Storage, prefix: string, uri: string) {
    super();
    this.#parent = parent;
    this.#prefix = prefix;
    this.uri = uri;
  }

  #p(path: string): string {
    return `${this.#prefix}/${path}`;
  }

  /** The `put` hook of {@linkcode BaseStorage} for this backend. */
  protected _put(path: string, bytes: Uint8Array): Promise<void> {
    return this.#parent.put(this.#p(path), bytes);
  }
  /** The `putStream` hook of {@linkcode BaseStorage} for this backend. */
  protected override _putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    return this.#parent.putStream(this.#p(path), source);
  }
  /** The `putIfAbsent` hook of {@linkcode BaseStorage} for this backend. */
  protected _putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    return this.#parent.putIfAbsent(this.#p(path), bytes);
  }
  /** The `get` hook of {@linkcode BaseStorage} for this backend. */
  protected _get(path: string): Promise<Uint8Array> {
    return this.#parent.get(this.#p(path));
  }
  /** The `getRange` hook of {@linkcode BaseStorage} for this backend. */
  protected _getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.#parent.getRange(this.#p(path), offset, length, into);
  }
  /** The `list` hook of {@linkcode BaseStorage} for this backend. */
  protected async *_list(prefix: string): AsyncGenerator<ObjectInfo> {
    const strip = this.#prefix.length + 1;
    for await (const info of this.#parent.list(this.#p(prefix))) yield { ...info, path: info.path.slice(strip) };
  }
  /** The `delete` hook of {@linkcode BaseStorage} for this backend. */
  protected _delete(paths: readonly string[]): Promise<void> {
    return this.#parent.delete(paths.map((p) => this.#p(p)));
  }
  /** The `exists` hook of {@linkcode BaseStorage} for this backend. */
  protected _exists(path: string): Promise<boolean> {
    return this.#parent.exists(this.#p(path));
  }

  /** For nesting: the parent and the full prefix. */
  get target(): { parent: Storage; prefix: string } {
    return { parent: this.#parent, prefix: this.#prefix };
  }
}

function childUri(uri: string, path: string): string {
  try {
    return joinUri(uri, path);
  } catch {
    return `${uri.replace(/\/+$/, "")}/${path}`; // a custom backend's own URI scheme
  }
}

/**
 * A storage whose root is `prefix` (a valid path) inside `storage`: paths given to it are relative to
 * that folder, and its `uri` is the parent's URI joined with `prefix` (opening that URI gives an
 * equivalent storage). Closing the view does not close the parent, which owns the connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryStorage } from "./memory.ts";
 * import { subStorage } from "./sub.ts";
 * const root = new MemoryStorage("job");
 * const savepoint = subStorage(root, "savepoints/sp-1");
 * await savepoint.put("_manifest.json", new TextEncoder().encode("{}"));
 * assert.equal(await root.exists("savepoints/sp-1/_manifest.json"), true);
 * assert.equal(savepoint.uri, "memory:job/savepoints/sp-1");
 * ```
 */
export function subStorage(storage: Storage, prefix: string): Storage {
  const trimmed = prefix.replace(/\/+$/, "");
  validatePath(trimmed);
  if (storage instanceof SubStorage) {
    const { parent, prefix: outer } = storage.target;
    return new SubStorage(parent, `${outer}/${trimmed}`, childUri(storage.uri, trimmed));
  }
  return new SubStorage(storage, trimmed, childUri(storage.uri, trimmed));
}
