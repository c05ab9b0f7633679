/**
 * Exactly-once sinks by two-phase commit: a writer stages what it received since the last barrier as one
 * transaction (`prepareCommit`), the runtime keeps the staged transactions in the sink's operator state,
 * and commits them (`commit`, idempotent) only once the checkpoint that contains them is complete — again
 * after a restore, for those the restored snapshot holds.
 *
 * A savepoint taken while the job keeps running stages a transaction but does not commit it (the next
 * completed checkpoint does); stop-with-savepoint commits on completion.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { openStorage } from "../backends/open.ts";
import { NotFoundError } from "../format/errors.ts";

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
  /** Makes staged transactions visible. Must be idempotent: it may be called again for the same ones after a restore. */
  commit(committables: readonly C[]): Promise<void>;
  /** Releases shared resources after the job. */
  close?(): void | Promise<void>;
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

  /** Commits transactions; already committed ones are skipped. */
  commit(txns: readonly string[]): Promise<void> {
    for (const t of txns) {
      if (this.done.has(t)) continue;
      const rows = this.staged.get(t);
      if (!rows) return Promise.reject(new Error(`Cannot commit transaction ${t} as it was never staged in this sink`));
      for (const r of rows) this.committed.push(r);
      this.staged.delete(t);
      this.done.add(t);
      this.transactions++;
    }
    return Promise.resolve();
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
    {
      const s = await get();
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
            throw new NotFoundError("commit", `${s.uri}/${c.staged}`, "the staged part file is gone and no committed file exists; the output was cleaned up behind the job", { cause: e });
          }
          throw e;
        }
        await s.put(c.final, bytes);
        await s.delete([c.staged]);
      }
    }
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
