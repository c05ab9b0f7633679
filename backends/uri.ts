/**
 * Storage URIs: parsing (`file:`, plain paths, `s3://bucket/prefix`, `memory:name[/prefix]`) and joining a
 * relative path onto one.
 *
 * @module
 */

import * as nodePath from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { InvalidUriError } from "../format/errors.ts";
import { isValidPath, validatePath } from "./path.ts";

/**
 * Where a storage URI points.
 *
 * @example
 * ```ts
 * import type { StorageLocation } from "./uri.ts";
 * const loc: StorageLocation = { scheme: "s3", bucket: "b", prefix: "jobs/a" };
 * ```
 */
export type StorageLocation =
  | { scheme: "file"; path: string }
  | { scheme: "s3"; bucket: string; prefix: string }
  | { scheme: "memory"; name: string; prefix: string };

function checkPrefix(uri: string, prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, "");
  if (trimmed !== "" && !isValidPath(trimmed)) {
    throw new InvalidUriError(uri, `the path ${JSON.stringify(trimmed)} has an empty, '.' or '..' segment, a backslash or NUL`);
  }
  return trimmed;
}

/**
 * Parses a storage URI or a plain path. Plain paths (no scheme) are resolved against the current
 * directory; `file:` URIs are percent-decoded; `s3://` and `memory:` paths are taken literally. Unknown
 * schemes raise `InvalidUriError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseStorageUri } from "./uri.ts";
 * assert.deepEqual(parseStorageUri("s3://bucket/jobs/a/"), { scheme: "s3", bucket: "bucket", prefix: "jobs/a" });
 * assert.deepEqual(parseStorageUri("memory:x"), { scheme: "memory", name: "x", prefix: "" });
 * ```
 */
export function parseStorageUri(uri: string | URL): StorageLocation {
  const text = uri instanceof URL ? uri.href : uri;
  if (typeof text !== "string" || text.trim() === "") throw new InvalidUriError(String(text), "it is empty");
  if (text.includes("\0")) throw new InvalidUriError(text, "it contains NUL");
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text)) {
    throw new InvalidUriError(text, "it is not well-formed Unicode (a lone surrogate has no UTF-8 form)");
  }
  const windowsDrive = process.platform === "win32" && /^[a-zA-Z]:[\\/]/.test(text);
  const scheme = windowsDrive ? undefined : /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) return { scheme: "file", path: nodePath.resolve(text) };
  const rest = text.slice(scheme.length + 1);
  switch (scheme) {
    case "file": {
      try {
        const path = nodePath.resolve(fileURLToPath(new URL(`file:${rest}`)));
        if (path.includes("\0")) throw new Error("it contains an encoded NUL (%00)");
        return { scheme: "file", path };
      } catch (e) {
        throw new InvalidUriError(text, `not a valid local file URI (${e instanceof Error ? e.message : String(e)})`);
      }
    }
    case "s3": {
      if (!rest.startsWith("//")) throw new InvalidUriError(text, "an S3 URI looks like s3://bucket/prefix");
      const body = rest.slice(2);
      const slash = body.indexOf("/");
      const bucket = slash < 0 ? body : body.slice(0, slash);
      if (!/^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$/.test(bucket)) {
        throw new InvalidUriError(text, `${JSON.stringify(bucket)} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')`);
      }
      return { scheme: "s3", bucket, prefix: checkPrefix(text, slash < 0 ? "" : body.slice(slash + 1)) };
    }
    case "memory": {
      const body = rest.replace(/^\/\//, "");
      const slash = body.indexOf("/");
      const name = slash < 0 ? body : body.slice(0, slash);
      if (name === "" || name.includes("\\")) throw new InvalidUriError(text, "a memory URI looks like memory:name or memory:name/prefix");
      return { scheme: "memory", name, prefix: checkPrefix(text, slash < 0 ? "" : body.slice(slash + 1)) };
    }
    default:
      throw new InvalidUriError(text, `unknown scheme "${scheme}:"`);
  }
}

/**
 * The `file:` URI of an absolute local path, without a trailing "/". Node 20's `pathToFileURL` drops
 * trailing control characters ("/a/b\x04" → "file:///a/b"), which would name another folder; such paths
 * are encoded segment by segment instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileUri } from "./uri.ts";
 * assert.equal(fileUri("/tmp/a b"), "file:///tmp/a%20b");
 * ```
 */
export function fileUri(path: string): string {
  const href = pathToFileURL(path).href.replace(/\/+$/, "");
  if (nodePath.sep === "\\" || fileURLToPath(href + "/").replace(/\/+$/, "") === path.replace(/\/+$/, "")) return href;
  return "file://" + path.replace(/\/+$/, "").split("/").map(encodeURIComponent).join("/");
}

/**
 * The canonical URI of a location (`file:///abs/dir` percent-encoded, `s3://bucket/prefix`, `memory:name/prefix`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatStorageUri } from "./uri.ts";
 * assert.equal(formatStorageUri({ scheme: "s3", bucket: "b", prefix: "" }), "s3://b");
 * ```
 */
export function formatStorageUri(location: StorageLocation): string {
  switch (location.scheme) {
    case "file":
      return fileUri(location.path);
    case "s3":
      return `s3://${location.bucket}${location.prefix === "" ? "" : `/${location.prefix}`}`;
    case "memory":
      return `memory:${location.name}${location.prefix === "" ? "" : `/${location.prefix}`}`;
  }
}

/**
 * Joins a relative path (validated like every storage path) onto a storage URI or plain path and
 * returns the canonical URI of the result; opening it gives the same objects as `subStorage(storage, path)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinUri } from "./uri.ts";
 * assert.equal(joinUri("s3://bucket/job", "savepoints/sp-1"), "s3://bucket/job/savepoints/sp-1");
 * assert.equal(joinUri("file:///tmp/a b", "c d"), "file:///tmp/a%20b/c%20d");
 * ```
 */
export function joinUri(uri: string | URL, path: string): string {
  const trimmed = typeof path === "string" ? path.replace(/\/+$/, "") : path;
  validatePath(trimmed);
  const location = parseStorageUri(uri);
  switch (location.scheme) {
    case "file":
      return formatStorageUri({ scheme: "file", path: nodePath.join(location.path, ...trimmed.split("/")) });
    case "s3":
    case "memory":
      return formatStorageUri({ ...location, prefix: location.prefix === "" ? trimmed : `${location.prefix}/${trimmed}` });
  }
}
