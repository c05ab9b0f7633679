// Orders in PostgreSQL → per-customer totals → a totals table in PostgreSQL, exactly once.
//
// The job reads the orders table's changes through logical replication (with an initial snapshot of the
// rows already there), keeps each customer's total and order count as keyed state, and writes the totals
// with two-phase commit. It is killed between PREPARE TRANSACTION and COMMIT PREPARED, restored at
// another parallelism, and at the end the totals table equals what the orders table says.
//
//   npx tsx examples/postgres_cdc.ts postgres://postgres:secret@127.0.0.1:5432/shop [checkpoint-folder]
//
// The server needs wal_level = logical and max_prepared_transactions ≥ 8 (postgresql.conf), and the
// user the REPLICATION attribute. The example (re)creates its tables, publication and slot.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { type CdcRecord, Job, JobKilledError, postgresCdcSource, postgresSink, valueState } from "../mod.ts";

const url = process.argv[2];
if (!url?.startsWith("postgres")) {
  console.error("usage: examples/postgres_cdc.ts postgres://user:password@host:port/database [checkpoint-folder]");
  process.exit(2);
}
const dir = process.argv[3] ?? mkdtempSync(join(tmpdir(), "arrowpoint-pg-example-"));

type Order = { id: number; customer: string; amount: number };
type Change = { customer: string; amount: number; orders: number };
type Total = { customer: string; total: number; orders: number };

const db = new pg.Client({ connectionString: url });
await db.connect();
await db.query(`
  SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'orders_slot';
  DROP PUBLICATION IF EXISTS orders_pub;
  DROP TABLE IF EXISTS orders, customer_totals;
  CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
  ALTER TABLE orders REPLICA IDENTITY FULL; -- updates and deletes carry the old row
  CREATE TABLE customer_totals (customer text PRIMARY KEY, total bigint NOT NULL, orders int NOT NULL);
  CREATE PUBLICATION orders_pub FOR TABLE orders;
`);

// Some orders exist before the job starts: the source's initial snapshot reads them.
let nextId = 1;
const customers = ["ada", "bob", "cyd", "dee", "eve", "fay"];
async function placeOrders(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = nextId++;
    await db.query("INSERT INTO orders VALUES ($1, $2, $3)", [id, customers[(id * 7) % customers.length], 10 + ((id * 13) % 90)]);
    if (id % 5 === 0) await db.query("UPDATE orders SET amount = amount + 1 WHERE id = $1", [id - 2]);
    if (id % 9 === 0) await db.query("UPDATE orders SET customer = 'gus' WHERE id = $1", [id - 4]);
    if (id % 11 === 0) await db.query("DELETE FROM orders WHERE id = $1", [id - 6]);
  }
}
await placeOrders(100);

const TOTAL = valueState<{ total: number; orders: number }>("total");

function ordersJob(parallelism: number, crash: boolean, onCheckpoint?: () => void): Job {
  let seen = 0;
  let fresh = false;
  const job = new Job("order-totals", {
    maxParallelism: 64,
    checkpoints: { storage: join(dir, "checkpoints"), intervalMs: 100 },
    restore: { from: "latest" },
    // The crash: the first checkpoint that covers new changes is complete, its totals are prepared, and
    // COMMIT PREPARED has not run.
    faults: crash
      ? {
        killAt: (p) => {
          if (p.stage === "triggered") [fresh, seen] = [p.records > seen, p.records];
          return p.stage === "committed" && fresh;
        },
      }
      : undefined,
    onEvent: (e) => {
      if (e.type === "checkpoint") onCheckpoint?.();
    },
  });
  job
    .fromSource(postgresCdcSource({ connection: url, publication: "orders_pub", slot: "orders_slot", snapshot: true }), { uid: "orders", parallelism: 1 })
    // An order's change is a change of its customer's total; moving an order changes two customers.
    .flatMap<Change>((r: CdcRecord, out) => {
      const before = r.before as Order | undefined;
      const after = r.after as Order | null;
      if (r.op !== "insert" && before) out.collect({ customer: before.customer, amount: -before.amount, orders: -1 });
      if (after) out.collect({ customer: after.customer, amount: after.amount, orders: 1 });
    }, { parallelism: 1 })
    .keyBy((c) => c.customer)
    .process<Total>({
      open(ctx) {
        ctx.getState(TOTAL);
      },
      processElement(c, ctx) {
        const state = ctx.getState(TOTAL);
        const t = state.value() ?? { total: 0, orders: 0 };
        const next = { total: t.total + c.amount, orders: t.orders + c.orders };
        if (next.orders === 0) state.clear();
        else state.update(next);
        ctx.collect({ customer: c.customer, ...next });
      },
    }, { uid: "totals", parallelism })
    .sinkTo(postgresSink<Total>({
      connection: url,
      table: "customer_totals",
      columns: ["customer", "total", "orders"],
      key: ["customer"],
      row: (t) => [t.customer, t.total, t.orders],
      isDelete: (t) => t.orders === 0, // a customer without orders leaves the table
    }), { uid: "totals-table", parallelism });
  return job;
}

async function compare(): Promise<{ equal: boolean; customers: number }> {
  const got = await db.query("SELECT customer, total::int, orders FROM customer_totals ORDER BY customer");
  const want = await db.query("SELECT customer, sum(amount)::int AS total, count(*)::int AS orders FROM orders GROUP BY customer ORDER BY customer");
  return { equal: JSON.stringify(got.rows) === JSON.stringify(want.rows), customers: want.rows.length };
}

// Run 1 (parallelism 2): more orders arrive while it runs; it dies between PREPARE and COMMIT PREPARED.
const first = ordersJob(2, true);
await first.start();
await placeOrders(150);
try {
  await first.done;
} catch (e) {
  if (!(e instanceof JobKilledError)) throw e;
  const prepared = await db.query("SELECT count(*)::int AS n FROM pg_prepared_xacts");
  console.log(`run 1 killed ${e.message.replace("job killed: ", "")}; prepared transactions waiting: ${prepared.rows[0].n}`);
}

// Run 2 (parallelism 3): restores (committing what checkpoint 3 prepared), takes more orders, and stops
// with a savepoint once the totals table has caught up with the orders table.
let caughtUp: () => void = () => {};
const upToDate = new Promise<void>((r) => (caughtUp = r));
const second = ordersJob(3, false, () => void compare().then((c) => c.equal && caughtUp()));
await second.start();
await placeOrders(150);
await upToDate;
const savepoint = await second.stopWithSavepoint();
await second.done;

const result = await compare();
const left = await db.query("SELECT count(*)::int AS n FROM pg_prepared_xacts");
const slot = await db.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'orders_slot'");
console.log(`run 2 restored at parallelism 3 and stopped with savepoint ${savepoint.location}`);
console.log(`totals ${result.equal ? "match" : "DO NOT match"} the orders table: ${result.customers} customers`);
console.log(`prepared transactions left: ${left.rows[0].n}; slot confirmed up to ${slot.rows[0].lsn}`);
await db.end();
if (!result.equal || left.rows[0].n !== 0) process.exit(1);
