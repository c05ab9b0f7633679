/**
 * Progress reports of the offline tools, for a progress bar or a log line.
 *
 * @module
 */

/**
 * How far a long-running tool (compact, rekey, migrate, validate, export, diff) has come.
 *
 * @example
 * ```ts
 * import type { Progress } from "./progress.ts";
 * const log = (p: Progress) => console.log(`${p.phase}: ${p.rows}/${p.totalRows ?? "?"} rows`);
 * log({ phase: "write", rows: 10, bytes: 1024, totalRows: 100, elapsedMs: 5 });
 * ```
 */
export interface Progress {
  /** What is being done, e.g. `"write"`, `"scatter"`, `"validate"`. */
  phase: string;
  /** Rows processed so far. */
  rows: number;
  /** Bytes written (or read, for read-only tools) so far. */
  bytes: number;
  /** Rows to process in all, when known (an estimate for checkpoint chains). */
  totalRows?: number;
  /** Milliseconds since the tool started. */
  elapsedMs: number;
}
