/**
 * {@linkcode openStorage}: one entry point from a URI (or plain path) to a {@linkcode Storage}.
 *
 * @module
 */

import { FsStorage } from "./fs.ts";
import { MemoryStorage } from "./memory.ts";
import type { S3StorageOptions } from "./s3.ts";
import type { Storage } from "./storage.ts";
import { parseStorageUri } from "./uri.ts";

/**
 * Options of {@linkcode openStorage}, per backend.
 *
 * @example
 * ```ts
 * import type { OpenStorageOptions } from "./open.ts";
 * const options: OpenStorageOptions = { s3: { endpoint: "http://127.0.0.1:9000" } };
 * ```
 */
export interface OpenStorageOptions {
  /** Options for `s3://` URIs. */
  s3?: S3StorageOptions;
}

/**
 * Opens a storage from a URI: a plain path (relative ones are resolved against the current directory),
 * `file:///abs/dir`, `s3://bucket/prefix` or `memory:name[/prefix]` (an in-process store shared by name;
 * see `clearMemoryStorage`). Unknown schemes raise `InvalidUriError`. Nothing is created until the first
 * write; a missing folder or prefix just lists empty. The S3 backend (and the AWS SDK, which reads the
 * environment as it loads) is loaded only when an `s3://` URI is opened, so local work needs no AWS setup,
 * nor, in Deno, `--allow-env`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "./open.ts";
 * const a = await openStorage("memory:demo");
 * const b = await openStorage("memory:demo");
 * await a.put("x", new Uint8Array([1]));
 * assert.equal(await b.exists("x"), true);
 * const local = await openStorage("./state");
 * assert.match(local.uri, /^file:\/\/\/.*\/state$/); // file:///<cwd>/state
 * ```
 */
export async function openStorage(uri: string | URL, options: OpenStorageOptions = {}): Promise<Storage> {
  const location = parseStorageUri(uri);
  switch (location.scheme) {
    case "file":
      return new FsStorage(location.path);
    case "s3": {
      const { S3Storage } = await import("./s3.ts");
      return new S3Storage(location.bucket, location.prefix, options.s3);
    }
    case "memory":
      return new MemoryStorage(location.name, location.prefix);
  }
}
