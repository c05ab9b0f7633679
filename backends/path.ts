/**
 * Object paths inside a storage root: the one place where they are validated, joined and ordered.
 *
 * A valid path is relative and "/"-separated: no leading "/", no empty segment (`a//b`, `a/`), no `.` or
 * `..` segment, no backslash and no NUL. Every backend accepts exactly these paths, so a path that works
 * in memory works on a filesystem and on S3, and no path can leave its root.
 *
 * @module
 */

import { PathEscapeError } from "../format/errors.ts";

/**
 * A UTF-16 surrogate without its pair: such a string has no UTF-8 form, so a filesystem or S3 would store
 * it as U+FFFD and two paths would name one object.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Throws {@linkcode PathEscapeError} unless `path` is a valid object path (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { validatePath } from "./path.ts";
 * validatePath("chk-000042/_manifest.json"); // fine
 * assert.throws(() => validatePath("../etc/passwd"), { name: "PathEscapeError" });
 * ```
 */
export function validatePath(path: string, context = "storage"): void {
  if (typeof path !== "string" || path.length === 0) throw new PathEscapeError(String(path), context);
  if (path.includes("\\") || path.includes("\0") || LONE_SURROGATE.test(path)) throw new PathEscapeError(path, context);
  for (const segment of path.split("/")) {
    if (segment === "" || segment === "." || segment === "..") throw new PathEscapeError(path, context);
  }
}

/**
 * Throws {@linkcode PathEscapeError} unless `prefix` is a valid listing prefix: `""` (everything), or a
 * string whose complete segments (all but the last) are valid and whose last, possibly partial segment
 * has no backslash or NUL. `"chk-"`, `"chk-1/"` and `"shared/ab"` are valid; `"/x"`, `"../"`, `"a//"` are not.
 *
 * @example
 * ```ts
 * import { validatePrefix } from "./path.ts";
 * validatePrefix("savepoints/sp-"); // fine
 * validatePrefix(""); // fine: everything
 * ```
 */
export function validatePrefix(prefix: string, context = "storage"): void {
  if (typeof prefix !== "string") throw new PathEscapeError(String(prefix), context);
  if (prefix === "") return;
  if (prefix.includes("\\") || prefix.includes("\0") || LONE_SURROGATE.test(prefix)) throw new PathEscapeError(prefix, context);
  const segments = prefix.split("/");
  for (let i = 0; i < segments.length - 1; i++) {
    const s = segments[i];
    if (s === "" || s === "." || s === "..") throw new PathEscapeError(prefix, context);
  }
}

/**
 * Whether `path` is a valid object path (the non-throwing form of {@linkcode validatePath}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidPath } from "./path.ts";
 * assert.equal(isValidPath("a/b"), true);
 * assert.equal(isValidPath("a//b"), false);
 * ```
 */
export function isValidPath(path: string): boolean {
  try {
    validatePath(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Joins valid paths with "/" (each part is validated; empty parts are skipped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinPath } from "./path.ts";
 * assert.equal(joinPath("savepoints/sp-1", "_manifest.json"), "savepoints/sp-1/_manifest.json");
 * ```
 */
export function joinPath(...parts: readonly string[]): string {
  const kept = parts.filter((p) => p !== "");
  for (const p of kept) validatePath(p);
  return kept.join("/");
}

/** Maps a UTF-16 code unit so that plain numeric comparison orders strings by code point. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000; // surrogates sort after U+E000..U+FFFF
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/**
 * Orders paths by Unicode code point, which is the order of their UTF-8 bytes and so the order in which
 * S3 lists keys. Every backend lists in this order. (Plain `<` on JS strings compares UTF-16 code units,
 * which differs for characters above U+FFFF.)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { comparePaths } from "./path.ts";
 * assert.deepEqual(["b", "a/b", "a-b", "A"].sort(comparePaths), ["A", "a-b", "a/b", "b"]);
 * ```
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}
