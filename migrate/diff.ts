/**
 * `diff`: what changed between two snapshots, per operator and state.
 *
 * @module
 */
import { IncompatibleSnapshotError } from "../format/errors.ts";
import type { KeyGroupRange } from "../format/key_group.ts";
import type { StateSnapshot } from "../format/manifest.ts";
import type { ValueEncoding } from "../format/state_layout.ts";
import { scratchInputs, type Snapshot } from "../snapshot/read.ts";
import { withSnapshot } from "./_open.ts";
import { type KeyId, keyIdentity, keyText, rowIdentity } from "../format/key_identity.ts";
import { rowDensity } from "../snapshot/chain.ts";
import { type RangeBatch, type Rows, valuesEqual } from "../snapshot/rows.ts";
import { type ChunkInput, readOperatorItems, shapeOf, snapshotInputs, sweep } from "../snapshot/sweep.ts";
import type { Progress } from "./progress.ts";

/** A changed row in a diff sample. */
export interface ChangedSample {
  /** The key (with namespace / user key where used), as text. */
  key: string;
  /** Its value in `a`, as text. */
  a: string;
  /** Its value in `b`, as text. */
  b: string;
}

/** How one state differs. */
export interface StateDiff {
  /** Operator uid. */
  operator: string;
  /** State name. */
  state: string;
  /** Only in `a`, only in `b`, in both with differences, or identical rows and schema. */
  status: "removed" | "added" | "changed" | "same";
  /** Rows only in `b`. */
  added: number;
  /** Rows only in `a`. */
  removed: number;
  /** Rows in both with different values. */
  changed: number;
  /** Rows in both with equal values. */
  unchanged: number;
  /** A few examples of each. */
  samples: { added: string[]; removed: string[]; changed: ChangedSample[] };
  /** Schema differences (kind, key type, value encoding, schema version), when any. */
  schema?: { fromVersion: number; toVersion: number; from: ValueEncoding; to: ValueEncoding; details: string[] };
}

/** What {@link diff} returns. */
export interface SnapshotDiff {
  /** Location of `a`. */
  a: string;
  /** Location of `b`. */
  b: string;
  /** Job-level differences (maxParallelism, job name). */
  job: string[];
  /** Operators only in one side, or with another parallelism. */
  operators: { uid: string; status: "removed" | "added" | "both"; parallelism?: { a: number; b: number } }[];
  /** Every state of either side. */
  states: StateDiff[];
  /** Whether rows and schemas are the same everywhere. */
  identical: boolean;
}

/** Options of {@link diff}. */
export interface DiffOptions {
  /** Examples kept per kind (default 5). */
  sample?: number;
  /** Rows per batch (default 16,384). */
  batchRows?: number;
  /** When maxParallelism differs, states up to this many rows are compared in memory (default 2,000,000). */
  maxInMemoryRows?: number;
  /** Called after each batch. */
  onProgress?: (p: Progress) => void;
  /** Cancels between batches. */
  signal?: AbortSignal;
}

function layoutText(st: StateSnapshot): string {
  return JSON.stringify({ kind: st.kind, keyType: st.keyType, userKeyType: st.userKeyType, namespaced: st.namespaced === true, value: st.value });
}

function schemaDiff(a: StateSnapshot, b: StateSnapshot): StateDiff["schema"] {
  const details: string[] = [];
  if (a.kind !== b.kind) details.push(`kind ${a.kind} → ${b.kind}`);
  if (a.keyType !== b.keyType) details.push(`keyType ${a.keyType} → ${b.keyType}`);
  if (a.userKeyType !== b.userKeyType) details.push(`userKeyType ${a.userKeyType} → ${b.userKeyType}`);
  if ((a.namespaced === true) !== (b.namespaced === true)) details.push(`namespaced ${a.namespaced === true} → ${b.namespaced === true}`);
  if (JSON.stringify(a.value) !== JSON.stringify(b.value)) details.push(`value ${JSON.stringify(a.value)} → ${JSON.stringify(b.value)}`);
  if (a.schemaVersion !== b.schemaVersion) details.push(`schemaVersion ${a.schemaVersion} → ${b.schemaVersion}`);
  return details.length ? { fromVersion: a.schemaVersion, toVersion: b.schemaVersion, from: a.value, to: b.value, details } : undefined;
}

function rowLabel(rows: Rows, i: number): string {
  let s = keyText(rows.keys?.[i]);
  if (rows.namespaces) s += ` ns=${JSON.stringify(rows.namespaces[i])}`;
  if (rows.userKeys) s += ` ukey=${keyText(rows.userKeys[i])}`;
  return s;
}

class Tally {
  added = 0;
  removed = 0;
  changed = 0;
  unchanged = 0;
  samples: StateDiff["samples"] = { added: [], removed: [], changed: [] };
  constructor(readonly sample: number) {}

  compare(a: Rows, b: Rows, namespaced: boolean, map: boolean): void {
    const index = new Map<KeyId, number>();
    for (let i = 0; i < a.length; i++) index.set(rowIdentity(a.keys?.[i], a.namespaces?.[i], a.userKeys?.[i], namespaced, map), i);
    const matched = new Uint8Array(a.length);
    for (let j = 0; j < b.length; j++) {
      const i = index.get(rowIdentity(b.keys?.[j], b.namespaces?.[j], b.userKeys?.[j], namespaced, map));
      if (i === undefined) {
        if (this.added++ < this.sample) this.samples.added.push(rowLabel(b, j));
        continue;
      }
      matched[i] = 1;
      if (valuesEqual(a.values[i], b.values[j])) this.unchanged++;
      else if (this.changed++ < this.sample) this.samples.changed.push({ key: rowLabel(b, j), a: keyText(a.values[i], 200), b: keyText(b.values[j], 200) });
    }
    for (let i = 0; i < a.length; i++) if (!matched[i] && this.removed++ < this.sample) this.samples.removed.push(rowLabel(a, i));
  }
}

/** Pulls the batches of one window out of a sweep, concatenated. */
class WindowReader {
  #it: AsyncIterator<RangeBatch>;
  #next: RangeBatch | undefined;
  #done = false;
  constructor(gen: AsyncGenerator<RangeBatch>) {
    this.#it = gen;
  }
  /**
   * The batches of window `window`, which ends at key group `end`. It stops at the batch that completes
   * the window instead of reading the next one ahead: that would open the next window's chunks while
   * this one's are still held.
   */
  async take(window: number, end: number): Promise<Rows[]> {
    const out: Rows[] = [];
    for (;;) {
      if (!this.#next && !this.#done) {
        const r = await this.#it.next();
        if (r.done) this.#done = true;
        else this.#next = r.value;
      }
      if (!this.#next || this.#next.window !== window) return out;
      out.push(this.#next.rows);
      const last = this.#next.range.end >= end;
      this.#next = undefined;
      if (last) return out;
    }
  }
}

function concatRows(parts: Rows[]): Rows {
  if (parts.length === 1) return parts[0];
  const cat = <T>(pick: (r: Rows) => T[] | undefined): T[] | undefined => (parts[0] && pick(parts[0]) ? parts.flatMap((r) => pick(r) ?? []) : undefined);
  return { length: parts.reduce((n, r) => n + r.length, 0), keys: cat((r) => r.keys), namespaces: cat((r) => r.namespaces), userKeys: cat((r) => r.userKeys), values: cat((r) => r.values) ?? [] };
}

/** Windows of about `batchRows` rows over both states' chunks. */
function windowsFor(inputs: ChunkInput[], maxP: number, batchRows: number): KeyGroupRange[] {
  const density = rowDensity(inputs.map((c) => ({ keyGroupRange: c.range, rows: c.rows })), maxP);
  const out: KeyGroupRange[] = [];
  let start = 0;
  let acc = 0;
  for (let g = 0; g < maxP; g++) {
    acc += density[g];
    if (acc >= batchRows || g === maxP - 1) {
      out.push({ start, end: g });
      start = g + 1;
      acc = 0;
    }
  }
  return out;
}

async function diffKeyed(a: Snapshot, sa: StateSnapshot, b: Snapshot, sb: StateSnapshot, tally: Tally, opts: DiffOptions): Promise<void> {
  const ia = snapshotInputs(a, sa);
  const ib = snapshotInputs(b, sb);
  const namespaced = sa.namespaced === true || sb.namespaced === true;
  const map = sa.kind === "map";
  const batchRows = opts.batchRows ?? 16_384;
  const maxA = a.manifest.maxParallelism;
  const maxB = b.manifest.maxParallelism;
  if (maxA !== maxB) {
    const limit = opts.maxInMemoryRows ?? 2_000_000;
    const rows = [...ia, ...ib].reduce((n, c) => n + c.rows, 0);
    if (rows > limit) {
      throw new IncompatibleSnapshotError(`cannot diff ${sa.name}: maxParallelism differs (${maxA} vs ${maxB}) and the states hold ${rows} rows, over the in-memory limit ${limit}; rekey one snapshot to the other's maxParallelism first`);
    }
    const all = async (s: Snapshot, st: StateSnapshot, inputs: ChunkInput[]) => {
      const parts: Rows[] = [];
      for await (const batch of sweep(inputs, [{ start: 0, end: s.manifest.maxParallelism - 1 }], { batchRows, namespaced: st.namespaced === true, map, signal: opts.signal })) parts.push(batch.rows);
      return concatRows(parts.length ? parts : [{ length: 0, keys: [], values: [] }]);
    };
    tally.compare(await all(a, sa, ia), await all(b, sb, ib), namespaced, map);
    return;
  }
  const windows = windowsFor([...ia, ...ib], maxA, batchRows);
  // Both sides read chunks into reused buffers, each handed back once its rows are compared: the two
  // sides hold their current chunks and leave no chunk-sized garbage.
  const xa = scratchInputs(a, sa);
  const xb = scratchInputs(b, sb);
  try {
    const ra = new WindowReader(sweep(xa.inputs, windows, { batchRows, namespaced: sa.namespaced === true, map, signal: opts.signal }));
    const rb = new WindowReader(sweep(xb.inputs, windows, { batchRows, namespaced: sb.namespaced === true, map, signal: opts.signal }));
    for (let w = 0; w < windows.length; w++) {
      // A side hands back the chunks it is past just before it reads on, so the buffer it frees is the one
      // its next chunk is read into (freed together, the pool might keep only one of the two).
      xa.passed(windows[w].start);
      const pa = await ra.take(w, windows[w].end);
      xb.passed(windows[w].start);
      const pb = await rb.take(w, windows[w].end);
      tally.compare(concatRows(pa.length ? pa : [{ length: 0, values: [] }]), concatRows(pb.length ? pb : [{ length: 0, values: [] }]), namespaced, map);
    }
  } finally {
    await Promise.all([xa.release(), xb.release()]);
  }
}

async function diffOperatorState(a: Snapshot, sa: StateSnapshot, b: Snapshot, sb: StateSnapshot, tally: Tally): Promise<void> {
  // Operator state is a multiset of items: compare by value, ignoring which subtask holds each.
  const count = async (s: Snapshot, st: StateSnapshot) => {
    const m = new Map<KeyId, { n: number; v: unknown }>();
    for (const v of (await readOperatorItems(s, st)).values) {
      const id = keyIdentity(v);
      const e = m.get(id);
      if (e) e.n++;
      else m.set(id, { n: 1, v });
    }
    return m;
  };
  const ca = await count(a, sa);
  const cb = await count(b, sb);
  for (const [id, { n, v }] of cb) {
    const na = ca.get(id)?.n ?? 0;
    const common = Math.min(n, na);
    tally.unchanged += common;
    for (let i = common; i < n; i++) if (tally.added++ < tally.sample) tally.samples.added.push(keyText(v, 200));
  }
  for (const [id, { n, v }] of ca) {
    const nb = cb.get(id)?.n ?? 0;
    for (let i = nb; i < n; i++) if (tally.removed++ < tally.sample) tally.samples.removed.push(keyText(v, 200));
  }
}

/**
 * Compares two snapshots (any two: checkpoints, savepoints, before and after a migration): per operator
 * and state, the keys added, removed and changed (counts and a small sample) and schema changes. Keyed
 * states are compared key-group range by range in bounded memory when both have the same maxParallelism.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, diff, rekey } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:diff-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:diff-example/savepoints/sp-1");
 * await rekey(sp.location, "memory:diff-example/savepoints/p3", { parallelism: 3 });
 * const d = await diff(sp.location, "memory:diff-example/savepoints/p3");
 * assert.equal(d.identical, true); // the same rows, at another parallelism
 * assert.deepEqual(d.states.map((s) => `${s.operator}/${s.state} ${s.status}`).sort(), ["counter/counts same", "events/positions same", "out/pending-commits same"]);
 * ```
 */
export async function diff(a: string | Snapshot, b: string | Snapshot, options: DiffOptions = {}): Promise<SnapshotDiff> {
  return await withSnapshot(a, (sa) => withSnapshot(b, (sb) => diffOpened(sa, sb, options)));
}

async function diffOpened(a: Snapshot, b: Snapshot, options: DiffOptions): Promise<SnapshotDiff> {
  const ma = a.manifest;
  const mb = b.manifest;
  const job: string[] = [];
  if (ma.maxParallelism !== mb.maxParallelism) job.push(`maxParallelism ${ma.maxParallelism} → ${mb.maxParallelism}`);
  if (ma.job !== mb.job) job.push(`job ${JSON.stringify(ma.job)} → ${JSON.stringify(mb.job)}`);
  const uids = [...new Set([...ma.operators.map((o) => o.uid), ...mb.operators.map((o) => o.uid)])];
  const operators: SnapshotDiff["operators"] = [];
  const states: StateDiff[] = [];
  const sample = options.sample ?? 5;
  for (const uid of uids) {
    const oa = ma.operators.find((o) => o.uid === uid);
    const ob = mb.operators.find((o) => o.uid === uid);
    operators.push(oa && ob ? { uid, status: "both", parallelism: { a: oa.parallelism, b: ob.parallelism } } : { uid, status: oa ? "removed" : "added" });
    const names = [...new Set([...(oa?.states ?? []).map((s) => s.name), ...(ob?.states ?? []).map((s) => s.name)])];
    for (const name of names) {
      options.signal?.throwIfAborted();
      const sa = oa?.states.find((s) => s.name === name);
      const sb = ob?.states.find((s) => s.name === name);
      const tally = new Tally(sample);
      const rows = (s: StateSnapshot) => s.chunks.filter((c) => c.type === "base").reduce((n, c) => n + c.rows, 0);
      if (!sa || !sb) {
        const only = (sa ?? sb)!;
        const d: StateDiff = { operator: uid, state: name, status: sa ? "removed" : "added", added: sa ? 0 : rows(only), removed: sa ? rows(only) : 0, changed: 0, unchanged: 0, samples: tally.samples };
        states.push(d);
        continue;
      }
      const schema = schemaDiff(sa, sb);
      if (sa.keyed !== sb.keyed || (sa.keyed && layoutText(sa) !== layoutText(sb) && (sa.kind !== sb.kind || sa.keyType !== sb.keyType))) {
        // Different kinds of rows: count everything as removed and added.
        states.push({ operator: uid, state: name, status: "changed", added: rows(sb), removed: rows(sa), changed: 0, unchanged: 0, samples: tally.samples, ...(schema ? { schema } : {}) });
        continue;
      }
      if (sa.keyed) await diffKeyed(a, sa, b, sb, tally, options);
      else await diffOperatorState(a, sa, b, sb, tally);
      const same = tally.added === 0 && tally.removed === 0 && tally.changed === 0 && !schema;
      const d: StateDiff = { operator: uid, state: name, status: same ? "same" : "changed", added: tally.added, removed: tally.removed, changed: tally.changed, unchanged: tally.unchanged, samples: tally.samples };
      if (schema) d.schema = schema;
      states.push(d);
    }
  }
  const identical = job.length === 0 && states.every((s) => s.status === "same") && operators.every((o) => o.status === "both");
  return { a: a.location, b: b.location, job, operators, states, identical };
}
