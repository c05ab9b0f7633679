/**
 * A subtask's snapshot in two parts, as Flink's heap backend takes it: the synchronous part captures the
 * state at the barrier (a consistent copy, see `_capture_copy.ts`) and moves the incremental chain past
 * it; the asynchronous part encodes the captured rows and writes the chunks while the subtask goes on
 * processing records. Private to the runtime (the leading underscore); `Task.snapshot` drives it.
 *
 * @module
 */
import { setImmediate as yieldToLoop } from "node:timers";
import { type EncodedChunk, encodeChunk } from "../format/encode_chunk.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import type { StateLayout, ValueEncoding } from "../format/state_layout.ts";
import { writeChunk } from "../snapshot/write.ts";
import type { Barrier } from "./channel.ts";
import type { KeyedStateBackend } from "./keyed_backend.ts";
import type { OperatorStateStore } from "./operator_state.ts";
import { advanceChain, type ChainSettings, chunkKind } from "./_chain_policy.ts";
import { copyValues, valueCopierOf } from "./_capture_copy.ts";
import type { ChunkTarget, StatePart, TaskSnapshot } from "./_tasks.ts";

type Rows = Parameters<typeof encodeChunk>[1];

/** One chunk of a captured snapshot: rows still to encode (keyed state) or bytes already encoded (operator state). */
interface CapturedChunk {
  readonly part: StatePart;
  readonly layout: StateLayout;
  rows: Rows | null;
  readonly encoded: EncodedChunk | null;
  readonly loc: { path: string; ref: string };
  readonly type: "base" | "delta";
  readonly keyGroupRange?: KeyGroupRange;
  readonly subtask?: number;
  /** Ends the table's copy-on-access for these rows (they are encoded or dropped); null: they were copied. */
  release: (() => void) | null;
}

/** What the synchronous part of a subtask's snapshot captured: everything the asynchronous part needs. */
export interface CapturedSnapshot {
  readonly barrier: Barrier;
  readonly target: ChunkTarget;
  readonly compression: "none" | "deflate";
  readonly chunks: CapturedChunk[];
  /** Filled in as the chunks are written. */
  readonly snapshot: TaskSnapshot;
}

/** Whether a table's capture already copied its values (see `captureSnapshot`); never reads `values`. */
function capturedAsCopy(rows: object): boolean {
  const r = rows as { valueColumns?: unknown; valuesCopied?: boolean };
  return r.valueColumns !== undefined || r.valuesCopied === true;
}

/** What a subtask gives the capture. */
export interface CaptureInput {
  readonly uid: string;
  readonly index: number;
  readonly keyed: KeyedStateBackend | null;
  readonly opState: OperatorStateStore;
  readonly chain: ChainSettings | undefined;
}

/**
 * The synchronous part: captures every state of a subtask for `barrier`. Keyed rows that user code could
 * still change are copied now, or on access by the table until they are encoded (the chunk is encoded later); the dirty sets are cleared and the chains
 * advanced here, so changes after the barrier belong to the next checkpoint. Operator state (source
 * positions, a sink's pending transactions: a few rows) is encoded now, so anything user code keeps a
 * reference to is fixed at the barrier exactly as before.
 */
export function captureSnapshot(t: CaptureInput, barrier: Barrier, target: ChunkTarget): CapturedSnapshot {
  const savepoint = barrier.kind === "savepoint";
  const compression = savepoint ? "none" : t.chain?.compression ?? "none";
  const states: StatePart[] = [];
  const chunks: CapturedChunk[] = [];
  const kb = t.keyed;
  if (kb) {
    const range = kb.range;
    for (const table of kb.all()) {
      const part: StatePart = { name: table.desc.name, keyed: true, layout: table.layout, schemaVersion: table.desc.schemaVersion, chunks: [], rows: 0 };
      states.push(part);
      let rows;
      let type: "base" | "delta";
      if (savepoint) {
        rows = table.captureAll(range.start);
        type = "base";
        if (rows.length === 0) continue;
      } else {
        type = chunkKind(table.chain, t.chain!);
        rows = type === "base" ? table.captureAll(range.start) : table.captureDirty(range.start);
        table.clearDirty();
        if (!advanceChain(table.chain, type, rows.length)) continue;
      }
      // Values held by reference must not change before they are encoded. A table whose capture already
      // copied them says so: values given as columns (`valueColumns`), or `valuesCopied` (values built
      // fresh from columns by the capture). A value-like table copies on access instead (a value is copied
      // only if user code reaches it before the encode: a full capture of 1M struct values spent most of
      // its time allocating copies, then collecting them). Any other table's values are copied here.
      let release: (() => void) | null = null;
      if (!capturedAsCopy(rows)) {
        const copy = valueCopierOf(table.layout);
        if (copy !== null && (release = table.holdCaptured(copy)) === null) copyValues(rows.values, rows.length, copy);
      }
      part.rows += rows.length;
      // A base is authoritative for the whole subtask range (it resets key groups that became empty).
      chunks.push({ part, layout: table.layout, rows, encoded: null, loc: target.keyed(t.uid, table.desc.name, range, type), type, keyGroupRange: type === "base" ? range : undefined, release });
    }
  }
  for (const e of t.opState.all()) {
    const layout: StateLayout = { kind: "operator-list", value: e.desc.value as ValueEncoding };
    const part: StatePart = { name: e.desc.name, keyed: false, layout, schemaVersion: e.desc.schemaVersion, redistribution: e.desc.redistribution, chunks: [], rows: 0 };
    states.push(part);
    const items = e.list.items;
    if (items.length === 0) continue;
    const encoded = encodeChunk(layout, { length: items.length, values: items.slice() }, { compression, state: part.name });
    part.rows += items.length;
    chunks.push({ part, layout, rows: null, encoded, loc: target.operator(t.uid, e.desc.name, t.index), type: "base", subtask: t.index, release: null });
  }
  const range = kb ? { start: kb.range.start, end: kb.range.end } : undefined;
  return { barrier, target, compression, chunks, snapshot: { uid: t.uid, subtask: t.index, range, states } };
}

/**
 * A seam for tests (private module): awaited at the start of every asynchronous part, after the capture
 * and before anything is encoded, so a test can change state while a part waits, without timing.
 */
export const asyncPhaseHooks: { beforeEncode?: (at: { readonly id: number; readonly kind: "checkpoint" | "savepoint"; readonly uid: string; readonly subtask: number }) => Promise<void> | void } = {};

/**
 * The asynchronous part: encodes and writes the captured chunks, one chunk per turn of the event loop so
 * records keep flowing between them. `stopped()` is asked before every encode and write: a reason (the
 * job died, the checkpoint was aborted) ends the part without writing anything more. Settles only once
 * every write it started settled.
 */
export async function writeSnapshot(c: CapturedSnapshot, stopped: () => string | undefined): Promise<TaskSnapshot> {
  const writes: Promise<unknown>[] = [];
  let failure: { error: unknown } | undefined;
  try {
    const hold = asyncPhaseHooks.beforeEncode?.({ id: c.barrier.id, kind: c.barrier.kind, uid: c.snapshot.uid, subtask: c.snapshot.subtask });
    if (hold) await hold;
    for (const ch of c.chunks) {
      await new Promise<void>((r) => yieldToLoop(r));
      if (failure) break; // a write failed: the snapshot is lost, encode nothing more
      const why = stopped();
      if (why !== undefined) throw new Error(`Cannot finish ${c.barrier.kind} ${c.barrier.id} of ${JSON.stringify(c.snapshot.uid)} subtask ${c.snapshot.subtask} as ${why}`);
      let chunk = ch.encoded;
      if (chunk === null) {
        chunk = encodeChunk(ch.layout, ch.rows!, { compression: c.compression, state: ch.part.name });
        ch.rows = null; // the capture's copy is no longer needed
        ch.release?.();
        ch.release = null;
        const again = stopped();
        if (again !== undefined) throw new Error(`Cannot finish ${c.barrier.kind} ${c.barrier.id} of ${JSON.stringify(c.snapshot.uid)} subtask ${c.snapshot.subtask} as ${again}`);
      }
      const part = ch.part;
      writes.push(
        writeChunk(c.target.storage, ch.loc.path, chunk, { type: ch.type, order: c.barrier.id, subtask: ch.subtask, keyGroupRange: ch.keyGroupRange }, ch.loc.ref).then((ref) => {
          part.chunks.push(ref);
        }, (error) => {
          failure ??= { error };
        }),
      );
    }
  } catch (e) {
    failure ??= { error: e };
  } finally {
    // Rows never encoded (the part stopped early) hold nothing back any more.
    for (const ch of c.chunks) {
      ch.release?.();
      ch.release = null;
    }
  }
  await Promise.all(writes);
  if (failure) throw failure.error;
  return c.snapshot;
}
