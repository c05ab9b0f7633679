/**
 * The errors of the streaming runtime. Like every arrowpoint error they carry a stable `code`.
 *
 * @module
 */
import { ArrowpointError, type ArrowpointErrorOptions, IncompatibleSnapshotError } from "../format/errors.ts";

/**
 * A job stopped because something failed: user code threw, a checkpoint could not be written, a source
 * could not be read. `cause` holds the original error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobFailedError } from "./errors.ts";
 * const e = new JobFailedError("operator \"sessions\" subtask 2 failed: boom", { cause: new Error("boom") });
 * assert.equal(e.code, "ARROWPOINT_JOB_FAILED");
 * ```
 */
export class JobFailedError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string, options: ArrowpointErrorOptions = {}, code = "ARROWPOINT_JOB_FAILED") {
    super(code, message, options);
  }
}

/**
 * A job was killed on purpose (`job.kill()` or a {@link FaultPlan} of a test): it stopped abruptly at the
 * point chosen, without committing or cleaning anything up, as a crashed process would.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JobKilledError } from "./errors.ts";
 * assert.equal(new JobKilledError("after 1000 records").code, "ARROWPOINT_JOB_KILLED");
 * ```
 */
export class JobKilledError extends JobFailedError {
  /** Creates the error. */
  constructor(reason: string, options: ArrowpointErrorOptions = {}) {
    super(`job killed: ${reason}`, options, "ARROWPOINT_JOB_KILLED");
  }
}

/**
 * One operator or state of a snapshot that a job did not take over.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { NonRestoredState } from "./errors.ts";
 * const missing: NonRestoredState = { uid: "sessions", state: "recent", reason: "state-not-registered" };
 * assert.equal(`${missing.uid}/${missing.state}`, "sessions/recent");
 * ```
 */
export interface NonRestoredState {
  /** The operator uid in the snapshot. */
  readonly uid: string;
  /** The state name; absent when the whole operator is missing from the job. */
  readonly state?: string;
  /** Why: the job has no operator with that uid, or the operator registered no state of that name. */
  readonly reason: "operator-missing" | "state-not-registered";
}

/**
 * A snapshot holds state the job would not restore, and `allowNonRestoredState` is off. `states` lists
 * exactly what would be dropped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NonRestoredStateError } from "./errors.ts";
 * const e = new NonRestoredStateError("memory:x/chk-000003", [{ uid: "old-op", reason: "operator-missing" }]);
 * assert.equal(e.states.length, 1);
 * assert.equal(e.code, "ARROWPOINT_INCOMPATIBLE_SNAPSHOT");
 * ```
 */
export class NonRestoredStateError extends IncompatibleSnapshotError {
  /** What would not be restored. */
  readonly states: readonly NonRestoredState[];
  /** Creates the error for a snapshot location. */
  constructor(location: string, states: readonly NonRestoredState[]) {
    const list = states.map((s) => (s.state === undefined ? `operator ${JSON.stringify(s.uid)} (no operator with this uid in the job)` : `state ${JSON.stringify(s.state)} of operator ${JSON.stringify(s.uid)} (not registered in open())`));
    super(
      `Cannot restore from ${location} as the job would drop state it holds: ${list.join("; ")}; ` +
        "give the operators their old uids, register the states, or set restore.allowNonRestoredState to drop them",
    );
    this.states = states;
  }
}
