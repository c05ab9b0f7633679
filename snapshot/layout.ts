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
import { joinPath } from "../backends/path.ts";
import { MANIFEST_FILE } from "../format/manifest.ts";
import { safeSegment } from "../format/snapshot_path.ts";

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

/**
 * The canonical relative path of a savepoint chunk: `<operator>/<state>/kg-<first>-<last>.arrow` for keyed
 * state, `<operator>/<state>/subtask-<i>.arrow` for operator state (names made file-safe).
 *
 * @example
 * ```ts
 * import { savepointChunkPath } from "./layout.ts";
 * console.log(savepointChunkPath("counter", "counts", { start: 0, end: 63 })); // "counter/counts/kg-0-63.arrow"
 * ```
 */
export function savepointChunkPath(uid: string, state: string, at: { start: number; end: number } | number): string {
  const file = typeof at === "number" ? `subtask-${at}.arrow` : `kg-${at.start}-${at.end}.arrow`;
  return joinPath(safeSegment(uid), safeSegment(state), file);
}

/**
 * The relative path of a keyed chunk written by checkpoint `id` under a checkpoint root: in `shared/`
 * (later incremental checkpoints reference it), named by checkpoint, range, type and attempt (a restored
 * job never overwrites what a failed attempt left behind).
 *
 * @example
 * ```ts
 * import { checkpointChunkPath } from "./layout.ts";
 * console.log(checkpointChunkPath(7, "counter", "count", { start: 0, end: 63 }, "delta", "a1b2"));
 * // "shared/counter/count/chk-000007-kg-0-63-delta-a1b2.arrow"
 * ```
 */
export function checkpointChunkPath(id: number, uid: string, state: string, range: { start: number; end: number }, type: "base" | "delta", attempt: string): string {
  return joinPath(SHARED_DIR, safeSegment(uid), safeSegment(state), `${checkpointDirName(id)}-kg-${range.start}-${range.end}-${type}-${attempt}.arrow`);
}

/**
 * The relative path of an operator-state chunk of checkpoint `id`: inside `chk-<id>/` (rewritten every
 * checkpoint, never shared).
 *
 * @example
 * ```ts
 * import { checkpointOperatorChunkPath } from "./layout.ts";
 * console.log(checkpointOperatorChunkPath(7, "src", "offsets", 0, "a1b2")); // "chk-000007/src/offsets/subtask-0-a1b2.arrow"
 * ```
 */
export function checkpointOperatorChunkPath(id: number, uid: string, state: string, subtask: number, attempt: string): string {
  return joinPath(checkpointDirName(id), safeSegment(uid), safeSegment(state), `subtask-${subtask}-${attempt}.arrow`);
}

/**
 * The folder of a savepoint a job takes under its checkpoint root: `savepoints/sp-<id>-<attempt>`.
 *
 * @example
 * ```ts
 * import { savepointDirName } from "./layout.ts";
 * console.log(savepointDirName(42, "a1b2")); // "savepoints/sp-000042-a1b2"
 * ```
 */
export function savepointDirName(id: number, attempt: string): string {
  return joinPath(SAVEPOINTS_DIR, `sp-${String(id).padStart(6, "0")}-${attempt}`);
}

/**
 * The id of a savepoint written to a folder whose name is no valid id: `sp-` and the time to the second.
 *
 * @example
 * ```ts
 * import { timedSavepointId } from "./layout.ts";
 * console.log(timedSavepointId(new Date("2026-01-02T03:04:05Z"))); // "sp-20260102030405"
 * ```
 */
export function timedSavepointId(now: Date): string {
  return `sp-${now.toISOString().replace(/[^0-9]/g, "").slice(0, 14)}`;
}
