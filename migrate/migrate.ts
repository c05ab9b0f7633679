/**
 * `migrate`: apply versioned schema migrations to a snapshot, writing a new savepoint (or, with
 * `dryRun`, only returning the plan).
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { MigrationError, SchemaViolationError } from "../format/errors.ts";
import type { FieldType, StateLayout } from "../format/state_layout.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { columnMap, stepLayout, stepValue } from "./_apply.ts";
import { withSnapshot } from "./_open.ts";
import { anySignal, viaWorkers } from "./_workers.ts";
import { keyText } from "../format/key_identity.ts";
import { RowBuffer, type Rows } from "../snapshot/rows.ts";
import { type OperatorPlan, rewrite, type StatePlan, type WriteReport } from "./_rewrite.ts";
import { layoutOf, type WriteOptions } from "./_sink.ts";
import { valueChecker } from "../format/value_check.ts";
import { describeStep, isMigrations, type Migrations, type RowContext, type StateStep } from "./migrations.ts";

/** Options of {@link migrate}. */
export interface MigrateOptions extends WriteOptions {
  /** Only plan: read manifests, check every step applies, write nothing. */
  dryRun?: boolean;
  /**
   * The module `migrations` were loaded from (a URL or specifier): worker threads (`workers`) import it
   * themselves, since migrations holding functions cannot be sent to a thread.
   */
  migrationsModule?: string | URL;
}

/** One state in a migration plan. */
export interface PlannedState {
  /** Operator uid in the source. */
  operator: string;
  /** State name in the source. */
  state: string;
  /** Operator uid in the output. */
  toOperator: string;
  /** State name in the output. */
  toState: string;
  /** `migrate` (steps run), `copy` (unchanged) or `drop`. */
  action: "migrate" | "copy" | "drop";
  /** Schema version in the source. */
  fromVersion: number;
  /** Schema version in the output. */
  toVersion: number;
  /** The steps that run, described. */
  steps: string[];
  /** Rows (manifest row counts; for checkpoint chains, deltas included). */
  rows: number;
  /** Stored bytes in the source. */
  bytes: number;
  /** Estimated stored bytes in the output. */
  estimatedBytes: number;
}

/** What {@link migrate} would do (and, unless a dry run, did). */
export interface MigrationPlan {
  /** The source snapshot. */
  source: string;
  /** Every state of the source. */
  states: PlannedState[];
  /** Every operator of the source and what becomes of it. */
  operators: { uid: string; toUid: string; action: "keep" | "rename" | "drop" }[];
  /** Rows in states that run steps. */
  rows: number;
  /** Estimated stored bytes of the output. */
  estimatedBytes: number;
}

/** What {@link migrate} returns. */
export interface MigrateReport {
  /** The plan. */
  plan: MigrationPlan;
  /** Whether nothing was written. */
  dryRun: boolean;
  /** The savepoint written (not on a dry run). */
  written?: WriteReport;
}

interface Resolved {
  plan: MigrationPlan;
  operators: OperatorPlan[];
}

function width(t: FieldType): number {
  if (typeof t === "string") {
    return ({ bool: 1, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, float32: 4, dictionary: 4, int64: 8, uint64: 8, float64: 8, timestamp: 8, utf8: 16, binary: 16 } as Record<string, number>)[t] ?? 8;
  }
  if ("struct" in t) return t.struct.reduce((n, f) => n + width(f.type) + (f.nullable ? 0.125 : 0), 0);
  return 4 + 3 * width(t.list);
}

function rowWidth(l: StateLayout): number {
  const value = l.value.encoding === "arrow" ? width(l.value.type) : 24 + Object.keys((l.value.jsonSchema?.properties as object | undefined) ?? {}).length * 8;
  return 2 + 16 + (l.namespaced ? 8 : 0) + (l.kind === "map" ? 16 : 0) + value;
}

function chainNames(key: string, chain: readonly StateStep[]): { uid: string; names: string[] }[] {
  // Every split of "uid/state" at a "/" is a candidate (uids and state names may contain "/").
  const out: { uid: string; names: string[] }[] = [];
  for (let i = key.indexOf("/"); i > 0; i = key.indexOf("/", i + 1)) {
    const names = [key.slice(i + 1)];
    for (const s of chain) names.push(s.op === "renameState" ? s.to : names[names.length - 1]);
    out.push({ uid: key.slice(0, i), names });
  }
  return out;
}

function resolve(snap: Snapshot, m: Migrations): Resolved {
  const ops = snap.manifest.operators;
  const current = new Map<string, string | null>(ops.map((o) => [o.uid, o.uid]));
  const droppedStates = new Set<string>();
  const aliases = new Map<string, Set<string>>(ops.map((o) => [o.uid, new Set([o.uid])]));
  const known = () => [...current.values()].filter((u): u is string => u !== null);
  for (const step of m.operators) {
    if (step.op === "renameOperator") {
      const src = ops.find((o) => current.get(o.uid) === step.from);
      if (!src) {
        const done = ops.find((o) => current.get(o.uid) === step.to);
        if (done) {
          aliases.get(done.uid)!.add(step.from); // already renamed in this snapshot: chains may use the old uid
          continue;
        }
        throw new MigrationError(`renameOperator(${JSON.stringify(step.from)}, ${JSON.stringify(step.to)}): the snapshot has no operator ${JSON.stringify(step.from)} (operators: ${known().join(", ") || "none"})`);
      }
      if (known().includes(step.to)) throw new MigrationError(`renameOperator(${JSON.stringify(step.from)}, ${JSON.stringify(step.to)}): operator ${JSON.stringify(step.to)} already exists; drop it first`);
      current.set(src.uid, step.to);
      aliases.get(src.uid)!.add(step.to);
    } else if (step.op === "dropOperator") {
      for (const o of ops) if (o.uid === step.uid || current.get(o.uid) === step.uid) current.set(o.uid, null);
    } else {
      for (const o of ops) if (o.uid === step.uid || current.get(o.uid) === step.uid) droppedStates.add(`${o.uid}\u0000${step.state}`);
    }
  }
  const used = new Set<string>();
  const states: PlannedState[] = [];
  const operators: OperatorPlan[] = [];
  for (const op of ops) {
    const outUid = current.get(op.uid) ?? null;
    const statePlans: StatePlan[] = [];
    for (const st of op.states) {
      const rows = st.chunks.reduce((n, c) => n + c.rows, 0);
      const bytes = st.chunks.reduce((n, c) => n + c.bytes, 0);
      const base = { operator: op.uid, state: st.name, toOperator: outUid ?? op.uid, fromVersion: st.schemaVersion, rows, bytes };
      if (outUid === null || droppedStates.has(`${op.uid}\u0000${st.name}`)) {
        states.push({ ...base, toState: st.name, action: "drop", toVersion: st.schemaVersion, steps: [], estimatedBytes: 0 });
        continue;
      }
      // Find the chain of this state: its uid (old or new) and the name it has at its version.
      let chain: readonly StateStep[] | undefined;
      for (const [key, steps] of Object.entries(m.states)) {
        for (const cand of chainNames(key, steps)) {
          if (!aliases.get(op.uid)!.has(cand.uid)) continue;
          const at = Math.min(st.schemaVersion, cand.names.length) - 1;
          if (cand.names[at] === st.name) {
            if (chain && chain !== steps) throw new MigrationError(`state ${op.uid}/${st.name} matches two migration chains; keep one`);
            chain = steps;
            used.add(key);
          }
        }
      }
      const where = `${op.uid}/${st.name}`;
      const newest = chain ? chain.length + 1 : st.schemaVersion;
      if (chain && st.schemaVersion > newest) {
        throw new MigrationError(`state ${where} is at schema version ${st.schemaVersion}, newer than the migrations know (up to ${newest}); add its steps or use the migrations it was written with`);
      }
      const todo = chain ? chain.slice(st.schemaVersion - 1) : [];
      let layout = layoutOf(st);
      let name = st.name;
      const fns: { fn: (v: unknown, c: RowContext) => unknown; name: string; version: number }[] = [];
      todo.forEach((step, i) => {
        const f = stepValue(step, layout, `${op.uid}/${name}`);
        if (f) fns.push({ fn: f, name, version: st.schemaVersion + i });
        layout = stepLayout(step, layout, `${op.uid}/${name} (version ${st.schemaVersion + i} → ${st.schemaVersion + i + 1})`);
        if (step.op === "renameState") name = step.to;
      });
      const estimatedBytes = todo.length ? Math.round((bytes * rowWidth(layout)) / rowWidth(layoutOf(st))) : bytes;
      states.push({ ...base, toOperator: outUid, toState: name, action: todo.length ? "migrate" : "copy", toVersion: newest, steps: todo.map(describeStep), estimatedBytes });
      const sp: StatePlan = { src: st, name, layout, schemaVersion: newest };
      // Steps that are column operations rewrite chunks at the Arrow level (plain base sets); the row
      // transform below stays for chains, where rows are merged anyway.
      if (st.keyed && todo.length) sp.columns = columnMap(layoutOf(st), todo);
      if (fns.length) {
        const check = valueChecker(layout);
        const outWhere = `${outUid}/${name}`;
        const apply = (value: unknown, key: unknown, ns: string | undefined, ukey: unknown): unknown => {
          let v = value;
          for (const f of fns) {
            v = f.fn(v, { operator: op.uid, state: f.name, key, namespace: ns, userKey: ukey, fromVersion: f.version });
            if (v === undefined) return undefined;
          }
          const why = check?.(v);
          if (why) throw new SchemaViolationError(outWhere, keyText(key), `${why} (after migrating to schema version ${newest})`);
          return v;
        };
        if (st.keyed) {
          sp.transform = (rows: Rows) => {
            const buf = new RowBuffer(st.namespaced === true, st.kind === "map");
            for (let i = 0; i < rows.length; i++) {
              const v = apply(rows.values[i], rows.keys![i], rows.namespaces?.[i], rows.userKeys?.[i]);
              if (v !== undefined) buf.push(rows.keyGroups![i], rows.keys![i], rows.namespaces?.[i], rows.userKeys?.[i], v);
            }
            return buf.take();
          };
        } else {
          sp.transformItem = (v) => apply(v, undefined, undefined, undefined);
        }
      }
      statePlans.push(sp);
    }
    if (outUid !== null) operators.push({ src: op, uid: outUid, parallelism: op.parallelism, states: statePlans });
  }
  const unused = Object.keys(m.states).filter((k) => !used.has(k));
  if (unused.length) {
    const have = ops.flatMap((o) => o.states.map((s) => `${o.uid}/${s.name} (v${s.schemaVersion})`));
    throw new MigrationError(`migrations name ${unused.map((k) => JSON.stringify(k)).join(", ")}, which snapshot ${snap.location} does not have at a matching version (states: ${have.join(", ") || "none"})`);
  }
  const names = new Set<string>();
  for (const op of operators) {
    for (const sp of op.states) {
      const id = `${op.uid}/${sp.name}`;
      if (names.has(id)) throw new MigrationError(`two states would be named ${id} after migrating; rename or drop one`);
      names.add(id);
    }
  }
  return {
    operators,
    plan: {
      source: snap.location,
      states,
      operators: ops.map((o) => {
        const to = current.get(o.uid) ?? null;
        return { uid: o.uid, toUid: to ?? o.uid, action: to === null ? "drop" as const : to === o.uid ? "keep" as const : "rename" as const };
      }),
      rows: states.filter((s) => s.action === "migrate").reduce((n, s) => n + s.rows, 0),
      estimatedBytes: states.reduce((n, s) => n + s.estimatedBytes, 0),
    },
  };
}

/**
 * Migrates a snapshot's state schemas into a new savepoint. Each state with a chain in `migrations` runs
 * the steps from its schema version to the newest, row by row and batch by batch (bounded memory);
 * every output value is validated against the new schema (Arrow types, or the JSON Schema of msgpack
 * values) and the first failing row stops the run with a `SchemaViolationError` naming the state, key and
 * reason, leaving nothing committed. Operator steps rename (remap) uids and drop operators or states.
 * With `dryRun` only the plan is returned: every step is checked against the schemas, nothing is written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, defineMigrations, migrate, widenType } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:migrate-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:migrate-example/savepoints/sp-1");
 * const migrations = defineMigrations({ "counter/counts": [widenType(undefined, "int64")] });
 * const { plan } = await migrate(sp.location, "memory:migrate-example/savepoints/v2", migrations, { dryRun: true });
 * assert.deepEqual(plan.states.filter((s) => s.steps.length).map((s) => `${s.operator}/${s.state} v${s.fromVersion} → v${s.toVersion}`), ["counter/counts v1 → v2"]);
 * ```
 */
export async function migrate(src: string | Snapshot, dst: string | Storage, migrations: Migrations, options: MigrateOptions = {}): Promise<MigrateReport> {
  if (!isMigrations(migrations)) throw new TypeError(`Cannot migrate as migrations must come from defineMigrations(): current value is ${typeof migrations}`);
  return await withSnapshot(src, async (snap) => {
    const { plan, operators } = resolve(snap, migrations);
    if (options.dryRun) return { plan, dryRun: true };
    const module = options.migrationsModule === undefined ? undefined : { module: String(options.migrationsModule) };
    const written = await viaWorkers("migrate", src, dst, snap, options, module ?? migrations, (shard, onProgress, signal) => migrate(snap, dst, migrations, { ...options, workers: undefined, shard, onProgress, signal: anySignal(options.signal, signal) })) ?? await rewrite({ tool: "migrate", src: snap, maxParallelism: snap.manifest.maxParallelism, operators, slices: true, canonical: true, args: migrations }, dst, options);
    return { plan, dryRun: false, written };
  });
}
