/**
 * The snapshot manifest (`_manifest.json`): the self-describing index of a checkpoint or savepoint.
 * Validated against {@link MANIFEST_SCHEMA} (ajv) on every read and write, checksummed, versioned.
 *
 * @module
 */
import { Ajv, type ErrorObject } from "ajv";
import { ManifestSchemaError, UnsupportedFormatVersionError } from "./errors.ts";
import { checksumOf } from "./checksum.ts";
import { UPPER_BOUND_MAX_PARALLELISM } from "./key_group.ts";
import type { KeyGroupRange } from "./key_group.ts";
import { MANIFEST_SCHEMA } from "./manifest_schema.ts";
import { checkSnapshotPath } from "./snapshot_path.ts";
import type { Redistribution, StateLayout } from "./state_layout.ts";

/** The format version this arrowpoint writes (and the newest it reads). */
export const FORMAT_VERSION = 1 as const;
/** The name of the manifest file in a snapshot folder. */
export const MANIFEST_FILE = "_manifest.json" as const;
/** The hash function every v1 snapshot uses: Java hashCode + Flink's murmur finalizer. */
export const HASH_FUNCTION = "flink-murmur-java-hashcode" as const;
/** Manifests larger than this are refused before parsing (a hostile or broken file). */
export const MAX_MANIFEST_BYTES: number = 64 * 1024 * 1024;

/** How a chunk's stored bytes are compressed. */
export type ChunkCompression = "none" | "deflate";

/** One chunk file of a state, as the manifest records it. */
export interface ChunkRef {
  /** Path relative to the snapshot's chunk root (see {@link Manifest.chunkRoot}). */
  path: string;
  /** Key groups covered (keyed state). Rows outside it are a format error. */
  keyGroupRange?: KeyGroupRange;
  /** For operator state: the subtask whose list this chunk holds. */
  subtask?: number;
  /** Number of rows. */
  rows: number;
  /** Stored size in bytes. */
  bytes: number;
  /** Uncompressed size when compressed: the decompression cap. */
  rawBytes?: number;
  /** Checksum of the stored bytes, e.g. `crc32:1a2b3c4d`. */
  checksum: string;
  /** Compression of the stored bytes. */
  compression: ChunkCompression;
  /** `base` holds every row of its range; `delta` holds upserts and deletes on top of earlier chunks. */
  type: "base" | "delta";
  /** Apply order within the state: ascending; a base resets its range. */
  order: number;
}

/** One state of an operator, with its layout and chunks. */
export interface StateSnapshot extends StateLayout {
  /** The state's name, unique within its operator. */
  name: string;
  /** Whether the state is keyed (partitioned by key group). */
  keyed: boolean;
  /** The version of the value schema (migrations step n → n+1). */
  schemaVersion: number;
  /** Operator state only: how items move when parallelism changes. */
  redistribution?: Redistribution;
  /** Time-to-live in ms, when the state declares one. */
  ttlMs?: number;
  /** The chunks holding the state's rows. */
  chunks: ChunkRef[];
}

/** One operator of the job. */
export interface OperatorSnapshot {
  /** The stable operator uid. */
  uid: string;
  /** A human-readable name. */
  name?: string;
  /** The parallelism the operator ran at when the snapshot was taken. */
  parallelism: number;
  /** Its states. */
  states: StateSnapshot[];
}

/** The manifest of a checkpoint or savepoint. */
export interface Manifest {
  /** Always `arrowpoint`. */
  format: "arrowpoint";
  /** The format version ({@link FORMAT_VERSION}). */
  formatVersion: number;
  /** Checkpoints may reference shared chunks; savepoints are self-contained. */
  kind: "checkpoint" | "savepoint";
  /** The snapshot id, e.g. `chk-000042` or `sp-20261125-1`. */
  id: string;
  /** The checkpoint number, for checkpoints (and savepoints taken by a running job). */
  checkpointId?: number;
  /** ISO-8601 time of creation. */
  createdAt: string;
  /** Which software wrote it. */
  writer: { name: string; version: string };
  /** The job name. */
  job: string;
  /** Number of key groups. */
  maxParallelism: number;
  /** Key hashing function ({@link HASH_FUNCTION}). */
  hash: string;
  /**
   * Where chunk paths start: `"."` is the manifest's own folder (savepoints: self-contained), `".."` its
   * parent, the checkpoint root holding `shared/` and every `chk-<n>/` (checkpoints).
   */
  chunkRoot: "." | "..";
  /** The operators, each with its states. */
  operators: OperatorSnapshot[];
  /** Source positions and job-level facts a user may want to read, as strings. */
  metadata?: Record<string, string>;
  /** Checksum of the manifest without this field (see docs/format.md). */
  checksum?: string;
}

const ajv = new Ajv({ allErrors: false, strict: true });
const validateSchema = ajv.compile<Manifest>(MANIFEST_SCHEMA);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function schemaError(errors: ErrorObject[] | null | undefined, path?: string): ManifestSchemaError {
  const e = errors?.[0];
  const field = e?.instancePath || "/";
  const detail = e ? `${e.message ?? "invalid"}${e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : ""}` : "invalid";
  return new ManifestSchemaError(`manifest does not match the arrowpoint manifest schema: ${detail}`, { path, field });
}

function manifestBody(m: Manifest): Omit<Manifest, "checksum"> {
  const { checksum: _ignored, ...body } = m;
  return body;
}

/**
 * Checks what a JSON Schema cannot: unique uids and state names, consistent kinds, ranges inside
 * `[0, maxParallelism)`, parallelism ≤ maxParallelism, safe chunk paths.
 */
function checkConsistency(m: Manifest, path?: string): void {
  const fail = (message: string, field: string): never => {
    throw new ManifestSchemaError(message, { path, field });
  };
  if (m.maxParallelism > UPPER_BOUND_MAX_PARALLELISM) fail(`maxParallelism ${m.maxParallelism} exceeds ${UPPER_BOUND_MAX_PARALLELISM}`, "/maxParallelism");
  if (m.kind === "savepoint" && m.chunkRoot !== ".") fail("a savepoint must be self-contained (chunkRoot \".\")", "/chunkRoot");
  const uids = new Set<string>();
  m.operators.forEach((op, i) => {
    const at = `/operators/${i}`;
    if (uids.has(op.uid)) fail(`operator uid ${JSON.stringify(op.uid)} appears twice`, `${at}/uid`);
    uids.add(op.uid);
    if (op.parallelism > m.maxParallelism) fail(`parallelism ${op.parallelism} exceeds maxParallelism ${m.maxParallelism}`, `${at}/parallelism`);
    const names = new Set<string>();
    op.states.forEach((st, j) => {
      const sat = `${at}/states/${j}`;
      if (names.has(st.name)) fail(`state ${JSON.stringify(st.name)} appears twice in operator ${JSON.stringify(op.uid)}`, `${sat}/name`);
      names.add(st.name);
      if (st.keyed !== (st.kind !== "operator-list")) fail(`state kind ${st.kind} contradicts keyed: ${st.keyed}`, `${sat}/keyed`);
      if (st.keyed && !st.keyType) fail("keyed state needs a keyType", `${sat}/keyType`);
      if (!st.keyed && st.keyType) fail("operator state has no keyType", `${sat}/keyType`);
      if ((st.kind === "map") !== (st.userKeyType !== undefined)) fail("userKeyType is required for map state and only for it", `${sat}/userKeyType`);
      if (!st.keyed && !st.redistribution) fail("operator state needs a redistribution mode", `${sat}/redistribution`);
      st.chunks.forEach((c, k) => {
        const cat = `${sat}/chunks/${k}`;
        try {
          checkSnapshotPath(c.path);
        } catch (e) {
          throw new ManifestSchemaError(`chunk path ${JSON.stringify(c.path)} is absolute or escapes the snapshot`, { path, field: `${cat}/path` }, { cause: e });
        }
        if (st.keyed) {
          const r = c.keyGroupRange;
          if (!r) return fail("keyed chunk needs a keyGroupRange", `${cat}/keyGroupRange`);
          if (r.start > r.end || r.end >= m.maxParallelism) fail(`key-group range [${r.start}, ${r.end}] is outside [0, ${m.maxParallelism})`, `${cat}/keyGroupRange`);
        } else if (c.subtask === undefined || c.subtask >= op.parallelism) {
          fail(`operator-state chunk needs a subtask in 0..${op.parallelism - 1}`, `${cat}/subtask`);
        }
        if (c.compression !== "none" && c.rawBytes === undefined) fail("compressed chunk needs rawBytes", `${cat}/rawBytes`);
      });
    });
  });
}

/** JSON nesting deeper than this is refused before anything recursive (checksum, schema) touches it. */
const MAX_MANIFEST_DEPTH = 256;

/** Whether parsed JSON nests deeper than `max` levels (iterative: safe for any depth). */
function nestsDeeper(json: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[json, 1]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (depth > max) return true;
    for (const v of Array.isArray(x) ? x : Object.values(x as object)) if (typeof v === "object" && v !== null) stack.push([v, depth + 1]);
  }
  return false;
}

/**
 * Upgrades a parsed manifest of an older format version to the current one. There is only v1 so far;
 * each future version adds one step here, so every version ever written stays readable.
 */
function upgrade(json: Record<string, unknown>): Record<string, unknown> {
  return json;
}

/**
 * Parses, version-checks, schema-validates, checksum-verifies and consistency-checks manifest bytes.
 * Throws {@link ManifestSchemaError} or {@link UnsupportedFormatVersionError};
 * never anything else, whatever the bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readManifest, writeManifest } from "./manifest.ts";
 * const bytes = writeManifest({
 *   format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: new Date().toISOString(),
 *   writer: { name: "arrowpoint", version: "0.1.0" }, job: "demo", maxParallelism: 128,
 *   hash: "flink-murmur-java-hashcode", chunkRoot: ".", operators: [],
 * });
 * assert.equal(readManifest(bytes).id, "sp-1");
 * ```
 */
export function readManifest(bytes: Uint8Array, path?: string): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new ManifestSchemaError(`manifest is ${bytes.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit; it is not an arrowpoint manifest`, { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new ManifestSchemaError("manifest is not valid UTF-8 JSON; the snapshot is corrupt", { path }, { cause: e });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ManifestSchemaError("manifest must be a JSON object", { path });
  if (nestsDeeper(json, MAX_MANIFEST_DEPTH)) {
    throw new ManifestSchemaError(`manifest JSON nests deeper than ${MAX_MANIFEST_DEPTH} levels; it is not an arrowpoint manifest`, { path });
  }
  const obj = json as Record<string, unknown>;
  if (obj.format !== "arrowpoint") throw new ManifestSchemaError(`not an arrowpoint manifest (format is ${JSON.stringify(obj.format)})`, { path, field: "/format" });
  const version = obj.formatVersion;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
    throw new ManifestSchemaError(`formatVersion must be a positive integer, got ${JSON.stringify(version)}`, { path, field: "/formatVersion" });
  }
  if (version > FORMAT_VERSION) throw new UnsupportedFormatVersionError(version, FORMAT_VERSION, path);
  if (typeof obj.checksum === "string") {
    const { checksum, ...body } = obj;
    const actual = checksumOf(encoder.encode(JSON.stringify(body)));
    if (actual !== checksum) {
      throw new ManifestSchemaError(`manifest checksum mismatch: recorded ${checksum}, computed ${actual}; the manifest was corrupted or edited`, { path, field: "/checksum" });
    }
  }
  const upgraded = upgrade(obj);
  if (!validateSchema(upgraded)) throw schemaError(validateSchema.errors, path);
  checkConsistency(upgraded, path);
  return upgraded;
}

/**
 * Validates a manifest and serialises it (with its checksum) to the bytes of `_manifest.json`.
 * Throws {@link ManifestSchemaError} for an invalid manifest: a writer never commits one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeManifest } from "./manifest.ts";
 * const bytes = writeManifest({
 *   format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: "2026-11-25T00:00:00Z",
 *   writer: { name: "arrowpoint", version: "0.1.0" }, job: "demo", maxParallelism: 128,
 *   hash: "flink-murmur-java-hashcode", chunkRoot: ".", operators: [],
 * });
 * assert.equal(bytes.length > 0, true);
 * ```
 */
export function writeManifest(manifest: Manifest): Uint8Array {
  const body = manifestBody(manifest);
  if (!validateSchema(body)) throw schemaError(validateSchema.errors);
  checkConsistency(body);
  if (body.formatVersion !== FORMAT_VERSION) {
    throw new ManifestSchemaError(`a writer writes only formatVersion ${FORMAT_VERSION}, got ${body.formatVersion}`, { field: "/formatVersion" });
  }
  // Key order of the body decides the checksum; readers recompute it from the parsed object, whose key
  // order JSON.parse preserves.
  const checksum = checksumOf(encoder.encode(JSON.stringify(body)));
  return encoder.encode(JSON.stringify({ ...body, checksum }, null, 1) + "\n");
}

/**
 * The state of an operator in a manifest, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findState, readManifest, writeManifest } from "./manifest.ts";
 * const m = readManifest(writeManifest({
 *   format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: new Date().toISOString(),
 *   writer: { name: "arrowpoint", version: "0.1.0" }, job: "demo", maxParallelism: 128,
 *   hash: "flink-murmur-java-hashcode", chunkRoot: ".", operators: [],
 * }));
 * assert.equal(findState(m, "counter", "counts"), undefined); // no such operator
 * ```
 */
export function findState(manifest: Manifest, uid: string, state: string): StateSnapshot | undefined {
  return manifest.operators.find((o) => o.uid === uid)?.states.find((s) => s.name === state);
}
