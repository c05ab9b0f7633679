/**
 * Offline tools benchmark: rows/s and peak memory of every offline tool on a savepoint of N rows (default
 * 5,000,000) on the local filesystem: `rekey` (parallelism only: Arrow-level slices; maxParallelism:
 * re-hash), `migrate` (add a field), `compact`, `validate` (rows decoded), `inspect` (key-group index),
 * `diff` (the savepoint against itself: both sides read in full), `export` (NDJSON and Arrow, to a file)
 * and `ls`.
 *
 * Each measured operation runs in its own child process, so its peak RSS (`process.resourceUsage().maxRSS`,
 * and the highest `process.memoryUsage().rss` sampled every 20 ms) is its own, not the generator's.
 * Goal: peak RSS ≤ 256 MiB + 2 × the largest chunk read or written.
 *
 * ```
 * npx tsx bench/tools_bench.ts [--rows 5000000] [--keep DIR]
 * deno run -A bench/tools_bench.ts --rows 1000000
 * ```
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openStorage } from "../backends/open.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup, keyGroupRangeFor } from "../format/key_group.ts";
import type { Manifest } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { commitManifest, writeChunk } from "../snapshot/write.ts";
import { savepointChunkPath } from "../snapshot/layout.ts";
import { openSnapshot } from "../snapshot/read.ts";
import { addField, compact, defineMigrations, diff, exportState, inspect, ls, migrate, rekey, validate } from "../migrate/mod.ts";

const LAYOUT: StateLayout = {
  kind: "value",
  keyType: "string",
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "sum", type: "float64" }, { name: "label", type: "dictionary" }] } },
};
const MAX_P = 128;
const PARALLELISM = 4;
const MiB = 1024 * 1024;

/** One measured operation, as the child reports it. */
export interface ToolsResult {
  /** Operation name. */
  op: string;
  /** Rows written. */
  rows: number;
  /** Wall time in ms. */
  ms: number;
  /** Rows per second. */
  rowsPerSec: number;
  /** Peak RSS in bytes (the larger of maxRSS and the sampled peak). */
  peakRss: number;
  /** Largest chunk of the source or the output, in bytes. */
  largestChunk: number;
  /** 256 MiB + 2 × largestChunk. */
  budget: number;
}

function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Writes a savepoint of `rows` entries at parallelism 4, one chunk per subtask range, range by range. */
async function generate(dir: string, rows: number): Promise<void> {
  const storage = await openStorage(dir);
  const labels = Array.from({ length: 50 }, (_, i) => `label-${String(i).padStart(2, "0")}`);
  const width = Math.max(6, String(rows - 1).length);
  const key = (i: number) => `user-${String(i).padStart(width, "0")}`;
  const kgOf = new Uint16Array(rows);
  for (let i = 0; i < rows; i++) kgOf[i] = assignKeyGroup(key(i), MAX_P);
  const chunks = [];
  for (let s = 0; s < PARALLELISM; s++) {
    const range = keyGroupRangeFor(s, PARALLELISM, MAX_P);
    const idx: number[] = [];
    for (let i = 0; i < rows; i++) if (kgOf[i] >= range.start && kgOf[i] <= range.end) idx.push(i);
    idx.sort((a, b) => kgOf[a] - kgOf[b] || a - b);
    const chunk = encodeChunk(LAYOUT, {
      length: idx.length,
      keyGroups: Uint16Array.from(idx, (i) => kgOf[i]),
      keys: idx.map(key),
      values: idx.map((i) => ({ count: BigInt((i * 7) % 100_000), sum: i * 0.25, label: labels[i % 50] })),
    });
    const ref = await writeChunk(storage, savepointChunkPath("counter", "counts", range), chunk, { type: "base", order: 0 });
    ref.keyGroupRange = range;
    chunks.push(ref);
  }
  const manifest: Manifest = {
    format: "arrowpoint",
    formatVersion: 1,
    kind: "savepoint",
    id: "sp-bench",
    createdAt: new Date().toISOString(),
    writer: { name: "arrowpoint-bench", version: "0" },
    job: "tools-bench",
    maxParallelism: MAX_P,
    hash: "flink-murmur-java-hashcode",
    chunkRoot: ".",
    operators: [{ uid: "counter", parallelism: PARALLELISM, states: [{ name: "counts", keyed: true, schemaVersion: 1, ...LAYOUT, chunks }] }],
  };
  await commitManifest(storage, "", manifest);
  await storage.close();
}

async function largestChunk(uri: string): Promise<number> {
  const snap = await openSnapshot(uri).catch(() => undefined); // tools that write no snapshot
  if (!snap) return 0;
  const max = Math.max(0, ...snap.manifest.operators.flatMap((o) => o.states.flatMap((s) => s.chunks.map((c) => c.bytes))));
  await snap.storage.close();
  return max;
}

/** Runs one operation in this (child) process and prints its result as JSON. */
async function child(op: string, src: string, dst: string, tuning: { batchRows?: number; maxChunkRows?: number; spillRows?: number }): Promise<void> {
  let sampled = 0;
  const timer = setInterval(() => {
    sampled = Math.max(sampled, process.memoryUsage().rss);
  }, 20);
  const t0 = performance.now();
  const total = (await inspect(src, { keyGroups: false })).rows;
  let report: { rows: number };
  if (op === "rekey-parallelism-4-7") report = await rekey(src, dst, { parallelism: 7, ...tuning });
  else if (op === "rekey-maxp-128-512") report = await rekey(src, dst, { maxParallelism: 512, ...tuning });
  else if (op === "migrate-add-field") {
    report = (await migrate(src, dst, defineMigrations({ "counter/counts": [addField("seen", "bool", false)] }), tuning)).written!;
  } else if (op === "compact") report = await compact(src, dst);
  else if (op === "validate") {
    const findings = await validate(src, { batchRows: tuning.batchRows });
    if (findings.length > 0) throw new Error(`validate found errors: ${JSON.stringify(findings.slice(0, 3))}`);
    report = { rows: total };
  } else if (op === "inspect") report = { rows: (await inspect(src)).rows };
  else if (op === "diff") {
    const d = await diff(src, src, { batchRows: tuning.batchRows });
    if (d.states.some((st) => st.status !== "same")) throw new Error("diff of a savepoint with itself found differences");
    report = { rows: total };
  } else if (op === "export-ndjson" || op === "export-arrow") {
    const file = await open(dst, "w");
    try {
      for await (const bytes of exportState(src, { operator: "counter", state: "counts", format: op === "export-arrow" ? "arrow" : "ndjson", batchRows: tuning.batchRows })) await file.write(bytes);
    } finally {
      await file.close();
    }
    report = { rows: total };
  } else if (op === "ls") {
    await ls(join(src, ".."));
    report = { rows: total };
  } else throw new Error(`unknown op ${op}`);
  const ms = performance.now() - t0;
  clearInterval(timer);
  sampled = Math.max(sampled, process.memoryUsage().rss);
  let maxRss = 0;
  try {
    maxRss = process.resourceUsage().maxRSS * 1024;
  } catch {
    // not available on this runtime
  }
  const largest = Math.max(await largestChunk(src), await largestChunk(dst));
  const result: ToolsResult = {
    op,
    rows: report.rows,
    ms,
    rowsPerSec: report.rows / (ms / 1000),
    peakRss: Math.max(maxRss, sampled),
    largestChunk: largest,
    budget: 256 * MiB + 2 * largest,
  };
  console.log("RESULT " + JSON.stringify(result));
}

function spawnSelf(args: string[]): string {
  const script = fileURLToPath(import.meta.url);
  const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
  const cmd = isDeno ? process.execPath : process.execPath;
  const cmdArgs = isDeno ? ["run", "-A", script, ...args] : [...process.execArgv, script, ...args];
  const r = spawnSync(cmd, cmdArgs, { encoding: "utf8", maxBuffer: 64 * MiB, stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) throw new Error(`child ${args.join(" ")} failed with status ${r.status}`);
  return r.stdout;
}

/** Runs the benchmark. */
export async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes("--child")) {
    const num = (name: string) => (arg(argv, name) === undefined ? undefined : Number(arg(argv, name)));
    await child(arg(argv, "--child")!, arg(argv, "--src")!, arg(argv, "--dst")!, {
      batchRows: num("--batch-rows"),
      maxChunkRows: num("--max-chunk-rows"),
      spillRows: num("--spill-rows"),
    });
    return 0;
  }
  if (argv.includes("--generate")) {
    await generate(arg(argv, "--generate")!, Number(arg(argv, "--rows")));
    return 0;
  }
  const rows = Number(arg(argv, "--rows") ?? 5_000_000);
  const keep = arg(argv, "--keep");
  const dir = keep ?? (await mkdtemp(join(tmpdir(), "arrowpoint-tools-bench-")));
  const src = join(dir, "sp-src");
  try {
    const t0 = performance.now();
    spawnSelf(["--generate", src, "--rows", String(rows)]);
    console.log(`generated a savepoint of ${rows.toLocaleString("en-US")} rows at parallelism ${PARALLELISM} in ${((performance.now() - t0) / 1000).toFixed(1)} s (${src})`);
    const results: ToolsResult[] = [];
    for (const op of ["rekey-parallelism-4-7", "rekey-maxp-128-512", "migrate-add-field", "compact", "validate", "inspect", "diff", "export-ndjson", "export-arrow", "ls"]) {
      const out = spawnSelf(["--child", op, "--src", src, "--dst", join(dir, op)]);
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      if (!line) throw new Error(`no result from ${op}`);
      results.push(JSON.parse(line.slice(7)));
      await rm(join(dir, op), { recursive: true, force: true });
    }
    const runtime = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "Deno" : `Node ${process.version}`;
    console.log(`\n${runtime}, ${rows.toLocaleString("en-US")} rows`);
    console.log("operation                 rows/s   time     peak RSS   largest chunk   budget     within");
    let ok = true;
    for (const r of results) {
      const within = r.peakRss <= r.budget;
      ok &&= within;
      console.log(
        `${r.op.padEnd(24)} ${(r.rowsPerSec / 1e6).toFixed(2).padStart(5)} M  ${(r.ms / 1000).toFixed(1).padStart(5)} s  ${(r.peakRss / MiB).toFixed(0).padStart(5)} MiB  ${(r.largestChunk / MiB).toFixed(1).padStart(8)} MiB    ${(r.budget / MiB).toFixed(0).padStart(5)} MiB  ${within ? "yes" : "NO"}`,
      );
    }
    return ok ? 0 : 1;
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}

if ((import.meta as { main?: boolean }).main ?? (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
