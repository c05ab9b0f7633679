// Test helpers for migrate/ and cli/: snapshots written directly with the snapshot/ writer primitives
// (no runtime), and readers that turn a snapshot state into a Map for comparisons.
import type { Storage } from "../backends/storage.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup, type Key, keyGroupRangeFor } from "../format/key_group.ts";
import type { ChunkRef, Manifest, OperatorSnapshot, StateSnapshot } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { checkpointDirName } from "../snapshot/layout.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { commitManifest, writeChunk } from "../snapshot/write.ts";
import { savepointChunkPath } from "../snapshot/layout.ts";

export const COUNTS: StateLayout = {
  kind: "value",
  keyType: "string",
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "label", type: "utf8" }] } },
};

export const OFFSETS: StateLayout = { kind: "operator-list", value: { encoding: "msgpack" } };

export type Count = { count: bigint; label: string };

export const cnt = (n: number, label = "x"): Count => ({ count: BigInt(n), label });

/** `n` entries `k0..k{n-1}` → `{ count: i, label: "l" + i % 5 }`. */
export function entries(n: number, prefix = "k"): Map<string, Count> {
  const m = new Map<string, Count>();
  for (let i = 0; i < n; i++) m.set(`${prefix}${i}`, cnt(i, `l${i % 5}`));
  return m;
}

function baseManifest(kind: "checkpoint" | "savepoint", id: string, maxP: number, operators: OperatorSnapshot[], checkpointId?: number): Manifest {
  return {
    format: "arrowpoint",
    formatVersion: 1,
    kind,
    id,
    ...(checkpointId !== undefined ? { checkpointId } : {}),
    createdAt: new Date(0).toISOString(),
    writer: { name: "arrowpoint", version: "test" },
    job: "test-job",
    maxParallelism: maxP,
    hash: "flink-murmur-java-hashcode",
    chunkRoot: kind === "savepoint" ? "." : "..",
    operators,
  };
}

/** Rows of a keyed state's entries within one key-group range, sorted by key group. */
export function rowsIn(data: Map<Key, unknown>, maxP: number, range: { start: number; end: number }, deletes: Key[] = []) {
  const rows: { kg: number; k: Key; v: unknown; op: number }[] = [];
  for (const [k, v] of data) {
    const kg = assignKeyGroup(k, maxP);
    if (kg >= range.start && kg <= range.end) rows.push({ kg, k, v, op: 0 });
  }
  for (const k of deletes) {
    const kg = assignKeyGroup(k, maxP);
    if (kg >= range.start && kg <= range.end) rows.push({ kg, k, v: null, op: 1 });
  }
  rows.sort((a, b) => a.kg - b.kg);
  return {
    length: rows.length,
    keyGroups: rows.map((r) => r.kg),
    keys: rows.map((r) => r.k),
    values: rows.map((r) => r.v),
    ops: Uint8Array.from(rows.map((r) => r.op)),
  };
}

export interface SavepointSpec {
  maxP?: number;
  parallelism?: number;
  uid?: string;
  state?: string;
  layout?: StateLayout;
  schemaVersion?: number;
  /** Operator-state items per old subtask (state "offsets", split). */
  offsets?: unknown[][];
  /** Extra operators. */
  extra?: OperatorSnapshot[];
}

/** Writes a savepoint of one keyed state (one chunk per subtask range) and optional operator state. */
export async function writeSavepoint(storage: Storage, data: Map<Key, unknown>, spec: SavepointSpec = {}): Promise<Manifest> {
  const maxP = spec.maxP ?? 128;
  const p = spec.parallelism ?? 4;
  const uid = spec.uid ?? "counter";
  const name = spec.state ?? "counts";
  const layout = spec.layout ?? COUNTS;
  const chunks: ChunkRef[] = [];
  for (let i = 0; i < p; i++) {
    const range = keyGroupRangeFor(i, p, maxP);
    const { ops: _ops, ...rows } = rowsIn(data, maxP, range);
    const path = savepointChunkPath(uid, name, range);
    const ref = await writeChunk(storage, path, encodeChunk(layout, rows), { type: "base", order: 0 });
    ref.keyGroupRange = range;
    chunks.push(ref);
  }
  const states: StateSnapshot[] = [{ name, keyed: true, schemaVersion: spec.schemaVersion ?? 1, ...layout, chunks }];
  if (spec.offsets) {
    const oc: ChunkRef[] = [];
    for (let i = 0; i < spec.offsets.length; i++) {
      const path = savepointChunkPath(uid, "offsets", i);
      oc.push(await writeChunk(storage, path, encodeChunk(OFFSETS, { length: spec.offsets[i].length, values: spec.offsets[i] }), { type: "base", order: 0, subtask: i }));
    }
    states.push({ name: "offsets", keyed: false, schemaVersion: 1, redistribution: "split", ...OFFSETS, chunks: oc });
  }
  const manifest = baseManifest("savepoint", "sp-test", maxP, [{ uid, parallelism: Math.max(p, spec.offsets?.length ?? 0), states }, ...(spec.extra ?? [])]);
  await commitManifest(storage, "", manifest);
  return manifest;
}

/**
 * Writes an incremental checkpoint chain under a checkpoint root: checkpoint 1 writes a base per subtask
 * range, each later one a delta per subtask range that changed (upserts and deletes), all in `shared/`.
 * Returns the live state after every step.
 */
export async function writeChain(
  root: Storage,
  steps: { set?: [string, Count][]; del?: string[] }[],
  opts: { maxP?: number; parallelism?: number } = {},
): Promise<Map<string, Count>> {
  const maxP = opts.maxP ?? 128;
  const p = opts.parallelism ?? 4;
  const live = new Map<string, Count>();
  let chunks: ChunkRef[] = [];
  for (let s = 0; s < steps.length; s++) {
    const id = s + 1;
    const changed = new Map<string, Count>(steps[s].set ?? []);
    const deleted = steps[s].del ?? [];
    for (const [k, v] of changed) live.set(k, v);
    for (const k of deleted) live.delete(k);
    for (let i = 0; i < p; i++) {
      const range = keyGroupRangeFor(i, p, maxP);
      const base = s === 0;
      const rows = base ? rowsIn(live, maxP, range) : rowsIn(changed, maxP, range, deleted);
      if (!base && rows.length === 0) continue;
      const { ops, ...plain } = rows;
      const chunk = encodeChunk(COUNTS, base ? plain : { ...plain, ops });
      const ref = await writeChunk(root, `shared/${checkpointDirName(id)}-${i}.arrow`, chunk, { type: base ? "base" : "delta", order: id });
      ref.keyGroupRange = range;
      chunks.push(ref);
    }
    const manifest = baseManifest("checkpoint", checkpointDirName(id), maxP, [
      { uid: "counter", parallelism: p, states: [{ name: "counts", keyed: true, schemaVersion: 1, ...COUNTS, chunks: [...chunks] }] },
    ], id);
    await commitManifest(root, checkpointDirName(id), manifest);
  }
  chunks = [];
  return live;
}

/** A keyed state of a snapshot as a Map key → value (keys as idPart-free: strings/numbers as is). */
export async function stateMap(uri: string, uid = "counter", state = "counts"): Promise<Map<unknown, unknown>> {
  const snap = await openSnapshot(uri);
  try {
    const rows = await readState(snap, uid, state);
    return new Map(rows.keys!.map((k, i) => [k, rows.values[i]]));
  } finally {
    await snap.storage.close();
  }
}

/** Every object path in a storage. */
export async function listAll(storage: Storage, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const o of storage.list(prefix)) out.push(o.path);
  return out;
}
