/**
 * `npm run bench`: measures arrowpoint's snapshot throughput against plain baselines and the machine's
 * limits in one run, prints a table with ratios and the goals, and writes JSON and an SVG chart.
 *
 * ```
 * npm run bench -- [--rows N] [--out FILE] [--iterations K] [--only SUBSTR] [--runtime node|deno]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import { runCases, type BenchCase } from "./harness.ts";
import { type BenchReport, checkGoals, formatGoals, formatTable, renderSvg } from "./report.ts";
import { generateData } from "./data.ts";
import { baselineCases, type BenchContext } from "./cases_baseline.ts";
import { chunkRowsOf, formatCases, VALUE_LAYOUT } from "./cases_format.ts";
import { cases as checkpointCases } from "./cases_checkpoint.ts";
import { cases as s3Cases } from "./cases_s3.ts";
import { cases as runtimeCases } from "./cases_runtime.ts";
import { cases as postgresCases } from "./cases_postgres.ts";
import { encodeChunk } from "../format/encode_chunk.ts";

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

function runtimeInfo(): { runtime: string; version: string } {
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  return deno ? { runtime: "deno", version: deno.version.deno } : { runtime: "node", version: process.version.slice(1) };
}

/** Every case, in report order: arrowpoint's first, then the baselines and limits they are compared with. */
async function allCases(ctx: BenchContext): Promise<BenchCase[]> {
  return [
    ...formatCases(ctx),
    ...(await checkpointCases(ctx)),
    ...s3Cases(ctx),
    ...runtimeCases(ctx),
    ...postgresCases(ctx),
    ...baselineCases(ctx),
  ];
}

/** Runs the benchmark with command-line arguments; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: "string", default: "1000000" },
      out: { type: "string" },
      iterations: { type: "string" },
      only: { type: "string" },
      runtime: { type: "string" },
      dir: { type: "string" },
      seed: { type: "string", default: "42" },
    },
    strict: true,
  });
  if (values.runtime === "deno" && !isDeno) {
    const rest = argv.filter((a, i) => a !== "--runtime" && argv[i - 1] !== "--runtime" && !a.startsWith("--runtime="));
    const deno = resolve(dirname(new URL(import.meta.url).pathname), "../node_modules/.bin/deno");
    const r = spawnSync(deno, ["run", "-A", new URL(import.meta.url).pathname, ...rest], { stdio: "inherit" });
    return r.status ?? 1;
  }
  const rows = Number(values.rows);
  if (!Number.isSafeInteger(rows) || rows < 1000) throw new Error(`--rows must be an integer ≥ 1000, got ${values.rows}`);
  const iterations = Number(values.iterations ?? (rows >= 500_000 ? 5 : 10));
  const base = values.dir ?? join(process.cwd(), ".tmp");
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, "bench-"));
  const t0 = Date.now();
  const data = generateData(rows, Number(values.seed));
  let snapshot: Uint8Array | undefined;
  const ctx: BenchContext = {
    data,
    dir,
    snapshotBytes: () => (snapshot ??= encodeChunk(VALUE_LAYOUT, chunkRowsOf(data)).bytes),
  };
  const env = {
    ...runtimeInfo(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model?.trim(),
    rows,
    date: new Date().toISOString(),
  };
  console.log(`arrowpoint bench: ${rows.toLocaleString("en-US")} rows, ${env.runtime} ${env.version}, ${env.cpus} CPUs, ${iterations} iterations per case`);
  let cases = await allCases(ctx);
  if (values.only) cases = cases.filter((c) => values.only!.split(",").some((s) => c.name.includes(s)));
  try {
    const results = await runCases(cases, {
      iterations,
      onResult: (r) =>
        console.error(
          `  ${r.name}: ${(r.rowsPerSec / 1e6).toFixed(2)} M rows/s (${r.medianMs.toFixed(1)} ms` +
            `${r.cpuMs !== undefined ? `, CPU ${r.cpuMs.toFixed(0)} ms` : ""}${r.firstMs !== undefined ? `, first run ${r.firstMs.toFixed(0)} ms` : ""})`,
        ),
    });
    const report: BenchReport = { environment: env, results };
    console.log("\n" + formatTable(results));
    console.log("\nGoals (issue 6), from this run:\n" + formatGoals(checkGoals(results)));
    if (values.out) {
      const out = resolve(values.out);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, JSON.stringify(report, null, 2) + "\n");
      const svg = out.replace(/\.json$/, "") + ".svg";
      writeFileSync(svg, renderSvg(report));
      console.log(`\nwrote ${out} and ${svg}`);
    }
    console.log(`\ndone in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if ((import.meta as { main?: boolean }).main ?? (process.argv[1] && resolve(process.argv[1]) === new URL(import.meta.url).pathname)) {
  process.exitCode = await main(process.argv.slice(2));
}
