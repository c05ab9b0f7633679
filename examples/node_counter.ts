// A keyed counter job with checkpoints on the local filesystem: it crashes mid-stream, a new job resumes
// from the latest checkpoint, and the exactly-once sink's output has every event counted once.
//
//   npx tsx examples/node_counter.ts [folder]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generatorSource, Job, JobKilledError, ndjsonFileSink, readNdjsonParts, valueState } from "../mod.ts";

const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), "arrowpoint-counter-"));
const EVENTS = 1_000_000;
const COUNT = valueState<number>("count", { value: { encoding: "arrow", type: "int32" } });

function counterJob(options: { crash?: boolean; restore?: boolean }): Job {
  const job = new Job("counter", {
    maxParallelism: 128,
    checkpoints: { storage: join(dir, "checkpoints"), intervalMs: 10 },
    restore: options.restore ? { from: "latest" } : undefined,
    // The crash: checkpoint 3's chunks are written but its manifest is not (two checkpoints completed).
    faults: options.crash ? { killAt: (p) => p.checkpointId === 3 && p.stage === "acked" } : undefined,
  });
  job
    .fromSource(generatorSource({ count: EVENTS, seed: 7, make: (i) => ({ user: `user-${i % 97}` }) }), { uid: "events" })
    .keyBy((e) => e.user)
    .process<{ user: string; n: number }>({
      open(ctx) {
        ctx.getState(COUNT); // declare state up front, as Flink's open() does, so a restore finds its owner
      },
      processElement(e, ctx) {
        const count = ctx.getState(COUNT);
        const n = (count.value() ?? 0) + 1;
        count.update(n);
        ctx.collect({ user: e.user, n });
      },
    }, { uid: "count", parallelism: 2 })
    .sinkTo(ndjsonFileSink(join(dir, "out")), { uid: "out" });
  return job;
}

try {
  await counterJob({ crash: true }).run();
  throw new Error("the job was meant to crash");
} catch (e) {
  if (!(e instanceof JobKilledError)) throw e;
  console.log(`crashed: ${e.message}`);
}
const resumed = await counterJob({ restore: true }).run();
console.log(`resumed from checkpoint ${resumed.restore?.checkpointId} of ${resumed.restore?.location}; ${resumed.snapshots.length} more checkpoints`);

const out = await readNdjsonParts<{ user: string; n: number }>(join(dir, "out"));
const last = new Map<string, number>();
for (const r of out) last.set(r.user, Math.max(last.get(r.user) ?? 0, r.n));
const total = [...last.values()].reduce((a, b) => a + b, 0);
if (out.length !== EVENTS || total !== EVENTS) throw new Error(`expected ${EVENTS} outputs, got ${out.length} (counted ${total})`);
console.log(`exactly once: ${out.length} outputs for ${EVENTS} events, ${last.size} users; checkpoints in ${join(dir, "checkpoints")}`);
