/**
 * Checkpoint and savepoint assembly: where chunks go, which chunks a manifest must list (the latest base
 * of every key group plus the deltas after it), and the manifest itself.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import type { ChunkRef, Manifest, OperatorSnapshot, StateSnapshot } from "../format/manifest.ts";
import { checkpointChunkPath, checkpointOperatorChunkPath, savepointChunkPath } from "../snapshot/layout.ts";
import { buildManifest } from "../snapshot/write.ts";
import { pruneChain } from "../snapshot/chain.ts";
import type { ChunkTarget, TaskSnapshot } from "./_tasks.ts";

/**
 * Joins relative storage paths, skipping empty parts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { joinRelative } from "./checkpoint.ts";
 * assert.equal(joinRelative("", "savepoints", "sp-1"), "savepoints/sp-1");
 * ```
 */
export function joinRelative(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/**
 * Where the chunks of checkpoint `id` go under a checkpoint root: keyed chunks in `shared/` (later
 * incremental checkpoints reference them), operator-state chunks in `chk-<id>/` (rewritten every time).
 * File names carry the attempt so a restored job never overwrites what a failed attempt left behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryStorage } from "../backends/memory.ts";
 * import { checkpointTarget } from "./checkpoint.ts";
 * const t = checkpointTarget(new MemoryStorage(), 7, "a1b2");
 * assert.equal(t.keyed("counter", "count", { start: 0, end: 63 }, "delta").ref, "shared/counter/count/chk-000007-kg-0-63-delta-a1b2.arrow");
 * ```
 */
export function checkpointTarget(root: Storage, id: number, attempt: string): ChunkTarget {
  return {
    storage: root,
    kind: "checkpoint",
    dir: "",
    keyed(uid, state, range, type) {
      const ref = checkpointChunkPath(id, uid, state, range, type, attempt);
      return { path: ref, ref };
    },
    operator(uid, state, subtask) {
      const ref = checkpointOperatorChunkPath(id, uid, state, subtask, attempt);
      return { path: ref, ref };
    },
  };
}

/**
 * Where the chunks of a savepoint go: its own folder `dir` in `storage`, in the canonical layout
 * `<uid>/<state>/kg-<first>-<last>.arrow` and `<uid>/<state>/subtask-<i>.arrow`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryStorage } from "../backends/memory.ts";
 * import { savepointTarget } from "./checkpoint.ts";
 * const t = savepointTarget(new MemoryStorage(), "savepoints/sp-1");
 * assert.equal(t.keyed("counter", "count", { start: 0, end: 63 }, "base").path, "savepoints/sp-1/counter/count/kg-0-63.arrow");
 * ```
 */
export function savepointTarget(storage: Storage, dir: string): ChunkTarget {
  return {
    storage,
    kind: "savepoint",
    dir,
    keyed(uid, state, range) {
      const ref = savepointChunkPath(uid, state, range);
      return { path: joinRelative(dir, ref), ref };
    },
    operator(uid, state, subtask) {
      const ref = savepointChunkPath(uid, state, subtask);
      return { path: joinRelative(dir, ref), ref };
    },
  };
}

/** What {@link assembleManifest} needs. */
export interface ManifestInput {
  readonly kind: "checkpoint" | "savepoint";
  readonly id: string;
  readonly checkpointId: number;
  readonly job: string;
  readonly maxParallelism: number;
  /** Operators in graph order: uid, name, parallelism. */
  readonly operators: readonly { uid: string; name: string; parallelism: number }[];
  readonly snapshots: readonly TaskSnapshot[];
  /** Checkpoints: the chunks of the previous completed checkpoint, per `uid\0state` (keyed states). */
  readonly previous?: ReadonlyMap<string, readonly ChunkRef[]>;
  readonly metadata?: Record<string, string>;
}

/**
 * The key of a state in `previous` maps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stateKey } from "./checkpoint.ts";
 * assert.equal(stateKey("sessions", "count") === stateKey("sessions", "count"), true);
 * ```
 */
export function stateKey(uid: string, state: string): string {
  return `${uid}\u0000${state}`;
}

function byPosition(a: ChunkRef, b: ChunkRef): number {
  return a.order - b.order || (a.keyGroupRange?.start ?? 0) - (b.keyGroupRange?.start ?? 0) || (a.subtask ?? 0) - (b.subtask ?? 0);
}

/**
 * Builds the manifest of a snapshot from what every subtask wrote.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assembleManifest } from "./checkpoint.ts";
 * const m = assembleManifest({ kind: "savepoint", id: "sp-1", checkpointId: 1, job: "j", maxParallelism: 128, operators: [], snapshots: [] });
 * assert.equal(m.chunkRoot, ".");
 * ```
 */
export function assembleManifest(input: ManifestInput): Manifest {
  const operators: OperatorSnapshot[] = [];
  for (const op of input.operators) {
    const parts = input.snapshots.filter((s) => s.uid === op.uid);
    const states = new Map<string, StateSnapshot>();
    for (const snap of parts) {
      for (const p of snap.states) {
        let st = states.get(p.name);
        if (!st) {
          st = {
            name: p.name,
            kind: p.layout.kind,
            keyed: p.keyed,
            ...(p.layout.keyType !== undefined ? { keyType: p.layout.keyType } : {}),
            ...(p.layout.userKeyType !== undefined ? { userKeyType: p.layout.userKeyType } : {}),
            ...(p.layout.namespaced ? { namespaced: true } : {}),
            value: p.layout.value,
            schemaVersion: p.schemaVersion,
            ...(p.redistribution !== undefined ? { redistribution: p.redistribution } : {}),
            chunks: [],
          };
          states.set(p.name, st);
        }
        for (const c of p.chunks) st.chunks.push(c);
      }
    }
    if (states.size === 0) continue;
    for (const st of states.values()) {
      if (st.keyed && input.kind === "checkpoint") {
        st.chunks = pruneChain([...(input.previous?.get(stateKey(op.uid, st.name)) ?? []), ...st.chunks], input.maxParallelism);
      } else st.chunks.sort(byPosition);
    }
    operators.push({ uid: op.uid, name: op.name, parallelism: op.parallelism, states: [...states.values()] });
  }
  return buildManifest({ kind: input.kind, id: input.id, checkpointId: input.checkpointId, job: input.job, maxParallelism: input.maxParallelism, metadata: input.metadata }, operators);
}

/**
 * The keyed-state chunks of a manifest, per `uid\0state` (see {@link stateKey}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { assembleManifest, chunksByState } from "./checkpoint.ts";
 * const m = assembleManifest({ kind: "checkpoint", id: "chk-000001", checkpointId: 1, job: "j", maxParallelism: 128, operators: [], snapshots: [] });
 * assert.equal(chunksByState(m).size, 0);
 * ```
 */
export function chunksByState(manifest: Manifest): Map<string, ChunkRef[]> {
  const out = new Map<string, ChunkRef[]>();
  for (const op of manifest.operators) for (const st of op.states) if (st.keyed) out.set(stateKey(op.uid, st.name), st.chunks.slice());
  return out;
}
