// CDC → keyed state → Postgres sink, with orders inserted, updated and deleted while the job runs, the job
// killed at seeded points (between PREPARE and COMMIT PREPARED, with prepared transactions of an
// incomplete checkpoint, mid-replication) and restored each time at another parallelism. The totals
// table must equal a failure-free run's exactly, with no prepared transaction left behind and the slot
// never acknowledged past a completed checkpoint. Checkpoints are triggered by the test on events (a
// marker row seen by the job), never by a clock.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Client } from "pg";
import { Job } from "../job.ts";
import { JobKilledError } from "../errors.ts";
import { Rng } from "../sources.ts";
import { valueState } from "../state.ts";
import { openSnapshot, readState } from "../../snapshot/mod.ts";
import { NotFoundError } from "../../format/errors.ts";
import { parseLsn } from "./_postgres.ts";
import { type CdcRecord, postgresCdcSource } from "./postgres_cdc.ts";
import { postgresSink } from "./postgres_sink.ts";
import { startPostgres, type TestPostgres } from "./_test_postgres.ts";

type Order = { id: number; customer: string; amount: number };
type Delta = { customer: string; amount: number; count: number };
type Total = { customer: string; total: number; orders: number };

const TOTAL = valueState<{ total: number; orders: number }>("total");

let pg: TestPostgres;
let admin: Client;
let dir: string;

before(async () => {
  pg = await startPostgres();
  admin = await pg.client();
  await admin.query("CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL)");
  await admin.query("ALTER TABLE orders REPLICA IDENTITY FULL"); // updates and deletes carry the old row
  await admin.query("CREATE TABLE marks (id int PRIMARY KEY)");
  await admin.query("CREATE PUBLICATION shop FOR TABLE orders, marks");
  for (const t of ["totals", "totals_ref"]) await admin.query(`CREATE TABLE ${t} (customer text PRIMARY KEY, total bigint NOT NULL, orders int NOT NULL)`);
  dir = mkdtempSync(join(tmpdir(), "arrowpoint-pg-eo-"));
});

after(async () => {
  await pg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Marker ids the jobs have seen, and who waits for which. */
const waiting = new Map<number, () => void>();
const seenMarks = new Set<number>();
function markSeen(id: number): Promise<void> {
  if (seenMarks.has(id)) return Promise.resolve();
  return new Promise((r) => waiting.set(id, r));
}

/** Told of every order row the job sees (a round triggers a checkpoint from it). */
let orderSeen: ((id: number) => void) | undefined;

/** Orders as changes of per-customer totals: an update that moves an order is a removal and an addition. */
function deltas(r: CdcRecord, out: { collect(d: Delta): void }, markBase: number): void {
  if (r.table === "public.marks") {
    const id = (r.after?.id as number) + markBase;
    seenMarks.add(id);
    waiting.get(id)?.();
    return;
  }
  const before = r.before as Order | undefined;
  const afterRow = r.after as Order | null;
  if (afterRow) orderSeen?.(afterRow.id);
  if (r.op !== "insert" && before) out.collect({ customer: before.customer, amount: -before.amount, count: -1 });
  if (afterRow) out.collect({ customer: afterRow.customer, amount: afterRow.amount, count: 1 });
}

function build(name: string, slot: string, table: string, parallelism: number, root: string, killAt?: (p: { stage: string; checkpointId: number }) => boolean, killAfterRecords?: number, markBase = 0): Job {
  const job = new Job(name, {
    maxParallelism: 32,
    checkpoints: { storage: root },
    restore: { from: "latest" },
    faults: { killAt, killAfterRecords },
  });
  job.fromSource(postgresCdcSource({ connection: pg.connection, publication: "shop", slot, retryDelayMs: 20 }), { uid: "orders", parallelism: 1 })
    .flatMap<Delta>((r, out) => deltas(r, out, markBase), { parallelism: 1 })
    .keyBy((d) => d.customer)
    .process<Total & { gone: boolean }>({
      open(ctx) {
        ctx.getState(TOTAL);
      },
      processElement(d, ctx) {
        const s = ctx.getState(TOTAL);
        const t = s.value() ?? { total: 0, orders: 0 };
        const next = { total: t.total + d.amount, orders: t.orders + d.count };
        if (next.orders === 0) s.clear();
        else s.update(next);
        ctx.collect({ customer: d.customer, ...next, gone: next.orders === 0 });
      },
    }, { uid: "totals", parallelism })
    .sinkTo(postgresSink<Total & { gone: boolean }>({
      connection: pg.connection,
      table,
      columns: ["customer", "total", "orders"],
      key: ["customer"],
      row: (t) => [t.customer, t.total, t.orders],
      isDelete: (t) => t.gone,
    }), { uid: "sink", parallelism });
  return job;
}

/** Applies a wave of order changes, a few per transaction, then a marker row. */
async function wave(rng: Rng, live: Set<number>, next: { id: number }, mark: number, transactions: number): Promise<void> {
  for (let t = 0; t < transactions; t++) {
    const sql: string[] = [];
    const ops = 1 + rng.int(4);
    for (let i = 0; i < ops; i++) {
      const ids = [...live];
      const pick = rng.int(10);
      const customer = `c${rng.int(7)}`;
      const amount = 1 + rng.int(100);
      if (ids.length < 5 || pick < 5) {
        const id = next.id++;
        live.add(id);
        sql.push(`INSERT INTO orders VALUES (${id}, '${customer}', ${amount})`);
      } else if (pick < 7) {
        sql.push(`UPDATE orders SET amount = ${amount} WHERE id = ${ids[rng.int(ids.length)]}`);
      } else if (pick < 8) {
        sql.push(`UPDATE orders SET customer = '${customer}' WHERE id = ${ids[rng.int(ids.length)]}`);
      } else {
        const id = ids[rng.int(ids.length)];
        live.delete(id);
        sql.push(`DELETE FROM orders WHERE id = ${id}`);
      }
    }
    await admin.query(`BEGIN; ${sql.join("; ")}; COMMIT`);
  }
  await admin.query(`INSERT INTO marks VALUES (${mark})`);
}

async function rows(table: string): Promise<[string, number, number][]> {
  const r = await admin.query<{ customer: string; total: string; orders: number }>(`SELECT customer, total::text, orders FROM ${table} ORDER BY customer`);
  return r.rows.map((x) => [x.customer, Number(x.total), x.orders]);
}

async function slotFlush(slot: string): Promise<bigint> {
  const r = await admin.query<{ l: string }>("SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1", [slot]);
  return parseLsn(r.rows[0].l);
}

/** The acknowledgeable LSN of the source position in the latest completed checkpoint (or savepoint folder). */
async function checkpointedConfirm(location: string, none: bigint): Promise<bigint> {
  let snap;
  try {
    snap = await openSnapshot(location);
  } catch (e) {
    if (e instanceof NotFoundError) return none; // no checkpoint completed yet: the slot must not have moved
    throw e;
  }
  try {
    const state = await readState(snap, "orders", "positions");
    const p = (state.values as { position?: { confirm: string } }[])[0].position;
    return p ? parseLsn(p.confirm) : 0n;
  } finally {
    await snap.storage.close();
  }
}

async function ourPrepared(): Promise<string[]> {
  return (await admin.query<{ gid: string }>("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'arrowpoint:shop-%'")).rows.map((r) => r.gid);
}

test("CDC → keyed totals → Postgres sink is exactly once through kills and restores at other parallelisms", async () => {
  // Both slots exist before the first change, so the failure-free reference run sees the same stream.
  const created = parseLsn((await admin.query<{ lsn: string }>("SELECT lsn::text FROM pg_create_logical_replication_slot('eo_slot', 'pgoutput')")).rows[0].lsn);
  await admin.query("SELECT pg_create_logical_replication_slot('ref_slot', 'pgoutput')");
  const rng = new Rng().seed(20261201);
  const live = new Set<number>();
  const next = { id: 1 };
  const root = join(dir, "ckpt");
  const kinds = ["between-prepare-and-commit", "mid-replication", "prepared-not-completed", "checkpoint-inside-a-transaction", "between-prepare-and-commit", "mid-replication"] as const;
  const parallelisms = [2, 3, 1, 4, 2, 3];
  let mark = 0;
  let sawPreparedLeft = 0;
  for (let round = 0; round < kinds.length; round++) {
    const kind = kinds[round];
    let armed = false;
    const killStage = kind === "between-prepare-and-commit" ? "committed" : "acked";
    const job = build("shop-eo", "eo_slot", "totals", parallelisms[round], root, (p) => armed && p.stage === killStage, kind === "mid-replication" ? 1 + rng.int(10) : undefined);
    await job.start();
    const m = ++mark;
    await wave(rng, live, next, m, 10 + rng.int(10));
    if (kind === "checkpoint-inside-a-transaction") {
      // One large transaction; a checkpoint is triggered when the job sees its first row, so its barrier
      // most likely falls inside the transaction (the outcome must not depend on where it falls). The
      // job dies after reading everything, and the restore replays the transaction from the slot.
      const first = next.id;
      const count = 4000;
      let checkpoint: Promise<unknown> | undefined;
      orderSeen = (id) => {
        if (id === first) checkpoint ??= job.triggerCheckpoint();
      };
      await admin.query(`INSERT INTO orders SELECT g, 'c' || (g % 7), 1 + g % 100 FROM generate_series(${first}, ${first + count - 1}) g`);
      for (let id = first; id < first + count; id++) live.add(id);
      next.id += count;
      const m3 = ++mark;
      await admin.query(`INSERT INTO marks VALUES (${m3})`);
      await markSeen(m3);
      await checkpoint;
      orderSeen = undefined;
      job.kill("after a checkpoint inside a transaction");
    } else if (kind !== "mid-replication") {
      await markSeen(m);
      if (rng.int(2) === 0) {
        // Now and then a checkpoint completes (and commits) first, and more changes follow it.
        await job.triggerCheckpoint();
        const m2 = ++mark;
        await wave(rng, live, next, m2, 3 + rng.int(5));
        await markSeen(m2);
      }
      armed = true; // checkpoints run only when triggered: this one is killed
      await assert.rejects(job.triggerCheckpoint(), JobKilledError);
    }
    await assert.rejects(job.done, JobKilledError);
    if (kind !== "mid-replication" && kind !== "checkpoint-inside-a-transaction") {
      // The killed checkpoint's transactions are prepared, not committed: a restore must settle them.
      const left = await ourPrepared();
      assert.ok(left.length > 0, `round ${round} (${kind}) left no prepared transaction to settle`);
      sawPreparedLeft++;
    }
    // The slot never acknowledges past a completed checkpoint.
    assert.ok((await slotFlush("eo_slot")) <= (await checkpointedConfirm(root, created)), `round ${round}: slot flushed past the latest checkpoint`);
  }
  assert.equal(sawPreparedLeft, 3);

  // The last run: no failure; more changes; stop with a savepoint once the last marker is seen.
  const job = build("shop-eo", "eo_slot", "totals", 2, root);
  await job.start();
  const last = ++mark;
  await wave(rng, live, next, last, 15);
  await markSeen(last);
  const sp = await job.stopWithSavepoint(join(dir, "final-savepoint"));
  assert.equal((await job.done).status, "stopped");
  assert.ok((await slotFlush("eo_slot")) <= (await checkpointedConfirm(sp.location, created)));
  assert.deepEqual(await ourPrepared(), []);

  // A failure-free run over the same changes.
  const refMarks = 1_000_000;
  const ref = build("shop-ref", "ref_slot", "totals_ref", 3, join(dir, "ref"), undefined, undefined, refMarks);
  await ref.start();
  await markSeen(refMarks + last);
  await ref.stopWithSavepoint(join(dir, "ref-savepoint"));
  await ref.done;

  const got = await rows("totals");
  assert.deepEqual(got, await rows("totals_ref"));
  // And both equal the orders table itself.
  const truth = await admin.query<{ customer: string; total: string; orders: string }>("SELECT customer, sum(amount)::text AS total, count(*)::text AS orders FROM orders GROUP BY customer ORDER BY customer");
  assert.deepEqual(got, truth.rows.map((r) => [r.customer, Number(r.total), Number(r.orders)]));
  assert.ok(got.length >= 5, "the workload touched several customers");
  assert.deepEqual(await ourPrepared(), []);
  assert.deepEqual((await admin.query("SELECT gid FROM pg_prepared_xacts")).rows, []);
});
