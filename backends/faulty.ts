/**
 * A storage wrapper that fails at the k-th mutating operation, for crash-point tests: `fail` makes that one
 * operation throw; `kill` makes it and every later operation throw, as if the process died there.
 *
 * @module
 */
import { StorageError } from "../format/errors.ts";
import type { ObjectInfo, Storage } from "./storage.ts";

/**
 * The mutating operations a {@link FaultyStorage} counts.
 *
 * @example
 * ```ts
 * import type { MutatingOperation } from "./faulty.ts";
 * const op: MutatingOperation = "putIfAbsent"; // a manifest commit
 * ```
 */
export type MutatingOperation = "put" | "putStream" | "putIfAbsent" | "delete";

/**
 * Options of {@link FaultyStorage}.
 *
 * @example
 * ```ts
 * import type { FaultOptions } from "./faulty.ts";
 * const crashAtThird: FaultOptions = { failAt: 3, mode: "kill" };
 * ```
 */
export interface FaultOptions {
  /** The 1-based index of the mutating operation that fails; 0 or absent = never. */
  failAt?: number;
  /** `fail`: only that operation throws. `kill`: it and everything after it throws. */
  mode?: "fail" | "kill";
}

/**
 * The error a {@link FaultyStorage} throws at its crash point.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InjectedFault } from "./faulty.ts";
 * assert.equal(new InjectedFault("put", "chk-000001/a.arrow").code, "ARROWPOINT_INJECTED_FAULT");
 * ```
 */
export class InjectedFault extends StorageError {
  /** Creates the error. */
  constructor(operation: string, path: string) {
    super(operation, path, "injected fault (test crash point)", {}, "ARROWPOINT_INJECTED_FAULT");
  }
}

/**
 * Wraps a storage and injects a fault at one operation. `operations` counts mutating operations so a test
 * can first run cleanly to learn how many there are, then try every k.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "./open.ts";
 * import { FaultyStorage } from "./faulty.ts";
 * const inner = await openStorage("memory:faulty-example");
 * const s = new FaultyStorage(inner, { failAt: 2, mode: "kill" });
 * await s.put("a", new Uint8Array([1]));
 * await assert.rejects(s.put("b", new Uint8Array([2])), { code: "ARROWPOINT_INJECTED_FAULT" });
 * ```
 */
export class FaultyStorage implements Storage {
  /** Mutating operations seen so far (including the failed one). */
  operations = 0;
  /** Whether the crash point was reached. */
  tripped = false;
  readonly #inner: Storage;
  #options: FaultOptions;

  /** Wraps `inner`. */
  constructor(inner: Storage, options: FaultOptions = {}) {
    this.#inner = inner;
    this.#options = options;
  }

  /** The wrapped storage's URI. */
  get uri(): string {
    return this.#inner.uri;
  }

  /** Re-arms the wrapper: counts from zero with new options. */
  reset(options: FaultOptions = {}): void {
    this.operations = 0;
    this.tripped = false;
    this.#options = options;
  }

  #check(op: MutatingOperation | "read", path: string): void {
    if (this.tripped && this.#options.mode === "kill") throw new InjectedFault(op, path);
    if (op === "read") return;
    this.operations++;
    if (this.#options.failAt && this.operations === this.#options.failAt) {
      this.tripped = true;
      throw new InjectedFault(op, path);
    }
  }

  /** See {@link Storage.put}. */
  async put(path: string, bytes: Uint8Array): Promise<void> {
    this.#check("put", path);
    await this.#inner.put(path, bytes);
  }
  /** See {@link Storage.putStream}. */
  async putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    this.#check("putStream", path);
    await this.#inner.putStream(path, source);
  }
  /** See {@link Storage.putIfAbsent}. */
  async putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    this.#check("putIfAbsent", path);
    return await this.#inner.putIfAbsent(path, bytes);
  }
  /** See {@link Storage.get}. */
  async get(path: string): Promise<Uint8Array> {
    this.#check("read", path);
    return await this.#inner.get(path);
  }
  /** See {@link Storage.getRange}. */
  async getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    this.#check("read", path);
    return await this.#inner.getRange(path, offset, length, into);
  }
  /** See {@link Storage.list}. */
  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    this.#check("read", prefix);
    yield* this.#inner.list(prefix);
  }
  /** See {@link Storage.delete}. */
  async delete(paths: readonly string[]): Promise<void> {
    this.#check("delete", paths[0] ?? "");
    await this.#inner.delete(paths);
  }
  /** See {@link Storage.exists}. */
  async exists(path: string): Promise<boolean> {
    this.#check("read", path);
    return await this.#inner.exists(path);
  }
  /** Closes the wrapped storage. */
  async close(): Promise<void> {
    await this.#inner.close();
  }
}
