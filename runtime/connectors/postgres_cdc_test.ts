import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Client } from "pg";
import type { SplitReader } from "../sources.ts";
import { type CdcRecord, postgresCdcSource, type PostgresCdcOptions } from "./postgres_cdc.ts";
import { PostgresConfigError, PostgresConnectionLostError, PostgresPublicationError, PostgresRestoreError, PostgresSlotInUseError } from "./postgres_errors.ts";
import { dropSlot, startPostgres, type TestPostgres } from "./_test_postgres.ts";

let pg: TestPostgres;
let admin: Client;

before(async () => {
  pg = await startPostgres();
  admin = await pg.client();
  await admin.query("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)");
  await admin.query("CREATE PUBLICATION items_pub FOR TABLE items");
});

after(async () => {
  await pg?.stop();
});

async function readN(reader: SplitReader<CdcRecord>, n: number): Promise<CdcRecord[]> {
  const out: CdcRecord[] = [];
  while (out.length < n) {
    const r = reader.read(out, n - out.length);
    if (typeof r !== "number") await r;
  }
  return out;
}

function source(slot: string, extra: Partial<PostgresCdcOptions> = {}) {
  return postgresCdcSource({ connection: pg.connection, publication: "items_pub", slot, retryDelayMs: 10, ...extra });
}

async function slotFlush(slot: string): Promise<string> {
  return (await admin.query<{ l: string }>("SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1", [slot])).rows[0].l;
}

test("postgresCdcSource emits inserts, updates and deletes as typed records in commit order", async () => {
  const src = source("typed_slot");
  const [split] = await src.splits();
  const reader = await src.reader(split, undefined);
  try {
    await admin.query("INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5)");
    await admin.query("UPDATE items SET qty = 4 WHERE id = 1");
    await admin.query("DELETE FROM items WHERE id = 2");
    const recs = await readN(reader, 4);
    assert.deepEqual(recs.map((r) => [r.op, r.table, r.key, r.after]), [
      ["insert", "public.items", { id: 1 }, { id: 1, name: "apple", qty: 3 }],
      ["insert", "public.items", { id: 2 }, { id: 2, name: "pear", qty: 5 }],
      ["update", "public.items", { id: 1 }, { id: 1, name: "apple", qty: 4 }],
      ["delete", "public.items", { id: 2 }, null],
    ]);
    assert.deepEqual(recs[3].before, { id: 2 }); // the replica identity (primary key) of the old row
    assert.ok(recs.every((r) => /^[0-9A-F]+\/[0-9A-F]+$/.test(r.lsn) && typeof r.commitTime === "number" && r.commitTime > 1.7e12));
    assert.equal(recs[0].commitLsn, recs[1].commitLsn); // one transaction
  } finally {
    await reader.close?.();
    await dropSlot(admin, "typed_slot");
    await admin.query("DELETE FROM items");
  }
});

test("postgresCdcSource advances the slot only when told a checkpoint completed, and a reader at a position skips what it covers", async () => {
  const src = source("pos_slot");
  const [split] = await src.splits();
  const reader = await src.reader(split, undefined);
  try {
    const start = await slotFlush("pos_slot");
    await admin.query("BEGIN; INSERT INTO items VALUES (10, 'a', 1), (11, 'b', 1), (12, 'c', 1); COMMIT");
    await admin.query("INSERT INTO items VALUES (13, 'd', 1)");
    const first = await readN(reader, 2); // stops inside the first transaction
    const mid = reader.position();
    assert.equal(await slotFlush("pos_slot"), start);
    const rest = await readN(reader, 2);
    assert.deepEqual([...first, ...rest].map((r) => r.key.id), [10, 11, 12, 13]);
    await reader.notifyCheckpointComplete!(mid); // mid-transaction: only what precedes it
    await reader.close?.();
    assert.equal(await slotFlush("pos_slot"), start);
    // A reader restored at `mid` replays from the slot and emits exactly what came after it.
    const again = await src.reader(split, mid);
    const replay = await readN(again, 2);
    assert.deepEqual(replay.map((r) => r.key.id), [12, 13]);
    const end = again.position();
    await again.notifyCheckpointComplete!(end);
    // The server applies the acknowledgement when its sender reads it: wait for that, not for a time.
    const confirm = (end as { confirm: string }).confirm;
    await admin.query(
      `DO $$ BEGIN
         FOR i IN 1..1000 LOOP
           EXIT WHEN (SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pos_slot') >= '${confirm}'::pg_lsn;
           PERFORM pg_sleep(0.01);
         END LOOP;
       END $$`,
    );
    await again.close?.();
    const flushed = await slotFlush("pos_slot");
    assert.notEqual(flushed, start);
    assert.equal(flushed, confirm);
    // An older position than the slot confirmed cannot be resumed.
    await assert.rejects(async () => await src.reader(split, mid), PostgresRestoreError);
  } finally {
    await reader.close?.();
    await dropSlot(admin, "pos_slot");
    await admin.query("DELETE FROM items");
  }
});

test("postgresCdcSource with snapshot emits the existing rows, then the changes after the slot's consistent point", async () => {
  await admin.query("INSERT INTO items VALUES (20, 'x', 1), (21, 'y', 2), (22, 'z', 3)");
  const src = source("snap_slot", { snapshot: true });
  const [split] = await src.splits();
  const reader = await src.reader(split, undefined);
  try {
    const snap = await readN(reader, 2);
    assert.deepEqual(snap.map((r) => [r.op, r.key.id, r.snapshot]), [["insert", 20, true], ["insert", 21, true]]);
    assert.ok((reader.position() as { snapshot?: unknown }).snapshot, "position says the snapshot is being read");
    await assert.rejects(async () => await src.reader(split, reader.position()), PostgresRestoreError);
    assert.deepEqual((await readN(reader, 1)).map((r) => r.key.id), [22]);
    assert.equal((reader.position() as { snapshot?: unknown }).snapshot, undefined, "past the last row the position is restorable");
    await admin.query("UPDATE items SET qty = 9 WHERE id = 21");
    const changes = await readN(reader, 1);
    assert.deepEqual(changes.map((r) => [r.op, r.key.id, r.after?.qty]), [["update", 21, 9]]);
  } finally {
    await reader.close?.();
    await dropSlot(admin, "snap_slot");
    await admin.query("DELETE FROM items");
  }
});

test("postgresCdcSource names a missing publication", async () => {
  const src = postgresCdcSource({ connection: pg.connection, publication: "no_such_pub", slot: "nopub_slot" });
  const [split] = await src.splits();
  await assert.rejects(async () => await src.reader(split, undefined), (e: unknown) => e instanceof PostgresPublicationError && /CREATE PUBLICATION no_such_pub/.test(e.message));
});

test("postgresCdcSource names a slot in use", async () => {
  const src = source("busy_slot");
  const [split] = await src.splits();
  const reader = await src.reader(split, undefined);
  try {
    await admin.query("INSERT INTO items VALUES (30, 'z', 1)");
    await readN(reader, 1); // the stream is up: the slot is active
    const other = source("busy_slot", { retries: 1 });
    await assert.rejects(async () => await other.reader(split, undefined), (e: unknown) => e instanceof PostgresSlotInUseError && /in use by server process \d+/.test(e.message));
  } finally {
    await reader.close?.();
    await admin.query("DELETE FROM items");
  }
  await dropSlot(admin, "busy_slot");
});

test("postgresCdcSource reconnects after a lost connection without losing or repeating a change, then fails once it cannot", async () => {
  await admin.query("CREATE ROLE cdc_user LOGIN REPLICATION PASSWORD 'cdc'");
  await admin.query("GRANT SELECT ON items TO cdc_user");
  const src = source("lost_slot", { connection: { ...pg.connection, user: "cdc_user", password: "cdc" }, retries: 2 });
  const [split] = await src.splits();
  const reader = await src.reader(split, undefined);
  const kill = () => admin.query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'lost_slot' AND active_pid IS NOT NULL");
  try {
    await admin.query("INSERT INTO items VALUES (40, 'a', 1)");
    assert.deepEqual((await readN(reader, 1)).map((r) => r.key.id), [40]);
    await kill();
    await admin.query("INSERT INTO items VALUES (41, 'b', 1)");
    assert.deepEqual((await readN(reader, 1)).map((r) => r.key.id), [41]); // reconnected, 40 not repeated
    await admin.query("ALTER ROLE cdc_user NOLOGIN");
    await kill();
    await admin.query("INSERT INTO items VALUES (42, 'c', 1)");
    await assert.rejects(async () => await readN(reader, 1), (e: unknown) => e instanceof PostgresConnectionLostError && /2 reconnections failed/.test(e.message));
  } finally {
    await reader.close?.();
    await admin.query("DELETE FROM items");
    await dropSlot(admin, "lost_slot");
  }
});

test("postgresCdcSource names a server whose wal_level is not logical", async () => {
  // A server with logical slots refuses to start below wal_level = logical: drop them all first.
  for (const { slot_name } of (await admin.query<{ slot_name: string }>("SELECT slot_name FROM pg_replication_slots")).rows) await dropSlot(admin, slot_name);
  await pg.restart({ walLevel: "replica", maxPreparedTransactions: 0 });
  try {
    const src = source("wal_slot");
    const [split] = await src.splits();
    await assert.rejects(async () => await src.reader(split, undefined), (e: unknown) => e instanceof PostgresConfigError && e.setting === "wal_level" && /set wal_level = logical/.test(e.message));
  } finally {
    await pg.restart({});
    admin = await pg.client();
  }
});
