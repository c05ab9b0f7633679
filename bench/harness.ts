/**
 * The benchmark harness: runs named cases on tinybench with a fixed iteration count (tinybench's time
 * budget counts only measured time, so per-iteration hooks could otherwise make a run take minutes), and
 * turns latencies into rows/s, bytes/s, spread and peak RSS.
 *
 * @module
 */
import { Bench } from "tinybench";

/** Which column a case belongs to in the report. */
export type CaseGroup = "arrowpoint" | "baseline" | "limit";

/** One measured operation. */
export interface BenchCase {
  /** Stable name, e.g. `checkpoint.full.write`. */
  name: string;
  /** What it measures, one line. */
  what: string;
  /** arrowpoint itself, a baseline to compare with, or a limit of the machine. */
  group: CaseGroup;
  /** Rows processed per iteration. */
  rows: number;
  /** Bytes processed per iteration (read after `beforeAll`). */
  bytes: () => number;
  /** Whether to report peak RSS (offline tools). */
  offline?: boolean;
  /** Iterations for this case (default: the run's). */
  iterations?: number;
  /** Untimed preparation before the first iteration. */
  beforeAll?: () => Promise<void> | void;
  /** Untimed preparation before each iteration. */
  beforeEach?: () => Promise<void> | void;
  /** Untimed cleanup after each iteration. */
  afterEach?: () => Promise<void> | void;
  /** Untimed cleanup after the last iteration. */
  afterAll?: () => Promise<void> | void;
  /** The measured work. */
  run: () => Promise<void> | void;
}

/** The measured result of one case, as written to the JSON output. */
export interface CaseResult {
  /** The case name. */
  name: string;
  /** The case group. */
  group: CaseGroup;
  /** Median rows per second. */
  rowsPerSec: number;
  /** Median bytes per second. */
  bytesPerSec: number;
  /** Median latency of one iteration, ms. */
  medianMs: number;
  /** Median absolute deviation of the latency, as a fraction of the median. */
  spread: number;
  /** Number of measured iterations. */
  samples: number;
  /** Rows per iteration. */
  rows: number;
  /** Bytes per iteration. */
  bytes: number;
  /**
   * Peak resident set size seen during the case above the RSS when it started, bytes (offline tools
   * only): the tool's own working memory, without the benchmark's data set.
   */
  peakRssBytes?: number;
}

/** Options of {@link runCases}. */
export interface RunOptions {
  /** Measured iterations per case. */
  iterations: number;
  /** Called after each case (progress). */
  onResult?: (r: CaseResult) => void;
}

function rss(): number {
  return (globalThis as { process?: { memoryUsage?: () => { rss: number } } }).process?.memoryUsage?.().rss ?? 0;
}

/**
 * Runs every case, one tinybench instance each (so one case's garbage does not land in another's
 * timing), and returns their results in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runCases } from "./harness.ts";
 * const [r] = await runCases([{ name: "noop", what: "nothing", group: "limit", rows: 1, bytes: () => 0, run: () => {} }], { iterations: 3 });
 * assert.equal(r.samples, 3);
 * ```
 */
export async function runCases(cases: readonly BenchCase[], options: RunOptions): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const c of cases) {
    let peak = 0;
    let startRss = 0;
    let timer: ReturnType<typeof setInterval> | undefined;
    const bench = new Bench({ time: 0, iterations: c.iterations ?? options.iterations, warmup: true, warmupIterations: 1, warmupTime: 0, throws: true, retainSamples: true });
    bench.add(c.name, async () => {
      await c.run();
      if (c.offline) peak = Math.max(peak, rss());
    }, { beforeEach: c.beforeEach, afterEach: c.afterEach });
    // tinybench runs its beforeAll/afterAll hooks once per phase (warmup and run); a case's are once.
    await c.beforeAll?.();
    startRss = rss();
    peak = startRss;
    if (c.offline) timer = setInterval(() => (peak = Math.max(peak, rss())), 5);
    try {
      await bench.run();
    } finally {
      if (timer) clearInterval(timer);
      await c.afterAll?.();
    }
    const task = bench.tasks[0];
    const result = task.result;
    if (result.state !== "completed") {
      throw new Error(`benchmark ${c.name} did not complete: ${result.state}${"error" in result ? `: ${(result as { error: Error }).error.message}` : ""}`);
    }
    const median = result.latency.p50;
    const bytes = c.bytes();
    const r: CaseResult = {
      name: c.name,
      group: c.group,
      rowsPerSec: c.rows / (median / 1000),
      bytesPerSec: bytes / (median / 1000),
      medianMs: median,
      spread: median > 0 ? result.latency.mad / median : 0,
      samples: result.latency.samplesCount,
      rows: c.rows,
      bytes,
    };
    if (c.offline) r.peakRssBytes = Math.max(0, peak - startRss);
    results.push(r);
    options.onResult?.(r);
  }
  return results;
}
