// Exactly-once with timers and windows: the event-time job (session windows, tumbling windows, a timer
// function that deletes timers) killed at random points — after a record count, at a checkpoint stage
// (triggered / data written but not the manifest / manifest but not the sinks), at the k-th storage write,
// or stopped with a savepoint — restored alternately at parallelism 1 and 7, must emit exactly what a
// failure-free run emits: no window or timer lost, none fired twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { FaultyStorage } from "../backends/faulty.ts";
import { clearMemoryStorage, MemoryStorage } from "../backends/memory.ts";
import type { Storage } from "../backends/storage.ts";
import { JobFailedError } from "./errors.ts";
import type { FaultPoint, Job, RestoreOptions, SnapshotInfo } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { Rng } from "./sources.ts";
import { sorted, withHook } from "./_test_util.ts";
import { clicks, eventTimeJob } from "./_test_event_time.ts";

const N = 1600;
const RUNS = Number(process.env.ARROWPOINT_ET_RUNS ?? 16);
// The same with the keyed subtasks (windows, timers) in two worker threads.
const RUNS_WORKERS = Number(process.env.ARROWPOINT_ET_RUNS_WORKERS ?? 6);

type Fault = "records" | "stage" | "storage" | "stop" | "none";

for (const [workers, runs] of [[0, RUNS], [2, RUNS_WORKERS]] as const) {
test(`exactly-once with timers and windows over ${runs} seeded runs killed at random points, restored at parallelism 1 ↔ 7 (workers: ${workers})`, async () => {
  const expected = new Map<number, string[]>();
  const tally: Record<string, number> = {};
  for (let run = 1; run <= runs; run++) {
    const dataSeed = run % 2;
    if (!expected.has(dataSeed)) {
      const sink = new CollectingSink<string>();
      await eventTimeJob({ source: clicks(N, { seed: dataSeed }), sink, parallelism: 2 }).run();
      expected.set(dataSeed, sorted(sink.committed));
    }
    const rng = new Rng().seed(run * 104729);
    const sink = new CollectingSink<string>();
    const name = `et-eo-${run}-${Math.random().toString(36).slice(2)}`;
    const inner = new MemoryStorage(name);
    let restore: RestoreOptions | undefined;
    const history: string[] = [];
    for (let attempt = 0; ; attempt++) {
      assert.ok(attempt < 8, `run ${run} did not finish: ${history.join(" → ")}`);
      const parallelism = (run + attempt) % 2 === 0 ? 1 : 7;
      const faults: Fault[] = ["records", "stage", "storage", "stop"];
      const fault: Fault = attempt >= 3 ? "none" : faults[(run + attempt) % 4 === 0 ? rng.int(4) : (run + attempt) % 4];
      const every = 100 + rng.int(300);
      const at = 1 + rng.int(N - 1);
      // "captured": every subtask captured its state, chunks being encoded and written (the asynchronous phase)
      const stages: FaultPoint["stage"][] = ["triggered", "captured", "acked", "committed"];
      const stage = stages[rng.int(stages.length)];
      const nth = 1 + rng.int(3);
      let storage: Storage = inner;
      if (fault === "storage") storage = new FaultyStorage(inner, { failAt: 1 + rng.int(40), mode: "kill" });
      let seen = 0;
      // deno-lint-ignore prefer-const -- assigned after the source hook that reads it is built
      let job!: Job;
      let lastTrigger = 0;
      let stopped: Promise<SnapshotInfo> | undefined;
      const source = withHook(clicks(N, { seed: dataSeed }), (records) => {
        if (job.status !== "running") return;
        if (records - lastTrigger >= every) {
          lastTrigger = records;
          job.triggerCheckpoint().catch(() => {});
        }
        if (fault === "stop" && !stopped && records >= at) {
          stopped = job.stopWithSavepoint();
          stopped.catch(() => {});
        }
      });
      job = eventTimeJob({
        source,
        sink,
        parallelism,
        sourceParallelism: 1 + rng.int(4),
        storage,
        restore,
        maxParallelism: 128,
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
        if (fault === "none") history.push(String((e as Error).cause ?? e));
      }
      if (status === "finished") break;
      if (status === "stopped") restore = { from: (await stopped!).location };
      else restore = { from: "latest" };
      tally[fault] = (tally[fault] ?? 0) + 1;
      if (fault === "stage") tally[`stage ${stage}`] = (tally[`stage ${stage}`] ?? 0) + 1;
    }
    assert.deepEqual(sorted(sink.committed), expected.get(dataSeed), `run ${run} (${history.join(" → ")}) lost or duplicated output`);
    clearMemoryStorage(name);
  }
  for (const f of ["records", "stage", "storage", "stop"]) assert.ok((tally[f] ?? 0) > 0, `fault ${f} never happened: ${JSON.stringify(tally)}`);
});
}
