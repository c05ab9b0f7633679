/**
 * Durable storage in a filesystem folder, with `node:fs/promises` (works in Node and Deno).
 *
 * - **Atomic, durable writes**: bytes go to a temporary file in the destination folder, named
 *   `.<name>.tmp-<16 hex>`; the file is fsynced, renamed over the final name, and the folder is fsynced.
 *   No partial file is ever visible under a final name. Temporary files never appear in `list` (names
 *   starting with `.` and ending in `.tmp-` + 16 hex digits are skipped); a crash can leave one behind,
 *   which is harmless and may be deleted.
 * - **putIfAbsent** writes and fsyncs a temporary file, then `link(temp, final)`: the kernel creates the
 *   final name only if it is absent (`EEXIST` → `false`), so of concurrent writers exactly one wins and
 *   the winner's bytes are complete. The filesystem must support hard links.
 * - **Confinement**: paths are validated by {@linkcode BaseStorage}; in addition every read and write
 *   resolves symlinks (`realpath`) and refuses (`PathEscapeError`) any that lead outside the root. This
 *   guards against misconfigured or hostile folder contents, not against a concurrent local attacker
 *   swapping folders between the check and the use. `list` does not descend into symlinked folders and
 *   lists a symlinked file only if it resolves to a file inside the root.
 * - Folders left empty by `delete` are removed (up to, not including, the root); a writer racing with
 *   that removal recreates the folder and retries.
 * - Errors: `ENOENT` on reads → `NotFoundError`; `ENOSPC` → `StorageError` "disk full"; `EACCES`/`EPERM` →
 *   "permission denied"; others → `StorageError` with the code.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as nodePath from "node:path";
import { ArrowpointError, NotFoundError, PathEscapeError, StorageError } from "../format/errors.ts";
import { comparePaths, isValidPath } from "./path.ts";
import { BaseStorage, type ObjectInfo } from "./storage.ts";
import { fileUri } from "./uri.ts";

const TEMP_NAME = /^\..*\.tmp-[0-9a-f]{16}$/;

/**
 * Whether a file name is one of this backend's temporary files (skipped by `list`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isTempFileName } from "./fs.ts";
 * assert.equal(isTempFileName(".a.bin.tmp-0123456789abcdef"), true);
 * assert.equal(isTempFileName("a.bin"), false);
 * ```
 */
export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

function errorCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

const REASONS: Record<string, string> = {
  ENOSPC: "disk full; free space or use another location",
  EDQUOT: "disk quota exceeded; free space or use another location",
  EACCES: "permission denied; check the folder's owner and mode",
  EPERM: "permission denied (operation not permitted)",
  EROFS: "read-only file system",
  EMFILE: "too many open files",
  ENFILE: "too many open files in the system",
  ENAMETOOLONG: "name too long for this file system",
  EIO: "I/O error",
  ENOTDIR: "a file is in the way where a folder is needed",
  EISDIR: "a folder exists at this path",
  ENOTEMPTY: "a folder exists at this path",
  ELOOP: "too many levels of symbolic links",
};

/** Maps a filesystem error to a named error. `missing` says whether ENOENT means "no such object". */
function fsError(operation: string, location: string, e: unknown, missing: boolean): Error {
  if (e instanceof ArrowpointError) return e;
  const code = errorCode(e);
  if (missing && (code === "ENOENT" || code === "ENOTDIR")) return new NotFoundError(operation, location, undefined, { cause: e });
  if (code === "ENOENT") return new StorageError(operation, location, "a folder vanished during the operation (ENOENT)", { cause: e });
  const reason = code && REASONS[code] ? `${REASONS[code]} (${code})` : code ?? (e instanceof Error ? e.message : String(e));
  return new StorageError(operation, location, reason, { cause: e });
}

function tempName(base: string): string {
  const short = Array.from(base).slice(0, 40).join("");
  return `.${short}.tmp-${randomBytes(8).toString("hex")}`;
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(dir, "r");
    await handle.sync();
  } catch (e) {
    // Some platforms (Windows) cannot open or fsync a folder; the rename itself is still atomic there.
    const code = errorCode(e);
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL" && code !== "EBADF" && code !== "ENOTSUP") throw e;
  } finally {
    await handle?.close().catch(() => {});
  }
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

/**
 * A storage rooted at a filesystem folder (created on the first write).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FsStorage } from "./fs.ts";
 * const s = new FsStorage("./state");
 * await s.put("chk-1/_manifest.json", new TextEncoder().encode("{}"));
 * const listed: [string, number][] = [];
 * for await (const o of s.list("chk-")) listed.push([o.path, o.size]);
 * assert.deepEqual(listed, [["chk-1/_manifest.json", 2]]);
 * assert.match(s.uri, /^file:\/\/\/.*\/state$/);
 * ```
 */
export class FsStorage extends BaseStorage {
  /** `file:///abs/dir` (percent-encoded). */
  readonly uri: string;
  /** The absolute root folder. */
  readonly root: string;
  #rootReal: string | undefined;
  /** Folders that got a new entry (a folder) from a deferred write and are not fsynced yet. */
  readonly #unsyncedDirs = new Set<string>();
  /** Folder syncs of `_syncDeferred` calls in flight. */
  readonly #dirSyncs = new Set<Promise<void>>();

  /** Opens the folder `root` (made absolute against the current directory). */
  constructor(root: string) {
    super();
    this.root = nodePath.resolve(root);
    this.uri = fileUri(this.root);
  }

  #full(path: string): string {
    return nodePath.join(this.root, ...path.split("/"));
  }

  /** The root's real path, or undefined if the root does not exist (yet). */
  async #realRoot(): Promise<string | undefined> {
    if (this.#rootReal !== undefined) return this.#rootReal;
    try {
      this.#rootReal = await fsp.realpath(this.root);
      return this.#rootReal;
    } catch (e) {
      const code = errorCode(e);
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw e;
    }
  }

  #inside(real: string, rootReal: string): boolean {
    return real === rootReal || real.startsWith(rootReal.endsWith(nodePath.sep) ? rootReal : rootReal + nodePath.sep);
  }

  /**
   * Resolves an existing object's real path for reading: refuses symlinks that leave the root and anything
   * but a regular file (opening a named pipe would block forever). Throws ENOENT, or EISDIR for the rest.
   */
  async #resolveReadable(path: string): Promise<string> {
    const real = await this.#resolveExisting(path);
    if (!(await fsp.stat(real)).isFile()) throw Object.assign(new Error("not a regular file"), { code: "EISDIR" });
    return real;
  }

  /** Resolves an existing object's real file path, refusing symlinks that leave the root. Throws ENOENT. */
  async #resolveExisting(path: string): Promise<string> {
    const rootReal = await this.#realRoot();
    if (rootReal === undefined) throw Object.assign(new Error("root does not exist"), { code: "ENOENT" });
    const real = await fsp.realpath(this.#full(path));
    if (!this.#inside(real, rootReal)) throw new PathEscapeError(path, "storage (a symlink leads outside the root)");
    return real;
  }

  /**
   * Creates (and fsyncs, unless `sync` is false: then `_syncDeferred` does) the root and the parent folders
   * of `path`, refusing symlinks out of the root.
   */
  async #prepareDir(path: string, sync = true): Promise<string> {
    if ((await this.#realRoot()) === undefined) {
      await fsp.mkdir(this.root, { recursive: true });
      if (sync) await fsyncDir(nodePath.dirname(this.root));
      else this.#unsyncedDirs.add(nodePath.dirname(this.root));
    }
    const rootReal = (await this.#realRoot())!;
    const segments = path.split("/").slice(0, -1);
    let dir = this.root;
    for (const segment of segments) {
      const parent = dir;
      dir = nodePath.join(dir, segment);
      let stat;
      try {
        stat = await fsp.lstat(dir);
      } catch (e) {
        if (errorCode(e) !== "ENOENT") throw e;
      }
      if (stat === undefined) {
        try {
          await fsp.mkdir(dir);
          if (sync) await fsyncDir(parent);
          else this.#unsyncedDirs.add(parent);
        } catch (e) {
          if (errorCode(e) !== "EEXIST") throw e; // a concurrent writer made it
        }
        stat = await fsp.lstat(dir);
      }
      if (stat.isSymbolicLink()) {
        const real = await fsp.realpath(dir);
        if (!this.#inside(real, rootReal)) throw new PathEscapeError(path, "storage (a symlink leads outside the root)");
        stat = await fsp.stat(dir);
      }
      if (!stat.isDirectory()) throw Object.assign(new Error(`${dir} is not a folder`), { code: "ENOTDIR" });
    }
    return dir;
  }

  /** Writes a fsynced temporary file next to `path` and returns its name (retrying if its folder vanished). */
  async #writeTemp(path: string, write: (handle: FileHandle) => Promise<void>, sync = true): Promise<{ dir: string; temp: string }> {
    const base = path.slice(path.lastIndexOf("/") + 1);
    for (let attempt = 0; ; attempt++) {
      let dir: string;
      let temp: string;
      let handle: FileHandle;
      try {
        // A concurrent delete removes folders it left empty, also while this walk creates or opens them
        // (a failed shard's clean-up beside a healthy shard's chunk): then the walk starts again.
        dir = await this.#prepareDir(path, sync);
        temp = nodePath.join(dir, tempName(base));
        handle = await fsp.open(temp, "wx");
      } catch (e) {
        if (errorCode(e) === "ENOENT" && attempt < 5) continue;
        throw e;
      }
      try {
        await write(handle);
        if (sync) await handle.sync();
        await handle.close();
      } catch (e) {
        await handle.close().catch(() => {});
        await fsp.unlink(temp).catch(() => {});
        throw e;
      }
      return { dir, temp };
    }
  }

  async #replace(path: string, write: (handle: FileHandle) => Promise<void>, sync = true): Promise<void> {
    let written: { dir: string; temp: string } | undefined;
    try {
      written = await this.#writeTemp(path, write, sync);
      await fsp.rename(written.temp, this.#full(path));
      if (sync) await fsyncDir(written.dir);
    } catch (e) {
      if (written) await fsp.unlink(written.temp).catch(() => {});
      throw e;
    }
  }

  /** The `put` hook of {@linkcode BaseStorage} for this backend. */
  protected async _put(path: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.#replace(path, (h) => h.writeFile(bytes));
    } catch (e) {
      throw fsError("put", this.location(path), e, false);
    }
  }

  /**
   * The `putDeferred` hook: the same temporary file and rename as `put` (no partial object is ever visible
   * under the name), with no fsync of the file or of folders it creates; `_syncDeferred` does those.
   */
  protected override async _putDeferred(path: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.#replace(path, (h) => h.writeFile(bytes), false);
    } catch (e) {
      throw fsError("put", this.location(path), e, false);
    }
  }

  /**
   * The `syncDeferred` hook: fsyncs every file (a few at once, so the kernel can merge their journal
   * commits), then their folders and every folder a deferred write gave a new folder (`only` picks one part).
   */
  protected override async _syncDeferred(paths: readonly string[], only?: "bytes" | "names"): Promise<void> {
    // The folders this call syncs are taken out of the pending set now (a folder made meanwhile puts its
    // parent back); a call also waits for the folder syncs other calls have in flight, so when any call
    // returns, every folder entry made before it started is durable.
    const dirs = new Set<string>();
    if (only !== "bytes") {
      for (const d of this.#unsyncedDirs) dirs.add(d);
      this.#unsyncedDirs.clear();
      for (const p of paths) dirs.add(nodePath.dirname(this.#full(p)));
    }
    const others = only === "bytes" ? [] : [...this.#dirSyncs];
    let current = "";
    try {
      if (only !== "names") await mapLimit(paths, 8, async (p) => {
        current = p;
        const real = await this.#resolveExisting(p);
        const handle = await fsp.open(real, "r+");
        try {
          await handle.sync();
        } finally {
          await handle.close().catch(() => {});
        }
      });
      current = "";
      const mine = mapLimit([...dirs], 8, fsyncDir);
      this.#dirSyncs.add(mine);
      try {
        await mine;
      } finally {
        this.#dirSyncs.delete(mine);
      }
      await Promise.all(others);
    } catch (e) {
      for (const d of dirs) this.#unsyncedDirs.add(d);
      throw fsError("sync", this.location(current), e, false);
    }
  }

  /** The `putStream` hook of {@linkcode BaseStorage} for this backend. */
  protected override async _putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    const failure: { fromSource?: unknown } = {};
    try {
      await this.#replace(path, async (h) => {
        const iterator = source[Symbol.asyncIterator]();
        for (;;) {
          let step: IteratorResult<Uint8Array>;
          try {
            step = await iterator.next();
          } catch (e) {
            failure.fromSource = e;
            throw e;
          }
          if (step.done) return;
          try {
            const chunk = step.value;
            let done = 0;
            while (done < chunk.byteLength) {
              const { bytesWritten } = await h.write(chunk, done, chunk.byteLength - done);
              done += bytesWritten;
            }
          } catch (e) {
            await iterator.return?.().catch(() => {});
            throw e;
          }
        }
      });
    } catch (e) {
      // The caller's own error (from the source) is rethrown as is; ours are mapped.
      if ("fromSource" in failure && e === failure.fromSource) throw e;
      throw fsError("putStream", this.location(path), e, false);
    }
  }

  /** The `putIfAbsent` hook of {@linkcode BaseStorage} for this backend. */
  protected async _putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    const final = this.#full(path);
    try {
      // Cheap early answer (inside the root only); the link below is what decides.
      const rootReal = await this.#realRoot();
      if (rootReal !== undefined) {
        try {
          const dirReal = await fsp.realpath(nodePath.dirname(final));
          if (!this.#inside(dirReal, rootReal)) throw new PathEscapeError(path, "storage (a symlink leads outside the root)");
          await fsp.lstat(final);
          return false;
        } catch (e) {
          const code = errorCode(e);
          if (code !== "ENOENT" && code !== "ENOTDIR") throw e;
        }
      }
      const { dir, temp } = await this.#writeTemp(path, (h) => h.writeFile(bytes));
      try {
        await fsp.link(temp, final);
      } catch (e) {
        if (errorCode(e) === "EEXIST") return false;
        throw e;
      } finally {
        await fsp.unlink(temp).catch(() => {});
      }
      await fsyncDir(dir);
      return true;
    } catch (e) {
      throw fsError("putIfAbsent", this.location(path), e, false);
    }
  }

  /** The `get` hook of {@linkcode BaseStorage} for this backend. */
  protected async _get(path: string): Promise<Uint8Array> {
    try {
      const real = await this.#resolveReadable(path);
      const buffer = await fsp.readFile(real);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (e) {
      if (errorCode(e) === "EISDIR") throw new NotFoundError("get", this.location(path), "it is a folder (or a pipe or device), not an object", { cause: e });
      throw fsError("get", this.location(path), e, true);
    }
  }

  /** The `getRange` hook of {@linkcode BaseStorage} for this backend. */
  protected async _getRange(path: string, offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    let handle: FileHandle | undefined;
    try {
      const real = await this.#resolveReadable(path);
      handle = await fsp.open(real, "r");
      const stat = await handle.stat();
      if (!stat.isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
      const n = Math.max(0, Math.min(length, stat.size - offset));
      const out = into ? into.subarray(0, n) : new Uint8Array(n);
      let done = 0;
      while (done < n) {
        const { bytesRead } = await handle.read(out, done, n - done, offset + done);
        if (bytesRead === 0) break; // the file shrank: clip
        done += bytesRead;
      }
      return done === n ? out : out.subarray(0, done);
    } catch (e) {
      if (errorCode(e) === "EISDIR") throw new NotFoundError("getRange", this.location(path), "it is a folder (or a pipe or device), not an object", { cause: e });
      throw fsError("getRange", this.location(path), e, true);
    } finally {
      await handle?.close().catch(() => {});
    }
  }

  /** The `exists` hook of {@linkcode BaseStorage} for this backend. */
  protected async _exists(path: string): Promise<boolean> {
    try {
      const real = await this.#resolveExisting(path);
      return (await fsp.stat(real)).isFile();
    } catch (e) {
      const code = errorCode(e);
      if (code === "ENOENT" || code === "ENOTDIR") return false;
      throw fsError("exists", this.location(path), e, false);
    }
  }

  /** The `list` hook of {@linkcode BaseStorage} for this backend. */
  protected async *_list(prefix: string): AsyncGenerator<ObjectInfo> {
    let rootReal: string | undefined;
    try {
      rootReal = await this.#realRoot();
    } catch (e) {
      throw fsError("list", this.location(prefix), e, false);
    }
    if (rootReal === undefined) return;
    const slash = prefix.lastIndexOf("/");
    const startRel = slash < 0 ? "" : prefix.slice(0, slash);
    const start = startRel === "" ? this.root : this.#full(startRel);
    if (startRel !== "") {
      try {
        const real = await fsp.realpath(start);
        if (!this.#inside(real, rootReal)) throw new PathEscapeError(prefix, "storage (a symlink leads outside the root)");
      } catch (e) {
        const code = errorCode(e);
        if (code === "ENOENT" || code === "ENOTDIR") return;
        throw fsError("list", this.location(prefix), e, false);
      }
    }
    yield* this.#walk(start, startRel, prefix, rootReal);
  }

  async *#walk(dir: string, rel: string, prefix: string, rootReal: string): AsyncGenerator<ObjectInfo> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      const code = errorCode(e);
      if (code === "ENOENT" || code === "ENOTDIR") return; // removed concurrently
      throw fsError("list", this.location(rel), e, false);
    }
    interface Item {
      name: string;
      path: string;
      kind: "dir" | "file" | "link";
      sortKey: string;
      info?: ObjectInfo;
    }
    const items: Item[] = [];
    for (const entry of entries) {
      const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        const asDir = `${path}/`;
        if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) items.push({ name: entry.name, path, kind: "dir", sortKey: asDir });
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        if (path.startsWith(prefix) && !isTempFileName(entry.name) && isValidPath(path)) {
          items.push({ name: entry.name, path, kind: entry.isFile() ? "file" : "link", sortKey: path });
        }
      }
    }
    // Sorting each folder's entries by name (folders as "name/") and walking depth-first yields the
    // whole listing in ascending path order without holding it in memory.
    items.sort((a, b) => comparePaths(a.sortKey, b.sortKey));
    const BATCH = 64;
    for (let i = 0; i < items.length; i += BATCH) {
      const batch = items.slice(i, i + BATCH);
      await Promise.all(batch.map(async (item) => {
        if (item.kind === "dir") return;
        const full = nodePath.join(dir, item.name);
        try {
          if (item.kind === "link") {
            const real = await fsp.realpath(full);
            if (!this.#inside(real, rootReal)) return;
          }
          const stat = await fsp.stat(full);
          if (stat.isFile()) item.info = { path: item.path, size: stat.size, modified: stat.mtime };
        } catch (e) {
          const code = errorCode(e);
          if (code === "ENOENT" || code === "ENOTDIR" || code === "ELOOP") return; // deleted concurrently or dangling
          throw fsError("list", this.location(item.path), e, false);
        }
      }));
      for (const item of batch) {
        if (item.kind === "dir") yield* this.#walk(nodePath.join(dir, item.name), item.path, prefix, rootReal);
        else if (item.info) yield item.info;
      }
    }
  }

  /** The `delete` hook of {@linkcode BaseStorage} for this backend. */
  protected async _delete(paths: readonly string[]): Promise<void> {
    const rootReal = await this.#realRoot().catch((e) => {
      throw fsError("delete", this.uri, e, false);
    });
    if (rootReal === undefined) return;
    const touched = new Set<string>();
    await mapLimit(paths, 16, async (path) => {
      const full = this.#full(path);
      const dir = nodePath.dirname(full);
      try {
        let realDir: string;
        try {
          realDir = await fsp.realpath(dir);
        } catch (e) {
          const code = errorCode(e);
          if (code === "ENOENT" || code === "ENOTDIR") return;
          throw e;
        }
        if (!this.#inside(realDir, rootReal)) throw new PathEscapeError(path, "storage (a symlink leads outside the root)");
        const stat = await fsp.lstat(full).catch((e) => {
          if (errorCode(e) === "ENOENT") return undefined;
          throw e;
        });
        if (stat === undefined || stat.isDirectory()) return; // missing, or a folder (not an object)
        await fsp.unlink(full).catch((e) => {
          if (errorCode(e) !== "ENOENT") throw e;
        });
        touched.add(dir);
      } catch (e) {
        throw fsError("delete", this.location(path), e, false);
      }
    });
    try {
      for (const dir of touched) {
        // A concurrent delete may have removed the emptied folder already: then there is nothing left
        // in it to make durable.
        await fsyncDir(dir).catch((e) => {
          if (errorCode(e) !== "ENOENT") throw e;
        });
      }
      // Remove folders left empty, deepest first, never the root.
      const dirs = [...touched].sort((a, b) => b.length - a.length);
      const removed = new Set<string>();
      for (let dir of dirs) {
        while (dir !== this.root && dir.startsWith(this.root + nodePath.sep) && !removed.has(dir)) {
          try {
            await fsp.rmdir(dir);
          } catch {
            break; // not empty (or already gone, or in use): stop climbing
          }
          removed.add(dir);
          dir = nodePath.dirname(dir);
          await fsyncDir(dir).catch(() => {});
        }
      }
    } catch (e) {
      throw fsError("delete", this.uri, e, false);
    }
  }
}
