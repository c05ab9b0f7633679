/**
 * The one place a snapshot's chunk is read and verified: present, the size the manifest records, its
 * checksum, decompressed within its recorded size, a valid Arrow file of the state's layout, the row count
 * and key-group range the manifest records. Readers throw the first problem; `validate` turns every
 * problem into a finding.
 *
 * @module
 */
import { ArrowpointError, ChecksumMismatchError, NotFoundError, SnapshotFormatError } from "../format/errors.ts";
import { verifyChecksum } from "../format/checksum.ts";
import { decompress } from "../format/compression.ts";
import type { ChunkFile } from "../format/chunk_ipc.ts";
import { type DecodedChunk, decodeRows, openChunk } from "../format/decode_chunk.ts";
import type { ChunkRef, StateSnapshot } from "../format/manifest.ts";
import { sameLayout, type StateLayout } from "../format/state_layout.ts";
import { joinPath } from "../backends/path.ts";
import type { Snapshot } from "./read.ts";

/** What can be wrong with one chunk, as `validate` reports it. */
export type ChunkProblemCode =
  | "chunk-missing"
  | "size-mismatch"
  | "checksum-mismatch"
  | "chunk-corrupt"
  | "layout-mismatch"
  | "row-count-mismatch"
  | "key-group-outside-range";

/** One problem of a chunk: a code, and the error a reader throws for it. */
export interface ChunkProblem {
  /** What kind of problem. */
  readonly code: ChunkProblemCode;
  /** The error (its message says what, where and what it means). */
  readonly error: ArrowpointError;
}

/** A chunk read and checked: its raw (uncompressed) bytes and validated columns, or what is wrong. */
export interface CheckedChunk {
  /** Uncompressed Arrow bytes (absent when a problem stopped the check before). */
  readonly raw?: Uint8Array;
  /** The validated file (absent when a problem stopped the check before). */
  readonly file?: ChunkFile;
  /** Every problem found; empty = the chunk is what the manifest says. */
  readonly problems: ChunkProblem[];
}

/**
 * The storage path of a chunk of a snapshot.
 *
 * @example
 * ```ts
 * import { chunkPath } from "./chunks.ts";
 * import type { Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // chunkPath(snap, snap.manifest.operators[0].states[0].chunks[0])
 * ```
 */
export function chunkPath(snap: Snapshot, ref: ChunkRef): string {
  return joinPath(snap.chunkBase, ref.path);
}

/**
 * Where a chunk of a snapshot is, for messages.
 *
 * @example
 * ```ts
 * import { chunkLocation } from "./chunks.ts";
 * import type { Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // chunkLocation(snap, ref) → "s3://bucket/sp-1 → op/s/kg-0-63.arrow"
 * ```
 */
export function chunkLocation(snap: Snapshot, ref: ChunkRef): string {
  return `${snap.location.replace(/\/+$/, "")} → ${ref.path}`;
}

async function storedBytes(snap: Snapshot, ref: ChunkRef, where: string, into?: Uint8Array): Promise<Uint8Array | ChunkProblem> {
  let bytes: Uint8Array;
  try {
    // One byte past the recorded size at most: an oversized file is refused without being read whole.
    bytes = await snap.storage.getRange(chunkPath(snap, ref), 0, Math.min(ref.bytes + 1, Number.MAX_SAFE_INTEGER), into);
  } catch (e) {
    if (e instanceof NotFoundError) {
      return { code: "chunk-missing", error: new SnapshotFormatError(`chunk listed in the manifest is missing (${chunkPath(snap, ref)}); the snapshot is incomplete`, { path: where }, { cause: e }) };
    }
    throw e;
  }
  if (bytes.length !== ref.bytes) {
    return {
      code: "size-mismatch",
      error: new SnapshotFormatError(`chunk is ${bytes.length > ref.bytes ? "larger than that" : `${bytes.length} bytes`} but the manifest records ${ref.bytes}; it was truncated or replaced`, { path: where }),
    };
  }
  return bytes;
}

/**
 * Reads a chunk's stored bytes with size and checksum verified, without decoding (for copying as bytes).
 * With `into` (at least `ref.bytes + 1` bytes: one more tells an oversized file), the storage may read into
 * it: the result is then a view of `into`.
 *
 * @example
 * ```ts
 * import { readVerifiedChunk } from "./chunks.ts";
 * import type { Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const bytes = await readVerifiedChunk(snap, snap.manifest.operators[0].states[0].chunks[0]);
 * ```
 */
export async function readVerifiedChunk(snap: Snapshot, ref: ChunkRef, into?: Uint8Array): Promise<Uint8Array> {
  const where = chunkLocation(snap, ref);
  const bytes = await storedBytes(snap, ref, where, into);
  if (!(bytes instanceof Uint8Array)) throw bytes.error;
  verifyChecksum(bytes, ref.checksum, where);
  return bytes;
}

/**
 * Reads a chunk of state `st` and checks everything the manifest says about it; never throws for what the
 * bytes contain (storage failures other than a missing file do throw). With `into` (at least
 * `ref.bytes + 1` bytes), the storage may read into it: the opened file's columns are then views of it.
 *
 * @example
 * ```ts
 * import { checkChunk } from "./chunks.ts";
 * import type { Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const { problems } = await checkChunk(snap, st, st.chunks[0]);
 * ```
 */
export async function checkChunk(snap: Snapshot, st: StateLayout & { keyed?: boolean }, ref: ChunkRef, into?: Uint8Array): Promise<CheckedChunk> {
  const where = chunkLocation(snap, ref);
  const stored = await storedBytes(snap, ref, where, into);
  if (!(stored instanceof Uint8Array)) return { problems: [stored] };
  try {
    verifyChecksum(stored, ref.checksum, where);
  } catch (e) {
    if (e instanceof ChecksumMismatchError) return { problems: [{ code: "checksum-mismatch", error: e }] };
    throw e;
  }
  let raw: Uint8Array;
  let file: ChunkFile;
  try {
    raw = decompress(stored, { compression: ref.compression, rawBytes: ref.rawBytes, path: where });
    file = openChunk(raw, { path: where, compression: "none" });
  } catch (e) {
    if (e instanceof ArrowpointError) return { problems: [{ code: "chunk-corrupt", error: e }] };
    throw e;
  }
  const problems: ChunkProblem[] = [];
  const layout = file.plan.layout;
  if (!sameLayout(layout, st)) {
    const expected = { kind: st.kind, keyType: st.keyType, userKeyType: st.userKeyType, namespaced: st.namespaced, value: st.value };
    problems.push({ code: "layout-mismatch", error: new SnapshotFormatError(`chunk columns are ${JSON.stringify(layout)} but the state declares ${JSON.stringify(expected)}`, { path: where }) });
    return { raw, file, problems };
  }
  if ((layout.kind === "operator-list") !== (ref.keyGroupRange === undefined)) {
    problems.push({ code: "layout-mismatch", error: new SnapshotFormatError(`chunk holds ${layout.kind} state, which contradicts its manifest entry`, { path: where }) });
    return { raw, file, problems };
  }
  if (ref.type === "base" && file.plan.index.op >= 0) {
    problems.push({ code: "layout-mismatch", error: new SnapshotFormatError("chunk is a delta (it has an op column) but the manifest records a base", { path: where }) });
  }
  if (file.rows !== ref.rows) {
    problems.push({ code: "row-count-mismatch", error: new SnapshotFormatError(`chunk holds ${file.rows} rows but the manifest records ${ref.rows}`, { path: where }) });
  }
  const ix = file.keyGroupIndex;
  const r = ref.keyGroupRange;
  if (r && ix && ix.keyGroups.length && (ix.keyGroups[0] < r.start || ix.keyGroups[ix.keyGroups.length - 1] > r.end)) {
    const outside = ix.keyGroups.filter((g) => g < r.start || g > r.end);
    problems.push({
      code: "key-group-outside-range",
      error: new SnapshotFormatError(`chunk holds rows of key groups ${outside.slice(0, 8).join(", ")}${outside.length > 8 ? ", …" : ""} outside its manifest range [${r.start}, ${r.end}]`, { path: where }),
    });
  }
  return { raw, file, problems };
}

/**
 * Reads and opens a chunk of state `st` (every check of {@link checkChunk}), throwing the first problem
 * (`into` as there).
 *
 * @example
 * ```ts
 * import { openStateChunk } from "./chunks.ts";
 * import type { Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const file = await openStateChunk(snap, st, st.chunks[0]);
 * ```
 */
export async function openStateChunk(snap: Snapshot, st: StateSnapshot | (StateLayout & { keyed?: boolean }), ref: ChunkRef, into?: Uint8Array): Promise<ChunkFile> {
  const c = await checkChunk(snap, st, ref, into);
  if (c.problems.length) throw c.problems[0].error;
  return c.file!;
}

/**
 * Reads, verifies and decodes one whole chunk of a snapshot (every check of {@link checkChunk} against the
 * state that lists it).
 *
 * @example
 * ```ts
 * import { readChunk } from "./chunks.ts";
 * import type { Snapshot } from "./read.ts";
 * declare const snap: Snapshot;
 * // const rows = await readChunk(snap, snap.manifest.operators[0].states[0].chunks[0]);
 * ```
 */
export async function readChunk(snap: Snapshot, ref: ChunkRef): Promise<DecodedChunk> {
  const st = snap.manifest.operators.flatMap((o) => o.states).find((s) => s.chunks.some((c) => c.path === ref.path));
  if (!st) throw new TypeError(`Cannot read chunk ${ref.path} as it is not listed in snapshot ${snap.location}`);
  const file = await openStateChunk(snap, st, ref);
  return decodeRows(file, 0, file.rows, { path: chunkLocation(snap, ref) });
}
