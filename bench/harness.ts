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
  /**
   * Unmeasured warm-up iterations before them (default 1): more where the steady state a user repeating
   * runs sees takes longer to reach (worker threads that start, then compile their code as they work).
   */
  warmups?: number;
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
  /**
   * Median process CPU time of one measured iteration, ms: every thread of the process (worker threads
   * included), where the runtime tells (`process.cpuUsage`). On a shared machine wall time swings with the
   * load; CPU time says what the work cost.
   */
  cpuMs?: number;
  /**
   * The first (warm-up, unmeasured) iteration's wall time, ms: what a first run pays that later ones do not
   * (worker threads starting cold, code not yet compiled).
   */
  firstMs?: number;
}

/** Options of {@link runCases}. */
export interface RunOptions {
  /** Measured iterations per case. */
  iterations: number;
  /** Called after each case (progress). */
  onResult?: (r: CaseResult) => void;
}

/** Process CPU time (user + system, all threads) in ms, or undefined where the runtime does not tell. */
function cpuTime(): number | undefined {
  const u = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process?.cpuUsage?.();
  return u ? (u.user + u.system) / 1000 : undefined;
}

function medianOf(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
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
    // Every call of the task, the warm-up first: wall and CPU ms.
    const calls: { wall: number; cpu?: number }[] = [];
    const bench = new Bench({ time: 0, iterations: c.iterations ?? options.iterations, warmup: true, warmupIterations: c.warmups ?? 1, warmupTime: 0, throws: true, retainSamples: true });
    bench.add(c.name, async () => {
      const cpu0 = cpuTime();
      const t0 = performance.now();
      await c.run();
      const wall = performance.now() - t0;
      const cpu1 = cpuTime();
      calls.push({ wall, cpu: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0 });
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
    const measured = calls.slice(c.warmups ?? 1).map((x) => x.cpu).filter((x): x is number => x !== undefined);
    if (measured.length) r.cpuMs = medianOf(measured);
    if (calls.length > 1) r.firstMs = calls[0].wall;
    results.push(r);
    options.onResult?.(r);
  }
  return results;
}
