// Test helpers for snapshot/: build small checkpoint chains directly with the writer primitives.
import type { Storage } from "../backends/storage.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import type { ChunkRef, Manifest } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { checkpointDirName } from "./layout.ts";
import { commitManifest, writeChunk } from "./write.ts";

export const LAYOUT: StateLayout = {
  kind: "value",
  keyType: "string",
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "label", type: "utf8" }] } },
};

export type Value = { count: bigint; label: string };

/** Rows for `entries` (undefined value = delete), sorted by key group as chunks require. */
export function rowsOf(entries: [string, Value | undefined][], maxP: number, delta: boolean) {
  const sorted = entries.map(([k, v]) => ({ k, v, kg: assignKeyGroup(k, maxP) })).sort((a, b) => a.kg - b.kg);
  return {
    length: sorted.length,
    keyGroups: sorted.map((r) => r.kg),
    keys: sorted.map((r) => r.k),
    values: sorted.map((r) => r.v ?? null),
    ops: delta ? Uint8Array.from(sorted.map((r) => (r.v ? 0 : 1))) : undefined,
  };
}

export function manifestOf(id: number, maxP: number, chunks: ChunkRef[]): Manifest {
  return {
    format: "arrowpoint",
    formatVersion: 1,
    kind: "checkpoint",
    id: checkpointDirName(id),
    checkpointId: id,
    createdAt: new Date(0).toISOString(),
    writer: { name: "arrowpoint", version: "test" },
    job: "test",
    maxParallelism: maxP,
    hash: "flink-murmur-java-hashcode",
    chunkRoot: "..",
    operators: [{ uid: "op", parallelism: 1, states: [{ name: "s", keyed: true, schemaVersion: 1, ...LAYOUT, chunks }] }],
  };
}

/**
 * Writes checkpoint `id`: a base in shared/ when `base`, else a delta in shared/, on top of `previous`
 * chunks. Returns the chunk list of the new manifest.
 */
export async function writeCheckpoint(
  root: Storage,
  id: number,
  entries: [string, Value | undefined][],
  previous: ChunkRef[],
  base: boolean,
  maxP = 128,
): Promise<ChunkRef[]> {
  const chunk = encodeChunk(LAYOUT, rowsOf(entries, maxP, !base));
  const path = `shared/${checkpointDirName(id)}-op-s.arrow`;
  const ref = await writeChunk(root, path, chunk, { type: base ? "base" : "delta", order: id });
  ref.keyGroupRange = { start: 0, end: maxP - 1 };
  const chunks = base ? [ref] : [...previous, ref];
  await commitManifest(root, checkpointDirName(id), manifestOf(id, maxP, chunks));
  return chunks;
}
