/**
 * The storage layer of arrowpoint: where bytes live (memory, filesystem, S3) behind one small
 * interface, with no knowledge of the snapshot format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage, subStorage } from "./mod.ts";
 * const storage = await openStorage("memory:example");
 * const savepoint = subStorage(storage, "savepoints/sp-1");
 * await savepoint.putIfAbsent("_manifest.json", new TextEncoder().encode("{}"));
 * const paths: string[] = [];
 * for await (const o of storage.list("savepoints/")) paths.push(o.path);
 * assert.deepEqual(paths, ["savepoints/sp-1/_manifest.json"]);
 * await storage.close();
 * ```
 *
 * @module
 */

export { BaseStorage, type ObjectInfo, type Storage, type SyncDeferredOptions } from "./storage.ts";
export { comparePaths, isValidPath, joinPath, validatePath, validatePrefix } from "./path.ts";
export { openStorage, type OpenStorageOptions } from "./open.ts";
export { formatStorageUri, joinUri, parseStorageUri, type StorageLocation } from "./uri.ts";
export { subStorage } from "./sub.ts";
export { clearMemoryStorage, MemoryStorage } from "./memory.ts";
export { FsStorage, isTempFileName } from "./fs.ts";
export { type S3Credentials, s3ClientConfig, S3Storage, type S3StorageOptions } from "./s3.ts";
