/**
 * The named errors of arrowpoint. Every failure a user (or a snapshot's bytes) can cause is one of these:
 * each carries a stable `code` (messages may improve between versions, codes do not), says what was wrong,
 * where, and what to do.
 *
 * This module is the one piece every layer shares: `backends/` imports nothing else of ours.
 *
 * @module
 */

/** Options accepted by every arrowpoint error. */
export interface ArrowpointErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The base class of every arrowpoint error. Catch this to handle any of them.
 *
 * @example Catching any arrowpoint error
 * ```ts
 * import assert from "node:assert/strict";
 * import { ArrowpointError, SnapshotFormatError } from "./errors.ts";
 * try {
 *   throw new SnapshotFormatError("bad bytes", { path: "chk-1/a.arrow" });
 * } catch (e) {
 *   assert.ok(e instanceof ArrowpointError);
 *   assert.equal(e.code, "ARROWPOINT_SNAPSHOT_FORMAT");
 * }
 * ```
 */
export class ArrowpointError extends Error {
  /** A stable machine-readable code, e.g. `ARROWPOINT_CHECKSUM_MISMATCH`. */
  readonly code: string;
  /** Creates an error with a stable code. */
  constructor(code: string, message: string, options: ArrowpointErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** Where in a snapshot something went wrong. */
export interface Location {
  /** The file (relative to the snapshot or storage root) involved. */
  path?: string;
  /** The manifest field or column involved, as a JSON-pointer-like path. */
  field?: string;
}

function where(loc: Location): string {
  const parts: string[] = [];
  if (loc.path) parts.push(`in ${loc.path}`);
  if (loc.field) parts.push(`at ${loc.field}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/**
 * Snapshot bytes or structure are invalid: truncated, not Arrow, inconsistent with the manifest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SnapshotFormatError } from "./errors.ts";
 * const e = new SnapshotFormatError("chunk is truncated", { path: "shared/x.arrow" });
 * assert.equal(e.message, "chunk is truncated (in shared/x.arrow)");
 * ```
 */
export class SnapshotFormatError extends ArrowpointError {
  /** The file involved, if known. */
  readonly path?: string;
  /** The field involved, if known. */
  readonly field?: string;
  /** Creates the error; `loc` says where. */
  constructor(message: string, loc: Location = {}, options: ArrowpointErrorOptions = {}, code = "ARROWPOINT_SNAPSHOT_FORMAT") {
    super(code, message + where(loc), options);
    this.path = loc.path;
    this.field = loc.field;
  }
}

/**
 * A chunk's or manifest's checksum does not match its bytes: the file was corrupted or tampered with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChecksumMismatchError } from "./errors.ts";
 * const e = new ChecksumMismatchError("chk-1/a.arrow", "crc32c:00000001", "crc32c:00000002");
 * assert.deepEqual([e.expected, e.actual, e.code], ["crc32c:00000001", "crc32c:00000002", "ARROWPOINT_CHECKSUM_MISMATCH"]);
 * ```
 */
export class ChecksumMismatchError extends SnapshotFormatError {
  /** The checksum the manifest records. */
  readonly expected: string;
  /** The checksum of the bytes read. */
  readonly actual: string;
  /** Creates the error for one file. */
  constructor(path: string, expected: string, actual: string) {
    super(
      `checksum mismatch: expected ${expected}, got ${actual}; the file is corrupt — restore from an earlier snapshot or a copy`,
      { path },
      {},
      "ARROWPOINT_CHECKSUM_MISMATCH",
    );
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * The snapshot was written by a newer arrowpoint than this one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsupportedFormatVersionError } from "./errors.ts";
 * const e = new UnsupportedFormatVersionError(9, 1, "sp/_manifest.json");
 * assert.equal(e.found, 9);
 * assert.equal(e.supported, 1);
 * ```
 */
export class UnsupportedFormatVersionError extends SnapshotFormatError {
  /** The version found in the snapshot. */
  readonly found: number;
  /** The newest version this reader understands. */
  readonly supported: number;
  /** Creates the error. */
  constructor(found: number, supported: number, path?: string) {
    super(
      `snapshot formatVersion ${found} is newer than this arrowpoint understands (up to ${supported}); upgrade arrowpoint to read it`,
      { path, field: "/formatVersion" },
      {},
      "ARROWPOINT_UNSUPPORTED_FORMAT_VERSION",
    );
    this.found = found;
    this.supported = supported;
  }
}

/**
 * A manifest is not valid JSON or does not match the manifest JSON Schema, or is inconsistent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManifestSchemaError } from "./errors.ts";
 * const e = new ManifestSchemaError("must be integer", { path: "_manifest.json", field: "/maxParallelism" });
 * assert.equal(e.field, "/maxParallelism");
 * ```
 */
export class ManifestSchemaError extends SnapshotFormatError {
  /** Creates the error. */
  constructor(message: string, loc: Location = {}, options: ArrowpointErrorOptions = {}) {
    super(message, loc, options, "ARROWPOINT_MANIFEST_SCHEMA");
  }
}

/**
 * A path (in a manifest, a URI or an API call) is absolute or escapes the snapshot or storage root.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PathEscapeError } from "./errors.ts";
 * assert.equal(new PathEscapeError("../../etc/passwd").code, "ARROWPOINT_PATH_ESCAPE");
 * ```
 */
export class PathEscapeError extends ArrowpointError {
  /** The offending path. */
  readonly path: string;
  /** Creates the error. */
  constructor(path: string, context = "snapshot") {
    super(
      "ARROWPOINT_PATH_ESCAPE",
      `path ${JSON.stringify(path)} is absolute or escapes the ${context} root; only relative paths inside it are allowed`,
    );
    this.path = path;
  }
}

/**
 * Keyed-state arguments are out of range (parallelism, maxParallelism, key group).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyGroupError } from "./errors.ts";
 * assert.equal(new KeyGroupError("bad").code, "ARROWPOINT_KEY_GROUP");
 * ```
 */
export class KeyGroupError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string) {
    super("ARROWPOINT_KEY_GROUP", message);
  }
}

/**
 * A storage operation failed: missing bucket, denied, disk full, network. Wraps the cause.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StorageError } from "./errors.ts";
 * const e = new StorageError("put", "file:///tmp/x", "disk full");
 * assert.deepEqual([e.operation, e.location], ["put", "file:///tmp/x"]);
 * ```
 */
export class StorageError extends ArrowpointError {
  /** The operation that failed (`put`, `get`, `list`, `delete`, ...). */
  readonly operation: string;
  /** The URI or key involved. */
  readonly location: string;
  /** Creates the error. */
  constructor(operation: string, location: string, reason: string, options: ArrowpointErrorOptions = {}, code = "ARROWPOINT_STORAGE") {
    super(code, `${operation} ${location} failed: ${reason}`, options);
    this.operation = operation;
    this.location = location;
  }
}

/**
 * An object or file that should exist does not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotFoundError } from "./errors.ts";
 * assert.equal(new NotFoundError("get", "memory:x/a").code, "ARROWPOINT_NOT_FOUND");
 * ```
 */
export class NotFoundError extends StorageError {
  /** Creates the error. */
  constructor(operation: string, location: string, hint = "check the URI and that the snapshot was committed", options: ArrowpointErrorOptions = {}) {
    super(operation, location, `not found; ${hint}`, options, "ARROWPOINT_NOT_FOUND");
  }
}

/**
 * A put-if-absent (a manifest commit) found the object already there: another writer won.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AlreadyExistsError } from "./errors.ts";
 * assert.equal(new AlreadyExistsError("chk-1/_manifest.json").code, "ARROWPOINT_ALREADY_EXISTS");
 * ```
 */
export class AlreadyExistsError extends StorageError {
  /** Creates the error; `operation` and `reason` default to a lost put-if-absent race. */
  constructor(location: string, reason = "already exists; snapshots are never overwritten, choose a new id or path", operation = "putIfAbsent") {
    super(operation, location, reason, {}, "ARROWPOINT_ALREADY_EXISTS");
  }
}

/**
 * A tool was asked to write a snapshot where one already is; refused before any work. An
 * {@linkcode AlreadyExistsError}, so code catching that catches this too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AlreadyExistsError, DestinationExistsError } from "./errors.ts";
 * const e = new DestinationExistsError("file:///data/sp-2");
 * assert.equal(e instanceof AlreadyExistsError, true);
 * assert.equal(e.destination, "file:///data/sp-2");
 * ```
 */
export class DestinationExistsError extends AlreadyExistsError {
  /** The destination folder (URI) that already holds a snapshot. */
  readonly destination: string;
  /** Creates the error. */
  constructor(destination: string) {
    super(
      destination,
      "the destination already holds a snapshot (it has a _manifest.json); snapshots are never overwritten: choose a new destination folder, or delete that snapshot first",
      "write to",
    );
    this.destination = destination;
  }
}

/**
 * A storage URI could not be understood.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidUriError } from "./errors.ts";
 * assert.match(new InvalidUriError("ftp://x", "unknown scheme").message, /^cannot open storage "ftp:\/\/x": unknown scheme; use a path, /);
 * ```
 */
export class InvalidUriError extends ArrowpointError {
  /** The URI given. */
  readonly uri: string;
  /** Creates the error. */
  constructor(uri: string, reason: string) {
    super(
      "ARROWPOINT_INVALID_URI",
      `cannot open storage ${JSON.stringify(uri)}: ${reason}; use a path, file:///abs/path, s3://bucket/prefix or memory:name`,
    );
    this.uri = uri;
  }
}

/**
 * A value does not match its state's declared schema (on write, restore or migration).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SchemaViolationError } from "./errors.ts";
 * import { keyText } from "./key_identity.ts";
 * const e = new SchemaViolationError("counts", keyText("user-1"), "count must be integer");
 * assert.equal(e.key, '"user-1"');
 * assert.equal(e.message, 'state "counts", key "user-1": count must be integer');
 * ```
 */
export class SchemaViolationError extends ArrowpointError {
  /** The state involved. */
  readonly state: string;
  /** The key of the offending row, printed as every tool prints keys (`keyText`: strings quoted). */
  readonly key: string;
  /** Creates the error; `key` is the key's `keyText`, so the message quotes a string key once. */
  constructor(state: string, key: string, reason: string) {
    super("ARROWPOINT_SCHEMA_VIOLATION", `state ${JSON.stringify(state)}, key ${key}: ${reason}`);
    this.state = state;
    this.key = key;
  }
}

/**
 * A snapshot does not fit the job restoring it, or a tool's request: wrong maxParallelism, unknown operator,
 * state that would not be restored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IncompatibleSnapshotError } from "./errors.ts";
 * assert.equal(new IncompatibleSnapshotError("maxParallelism 128 != 256").code, "ARROWPOINT_INCOMPATIBLE_SNAPSHOT");
 * ```
 */
export class IncompatibleSnapshotError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_INCOMPATIBLE_SNAPSHOT", message, options);
  }
}

/**
 * A migration step cannot be applied (unknown field, bad chain of versions, failing custom function).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MigrationError } from "./errors.ts";
 * assert.equal(new MigrationError("no step from version 2").code, "ARROWPOINT_MIGRATION");
 * ```
 */
export class MigrationError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_MIGRATION", message, options);
  }
}

/**
 * A sharded run cannot be committed: a shard is missing, belongs to another plan, or wrote a chunk that is
 * no longer what its receipt says. The base of {@linkcode MissingShardError}, {@linkcode ForeignShardError},
 * {@linkcode DamagedShardError} and {@linkcode ShardReceiptError}; nothing was committed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MissingShardError, ShardError } from "./errors.ts";
 * const e = new MissingShardError("memory:sp-2", [1, 3], 4);
 * assert.ok(e instanceof ShardError);
 * assert.deepEqual(e.shards, [1, 3]);
 * ```
 */
export class ShardError extends ArrowpointError {
  /** The destination (URI) whose commit was refused. */
  readonly destination: string;
  /** The shard indexes involved (empty when the problem is not one shard's). */
  readonly shards: number[];
  /** Creates the error. */
  constructor(code: string, destination: string, shards: number[], message: string, options: ArrowpointErrorOptions = {}) {
    super(code, `cannot commit ${destination}: ${message}; nothing was committed (the destination is still no snapshot)`, options);
    this.destination = destination;
    this.shards = shards;
  }
}

/**
 * Shards of the plan have no receipt: they never ran, are still running, or failed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MissingShardError } from "./errors.ts";
 * assert.equal(new MissingShardError("memory:sp-2", [2], 4).code, "ARROWPOINT_SHARD_MISSING");
 * ```
 */
export class MissingShardError extends ShardError {
  /** Creates the error for the shards missing out of `count`. */
  constructor(destination: string, missing: number[], count: number) {
    super(
      "ARROWPOINT_SHARD_MISSING",
      destination,
      missing,
      count === 0
        ? "it holds no shard receipts (_shards/<plan>/shard-<i>-of-<n>.json); run the shards (--shard i/n) first"
        : `shard${missing.length > 1 ? "s" : ""} ${missing.map((i) => `${i}/${count}`).join(", ")} ha${missing.length > 1 ? "ve" : "s"} no receipt; run ${missing.length > 1 ? "them" : "it"} (again) with the same arguments, then commit`,
    );
  }
}

/**
 * Receipts under the destination come from different plans (another source, other arguments or another
 * shard count).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ForeignShardError } from "./errors.ts";
 * const e = new ForeignShardError("memory:sp-2", [0], "two plans: a1 and b2");
 * assert.equal(e.code, "ARROWPOINT_SHARD_FOREIGN");
 * ```
 */
export class ForeignShardError extends ShardError {
  /** Creates the error. */
  constructor(destination: string, shards: number[], reason: string) {
    super("ARROWPOINT_SHARD_FOREIGN", destination, shards, reason);
  }
}

/**
 * A chunk a shard's receipt lists is missing, of another size, or fails its checksum.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DamagedShardError } from "./errors.ts";
 * const e = new DamagedShardError("memory:sp-2", 1, 4, "op/s/kg-0-63.arrow", "checksum mismatch");
 * assert.equal(e.path, "op/s/kg-0-63.arrow");
 * ```
 */
export class DamagedShardError extends ShardError {
  /** The chunk path (relative to the destination). */
  readonly path: string;
  /** Creates the error; `cause` is the verification's error. */
  constructor(destination: string, shard: number, count: number, path: string, reason: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_SHARD_DAMAGED", destination, [shard], `shard ${shard}/${count}'s chunk ${path} is damaged (${reason}); run shard ${shard}/${count} again, then commit`, options);
    this.path = path;
  }
}

/**
 * A shard receipt is unreadable or inconsistent (bad JSON, wrong shape, key groups covered twice or not at all).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ShardReceiptError } from "./errors.ts";
 * assert.equal(new ShardReceiptError("memory:sp-2", [0], "not JSON").code, "ARROWPOINT_SHARD_RECEIPT");
 * ```
 */
export class ShardReceiptError extends ShardError {
  /** Creates the error. */
  constructor(destination: string, shards: number[], reason: string, options: ArrowpointErrorOptions = {}) {
    super("ARROWPOINT_SHARD_RECEIPT", destination, shards, reason, options);
  }
}
