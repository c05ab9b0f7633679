import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Client } from "pg";
import type { SinkContext } from "../sinks.ts";
import { PostgresConfigError } from "./postgres_errors.ts";
import { postgresSink, type PostgresSinkOptions } from "./postgres_sink.ts";
import { startPostgres, type TestPostgres } from "./_test_postgres.ts";

type Total = { customer: string; total: number; gone?: boolean };

let pg: TestPostgres;
let admin: Client;

before(async () => {
  pg = await startPostgres();
  admin = await pg.client();
  await admin.query("CREATE TABLE totals (customer text PRIMARY KEY, total bigint NOT NULL)");
  await admin.query("CREATE TABLE log (line text)");
});

after(async () => {
  await pg?.stop();
});

function sink(extra: Partial<PostgresSinkOptions<Total>> = {}) {
  return postgresSink<Total>({ connection: pg.connection, table: "totals", columns: ["customer", "total"], key: ["customer"], row: (t) => [t.customer, t.total], isDelete: (t) => t.gone === true, ...extra });
}

const ctx = (attempt: string, subtask = 0): SinkContext => ({ job: "shop", uid: "totals", subtask, parallelism: 2, attempt });

async function table(): Promise<[string, number][]> {
  return (await admin.query<{ customer: string; total: string }>("SELECT customer, total FROM totals ORDER BY customer")).rows.map((r) => [r.customer, Number(r.total)]);
}

async function prepared(): Promise<string[]> {
  return (await admin.query<{ gid: string }>("SELECT gid FROM pg_prepared_xacts ORDER BY gid")).rows.map((r) => r.gid);
}

test("postgresSink prepares a checkpoint's rows at the barrier and shows them only once committed, idempotently", async () => {
  const s = sink();
  const w = s.createWriter(ctx("a1"));
  try {
    w.write([{ customer: "ada", total: 10 }, { customer: "bob", total: 5 }, { customer: "ada", total: 12 }]);
    const c = await w.prepareCommit(3);
    assert.deepEqual(c, { gid: "arrowpoint:shop:totals:0:3:a1" });
    assert.deepEqual(await table(), []);
    assert.deepEqual(await prepared(), ["arrowpoint:shop:totals:0:3:a1"]);
    await s.commit([c!]);
    await s.commit([c!]); // a restore commits again: nothing happens
    assert.deepEqual(await table(), [["ada", 12], ["bob", 5]]);
    assert.deepEqual(await prepared(), []);
    w.write([{ customer: "bob", total: 0, gone: true }, { customer: "cy", total: 1 }]);
    await s.commit([(await w.prepareCommit(4))!]);
    assert.deepEqual(await table(), [["ada", 12], ["cy", 1]]);
    assert.equal(await w.prepareCommit(5), undefined); // nothing written: no transaction
  } finally {
    await w.close?.();
    await s.close?.();
    await admin.query("DELETE FROM totals");
  }
});

test("postgresSink rolls back its own prepared transactions that no restored snapshot knows, and leaves other sinks' alone", async () => {
  const s1 = sink();
  const old = s1.createWriter(ctx("old", 1));
  old.write([{ customer: "ada", total: 99 }]);
  const stale = await old.prepareCommit(7);
  await old.close?.();
  await s1.close?.();
  const other = sink({ transactionPrefix: "someone-else" });
  const ow = other.createWriter(ctx("x"));
  ow.write([{ customer: "zed", total: 1 }]);
  const foreign = await ow.prepareCommit(7);
  await ow.close?.();
  assert.deepEqual(await prepared(), ["arrowpoint:shop:totals:1:7:old", "someone-else:shop:totals:0:7:x"]);
  const s2 = sink();
  const w = s2.createWriter(ctx("new", 0));
  try {
    w.write([{ customer: "ada", total: 1 }]);
    const c = await w.prepareCommit(7); // the stale one (same rows, locked) is rolled back first
    assert.deepEqual(await prepared(), ["arrowpoint:shop:totals:0:7:new", "someone-else:shop:totals:0:7:x"]);
    await s2.commit([c!]);
    await other.commit([foreign!]);
    assert.deepEqual(await table(), [["ada", 1], ["zed", 1]]);
    assert.ok(stale);
  } finally {
    await w.close?.();
    await s2.close?.();
    await other.close?.();
    await admin.query("DELETE FROM totals");
  }
});

test("postgresSink in upsert mode commits at the barrier, and writing a checkpoint again converges", async () => {
  const s = sink({ mode: "upsert" });
  const w = s.createWriter(ctx("u"));
  try {
    const batch = [{ customer: "ada", total: 3 }, { customer: "bob", total: 4 }];
    w.write(batch);
    assert.equal(await w.prepareCommit(1), undefined);
    assert.deepEqual(await table(), [["ada", 3], ["bob", 4]]);
    w.write(batch); // replayed after a failure
    await w.prepareCommit(1);
    assert.deepEqual(await table(), [["ada", 3], ["bob", 4]]);
    assert.deepEqual(await prepared(), []);
  } finally {
    await w.close?.();
    await s.close?.();
    await admin.query("DELETE FROM totals");
  }
});

test("postgresSink without a key inserts every record", async () => {
  const s = postgresSink<string>({ connection: pg.connection, table: "log", columns: ["line"], row: (l) => [l], batchRows: 2 });
  const w = s.createWriter(ctx("i"));
  try {
    w.write(["a", "b", "a", "c", "d"]);
    await s.commit([(await w.prepareCommit(1))!]);
    assert.deepEqual((await admin.query<{ line: string }>("SELECT line FROM log ORDER BY line")).rows.map((r) => r.line), ["a", "a", "b", "c", "d"]);
  } finally {
    await w.close?.();
    await s.close?.();
  }
});

test("postgresSink rejects options it cannot honour", () => {
  assert.throws(() => sink({ mode: "upsert", key: [] , isDelete: undefined }), /upsert mode as it has no key/);
  assert.throws(() => sink({ key: ["nope"] }), /key column "nope" is not in columns/);
});

test("postgresSink names max_prepared_transactions = 0 and what to set", async () => {
  await pg.restart({ maxPreparedTransactions: 0 });
  const s = sink();
  const w = s.createWriter(ctx("z"));
  try {
    w.write([{ customer: "ada", total: 1 }]);
    await assert.rejects(async () => await w.prepareCommit(1), (e: unknown) => e instanceof PostgresConfigError && e.setting === "max_prepared_transactions" && /set max_prepared_transactions to at least twice/.test(e.message) && /mode: "upsert"/.test(e.message));
  } finally {
    await w.close?.();
    await s.close?.();
    await pg.restart({});
    admin = await pg.client();
  }
});
