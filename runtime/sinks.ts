/**
 * Exactly-once sinks by two-phase commit: a writer stages what it received since the last barrier as one
 * transaction (`prepareCommit`), the runtime keeps the staged transactions in the sink's operator state,
 * and commits them (`commit`, idempotent) only once the checkpoint that contains them is complete — again
 * after a restore, for those the restored snapshot holds.
 *
 * A savepoint taken while the job keeps running stages a transaction but does not commit it (the next
 * completed checkpoint does); stop-with-savepoint commits on completion.
 *
 * As in Flink's `TwoPhaseCommitSinkFunction`, a snapshot's pending list holds every transaction not yet
 * known to be committed, each marked with whether the completion of that snapshot (or of an earlier one)
 * commits it. On restore they are all committed again, idempotently. One the sink cannot find at all
 * (say, a relocated savepoint resumed with the sink writing to a new folder) is skipped when the
 * snapshot's completion committed it, and otherwise fails the restore with an
 * {@link UncommittedOutputError} saying what to do: that output was staged and never committed.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { openStorage } from "../backends/open.ts";
import { ArrowpointError, IncompatibleSnapshotError, NotFoundError } from "../format/errors.ts";

/**
 * What a sink writer knows about where it runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { SinkContext } from "./sinks.ts";
 * const partName = (ctx: SinkContext, checkpoint: number) => `part-${checkpoint}-${ctx.subtask}-${ctx.attempt}`;
 * assert.equal(partName({ uid: "out", subtask: 1, parallelism: 2, attempt: "ab12" }, 7), "part-7-1-ab12");
 * ```
 */
export interface SinkContext {
  /** The job's name (absent when a writer is made outside a job). */
  readonly job?: string;
  /** The sink's operator uid. */
  readonly uid: string;
  /** This subtask's index. */
  readonly subtask: number;
  /** The sink's parallelism. */
  readonly parallelism: number;
  /** A random id of this run of the job (a restored job gets a new one). */
  readonly attempt: string;
}

/**
 * The per-subtask writer of a sink: buffers records into the open transaction and stages it.
 * Committables must be msgpack-serialisable (they are stored in snapshots).
 *
 * @example
 * ```ts
 * import type { SinkWriter } from "./sinks.ts";
 * function buffering(stage: (rows: string[], id: number) => string): SinkWriter<string, string> {
 *   let open: string[] = [];
 *   return { write(v) { open.push(...v); }, prepareCommit(id) { if (!open.length) return undefined; const t = stage(open, id); open = []; return t; } };
 * }
 * ```
 */
export interface SinkWriter<T, C> {
  /** Adds records to the open transaction. */
  write(values: readonly T[]): void;
  /** Stages the open transaction for checkpoint `checkpointId`; returns its committable, or undefined when empty. */
  prepareCommit(checkpointId: number): C | undefined | Promise<C | undefined>;
  /** Releases resources at the end of the job. */
  close?(): void | Promise<void>;
}

/**
 * A two-phase-commit sink.
 *
 * @example A sink that prints on commit
 * ```ts
 * import type { Sink } from "./sinks.ts";
 * const staged = new Map<string, string[]>();
 * const printSink: Sink<string, string> = {
 *   name: "print",
 *   createWriter(ctx) {
 *     let open: string[] = [];
 *     return {
 *       write(values) { open.push(...values); },
 *       prepareCommit(id) { if (!open.length) return undefined; const txn = `${ctx.attempt}-${ctx.subtask}-${id}`; staged.set(txn, open); open = []; return txn; },
 *     };
 *   },
 *   async commit(txns) { for (const t of txns) { for (const line of staged.get(t) ?? []) console.log(line); staged.delete(t); } },
 * };
 * ```
 */
export interface Sink<T, C = unknown> {
  /** A name (the default operator uid). */
  readonly name: string;
  /** Creates the writer of one subtask. */
  createWriter(context: SinkContext): SinkWriter<T, C>;
  /**
   * Makes staged transactions visible. Must be idempotent: it may be called again for the same ones after a
   * restore, and then does nothing for those already committed. Committables the sink finds neither staged
   * nor committed: commit the others, then reject with an {@link UnknownTransactionError} listing them
   * (the very objects given), so a restore can tell output committed elsewhere from output lost.
   */
  commit(committables: readonly C[]): Promise<void>;
  /** Releases shared resources after the job. */
  close?(): void | Promise<void>;
}

/**
 * A sink was asked to commit transactions it finds neither staged nor committed: their output was
 * deleted behind the job, or the sink now writes somewhere else than where they were staged (a new
 * folder, a new instance). `committables` are the ones given to `commit`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnknownTransactionError } from "./sinks.ts";
 * const e = new UnknownTransactionError("collect", ["out/a1/0/3"], "this CollectingSink");
 * assert.equal(e.code, "ARROWPOINT_UNKNOWN_TRANSACTION");
 * assert.equal(e.committables.length, 1);
 * ```
 */
export class UnknownTransactionError extends ArrowpointError {
  /** The committables not found. */
  readonly committables: readonly unknown[];
  /** Creates the error: `where` names the sink's system (a folder URI, an instance). */
  constructor(sink: string, committables: readonly unknown[], where: string) {
    super(
      "ARROWPOINT_UNKNOWN_TRANSACTION",
      `Cannot commit ${describeCommittables(committables)} of sink ${JSON.stringify(sink)} as ${where} holds neither the staged nor the committed output: ` +
        "it was deleted behind the job, or the sink writes elsewhere than where it was staged",
    );
    this.committables = committables;
  }
}

/**
 * A restored sink holds transactions that were staged but never committed (the snapshot is a savepoint
 * taken while the job ran, which does not commit its own output), and the sink cannot find them: the job
 * would silently lose that output. Restore with the sink writing where it wrote when the snapshot was
 * taken, or give the sink a new uid and restore with `allowNonRestoredState: true` to drop them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UncommittedOutputError } from "./sinks.ts";
 * const e = new UncommittedOutputError("out", ["out/a1/0/3"]);
 * assert.equal(e.code, "ARROWPOINT_INCOMPATIBLE_SNAPSHOT");
 * assert.equal(e.uid, "out");
 * ```
 */
export class UncommittedOutputError extends IncompatibleSnapshotError {
  /** The sink's operator uid. */
  readonly uid: string;
  /** The committables the sink could not find. */
  readonly committables: readonly unknown[];
  /** Creates the error. */
  constructor(uid: string, committables: readonly unknown[], options: { cause?: unknown } = {}) {
    super(
      `Cannot restore sink ${JSON.stringify(uid)} as the snapshot holds ${describeCommittables(committables)} staged but never committed ` +
        "(a savepoint taken while the job ran commits nothing), and the sink finds neither the staged nor the committed output. " +
        "Restore with the sink writing where it wrote when the snapshot was taken (the staged output is there), " +
        `or give the sink a new uid and restore with allowNonRestoredState: true to drop ${committables.length === 1 ? "it" : "them"} (that output is then lost)`,
      options,
    );
    this.uid = uid;
    this.committables = committables;
  }
}

function describeCommittables(cs: readonly unknown[]): string {
  const shown = cs.slice(0, 3).map((c) => {
    let s: string;
    try {
      s = typeof c === "string" ? c : JSON.stringify(c) ?? String(c);
    } catch {
      s = String(c);
    }
    return s.length > 160 ? s.slice(0, 160) + "…" : s;
  });
  return `${cs.length === 1 ? "transaction" : `${cs.length} transactions`} ${shown.join(", ")}${cs.length > 3 ? ", …" : ""}`;
}

/**
 * A transaction kept in a sink's operator state (`pending-commits`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PendingCommit } from "./sinks.ts";
 * const p: PendingCommit = { id: 7, committable: { staged: "_staging/part-000007-0-ab12.ndjson", final: "part-000007-0-ab12.ndjson" }, due: true };
 * assert.equal(p.due, true);
 * ```
 */
export interface PendingCommit {
  /** The checkpoint id it was staged for. */
  readonly id: number;
  /** What the writer's `prepareCommit` returned. */
  readonly committable: unknown;
  /**
   * In a snapshot: whether the completion of that snapshot (or of an earlier completed one) commits it.
   * Absent in snapshots written before this was recorded (treated as not committed).
   */
  readonly due?: boolean;
}

/**
 * Commits the transactions a sink restored from a snapshot again (idempotently). Those the sink cannot
 * find are skipped when the snapshot's completion committed them (their output is wherever the sink wrote
 * then); any other one fails with an {@link UncommittedOutputError}.
 *
 * @example
 * ```ts
 * import { CollectingSink, recommitRestored } from "./sinks.ts";
 * // A new sink instance knows nothing of what an earlier run committed: nothing to redo, nothing lost.
 * await recommitRestored(new CollectingSink<string>(), "out", [{ id: 3, committable: "out/a1/0/3", due: true }]);
 * ```
 */
export async function recommitRestored(sink: Sink<unknown, unknown>, uid: string, restored: readonly PendingCommit[]): Promise<void> {
  if (restored.length === 0) return;
  try {
    await sink.commit(restored.map((p) => p.committable));
  } catch (e) {
    if (!(e instanceof UnknownTransactionError)) throw e;
    const unknown = new Set(e.committables);
    const lost = restored.filter((p) => unknown.has(p.committable) && p.due !== true).map((p) => p.committable);
    if (lost.length > 0) throw new UncommittedOutputError(uid, lost, { cause: e });
  }
}

/**
 * An in-memory exactly-once sink for tests: staged transactions live in the sink object (the "external
 * system", which outlives a killed job), `committed` holds what became visible, in commit order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink } from "./sinks.ts";
 * const sink = new CollectingSink<string>();
 * const w = sink.createWriter({ uid: "out", subtask: 0, parallelism: 1, attempt: "a" });
 * w.write(["x"]);
 * const txn = w.prepareCommit(1)!;
 * await sink.commit([txn as string]);
 * await sink.commit([txn as string]); // idempotent
 * assert.deepEqual(sink.committed, ["x"]);
 * ```
 */
export class CollectingSink<T> implements Sink<T, string> {
  /** Name (default `collect`). */
  readonly name: string;
  /** Every committed record, in commit order. */
  readonly committed: T[] = [];
  /** Number of transactions committed. */
  transactions = 0;
  private readonly staged = new Map<string, T[]>();
  private readonly done = new Set<string>();

  /** Creates an empty sink. */
  constructor(name = "collect") {
    this.name = name;
  }

  /** Staged transactions not committed (left over by failed runs, or awaiting a checkpoint). */
  get pending(): number {
    return this.staged.size;
  }

  /** A writer staging into this sink. */
  createWriter(ctx: SinkContext): SinkWriter<T, string> {
    let open: T[] = [];
    return {
      write(values) {
        for (let i = 0; i < values.length; i++) open.push(values[i]);
      },
      prepareCommit: (id) => {
        if (open.length === 0) return undefined;
        const txn = `${ctx.uid}/${ctx.attempt}/${ctx.subtask}/${id}`;
        this.staged.set(txn, open);
        open = [];
        return txn;
      },
    };
  }

  /** Commits transactions; already committed ones are skipped, unknown ones reported (see {@link Sink.commit}). */
  commit(txns: readonly string[]): Promise<void> {
    const unknown: string[] = [];
    for (const t of txns) {
      if (this.done.has(t)) continue;
      const rows = this.staged.get(t);
      if (!rows) {
        unknown.push(t);
        continue;
      }
      for (const r of rows) this.committed.push(r);
      this.staged.delete(t);
      this.done.add(t);
      this.transactions++;
    }
    return unknown.length === 0 ? Promise.resolve() : Promise.reject(new UnknownTransactionError(this.name, unknown, `this CollectingSink instance`));
  }
}

/**
 * A staged NDJSON part file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { NdjsonCommittable } from "./sinks.ts";
 * const c: NdjsonCommittable = { staged: "out/_staging/part-000003-0-ab12.ndjson", final: "out/part-000003-0-ab12.ndjson" };
 * assert.equal(c.final, "out/part-000003-0-ab12.ndjson");
 * ```
 */
export interface NdjsonCommittable {
  /** Where it was staged. */
  staged: string;
  /** Its final name. */
  final: string;
}

/**
 * Options of {@link ndjsonFileSink}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { NdjsonSinkOptions } from "./sinks.ts";
 * const options: NdjsonSinkOptions<{ user: string; n: number }> = { prefix: "counts", stringify: (r) => `${r.user}\t${r.n}` };
 * assert.equal(options.prefix, "counts");
 * ```
 */
export interface NdjsonSinkOptions<T> {
  /** Folder inside the storage for the part files (default the root). */
  prefix?: string;
  /** Turns a record into one line (default `JSON.stringify`). */
  stringify?: (value: T) => string;
  /** Name (default `ndjson`). */
  name?: string;
}

function pad(n: number): string {
  return String(n).padStart(6, "0");
}

/**
 * An exactly-once NDJSON file sink over any Storage. Each subtask stages one part file per checkpoint
 * under `<prefix>/_staging/` (an atomic put) and commits it by writing it under its final name
 * `<prefix>/part-<checkpoint>-<subtask>-<attempt>.ndjson` (an atomic put) and deleting the staged copy.
 * Readers take only `part-*` files (see {@link readNdjsonParts}); a commit repeated after a restore
 * finds the final file and does nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ndjsonFileSink, readNdjsonParts } from "./sinks.ts";
 * const sink = ndjsonFileSink<{ user: string; n: number }>("memory:sink-example", { prefix: "out" });
 * const w = sink.createWriter({ uid: "out", subtask: 0, parallelism: 1, attempt: "a1" });
 * w.write([{ user: "a", n: 1 }]);
 * const c = await w.prepareCommit(1);
 * await sink.commit([c!]);
 * assert.deepEqual(await readNdjsonParts("memory:sink-example", "out"), [{ user: "a", n: 1 }]);
 * ```
 */
export function ndjsonFileSink<T>(target: Storage | string, options: NdjsonSinkOptions<T> = {}): Sink<T, NdjsonCommittable> {
  const prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
  const at = (p: string) => (prefix ? `${prefix}/${p}` : p);
  const stringify = options.stringify ?? ((v: T) => JSON.stringify(v));
  let storage: Storage | undefined = typeof target === "string" ? undefined : target;
  let opening: Promise<Storage> | undefined;
  const get = async (): Promise<Storage> => {
    if (storage) return storage;
    opening ??= openStorage(target as string).then((s) => (storage = s));
    return await opening;
  };
  const encoder = new TextEncoder();
  let chain: Promise<void> = Promise.resolve();
  return {
    name: options.name ?? "ndjson",
    createWriter(ctx) {
      let lines: string[] = [];
      return {
        write(values) {
          for (let i = 0; i < values.length; i++) lines.push(stringify(values[i]));
        },
        async prepareCommit(id) {
          if (lines.length === 0) return undefined;
          const bytes = encoder.encode(lines.join("\n") + "\n");
          lines = [];
          const name = `part-${pad(id)}-${ctx.subtask}-${ctx.attempt}.ndjson`;
          const c: NdjsonCommittable = { staged: at(`_staging/${name}`), final: at(name) };
          await (await get()).put(c.staged, bytes);
          return c;
        },
      };
    },
    commit(cs) {
      // One commit at a time per sink: subtasks commit concurrently otherwise, and a filesystem removing
      // an emptied `_staging/` folder under a concurrent delete reports the folder as vanished.
      const run = chain.then(() => commitAll(cs));
      chain = run.catch(() => {});
      return run;
    },
    async close() {
      if (typeof target === "string" && storage) await storage.close();
    },
  };
  async function commitAll(cs: readonly NdjsonCommittable[]): Promise<void> {
    const s = await get();
    const unknown: NdjsonCommittable[] = [];
    for (const c of cs) {
      if (await s.exists(c.final)) {
        await s.delete([c.staged]);
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = await s.get(c.staged);
      } catch (e) {
        if (e instanceof NotFoundError) {
          unknown.push(c);
          continue;
        }
        throw e;
      }
      await s.put(c.final, bytes);
      await s.delete([c.staged]);
    }
    if (unknown.length > 0) throw new UnknownTransactionError(options.name ?? "ndjson", unknown, s.uri);
  }
}

/**
 * Reads every committed record of an {@link ndjsonFileSink} output folder (part files in name order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readNdjsonParts } from "./sinks.ts";
 * const rows = await readNdjsonParts("memory:nothing-here", "out");
 * assert.equal(rows.length, 0);
 * ```
 */
export async function readNdjsonParts<T = unknown>(target: Storage | string, prefix = ""): Promise<T[]> {
  const s = typeof target === "string" ? await openStorage(target) : target;
  const clean = prefix.replace(/^\/+|\/+$/g, "");
  const out: T[] = [];
  const decoder = new TextDecoder();
  try {
    for await (const o of s.list(clean ? `${clean}/part-` : "part-")) {
      const text = decoder.decode(await s.get(o.path));
      for (const line of text.split("\n")) if (line) out.push(JSON.parse(line) as T);
    }
  } finally {
    if (typeof target === "string") await s.close();
  }
  return out;
}
