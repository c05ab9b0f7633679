/**
 * Benchmark output: the terminal table with ratios against baselines and limits measured in the same run,
 * the goals check, the JSON document and the SVG chart.
 *
 * @module
 */
import type { CaseResult } from "./harness.ts";

/** The run's environment, as written to the JSON output. */
export interface BenchEnvironment {
  /** `node` or `deno`. */
  runtime: string;
  /** Runtime version. */
  version: string;
  /** Logical CPUs. */
  cpus: number;
  /** Rows of the data set. */
  rows: number;
  /** CPU model, when known. */
  cpuModel?: string;
  /** When the run happened (ISO). */
  date: string;
}

/** The JSON document `--out` writes. */
export interface BenchReport {
  /** Where it ran. */
  environment: BenchEnvironment;
  /** One entry per case. */
  results: CaseResult[];
}

/** Which baseline or limit each case is compared with in the table. */
const COMPARE: Record<string, string[]> = {
  "checkpoint.full.write": ["baseline.json.write", "baseline.msgpack.write", "limit.disk.write"],
  "restore.full": ["baseline.json.read", "baseline.msgpack.read"],
  "savepoint.compact": ["baseline.json.write"],
  "rekey.maxParallelism": ["baseline.json.write"],
  "migrate.addField": ["baseline.json.write"],
  "rekey.maxParallelism.workers2": ["rekey.maxParallelism"],
  "migrate.addField.workers2": ["migrate.addField"],
  "migrate.addField.shards8": ["migrate.addField"],
  "rekey.maxParallelism.shards8": ["rekey.maxParallelism"],
  "migrate.renameField": ["baseline.json.write"],
  "migrate.dropField": ["baseline.json.write"],
  "chunk.encode": ["baseline.json.encode"],
  "chunk.decode": ["baseline.json.decode"],
};

/** One goal of the benchmark issue, checked against the results. */
export interface GoalCheck {
  /** The goal, in words. */
  goal: string;
  /** Measured value, in words. */
  measured: string;
  /** Whether it is met; undefined when a case is missing. */
  met?: boolean;
}

function fmtRate(n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + " G";
  if (n >= 1e6) return (n / 1e6).toFixed(2) + " M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + " k";
  return n.toFixed(1) + " ";
}

/**
 * The terminal table: one row per case, rows/s and MB/s (median, ± spread), median time, peak RSS, and the
 * ratio to the cases it is compared with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTable } from "./report.ts";
 * assert.equal(typeof formatTable([]), "string");
 * ```
 */
export function formatTable(results: readonly CaseResult[]): string {
  const byName = new Map(results.map((r) => [r.name, r]));
  const rows = results.map((r) => {
    const ratios = (COMPARE[r.name] ?? [])
      .filter((n) => byName.has(n))
      .map((n) => `${(r.rowsPerSec / byName.get(n)!.rowsPerSec).toFixed(2)}× ${n.replace(/^(baseline|limit)\./, "")}`);
    return [
      r.name,
      `${fmtRate(r.rowsPerSec)}rows/s`,
      `±${(r.spread * 100).toFixed(0)}%`,
      `${(r.bytesPerSec / 1e6).toFixed(0)} MB/s`,
      `${r.medianMs.toFixed(1)} ms`,
      r.peakRssBytes ? `${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB` : "",
      ratios.join(", "),
    ];
  });
  const head = ["case", "rows/s (median)", "spread", "bytes/s", "median", "RSS +peak", "vs same-run baselines"];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ").trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/**
 * Checks the benchmark goals (issue 6) against one run's results.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkGoals } from "./report.ts";
 * assert.equal(checkGoals([]).every((g) => g.met === undefined), true);
 * ```
 */
export function checkGoals(results: readonly CaseResult[]): GoalCheck[] {
  const r = new Map(results.map((x) => [x.name, x]));
  const rate = (n: string) => r.get(n)?.rowsPerSec;
  const ms = (n: string) => r.get(n)?.medianMs;
  const goals: GoalCheck[] = [];
  const add = (goal: string, value: number | undefined, ok: (v: number) => boolean, show: (v: number) => string) =>
    goals.push(value === undefined || !Number.isFinite(value) ? { goal, measured: "not measured" } : { goal, measured: show(value), met: ok(value) });
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a / b : undefined);
  const M = (v: number) => `${(v / 1e6).toFixed(2)} M rows/s`;
  const X = (v: number) => `${v.toFixed(2)}×`;
  const P = (v: number) => `${(v * 100).toFixed(1)}%`;
  add("full checkpoint ≥ 8 M rows/s", rate("checkpoint.full.write"), (v) => v >= 8e6, M);
  add("full checkpoint ≥ 6× baseline.json.write", ratio(rate("checkpoint.full.write"), rate("baseline.json.write")), (v) => v >= 6, X);
  const full = r.get("checkpoint.full.write");
  const disk = r.get("limit.disk.write");
  add(
    "full checkpoint within 4× of limit.disk.write for the same bytes",
    full && disk ? (full.medianMs / full.bytes) / (disk.medianMs / disk.bytes) : undefined,
    (v) => v <= 4,
    (v) => `${v.toFixed(2)}× the disk's time per byte`,
  );
  add("incremental at 1% ≤ 5% of full", ratio(ms("checkpoint.incremental.write"), ms("checkpoint.full.write")), (v) => v <= 0.05, P);
  add("restore ≥ 3 M rows/s", rate("restore.full"), (v) => v >= 3e6, M);
  add("restore ≥ 2× baseline.json.read", ratio(rate("restore.full"), rate("baseline.json.read")), (v) => v >= 2, X);
  add("rekey.parallelism ≤ 5% of a full rewrite", ratio(ms("rekey.parallelism"), ms("rekey.maxParallelism")), (v) => v <= 0.05, (v) => `${P(v)} of rekey.maxParallelism`);
  for (const n of ["rekey.maxParallelism", "savepoint.compact", "migrate.addField"]) add(`${n} ≥ 3 M rows/s`, rate(n), (v) => v >= 3e6, M);
  // Issue 12: the offline tools and restore as column transforms, as ratios within one run.
  for (const n of ["savepoint.compact", "rekey.maxParallelism", "migrate.addField"]) add(`${n} ≥ 8× baseline.json.write`, ratio(rate(n), rate("baseline.json.write")), (v) => v >= 8, X);
  for (const n of ["migrate.renameField", "migrate.dropField"]) add(`${n} ≥ 20× baseline.json.write`, ratio(rate(n), rate("baseline.json.write")), (v) => v >= 20, X);
  add("restore.full ≥ 6× baseline.json.read", ratio(rate("restore.full"), rate("baseline.json.read")), (v) => v >= 6, X);
  add("runtime ≥ 1 M events/s", rate("runtime.records"), (v) => v >= 1e6, (v) => `${(v / 1e6).toFixed(2)} M events/s`);
  add("checkpointing every second costs ≤ 10%", ratio(rate("runtime.records.checkpointing"), rate("runtime.records")), (v) => v >= 0.9, (v) => `${P(v)} of the checkpoint-free rate`);
  // Issue 14: subtasks on every core, checkpoints near the disk (ratios within one run).
  add("runtime.records.workers2 ≥ 1.6× runtime.records (rows/s)", ratio(rate("runtime.records.workers2"), rate("runtime.records")), (v) => v >= 1.6, X);
  add("full checkpoint ≥ 8× baseline.json.write", ratio(rate("checkpoint.full.write"), rate("baseline.json.write")), (v) => v >= 8, X);
  for (const n of ["runtime.windows.tumbling", "runtime.windows.session"]) {
    add(`${n} ≥ 0.5× runtime.records`, ratio(rate(n), rate("runtime.records")), (v) => v >= 0.5, (v) => `${X(v)} of runtime.records`);
  }
  // Issue 13: sharded runs, as ratios within one run.
  // Steady state (the warm-up run started the threads; they stay in the pool), with what a first run and
  // the CPU cost beside it: wall ratios on a shared machine swing with the load.
  for (const n of ["rekey.maxParallelism", "migrate.addField"]) {
    const w = r.get(`${n}.workers2`);
    const one = r.get(n);
    const extra = w?.cpuMs !== undefined && one?.cpuMs !== undefined
      ? `; CPU ${w.cpuMs.toFixed(0)} ms vs ${one.cpuMs.toFixed(0)} ms${w.firstMs !== undefined ? `; first run ${w.firstMs.toFixed(0)} ms` : ""}`
      : "";
    add(`${n}.workers2 ≥ 1.6× ${n} (rows/s)`, ratio(rate(`${n}.workers2`), rate(n)), (v) => v >= 1.6, (v) => X(v) + extra);
  }
  add("8 shards one after another ≤ 1.15× one run (migrate.addField)", ratio(ms("migrate.addField.shards8"), ms("migrate.addField")), (v) => v <= 1.15, (v) => `${X(v)} the time`);
  add("8 shards one after another ≤ 1.15× one run (rekey.maxParallelism)", ratio(ms("rekey.maxParallelism.shards8"), ms("rekey.maxParallelism")), (v) => v <= 1.15, (v) => `${X(v)} the time`);
  add("checkpoint of pending timers ≥ 0.5× checkpoint.full.write (rows/s)", ratio(rate("checkpoint.timers.write"), rate("checkpoint.full.write")), (v) => v >= 0.5, X);
  return goals;
}

/**
 * The goals as lines for the terminal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatGoals } from "./report.ts";
 * assert.equal(formatGoals([{ goal: "x", measured: "1", met: true }]), "  met     x: 1");
 * ```
 */
export function formatGoals(goals: readonly GoalCheck[]): string {
  return goals.map((g) => `  ${(g.met === undefined ? "n/a" : g.met ? "met" : "MISSED").padEnd(7)} ${g.goal}: ${g.measured}`).join("\n");
}

const COLORS: Record<string, string> = { arrowpoint: "#2f6fdf", baseline: "#9a9a9a", limit: "#e0a030" };

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);
}

/**
 * A horizontal bar chart (SVG) of rows/s per case on a log scale, arrowpoint in blue beside the baselines
 * (grey) and the machine's limits (amber), with the environment in the title.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderSvg } from "./report.ts";
 * const svg = renderSvg({ environment: { runtime: "node", version: "20", cpus: 2, rows: 10, date: "" }, results: [] });
 * assert.equal(svg.startsWith("<svg"), true);
 * ```
 */
export function renderSvg(report: BenchReport): string {
  const results = report.results.filter((r) => r.rowsPerSec > 0);
  const barH = 22;
  const gap = 6;
  const left = 250;
  const right = 150;
  const width = 960;
  const top = 56;
  const height = top + results.length * (barH + gap) + 40;
  const max = Math.max(10, ...results.map((r) => r.rowsPerSec));
  const min = Math.max(1, Math.min(...results.map((r) => r.rowsPerSec), max) / 2);
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const x = (v: number) => left + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo || 1)) * (width - left - right);
  const env = report.environment;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="16" y="22" font-size="16" font-weight="600">arrowpoint snapshot throughput — rows/s, median (log scale)</text>`,
    `<text x="16" y="40" fill="#555">${escapeXml(`${env.rows.toLocaleString("en-US")} rows · ${env.runtime} ${env.version} · ${env.cpus} CPUs${env.cpuModel ? ` (${env.cpuModel})` : ""} · ${env.date.slice(0, 10)}`)}</text>`,
  ];
  for (let p = lo; p <= hi; p++) {
    const gx = x(10 ** p);
    parts.push(`<line x1="${gx}" x2="${gx}" y1="${top - 6}" y2="${height - 30}" stroke="#eee"/>`);
    parts.push(`<text x="${gx}" y="${height - 14}" text-anchor="middle" fill="#777">${fmtRate(10 ** p).trim()}</text>`);
  }
  results.forEach((r, i) => {
    const y = top + i * (barH + gap);
    parts.push(`<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${escapeXml(r.name)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(r.rowsPerSec) - left)}" height="${barH}" fill="${COLORS[r.group]}" rx="2"/>`);
    parts.push(`<text x="${x(r.rowsPerSec) + 6}" y="${y + barH / 2 + 4}" fill="#333">${fmtRate(r.rowsPerSec)}rows/s</text>`);
  });
  const legendY = 22;
  Object.entries(COLORS).forEach(([g, c], i) => {
    const lx = width - 300 + i * 100;
    parts.push(`<rect x="${lx}" y="${legendY - 10}" width="12" height="12" fill="${c}"/><text x="${lx + 16}" y="${legendY}">${g}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
