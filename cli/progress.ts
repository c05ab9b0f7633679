/**
 * A progress bar on standard error for long CLI work: rows, bytes, rate and ETA, redrawn at most ten
 * times a second, only on a terminal (nothing at all when output is piped or redirected).
 *
 * @module
 */
import type { Progress } from "../mod.ts";
import { formatBytes, formatCount, formatDuration } from "./format.ts";

/**
 * Draws a one-line progress bar with `\r` on a TTY.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "./progress.ts";
 * const bar = new ProgressBar((s) => process.stderr.write(s), process.stderr.isTTY === true);
 * bar.update({ phase: "rekey", rows: 500, bytes: 4096, totalRows: 1000, elapsedMs: 1000 });
 * bar.done();
 * ```
 */
export class ProgressBar {
  #last = 0;
  #drawn = false;
  #width: number;

  /** `write` receives raw text (no newline added); `enabled` false makes every call a no-op. */
  constructor(readonly write: (text: string) => void, readonly enabled: boolean, columns = 100) {
    this.#width = Math.max(40, Math.min(columns, 120));
  }

  /** The line for a progress report (exposed for tests). */
  line(p: Progress): string {
    const secs = p.elapsedMs / 1000;
    const rate = secs > 0 ? p.rows / secs : 0;
    const parts = [p.phase.padEnd(8)];
    const total = p.totalRows && p.totalRows > 0 ? p.totalRows : undefined;
    if (total) {
      const frac = Math.min(1, p.rows / total);
      const n = 24;
      const full = Math.round(frac * n);
      parts.push(`[${"█".repeat(full)}${"░".repeat(n - full)}] ${(frac * 100).toFixed(0).padStart(3)}%`);
      parts.push(`${formatCount(p.rows)}/${formatCount(total)} rows`);
    } else parts.push(`${formatCount(p.rows)} rows`);
    parts.push(formatBytes(p.bytes));
    if (rate > 0) parts.push(`${formatCount(rate)} rows/s`);
    if (total && rate > 0 && p.rows < total) parts.push(`ETA ${formatDuration(((total - p.rows) / rate) * 1000)}`);
    const text = parts.join("  ");
    return text.length > this.#width - 1 ? text.slice(0, this.#width - 2) + "…" : text;
  }

  /** Redraws (throttled to 10 Hz). */
  update(p: Progress): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    this.write(`\r${this.line(p)}\x1b[K`);
    this.#drawn = true;
  }

  /** Clears the line. Safe to call twice. */
  done(): void {
    if (this.enabled && this.#drawn) this.write("\r\x1b[K");
    this.#drawn = false;
  }
}
