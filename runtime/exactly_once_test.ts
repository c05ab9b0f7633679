import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { FaultyStorage } from "../backends/faulty.ts";
import { MemoryStorage, clearMemoryStorage } from "../backends/memory.ts";
import type { Storage } from "../backends/storage.ts";
import { JobFailedError } from "./errors.ts";
import type { FaultPoint, Job, RestoreOptions, SnapshotInfo } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { Rng } from "./sources.ts";
import { events, sessionJob, sorted, withHook } from "./_test_util.ts";

const N = 2400;
const RUNS = Number(process.env.ARROWPOINT_EO_RUNS ?? 60); // raise for a soak: ARROWPOINT_EO_RUNS=1000
// The same campaign with the keyed subtasks in two worker threads (fewer runs: each one crosses threads).
const RUNS_WORKERS = Number(process.env.ARROWPOINT_EO_RUNS_WORKERS ?? 16);

async function cleanRun(seed: number): Promise<string[]> {
  const sink = new CollectingSink<string>();
  await sessionJob({ source: events(N, seed), sink, parallelism: 3 }).run();
  return sorted(sink.committed);
}

type Fault = "records" | "stage" | "storage" | "stop" | "none";

for (const [workers, runs] of [[0, RUNS], [2, RUNS_WORKERS]] as const) {
test(`exactly-once output over ${runs} seeded runs killed at random points, restored and rescaled (workers: ${workers})`, async () => {
  const expected = new Map<number, string[]>();
  const tally: Record<string, number> = {};
  for (let run = 1; run <= runs; run++) {
    const dataSeed = run % 3; // three data sets, many failure patterns
    if (!expected.has(dataSeed)) expected.set(dataSeed, await cleanRun(dataSeed));
    const rng = new Rng().seed(run * 7919);
    const sink = new CollectingSink<string>();
    const name = `eo-${workers}-${run}-${Math.random().toString(36).slice(2)}`;
    const inner = new MemoryStorage(name);
    let restore: RestoreOptions | undefined;
    const history: string[] = [];
    for (let attempt = 0; ; attempt++) {
      assert.ok(attempt < 8, `run ${run} did not finish: ${history.join(" → ")}`);
      const parallelism = 1 + rng.int(7);
      const faults: Fault[] = ["records", "stage", "storage", "stop"];
      const fault: Fault = attempt >= 3 ? "none" : faults[rng.int(faults.length)];
      const every = 100 + rng.int(500);
      const at = 1 + rng.int(N - 1);
      // "captured": every subtask captured its state, chunks being encoded and written (the asynchronous phase)
      const stages: FaultPoint["stage"][] = ["triggered", "captured", "acked", "committed"];
      const stage = stages[rng.int(stages.length)];
      const nth = 1 + rng.int(4);
      const savepointAt = rng.next() < 0.3 ? rng.int(N) : -1;
      let storage: Storage = inner;
      if (fault === "storage") storage = new FaultyStorage(inner, { failAt: 1 + rng.int(40), mode: "kill" });
      let seen = 0;
      let job!: Job;
      let lastTrigger = 0;
      let stopped: Promise<SnapshotInfo> | undefined;
      let tookSavepoint = false;
      const source = withHook(events(N, dataSeed), (records) => {
        if (job.status !== "running") return;
        if (records - lastTrigger >= every) {
          lastTrigger = records;
          job.triggerCheckpoint().catch(() => {});
        }
        if (!tookSavepoint && savepointAt >= 0 && records >= savepointAt) {
          tookSavepoint = true;
          job.savepoint().catch(() => {});
        }
        if (fault === "stop" && !stopped && records >= at) {
          stopped = job.stopWithSavepoint();
          stopped.catch(() => {});
        }
      });
      job = sessionJob({
        source,
        sink,
        parallelism,
        sourceParallelism: 1 + rng.int(4),
        storage,
        restore,
        faults: fault === "records" ? { killAfterRecords: at } : fault === "stage" ? { killAt: (p) => p.kind === "checkpoint" && p.stage === stage && ++seen === nth } : undefined,
        workers,
      });
      history.push(`p${parallelism}:${fault}`);
      let status: string;
      try {
        status = (await job.run()).status;
      } catch (e) {
        assert.ok(e instanceof JobFailedError, `run ${run}: unexpected ${e}`);
        status = "failed";
      }
      if (status === "finished") break;
      if (status === "stopped") {
        const sp = await stopped!;
        restore = { from: sp.location };
      } else restore = { from: "latest" };
      tally[fault] = (tally[fault] ?? 0) + 1;
      if (fault === "stage") tally[`stage ${stage}`] = (tally[`stage ${stage}`] ?? 0) + 1;
    }
    assert.deepEqual(sorted(sink.committed), expected.get(dataSeed), `run ${run} (${history.join(" → ")}) lost or duplicated output`);
    clearMemoryStorage(name);
  }
  // The failure modes were all exercised.
  for (const f of ["records", "stage", "storage", "stop", "stage captured"]) assert.ok((tally[f] ?? 0) > 0, `fault ${f} never happened: ${JSON.stringify(tally)}`);
});
}
