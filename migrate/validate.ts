/**
 * `validate`: every check a snapshot can fail, as a list of findings (empty = valid).
 *
 * @module
 */
import { ArrowpointError, ManifestSchemaError, PathEscapeError, SnapshotFormatError, UnsupportedFormatVersionError } from "../format/errors.ts";
import type { ChunkFile } from "../format/chunk_ipc.ts";
import { type DecodedChunk, decodeRows } from "../format/decode_chunk.ts";
import { assignKeyGroup, type Key } from "../format/key_group.ts";
import { type KeyId, keyText, rowIdentity } from "../format/key_identity.ts";
import type { ChunkRef, StateSnapshot } from "../format/manifest.ts";
import { rangeProblems } from "../snapshot/chain.ts";
import { checkChunk, chunkLocation } from "../snapshot/chunks.ts";
import { openSnapshot, type Snapshot } from "../snapshot/read.ts";
import { layoutOf } from "./_sink.ts";
import { valueChecker } from "../format/value_check.ts";
import type { Progress } from "./progress.ts";

/**
 * The kinds of findings, stable across versions (messages may improve):
 * - `manifest-invalid`: the manifest is not valid JSON, fails its JSON Schema, checksum or consistency checks
 * - `format-version-unsupported`: written by a newer arrowpoint
 * - `path-escape`: a chunk path is absolute or leaves the snapshot
 * - `chunk-missing`, `size-mismatch`, `checksum-mismatch`, `chunk-corrupt`: a chunk file's bytes
 * - `layout-mismatch`: a chunk's column layout differs from its state's descriptor
 * - `row-count-mismatch`: a chunk holds a different number of rows than the manifest records
 * - `key-group-outside-range`: a chunk holds rows outside its manifest key-group range
 * - `wrong-key-group`: a row's key hashes to another key group than the one it is stored under
 * - `duplicate-row`: a base chunk holds one key (namespace, user key) twice
 * - `value-schema`: a value fails its state's JSON Schema
 * - `range-overlap`: two base chunks of a state cover one key group
 * - `range-gap`: key groups of a state covered by no chunk
 */
export type FindingCode =
  | "manifest-invalid"
  | "format-version-unsupported"
  | "path-escape"
  | "chunk-missing"
  | "size-mismatch"
  | "checksum-mismatch"
  | "chunk-corrupt"
  | "layout-mismatch"
  | "row-count-mismatch"
  | "key-group-outside-range"
  | "wrong-key-group"
  | "duplicate-row"
  | "value-schema"
  | "range-overlap"
  | "range-gap";

/** One thing wrong with a snapshot. */
export interface Finding {
  /** What kind of problem (stable). */
  code: FindingCode;
  /** What is wrong, where, and what it means. */
  message: string;
  /** The file involved (relative to the snapshot's chunk root, or the manifest). */
  path?: string;
  /** The operator uid involved. */
  operator?: string;
  /** The state involved. */
  state?: string;
}

/** Options of {@link validate}. */
export interface ValidateOptions {
  /**
   * Decode rows to check key groups, duplicates and value schemas (default true). `false` checks the
   * manifest, sizes, checksums, chunk structure, row counts and ranges only.
   */
  rows?: boolean;
  /** Rows decoded per batch (default 16,384). */
  batchRows?: number;
  /** Called after each chunk. */
  onProgress?: (p: Progress) => void;
  /** Cancels between chunks. */
  signal?: AbortSignal;
}

function manifestFinding(e: unknown, location: string): Finding | undefined {
  if (e instanceof UnsupportedFormatVersionError) return { code: "format-version-unsupported", message: e.message, path: location };
  if (e instanceof ManifestSchemaError) {
    const escape = e.cause instanceof PathEscapeError || /escapes the snapshot/.test(e.message);
    return { code: escape ? "path-escape" : "manifest-invalid", message: e.message, path: e.path ?? location };
  }
  if (e instanceof PathEscapeError) return { code: "path-escape", message: e.message, path: location };
  if (e instanceof SnapshotFormatError) return { code: "manifest-invalid", message: e.message, path: e.path ?? location };
  return undefined;
}

/**
 * Validates a snapshot: manifest (JSON Schema, checksum, consistency; its errors become findings), every
 * chunk's presence, size, checksum and structure, row counts against the manifest, key-group ranges
 * (each state's bases cover `[0, maxParallelism)` without overlap; exactly, for a savepoint), every row's
 * key in the key group its hash gives, no duplicate rows, values against their JSON Schema, no path
 * outside the snapshot. Returns the findings; an empty list means valid. A URI with no snapshot at all
 * (no manifest) throws `NotFoundError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, validate } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:validate-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:validate-example/savepoints/sp-1");
 * const findings = await validate(sp.location);
 * assert.deepEqual(findings, []); // each finding: { code, message, path?, operator?, state? }
 * ```
 */
export async function validate(uri: string | Snapshot, options: ValidateOptions = {}): Promise<Finding[]> {
  let snap: Snapshot;
  try {
    snap = typeof uri === "string" ? await openSnapshot(uri) : uri;
  } catch (e) {
    const f = typeof uri === "string" ? manifestFinding(e, uri) : undefined;
    if (f) return [f];
    throw e;
  }
  try {
    return await validateOpened(snap, options);
  } finally {
    if (typeof uri === "string") await snap.storage.close();
  }
}

async function validateOpened(snap: Snapshot, options: ValidateOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  const m = snap.manifest;
  const maxP = m.maxParallelism;
  const started = Date.now();
  let doneRows = 0;
  let doneBytes = 0;
  for (const op of m.operators) {
    for (const st of op.states) {
      const at = { operator: op.uid, state: st.name };
      if (st.keyed) findings.push(...rangeProblems(st.chunks, maxP, m.kind === "savepoint").map((f) => ({ ...f, ...at })));
      for (const ref of st.chunks) {
        options.signal?.throwIfAborted();
        const found = await checkStateChunk(snap, st, ref, maxP, options);
        findings.push(...found.map((f) => ({ path: ref.path, ...f, ...at })));
        doneRows += ref.rows;
        doneBytes += ref.bytes;
        options.onProgress?.({ phase: "validate", rows: doneRows, bytes: doneBytes, elapsedMs: Date.now() - started });
      }
    }
  }
  return findings;
}

type PartialFinding = Omit<Finding, "operator" | "state">;

async function checkStateChunk(snap: Snapshot, st: StateSnapshot, ref: ChunkRef, maxP: number, options: ValidateOptions): Promise<PartialFinding[]> {
  const checked = await checkChunk(snap, st, ref);
  const out: PartialFinding[] = checked.problems.map((p) => ({ code: p.code, message: p.error.message }));
  if (!checked.file || checked.problems.some((p) => p.code === "layout-mismatch") || options.rows === false) return out;
  try {
    out.push(...checkRows(checked.file, st, ref, maxP, chunkLocation(snap, ref), options.batchRows ?? 16_384));
  } catch (e) {
    if (e instanceof ArrowpointError) out.push({ code: "chunk-corrupt", message: e.message });
    else throw e;
  }
  return out;
}

function checkRows(file: ChunkFile, st: StateSnapshot, ref: ChunkRef, maxP: number, where: string, batchRows: number): PartialFinding[] {
  const out: PartialFinding[] = [];
  const check = valueChecker(layoutOf(st));
  const checkValues = st.value.encoding === "msgpack" ? check : undefined; // Arrow types are the chunk's own schema
  const info = { path: where, compression: "none" as const };
  let wrong = 0;
  let firstWrong = "";
  let dups = 0;
  let firstDup = "";
  let badValue = 0;
  let firstBad = "";
  const namespaced = st.namespaced === true;
  const map = st.kind === "map";
  const visit = (d: DecodedChunk) => {
    let seen = new Set<KeyId>();
    let kgPrev = -1;
    for (let i = 0; i < d.length; i++) {
      if (st.keyed) {
        const kg = d.keyGroups![i];
        const key = d.keys![i] as Key;
        let actual: number | undefined;
        try {
          actual = assignKeyGroup(key, maxP);
        } catch {
          actual = undefined;
        }
        if (actual !== kg) {
          if (wrong++ === 0) firstWrong = `key ${keyText(key)} is stored in key group ${kg} but hashes to ${actual ?? "nothing (unhashable)"}`;
        }
        if (kg !== kgPrev) {
          seen = new Set();
          kgPrev = kg;
        }
        if (ref.type === "base") {
          const id = rowIdentity(key, d.namespaces?.[i], d.userKeys?.[i], namespaced, map);
          if (seen.has(id)) {
            if (dups++ === 0) firstDup = `key ${keyText(key)}${namespaced ? ` (namespace ${JSON.stringify(d.namespaces![i])})` : ""}${map ? ` (user key ${keyText(d.userKeys![i])})` : ""} appears twice`;
          } else seen.add(id);
        }
        if (d.ops && d.ops[i] === 1) continue;
      }
      if (checkValues) {
        const why = checkValues(d.values[i]);
        if (why && badValue++ === 0) firstBad = `${st.keyed ? `key ${keyText(d.keys![i])}` : `item ${i}`}: ${why}`;
      }
    }
  };
  if (!st.keyed || !file.keyGroupIndex) visit(decodeRows(file, 0, file.rows, info));
  else {
    // Key group by key group, about `batchRows` rows at a time, using the chunk's key-group index.
    const { keyGroups, offsets } = file.keyGroupIndex;
    let i = 0;
    while (i < keyGroups.length) {
      let j = i;
      while (j + 1 < keyGroups.length && offsets[j + 2] - offsets[i] <= batchRows) j++;
      visit(decodeRows(file, offsets[i], offsets[j + 1], info));
      i = j + 1;
    }
  }
  if (wrong) out.push({ code: "wrong-key-group", message: `${wrong} row(s) in the wrong key group; first: ${firstWrong} (maxParallelism ${maxP}); a reader restoring by key would miss them` });
  if (dups) out.push({ code: "duplicate-row", message: `${dups} duplicate row(s); first: ${firstDup}` });
  if (badValue) out.push({ code: "value-schema", message: `${badValue} value(s) fail the state's JSON Schema; first: ${firstBad}` });
  return out;
}
