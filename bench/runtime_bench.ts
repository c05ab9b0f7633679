/**
 * Runtime benchmark: checkpoint cost full vs incremental, restore speed, and events per second.
 *
 * ```
 * npx tsx bench/runtime_bench.ts [--rows N] [--iterations K] [--dir PATH]
 * ```
 *
 * - `checkpoint.full`: a checkpoint of N keys (value state {count: int64, sum: float64, label: dictionary},
 *   keyed operator at parallelism 4) written whole to the filesystem (incremental off), fsync included.
 * - `checkpoint.incremental`: the same job with incremental checkpoints, after 1% of the keys changed.
 * - `restore`: a new job restored from the full checkpoint at parallelism 4 (read, decode, rebuild the maps).
 * - `runtime.events.off` / `.on`: events per second through source → keyBy → counter+sum state → sink at
 *   parallelism 4, checkpoints off / incremental every second to the filesystem.
 *
 * Each case runs on tinybench with a fixed iteration count (`time: 0`), the 1% update before each
 * checkpoint iteration in an unmeasured `beforeEach` hook. Medians are reported.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import process from "node:process";
import { Bench } from "tinybench";
import { Job, type Sink, type SnapshotInfo, type Source, valueState } from "../runtime/mod.ts";
import { generatorSource } from "../runtime/sources.ts";

const LABELS = Array.from({ length: 50 }, (_, i) => `label-${i}`);
const TOTALS = valueState<{ count: bigint; sum: number; label: string }>("totals", {
  value: {
    encoding: "arrow",
    type: { struct: [{ name: "count", type: "int64" }, { name: "sum", type: "float64" }, { name: "label", type: "dictionary" }] },
  },
});

interface Ev {
  key: string;
  amount: number;
}

/** A sink that counts and commits nothing (the cost under test is the runtime's). */
function countingSink(counter: { n: number }): Sink<number, number> {
  return {
    name: "count",
    createWriter: () => ({
      write(values) {
        counter.n += values.length;
      },
      prepareCommit: () => undefined,
    }),
    commit: async () => {},
  };
}

/**
 * One split producing event i on demand: keys 0..rows-1 once each, then rounds of `rows / 100` updates of
 * distinct keys; reads only up to `allow(n)`.
 */
function gated(rows: number): { source: Source<Ev>; allow(n: number): void } {
  let allowed = 0;
  let wake: (() => void) | undefined;
  const key = (i: number) => `user-${String(i < rows ? i : ((i - rows) * 7919) % rows).padStart(7, "0")}`;
  return {
    allow(n) {
      allowed = n;
      wake?.();
    },
    source: {
      name: "events",
      splits: () => [{ id: "0" }],
      reader(_s, position) {
        let i = typeof position === "number" ? position : 0;
        return {
          read(out, max) {
            if (i >= allowed) return new Promise<number>((r) => (wake = () => r(0)));
            const stop = Math.min(allowed, i + max);
            const c = stop - i;
            for (; i < stop; i++) out.push({ key: key(i), amount: i % 1000 });
            return c;
          },
          position: () => i,
        };
      },
    },
  };
}

function stateJob(name: string, storage: string | undefined, source: Source<Ev>, processed: { n: number }, incremental: boolean, restore?: string): Job {
  const job = new Job(name, {
    maxParallelism: 128,
    batchSize: 1024,
    checkpoints: storage ? { storage, incremental, fullEvery: 1_000_000, maxChainLength: 1_000_000, retain: 3 } : undefined,
    restore: restore ? { from: restore } : undefined,
  });
  job.fromSource(source, { uid: "events" })
    .keyBy((e) => e.key)
    .process<number>({
      open(ctx) {
        ctx.getState(TOTALS);
      },
      processElement(e, ctx) {
        const s = ctx.getState(TOTALS);
        const t = s.value();
        s.update(t ? { count: t.count + 1n, sum: t.sum + e.amount, label: t.label } : { count: 1n, sum: e.amount, label: LABELS[e.amount % 50] });
        processed.n++;
      },
    }, { uid: "totals", parallelism: 4 })
    .sinkTo(countingSink({ n: 0 }), { uid: "out" });
  return job;
}

async function until(pred: () => boolean): Promise<void> {
  while (!pred()) await new Promise((r) => setTimeout(r, 1));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

interface Row {
  name: string;
  medianMs: number;
  rate: string;
  note: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { rows: { type: "string", default: "1000000" }, iterations: { type: "string", default: "5" }, dir: { type: "string" } } });
  const rows = Number(values.rows);
  const iterations = Number(values.iterations);
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), "arrowpoint-runtime-bench-"));
  const dirty = Math.max(1, Math.floor(rows / 100));
  const out: Row[] = [];
  const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`);
  console.log(`runtime bench: ${rows.toLocaleString("en-US")} keys, ${iterations} iterations, ${dir} (${typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "deno" : `node ${process.version}`})`);

  try {
    // Two loaded jobs: one writing full checkpoints, one incremental.
    const loaded = async (name: string, incremental: boolean) => {
      const processed = { n: 0 };
      const g = gated(rows);
      const storage = join(dir, name);
      const job = stateJob(name, storage, g.source, processed, incremental);
      await job.start();
      let at = rows;
      g.allow(at);
      await until(() => processed.n >= at);
      const first = await job.triggerCheckpoint(); // the base
      const step = async () => {
        at += dirty;
        g.allow(at);
        await until(() => processed.n >= at);
      };
      return { job, step, first, storage };
    };
    let full: Awaited<ReturnType<typeof loaded>> | undefined = await loaded("full", false);
    let incr: Awaited<ReturnType<typeof loaded>> | undefined = await loaded("incremental", true);
    const durations: Record<string, number[]> = { full: [], incremental: [] };
    const infos: Record<string, SnapshotInfo[]> = { full: [], incremental: [] };

    for (const [name, j] of [["full", full!], ["incremental", incr!]] as const) {
      const bench = new Bench({ time: 0, iterations, warmup: false, throws: true });
      bench.add(`checkpoint.${name}`, async () => {
        const info = await j.job.triggerCheckpoint();
        durations[name].push(info.durationMs);
        infos[name].push(info);
      }, { beforeEach: j.step });
      await bench.run();
      const r = bench.tasks[0].result;
      if (r.state !== "completed") throw new Error(`checkpoint.${name} did not complete: ${r.state}`);
      const last = infos[name][infos[name].length - 1];
      const d = median(durations[name]);
      const rowsWritten = name === "full" ? rows : dirty;
      out.push({
        name: `checkpoint.${name}`,
        medianMs: d,
        rate: `${fmt(rowsWritten / (d / 1000))} rows/s`,
        note: `${last.newRows.toLocaleString("en-US")} rows, ${(last.newBytes / 1e6).toFixed(1)} MB written, ${last.newChunks} chunks; trigger→manifest (call incl. retention ${r.latency.p50.toFixed(1)} ms)`,
      });
    }
    const ratio = median(durations.incremental) / median(durations.full);
    const restoreFrom = infos.full[infos.full.length - 1].location;
    await full.job.cancel();
    await incr.job.cancel();
    full = incr = undefined; // let the loaded state go before measuring restores
    (globalThis as { gc?: () => void }).gc?.();

    // Restore: a new job from the last full checkpoint (a plain set of bases).
    {
      const bench = new Bench({ time: 0, iterations, warmup: true, warmupIterations: 1, warmupTime: 0, throws: true });
      let job: Job | undefined;
      bench.add("restore", async () => {
        job = stateJob("restore", undefined, gated(rows).source, { n: 0 }, false, restoreFrom);
        await job.start();
      }, {
        afterEach: async () => {
          await job?.cancel();
        },
      });
      await bench.run();
      const r = bench.tasks[0].result;
      if (r.state !== "completed") throw new Error(`restore did not complete: ${r.state}`);
      out.push({ name: "restore", medianMs: r.latency.p50, rate: `${fmt(rows / (r.latency.p50 / 1000))} rows/s`, note: "read + checksum + decode + rebuild maps, 4 subtasks" });
    }

    // Events per second.
    for (const withCheckpoints of [false, true]) {
      const events = rows * 2;
      const keys = Math.max(1, Math.floor(rows / 2));
      const name = `runtime.events.${withCheckpoints ? "on" : "off"}`;
      const bench = new Bench({ time: 0, iterations: Math.max(3, Math.min(iterations, 5)), warmup: true, warmupIterations: 1, warmupTime: 0, throws: true });
      let n = 0;
      bench.add(name, async () => {
        const counter = { n: 0 };
        const job = new Job("events", { maxParallelism: 128, batchSize: 1024, checkpoints: withCheckpoints ? { storage: join(dir, `events-${n++}`), intervalMs: 1000 } : undefined });
        job.fromSource(generatorSource({ count: events, seed: 1, make: (i, rng) => ({ key: `user-${String(i % keys).padStart(7, "0")}`, amount: rng.int(1000) }) }), { uid: "events" })
          .keyBy((e) => e.key)
          .process<number>({
            open(ctx) {
              ctx.getState(TOTALS);
            },
            processElement(e, ctx) {
              const s = ctx.getState(TOTALS);
              const t = s.value();
              s.update(t ? { count: t.count + 1n, sum: t.sum + e.amount, label: t.label } : { count: 1n, sum: e.amount, label: LABELS[e.amount % 50] });
              ctx.collect(e.amount);
            },
          }, { uid: "totals", parallelism: 4 })
          .sinkTo(countingSink(counter), { uid: "out", parallelism: 4 });
        await job.run();
        if (counter.n !== events) throw new Error(`${name}: ${counter.n} of ${events} events reached the sink`);
      });
      await bench.run();
      const r = bench.tasks[0].result;
      if (r.state !== "completed") throw new Error(`${name} did not complete: ${r.state}`);
      out.push({ name, medianMs: r.latency.p50, rate: `${fmt(events / (r.latency.p50 / 1000))} events/s`, note: `${events.toLocaleString("en-US")} events, ${keys.toLocaleString("en-US")} keys, parallelism 4${withCheckpoints ? ", checkpoints every 1 s (fs)" : ""}` });
    }

    const w = Math.max(...out.map((r) => r.name.length));
    console.log("");
    for (const r of out) console.log(`${r.name.padEnd(w)}  ${r.medianMs.toFixed(1).padStart(9)} ms  ${r.rate.padStart(18)}  ${r.note}`);
    console.log("");
    console.log(`incremental (1% dirty) / full = ${(ratio * 100).toFixed(1)}% (goal ≤ 5%)`);
  } finally {
    if (!values.dir) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
