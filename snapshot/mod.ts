/**
 * Snapshots over storage: open, read and merge, write and commit, retention, GC, copy.
 *
 * @module
 */
export * from "./layout.ts";
export * from "./read.ts";
export * from "./write.ts";
export * from "./retention.ts";
export * from "./copy.ts";
