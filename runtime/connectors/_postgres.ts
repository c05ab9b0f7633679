/**
 * What the PostgreSQL connectors share: how to connect (pg is loaded on first use, so a job without
 * Postgres never loads it), LSN arithmetic and identifier quoting. Private to the connectors.
 *
 * @module
 */
import type { Client, ClientConfig } from "pg";
import type { PostgresConnection } from "./postgres_connection.ts";

export type { PostgresConnection };

type PgModule = typeof import("pg");
let pgModule: Promise<PgModule> | undefined;

/** The pg module (CommonJS: its exports are the default export under ESM). */
export function loadPg(): Promise<PgModule> {
  pgModule ??= import("pg").then((m) => ((m as unknown as { default?: PgModule }).default ?? m) as PgModule);
  return pgModule;
}

/** pg's client configuration for a connection. */
export function clientConfig(c: PostgresConnection, extra: Partial<ClientConfig> = {}): ClientConfig {
  return typeof c === "string" ? { connectionString: c, ...extra } : { ...c, ...extra };
}

/** A connected client. */
export async function connect(c: PostgresConnection, extra: Partial<ClientConfig> = {}): Promise<Client> {
  const pg = await loadPg();
  const client = new pg.Client(clientConfig(c, extra));
  // An error event without a listener would crash the process; failures surface through queries instead.
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Ends a client, ignoring a connection that is already gone. */
export async function end(client: Client | undefined): Promise<void> {
  if (client) await client.end().catch(() => {});
}

/** `X/Y` (hex) to a number of bytes. */
export function parseLsn(lsn: string): bigint {
  const slash = lsn.indexOf("/");
  if (slash < 0) throw new TypeError(`Cannot parse LSN as it is not of the form X/Y: current value is ${JSON.stringify(lsn)}`);
  return (BigInt(`0x${lsn.slice(0, slash)}`) << 32n) | BigInt(`0x${lsn.slice(slash + 1)}`);
}

/** A number of bytes to `X/Y` (hex, upper case, as the server prints it). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Quotes an identifier, or a dotted `schema.name`, for SQL. */
export function quoteName(name: string): string {
  return name.split(".").map((p) => `"${p.replace(/"/g, '""')}"`).join(".");
}

/** A SQLSTATE of a server error, if it is one. */
export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Waits (for backoff between retries, never to decide an outcome). */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
