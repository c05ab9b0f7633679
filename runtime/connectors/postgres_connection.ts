/**
 * How the PostgreSQL connectors reach a server (a type of its own so that the public declarations never
 * name the pg driver's types).
 *
 * @module
 */

/**
 * How to reach the server: a connection URI (`postgres://user:password@host:port/database`) or its parts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PostgresConnection } from "./postgres_connection.ts";
 * const a: PostgresConnection = "postgres://postgres:secret@127.0.0.1:5432/shop";
 * const b: PostgresConnection = { host: "127.0.0.1", port: 5432, user: "postgres", password: "secret", database: "shop" };
 * assert.equal(typeof a, "string");
 * assert.equal(b.port, 5432);
 * ```
 */
export type PostgresConnection = string | {
  /** Host name or address (default localhost). */
  readonly host?: string;
  /** Port (default 5432). */
  readonly port?: number;
  /** User name. */
  readonly user?: string;
  /** Password. */
  readonly password?: string;
  /** Database name. */
  readonly database?: string;
};
