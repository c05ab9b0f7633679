import assert from "node:assert/strict";
import { test } from "node:test";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import type { Source, SplitReader } from "./sources.ts";

/** A source of 0, 1, 2, … released by the test; it records what the runtime acknowledges. */
function releasedSource() {
  let available = 0;
  let emitted = 0;
  let wake: (() => void) | undefined;
  let reached: { n: number; resolve: () => void } | undefined;
  const acknowledged: unknown[] = [];
  const source: Source<number> = {
    name: "released",
    splits: () => [{ id: "0" }],
    reader(_split, position): SplitReader<number> {
      emitted = typeof position === "number" ? position : 0;
      return {
        read(out, max) {
          if (emitted >= available) return new Promise<number>((r) => (wake = () => r(0)));
          const stop = Math.min(available, emitted + max);
          const c = stop - emitted;
          while (emitted < stop) out.push(emitted++);
          if (reached && emitted >= reached.n) reached.resolve();
          return c;
        },
        position: () => emitted,
        notifyCheckpointComplete(p) {
          acknowledged.push(p);
        },
      };
    },
  };
  return {
    source,
    acknowledged,
    /** Lets the source emit up to n records and resolves once it has. */
    release(n: number): Promise<void> {
      available = n;
      const done = new Promise<void>((resolve) => (reached = { n, resolve }));
      const w = wake;
      wake = undefined;
      w?.();
      return done;
    },
  };
}

test("a source reader is told the position of each completed checkpoint and stop-with-savepoint, not of a savepoint the job runs on after", async () => {
  const s = releasedSource();
  const sink = new CollectingSink<number>();
  const job = new Job("acks", { checkpoints: { storage: "memory:source-ack-test" } });
  job.fromSource(s.source, { uid: "src" }).sinkTo(sink, { uid: "out" });
  await job.start();
  await s.release(10);
  await job.triggerCheckpoint();
  assert.deepEqual(s.acknowledged, [10]);
  await s.release(15);
  await job.savepoint("memory:source-ack-test-sp");
  assert.deepEqual(s.acknowledged, [10], "a savepoint is a restore point, not a reason to let the upstream forget");
  await s.release(20);
  await job.stopWithSavepoint("memory:source-ack-test-stop");
  await job.done;
  assert.deepEqual(s.acknowledged, [10, 20]);
  assert.equal(sink.committed.length, 20);
});
