/**
 * Snapshots over storage: open, read and merge, write and commit, retention, GC, copy.
 *
 * @module
 */
export * from "./layout.ts";
export * from "./read.ts";
export * from "./chain.ts";
export * from "./chunks.ts";
export * from "./sweep.ts";
export type { RangeBatch, Rows } from "./rows.ts";
export * from "./write.ts";
export * from "./retention.ts";
export * from "./copy.ts";
export * from "./shards.ts";
