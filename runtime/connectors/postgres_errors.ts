/**
 * The errors of the PostgreSQL connectors. Each names what is wrong and what to do; `code` is stable.
 *
 * @module
 */
import { ArrowpointError, type ArrowpointErrorOptions } from "../../format/errors.ts";

/**
 * The server is not set up for what a connector needs: `wal_level` is not `logical` (change data capture)
 * or `max_prepared_transactions` is 0 (the exactly-once sink). `setting` names the server setting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresConfigError } from "./postgres_errors.ts";
 * const e = new PostgresConfigError("wal_level", "Cannot read changes as wal_level is replica: set wal_level = logical and restart");
 * assert.equal(e.code, "ARROWPOINT_POSTGRES_CONFIG");
 * assert.equal(e.setting, "wal_level");
 * ```
 */
export class PostgresConfigError extends ArrowpointError {
  /** The server setting to change. */
  readonly setting: string;
  /** Creates the error. */
  constructor(setting: string, message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_POSTGRES_CONFIG", message, options);
    this.setting = setting;
  }
}

/**
 * The publication a change-data-capture source reads does not exist in the database.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresPublicationError } from "./postgres_errors.ts";
 * assert.equal(new PostgresPublicationError("orders_pub", "Cannot read …").code, "ARROWPOINT_POSTGRES_PUBLICATION");
 * ```
 */
export class PostgresPublicationError extends ArrowpointError {
  /** The publication's name. */
  readonly publication: string;
  /** Creates the error. */
  constructor(publication: string, message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_POSTGRES_PUBLICATION", message, options);
    this.publication = publication;
  }
}

/**
 * The replication slot is in use by another connection (another job, or a reader that did not stop).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresSlotInUseError } from "./postgres_errors.ts";
 * assert.equal(new PostgresSlotInUseError("orders_slot", "Cannot read …").code, "ARROWPOINT_POSTGRES_SLOT_IN_USE");
 * ```
 */
export class PostgresSlotInUseError extends ArrowpointError {
  /** The slot's name. */
  readonly slot: string;
  /** Creates the error. */
  constructor(slot: string, message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_POSTGRES_SLOT_IN_USE", message, options);
    this.slot = slot;
  }
}

/**
 * The connection to the server was lost and could not be made again within the retries: the job fails,
 * and a restore resumes from its last checkpoint. `cause` holds the last connection error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresConnectionLostError } from "./postgres_errors.ts";
 * assert.equal(new PostgresConnectionLostError("Cannot read …").code, "ARROWPOINT_POSTGRES_CONNECTION_LOST");
 * ```
 */
export class PostgresConnectionLostError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_POSTGRES_CONNECTION_LOST", message, options);
  }
}

/**
 * A restored position cannot be resumed: the replication slot is gone or has already acknowledged
 * changes after it (the job was restored from an older snapshot than the slot has moved to), or the
 * snapshot was taken during the initial table snapshot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PostgresRestoreError } from "./postgres_errors.ts";
 * assert.equal(new PostgresRestoreError("Cannot resume …").code, "ARROWPOINT_POSTGRES_RESTORE");
 * ```
 */
export class PostgresRestoreError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_POSTGRES_RESTORE", message, options);
  }
}
