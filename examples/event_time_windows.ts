// Event time: out-of-order click events (up to 20 s late) → per-user session windows (closed after 30 s of
// event time without a click) and per-user, per-minute click counts. Midway (when every split has read
// half its clicks) the job takes a checkpoint and is killed right after its manifest was written, before
// the sink was told to commit; it is restored at another parallelism and its output compared with a
// failure-free run: windows and their timers are state, so nothing is lost or emitted twice.
//
//   npx tsx examples/event_time_windows.ts [folder]
//   deno run -A examples/event_time_windows.ts [folder]
//
// The clicks and the windows are exported: the runtime's event-time tests (crash campaigns, rescaling,
// real kills) run this same job.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  boundedOutOfOrderness,
  type DataStream,
  eventTimeSessionWindows,
  generatorSource,
  Job,
  JobFailedError,
  type KeyedStream,
  ndjsonFileSink,
  readNdjsonParts,
  type Source,
  tumblingEventTimeWindows,
  type WatermarkStrategy,
} from "../mod.ts";

const EVENTS = 20_000;

/** A click: who, on which page, when (event time, ms). */
export interface Click {
  user: string;
  page: number;
  ts: number;
}

/** How far out of order clicks come: the watermarks' bound, so no click is late. */
export const MAX_DELAY = 20_000;

/**
 * `count` clicks 100 ms apart on average, each up to {@link MAX_DELAY} ms out of order, in `splits`
 * splits; users click in bursts, so sessions end.
 */
export function clicks(count: number, options: { seed?: number; splits?: number; ratePerSecond?: number } = {}): Source<Click> {
  const splits = options.splits ?? 4;
  const users = 50 * splits;
  return generatorSource<Click>({
    count,
    splits,
    seed: options.seed ?? 42,
    ratePerSecond: options.ratePerSecond === undefined ? undefined : options.ratePerSecond / splits,
    make: (i, rng, split) => {
      const user = rng.int(50) * splits + split;
      // a user is active in 2 of every 5 minutes of event time: gaps of minutes end its sessions
      const minute = Math.floor((i * 100) / 60_000);
      const active = (minute + user) % 5 < 2;
      // (an inactive user's click goes to another user of the same split: each user's clicks come from one
      // split, in one order whatever the parallelism)
      return { user: `user-${active ? user : (user + splits) % users}`, page: rng.int(20), ts: i * 100 + rng.int(MAX_DELAY) };
    },
  });
}

/** Watermarks of a click source (bounded by {@link MAX_DELAY}; `emitEvery` records, default the strategy's). */
export function clickWatermarks(emitEvery?: number): WatermarkStrategy<Click> {
  return boundedOutOfOrderness<Click>(MAX_DELAY, (c) => c.ts, emitEvery === undefined ? {} : { emitEvery });
}

/**
 * Per-user sessions (30 s gap: clicks and distinct pages) and per-minute click counts, as text lines
 * (operator uids "sessions" and "per-minute").
 */
export function clickWindows(byUser: KeyedStream<string, Click>, parallelism: number): DataStream<string> {
  const sessions = byUser
    .window(eventTimeSessionWindows(30_000), { timestampOf: (c) => c.ts })
    .aggregate({
      createAccumulator: () => ({ clicks: 0, pages: [] as number[] }),
      add: (c, acc) => {
        acc.clicks++;
        if (!acc.pages.includes(c.page)) acc.pages.push(c.page);
        return acc;
      },
      merge: (a, b) => ({ clicks: a.clicks + b.clicks, pages: [...new Set([...a.pages, ...b.pages])] }),
      getResult: (acc) => ({ clicks: acc.clicks, pages: acc.pages.length }),
    }, { uid: "sessions", parallelism })
    .map((w) => `session ${w.key} ${w.start}..${w.end} clicks=${w.value.clicks} pages=${w.value.pages}`);
  const perMinute = byUser
    .window(tumblingEventTimeWindows(60_000), { timestampOf: (c) => c.ts })
    .aggregate({ createAccumulator: () => 0, add: (_c, n: number) => n + 1, getResult: (n) => n }, { uid: "per-minute", parallelism })
    .map((w) => `minute ${w.key} ${w.start} clicks=${w.value}`);
  return sessions.union(perMinute);
}

/** The source, pausing once half of `total` records were read until `resume()` (so "midway" is exact). */
function pausingHalfway<T>(source: Source<T>, total: number): { source: Source<T>; reached: Promise<void>; resume(): void } {
  let resume!: () => void;
  const resumed = new Promise<void>((r) => (resume = r));
  let reachedHalf!: () => void;
  const reached = new Promise<void>((r) => (reachedHalf = r));
  let read = 0;
  let open = false;
  return {
    reached,
    resume: () => {
      open = true;
      resume();
    },
    source: {
      name: source.name,
      splits: () => source.splits(),
      async reader(split, position) {
        const r = await source.reader(split, position);
        return {
          read(out, max) {
            const left = total / 2 - read;
            if (!open && left <= 0) return resumed.then(() => 0);
            const n = r.read(out, open ? max : Math.min(max, left));
            if (typeof n !== "number") throw new TypeError("the generator reads synchronously");
            if (n > 0 && (read += n) >= total / 2) reachedHalf();
            return n;
          },
          position: () => r.position(),
          close: () => r.close?.(),
        };
      },
    },
  };
}

function build(name: string, out: string, parallelism: number, options: { storage?: string; restore?: boolean; kill?: boolean; source?: Source<Click> }): Job {
  const job = new Job(name, {
    maxParallelism: 128,
    checkpoints: options.storage ? { storage: options.storage } : undefined,
    restore: options.restore ? { from: "latest" } : undefined,
    faults: options.kill ? { killAt: (p) => p.kind === "checkpoint" && p.stage === "committed" } : undefined,
  });
  const byUser = job
    .fromSource(options.source ?? clicks(EVENTS), { uid: "clicks", parallelism: 2, watermarks: clickWatermarks() })
    .keyBy((c) => c.user);
  clickWindows(byUser, parallelism).sinkTo(ndjsonFileSink<string>(out), { uid: "out" });
  return job;
}

async function main(dir: string): Promise<number> {
// 1. The reference: a failure-free run.
  const reference = join(dir, "reference");
  await build("clicks-reference", reference, 3, {}).run();
  const expected = (await readNdjsonParts<string>(reference)).sort();

  // 2. The same job at parallelism 2: midway it checkpoints and is killed once the checkpoint's manifest is
  // written (its sinks were not told to commit)…
  const checkpoints = join(dir, "checkpoints");
  const output = join(dir, "output");
  const halves = pausingHalfway(clicks(EVENTS), EVENTS);
  const first = build("clicks", output, 2, { storage: checkpoints, kill: true, source: halves.source });
  await first.start();
  await halves.reached;
  await first.triggerCheckpoint().catch(() => {});
  try {
    await first.done;
    throw new Error("the job was not killed");
  } catch (e) {
    if (!(e instanceof JobFailedError)) throw e;
    console.log(`killed: ${e.message} after ${first.records} events`);
  }
  halves.resume();
  // 3. …restored from its latest checkpoint at parallelism 5.
  const restored = build("clicks", output, 5, { storage: checkpoints, restore: true });
  const result = await restored.run();
  console.log(`restored from ${result.restore?.location ?? "nothing"} at parallelism 5: ${result.records} more events, ${restored.lateRecords} late`);

  const got = (await readNdjsonParts<string>(output)).sort();
  const sessions = expected.filter((l) => l.startsWith("session")).length;
  const minutes = expected.length - sessions;
  const same = got.length === expected.length && got.every((l, i) => l === expected[i]);
  if (!same) {
    const missing = expected.filter((l) => !got.includes(l)).length;
    const extra = got.length - (expected.length - missing);
    console.log(`DIFFERENT: ${got.length} outputs, expected ${expected.length} (${missing} missing, ${extra} extra)`);
    return 1;
  }
  console.log(`EQUAL: ${sessions} session windows and ${minutes} per-minute counts, killed and restored at another parallelism, identical to the failure-free run`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = await main(process.argv[2] ?? mkdtempSync(join(tmpdir(), "arrowpoint-event-time-")));
}
