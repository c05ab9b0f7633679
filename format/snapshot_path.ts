/**
 * Paths inside a snapshot: the only shape a manifest may name, and the safe names writers derive from
 * operator uids and state names.
 *
 * @module
 */
import { PathEscapeError } from "./errors.ts";

const SEGMENT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;

/**
 * Checks that `path` is a relative path inside the snapshot: "/"-separated segments of
 * `[A-Za-z0-9._~-]`, none empty, `.` or `..`, not starting with a dot. Anything else (absolute,
 * backslashes, percent-encoding, NUL, `..`) throws {@link PathEscapeError}.
 *
 * @example
 * ```ts
 * import { checkSnapshotPath } from "./snapshot_path.ts";
 * checkSnapshotPath("shared/0001-ab.arrow"); // fine
 * // checkSnapshotPath("../etc/passwd") throws PathEscapeError
 * ```
 */
export function checkSnapshotPath(path: string, context = "snapshot"): string {
  if (typeof path !== "string" || path.length === 0 || path.length > 1024) throw new PathEscapeError(String(path), context);
  for (const segment of path.split("/")) {
    if (!SEGMENT.test(segment)) throw new PathEscapeError(path, context);
  }
  return path;
}

/**
 * A file-name-safe, reversible-enough segment for an operator uid or state name: safe characters are kept,
 * every other UTF-16 unit becomes `~xxxx` (hex), so distinct names give distinct segments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { safeSegment } from "./snapshot_path.ts";
 * assert.equal(safeSegment("user counts/v2"), "user~0020counts~002fv2");
 * ```
 */
export function safeSegment(name: string): string {
  let out = "";
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (/[A-Za-z0-9_-]/.test(c) || (c === "." && i > 0)) out += c;
    else out += "~" + name.charCodeAt(i).toString(16).padStart(4, "0");
  }
  return out.length ? out : "~";
}
