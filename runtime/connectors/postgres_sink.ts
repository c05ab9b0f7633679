/**
 * A PostgreSQL sink. Exactly once by two-phase commit: each subtask writes what it received since the
 * last barrier in one transaction and `PREPARE TRANSACTION`s it at the barrier; `COMMIT PREPARED` runs
 * once the checkpoint that holds it completes (again after a restore, for those the snapshot holds);
 * prepared transactions of this sink that no snapshot knows are rolled back before the first new one.
 * Or, for servers without prepared transactions, effectively once by idempotent upserts.
 *
 * @module
 */
import type { Client } from "pg";
import type { PostgresConnection } from "./postgres_connection.ts";
import type { Sink, SinkContext, SinkWriter } from "../sinks.ts";
import { connect, end, quoteName, sqlState } from "./_postgres.ts";
import { PostgresConfigError } from "./postgres_errors.ts";

/**
 * Options of {@link postgresSink}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PostgresSinkOptions } from "./postgres_sink.ts";
 * const options: PostgresSinkOptions<{ customer: string; total: number }> = {
 *   connection: "postgres://postgres@127.0.0.1/shop",
 *   table: "customer_totals",
 *   columns: ["customer", "total"],
 *   key: ["customer"],
 *   row: (t) => [t.customer, t.total],
 * };
 * assert.equal(options.columns.length, 2);
 * ```
 */
export interface PostgresSinkOptions<T> {
  /** The server. */
  connection: PostgresConnection;
  /** The table written (`name` or `schema.name`); it must exist. */
  table: string;
  /** The columns written, in the order `row` gives their values. */
  columns: readonly string[];
  /** A record's column values, in the order of `columns`. */
  row: (record: T) => readonly unknown[];
  /**
   * The table's primary-key columns (a subset of `columns`). With a key, rows are upserted
   * (`INSERT … ON CONFLICT (key) DO UPDATE`), the last record of a key in a checkpoint wins, and
   * `isDelete` records delete; without one, every record is inserted.
   */
  key?: readonly string[];
  /** Whether a record deletes its key's row (needs `key`). */
  isDelete?: (record: T) => boolean;
  /**
   * `exactly-once` (default): two-phase commit; the server needs `max_prepared_transactions` ≥ the sink's
   * parallelism × 2. `upsert`: each checkpoint's rows are committed at its barrier; after a failure the
   * rows written since the last completed checkpoint are written again, which converges to the same table
   * only because upserts of a key are idempotent (needs `key`): effectively once, and readers may briefly
   * see rows ahead of the last checkpoint.
   */
  mode?: "exactly-once" | "upsert";
  /** Start of the global transaction ids (default `arrowpoint`). */
  transactionPrefix?: string;
  /** Rows per statement (default 1,000; capped by the 65,535 parameters of a statement). */
  batchRows?: number;
  /** Name (default `postgres`). */
  name?: string;
}

/**
 * A prepared transaction of an exactly-once {@link postgresSink}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PostgresCommittable } from "./postgres_sink.ts";
 * const c: PostgresCommittable = { gid: "arrowpoint:orders:totals:0:7:k3j9x2" };
 * assert.equal(c.gid.split(":")[4], "7");
 * ```
 */
export interface PostgresCommittable {
  /** Its global transaction id: prefix, job, sink uid, subtask, checkpoint, attempt. */
  readonly gid: string;
}

const MAX_PARAMS = 65535;

/**
 * A PostgreSQL sink, exactly once by `PREPARE TRANSACTION` / `COMMIT PREPARED` (default) or effectively
 * once by upserts (`mode: "upsert"`). Records are buffered in memory between barriers and written at
 * the barrier, in multi-row statements.
 *
 * Ordering: the last record of a key within a checkpoint wins, and checkpoints commit in order, so keep
 * every key on one sink subtask (key the stream by the table's key, or give the sink the parallelism of
 * the keyed operator before it). A prepared transaction holds its rows' locks until it is committed, so
 * the next checkpoint's writes to the same rows wait for that commit.
 *
 * @example
 * ```ts ignore
 * import { Job } from "../job.ts";
 * import { arraySource } from "../sources.ts";
 * import { postgresSink } from "./postgres_sink.ts";
 * const job = new Job("totals", { checkpoints: { storage: "./ckpt", intervalMs: 1000 } });
 * job.fromSource(arraySource([{ customer: "ada", total: 30 }]), { uid: "in" })
 *   .sinkTo(postgresSink({ connection: "postgres://postgres@127.0.0.1/shop", table: "totals", columns: ["customer", "total"], key: ["customer"], row: (t) => [t.customer, t.total] }), { uid: "out" });
 * await job.run();
 * ```
 */
export function postgresSink<T>(options: PostgresSinkOptions<T>): Sink<T, PostgresCommittable> {
  const mode = options.mode ?? "exactly-once";
  const columns = options.columns;
  const key = options.key ?? [];
  if (columns.length === 0) throw new TypeError("Cannot create a Postgres sink as columns is empty: name the columns written");
  for (const k of key) if (!columns.includes(k)) throw new TypeError(`Cannot create a Postgres sink as key column ${JSON.stringify(k)} is not in columns: current value is ${JSON.stringify(columns)}`);
  if (mode === "upsert" && key.length === 0) throw new TypeError("Cannot create a Postgres sink in upsert mode as it has no key: set key to the table's primary-key columns");
  if (options.isDelete && key.length === 0) throw new TypeError("Cannot create a Postgres sink that deletes as it has no key: set key to the table's primary-key columns");
  if (mode !== "exactly-once" && mode !== "upsert") throw new TypeError(`Cannot create a Postgres sink as mode must be "exactly-once" or "upsert": current value is ${JSON.stringify(mode)}`);
  const prefix = options.transactionPrefix ?? "arrowpoint";
  const batchRows = Math.max(1, Math.min(options.batchRows ?? 1000, Math.floor(MAX_PARAMS / columns.length)));
  const table = quoteName(options.table);
  const keyIdx = key.map((k) => columns.indexOf(k));
  const colList = columns.map((c) => quoteName(c)).join(", ");
  const nonKey = columns.filter((c) => !key.includes(c));
  const conflict = key.length === 0
    ? ""
    : ` ON CONFLICT (${key.map((c) => quoteName(c)).join(", ")}) DO ${nonKey.length === 0 ? "NOTHING" : `UPDATE SET ${nonKey.map((c) => `${quoteName(c)} = EXCLUDED.${quoteName(c)}`).join(", ")}`}`;

  // One connection for commits and rollbacks, one at a time.
  let control: Promise<Client> | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <R>(f: (c: Client) => Promise<R>): Promise<R> => {
    const run = chain.then(async () => f(await (control ??= connect(options.connection))));
    chain = run.catch(() => {});
    return run;
  };
  const cleaned = new Map<string, Promise<void>>();
  const ours = (ctx: SinkContext) => `${prefix}:${ctx.job ?? ""}:${ctx.uid}:`;

  /** Rolls back this sink's prepared transactions left by other runs: the restored ones were committed when the writers opened. */
  const cleanup = (ctx: SinkContext): Promise<void> => {
    let p = cleaned.get(ctx.attempt);
    if (!p) {
      p = serial(async (c) => {
        const head = ours(ctx);
        const tail = `:${ctx.attempt}`;
        const rows = (await c.query<{ gid: string }>("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")).rows;
        for (const { gid } of rows) {
          if (gid.startsWith(head) && !gid.endsWith(tail)) await c.query(`ROLLBACK PREPARED ${literal(gid)}`).catch(ignoreMissing);
        }
      });
      cleaned.set(ctx.attempt, p);
    }
    return p;
  };

  return {
    name: options.name ?? "postgres",
    createWriter(ctx): SinkWriter<T, PostgresCommittable> {
      let client: Client | undefined;
      let plain: unknown[][] = [];
      let byKey = new Map<string, { del: boolean; values: readonly unknown[] }>();
      const head = ours(ctx);
      if (mode === "exactly-once" && head.length + 40 > 200) {
        throw new TypeError(`Cannot create a Postgres sink writer as its transaction ids would exceed 200 bytes: shorten the job name, the sink uid or transactionPrefix (now ${JSON.stringify(head)})`);
      }
      const getClient = async (): Promise<Client> => {
        if (client) return client;
        const c = await connect(options.connection);
        if (mode === "exactly-once") {
          const max = Number((await c.query<{ max_prepared_transactions: string }>("SHOW max_prepared_transactions")).rows[0].max_prepared_transactions);
          if (max === 0) {
            await end(c);
            throw preparedDisabled(ctx);
          }
        }
        client = c;
        return c;
      };
      return {
        write(values) {
          if (key.length === 0) {
            for (let i = 0; i < values.length; i++) plain.push(options.row(values[i]) as unknown[]);
            return;
          }
          const isDelete = options.isDelete;
          for (let i = 0; i < values.length; i++) {
            const v = values[i];
            const row = options.row(v);
            const k = keyIdx.length === 1 ? keyString(row[keyIdx[0]]) : keyIdx.map((j) => keyString(row[j])).join("\u0000");
            byKey.delete(k); // re-insert: the map keeps the order of each key's last write
            byKey.set(k, { del: isDelete ? isDelete(v) : false, values: row });
          }
        },
        async prepareCommit(id) {
          // Before the first transaction of a run (even an empty one), the leftovers of others go.
          if (mode === "exactly-once") await cleanup(ctx);
          if (plain.length === 0 && byKey.size === 0) return undefined;
          const rows = plain;
          const keyed = byKey;
          plain = [];
          byKey = new Map();
          const c = await getClient();
          const gid = `${head}${ctx.subtask}:${id}:${ctx.attempt}`;
          await c.query("BEGIN");
          try {
            const upserts: (readonly unknown[])[] = [];
            const deletes: (readonly unknown[])[] = [];
            for (const e of keyed.values()) (e.del ? deletes : upserts).push(e.values);
            for (let i = 0; i < rows.length; i += batchRows) await insert(c, rows.slice(i, i + batchRows), "");
            for (let i = 0; i < upserts.length; i += batchRows) await insert(c, upserts.slice(i, i + batchRows), conflict);
            const perDelete = Math.max(1, Math.floor(MAX_PARAMS / key.length));
            for (let i = 0; i < deletes.length; i += perDelete) await remove(c, deletes.slice(i, i + perDelete));
            if (mode === "upsert") {
              await c.query("COMMIT");
              return undefined;
            }
            await c.query(`PREPARE TRANSACTION ${literal(gid)}`);
          } catch (e) {
            await c.query("ROLLBACK").catch(() => {});
            if (sqlState(e) === "53400") throw preparedExhausted(ctx, e);
            if (sqlState(e) === "55000" && /prepared transactions are disabled/i.test(String((e as Error).message))) throw preparedDisabled(ctx, e);
            throw e;
          }
          return { gid };
        },
        async close() {
          const c = client;
          client = undefined;
          await end(c);
        },
      };
    },
    commit(committables) {
      if (committables.length === 0) return Promise.resolve();
      return serial(async (c) => {
        for (const { gid } of committables) await c.query(`COMMIT PREPARED ${literal(gid)}`).catch(ignoreMissing);
      });
    },
    async close() {
      const c = control;
      control = undefined;
      cleaned.clear();
      if (c) await end(await c.catch(() => undefined));
    },
  };

  async function insert(c: Client, rows: readonly (readonly unknown[])[], onConflict: string): Promise<void> {
    const params: unknown[] = [];
    const tuples: string[] = [];
    for (const r of rows) {
      if (r.length !== columns.length) throw new TypeError(`Cannot write a row to ${options.table} as row() returned ${r.length} values for ${columns.length} columns (${columns.join(", ")})`);
      const ph: string[] = [];
      for (const v of r) {
        params.push(v);
        ph.push(`$${params.length}`);
      }
      tuples.push(`(${ph.join(", ")})`);
    }
    await c.query(`INSERT INTO ${table} (${colList}) VALUES ${tuples.join(", ")}${onConflict}`, params);
  }

  async function remove(c: Client, rows: readonly (readonly unknown[])[]): Promise<void> {
    const params: unknown[] = [];
    const tuples: string[] = [];
    for (const r of rows) {
      const ph: string[] = [];
      for (const j of keyIdx) {
        params.push(r[j]);
        ph.push(`$${params.length}`);
      }
      tuples.push(`(${ph.join(", ")})`);
    }
    await c.query(`DELETE FROM ${table} WHERE (${key.map((k) => quoteName(k)).join(", ")}) IN (${tuples.join(", ")})`, params);
  }
}

/** A key value as a map key: numbers and strings of the same digits stay apart. */
function keyString(v: unknown): string {
  return typeof v === "string" ? `s${v}` : typeof v === "bigint" ? `b${v}` : `j${JSON.stringify(v)}`;
}

function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A prepared transaction already committed (or rolled back) is gone: committing it again is a no-op. */
function ignoreMissing(e: unknown): void {
  if (sqlState(e) !== "42704") throw e;
}

function preparedDisabled(ctx: SinkContext, cause?: unknown): PostgresConfigError {
  return new PostgresConfigError(
    "max_prepared_transactions",
    `Cannot write exactly once from sink ${JSON.stringify(ctx.uid)} as the server's max_prepared_transactions is 0 (prepared transactions are disabled): ` +
      `set max_prepared_transactions to at least twice the sink's parallelism (here ≥ ${2 * ctx.parallelism}) in postgresql.conf and restart the server, ` +
      `or use mode: "upsert" (effectively once)`,
    { cause },
  );
}

function preparedExhausted(ctx: SinkContext, cause: unknown): PostgresConfigError {
  return new PostgresConfigError(
    "max_prepared_transactions",
    `Cannot prepare the transaction of sink ${JSON.stringify(ctx.uid)} subtask ${ctx.subtask} as the server holds max_prepared_transactions already: ` +
      `raise max_prepared_transactions (≥ ${2 * ctx.parallelism} for this sink, plus other users') and restart, or look for prepared transactions left behind (SELECT * FROM pg_prepared_xacts)`,
    { cause },
  );
}
