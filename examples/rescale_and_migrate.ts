// Offline: a savepoint taken (stop-with-savepoint) at parallelism 2 is rescaled to 5 subtasks and its counter state is migrated
// from int32 to int64 (schema version 1 → 2); the result validates and a job restores from it.
//
//   npx tsx examples/rescale_and_migrate.ts [folder]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  defineMigrations,
  generatorSource,
  inspect,
  Job,
  migrate,
  ndjsonFileSink,
  readNdjsonParts,
  rekey,
  validate,
  valueState,
  widenType,
} from "../mod.ts";

const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), "arrowpoint-offline-"));
const checkpoints = join(dir, "checkpoints");
const EVENTS = 20_000; // 500 users, 40 events each

function counterJob(parallelism: number, type: "int32" | "int64", events: number, restoreFrom?: string) {
  const COUNT = valueState<number | bigint>("count", { value: { encoding: "arrow", type }, schemaVersion: type === "int64" ? 2 : 1 });
  const job = new Job("counter", { maxParallelism: 128, checkpoints: { storage: checkpoints }, restore: restoreFrom ? { from: restoreFrom } : undefined });
  job
    .fromSource(generatorSource({ count: events, ratePerSecond: 20_000, make: (i) => ({ user: `user-${i % 500}` }) }), { uid: "events" })
    .keyBy((e) => e.user)
    .process<[string, string]>({
      open(ctx) {
        ctx.getState(COUNT);
      },
      processElement(e, ctx) {
        const count = ctx.getState(COUNT);
        const n = BigInt(count.value() ?? 0) + 1n;
        count.update(type === "int64" ? n : Number(n));
        ctx.collect([e.user, String(n)]);
      },
    }, { uid: "count", parallelism })
    .sinkTo(ndjsonFileSink(join(dir, "out")), { uid: "out" });
  return job;
}

// 1. A job at parallelism 2 runs a while, then stops with a savepoint (the upgrade starts here).
const first = counterJob(2, "int32", EVENTS);
await first.start();
while (first.records < 5_000) await new Promise((r) => setTimeout(r, 10));
const sp = (await first.stopWithSavepoint(join(checkpoints, "savepoints", "sp-p2"))).location;
console.log(`stopped after ${(await first.done).records} events with a savepoint`);

// 2. Rescale to 5 subtasks (whole key groups move; no row is re-encoded), then migrate the schema.
const rescaled = join(checkpoints, "savepoints", "sp-p5");
await rekey(sp, rescaled, { parallelism: 5 });
const migrations = defineMigrations({ "count/count": [widenType(undefined, "int64")] });
const plan = await migrate(rescaled, join(dir, "unused"), migrations, { dryRun: true });
console.log(`dry run: ${plan.plan.states.map((s) => `${s.operator}/${s.state} v${s.fromVersion}→v${s.toVersion}, ${s.rows} rows`).join("; ")}`);
const migrated = join(checkpoints, "savepoints", "sp-p5-v2");
await migrate(rescaled, migrated, migrations);

const findings = await validate(migrated);
if (findings.length) throw new Error(`findings: ${JSON.stringify(findings)}`);
const info = await inspect(migrated);
const state = info.operators.find((o) => o.uid === "count")!;
console.log(`savepoint ${migrated}: parallelism ${state.parallelism}, ${state.states[0].rows} rows, schema v${state.states[0].schemaVersion}, valid`);

// 3. The new code (int64 counters, 5 subtasks) restores from it and keeps counting where it stopped.
// The source resumes where the first job stopped (its position is operator state).
const second = await counterJob(5, "int64", EVENTS, migrated).run();
console.log(`second run: ${second.records} events, ${second.snapshots.length} snapshots`);
const out = await readNdjsonParts<[string, string]>(join(dir, "out"));
const max = out.reduce((m, [, n]) => (BigInt(n) > m ? BigInt(n) : m), 0n);
if (max !== 40n || out.length !== EVENTS) throw new Error(`expected ${EVENTS} outputs counting to 40, got ${out.length} up to ${max}`);
console.log(`restored at parallelism 5 with int64 counters: ${out.length} outputs in all, every event counted once, counts reach ${max}`);
