/**
 * Where snapshots live under a checkpoint root:
 *
 * ```
 * <root>/chk-000042/_manifest.json      checkpoint 42 (and chunks only it uses)
 * <root>/shared/<chunk>.arrow           chunks referenced by several incremental checkpoints
 * <root>/savepoints/<id>/_manifest.json self-contained savepoints, never deleted automatically
 * ```
 *
 * @module
 */
import { MANIFEST_FILE } from "../format/manifest.ts";

/** The folder of chunks shared by incremental checkpoints. */
export const SHARED_DIR = "shared" as const;
/** The folder of savepoints under a checkpoint root. */
export const SAVEPOINTS_DIR = "savepoints" as const;

const CHECKPOINT_DIR = /^chk-(\d{6,15})$/;

/**
 * The folder name of checkpoint `id`: `chk-` and the id zero-padded to six digits (so names sort).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkpointDirName } from "./layout.ts";
 * assert.equal(checkpointDirName(42), "chk-000042");
 * ```
 */
export function checkpointDirName(id: number): string {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`Cannot name checkpoint as its id must be a non-negative integer: current value is ${id}`);
  return `chk-${String(id).padStart(6, "0")}`;
}

/**
 * The checkpoint id of a folder name, or undefined when it is not a checkpoint folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCheckpointDirName } from "./layout.ts";
 * assert.equal(parseCheckpointDirName("chk-000042"), 42);
 * assert.equal(parseCheckpointDirName("shared"), undefined);
 * ```
 */
export function parseCheckpointDirName(name: string): number | undefined {
  const m = CHECKPOINT_DIR.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * The manifest path of a snapshot folder (`""` = the storage root itself).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { manifestPath } from "./layout.ts";
 * assert.equal(manifestPath("chk-000001"), "chk-000001/_manifest.json");
 * ```
 */
export function manifestPath(dir: string): string {
  return dir ? `${dir}/${MANIFEST_FILE}` : MANIFEST_FILE;
}

/**
 * The parent of a relative folder path (`""` for a top-level folder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parentDir } from "./layout.ts";
 * assert.equal(parentDir("a/chk-000001"), "a");
 * assert.equal(parentDir("chk-000001"), "");
 * ```
 */
export function parentDir(dir: string): string {
  const i = dir.lastIndexOf("/");
  return i < 0 ? "" : dir.slice(0, i);
}
