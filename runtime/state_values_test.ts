// A value a typed state cannot hold fails the job where user code stores it, naming the state and the key,
// whether or not the job takes checkpoints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../backends/memory.ts";
import { SchemaViolationError } from "../format/errors.ts";
import { JobFailedError } from "./errors.ts";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { arraySource } from "./sources.ts";
import { valueState } from "./state.ts";

const MYCOUNT = valueState<number>("mycount", { value: { encoding: "arrow", type: "int32" } });

function job(name: string, checkpoints: boolean, sink: CollectingSink<string>): Job {
  const j = new Job(name, { checkpoints: checkpoints ? { storage: new MemoryStorage(`${name}-${Math.random()}`) } : undefined });
  j.fromSource(arraySource(["u1", "u2", "u7", "u1"]), { uid: "in" })
    .keyBy((u) => u)
    .process<string>({
      open(ctx) {
        ctx.getState(MYCOUNT);
      },
      processElement(u, ctx) {
        const c = ctx.getState(MYCOUNT);
        // A bug of the kind the issue reports: a string where the schema says int32.
        c.update((u === "u7" ? `${c.value() ?? 0}1` : (c.value() ?? 0) + 1) as number);
        ctx.collect(u);
      },
    }, { uid: "count" })
    .sinkTo(sink, { uid: "out" });
  return j;
}

for (const checkpoints of [false, true]) {
  test(`a string stored into an int32 valueState fails the job at update(), naming state and key (${checkpoints ? "with" : "without"} checkpoints; regression)`, async () => {
    const sink = new CollectingSink<string>();
    const j = job(`wrong-type-${checkpoints}`, checkpoints, sink);
    await assert.rejects(j.run(), (e: unknown) => {
      assert.ok(e instanceof JobFailedError, String(e));
      const cause = e.cause;
      assert.ok(cause instanceof SchemaViolationError, `cause is a SchemaViolationError: ${String(cause)}`);
      assert.equal(cause.state, "mycount");
      assert.equal(cause.key, '"u7"');
      assert.equal(cause.code, "ARROWPOINT_SCHEMA_VIOLATION");
      assert.match(e.message, /operator "count" subtask 0 failed: state "mycount", key "u7": update\(\) was given a value its schema cannot hold: value must be an integer in -2147483648\.\.2147483647 \(int32\), got string "01"/);
      return true;
    });
    assert.equal(j.status, "failed");
    assert.deepEqual(sink.committed, [], "nothing was committed: the job did not finish");
  });
}

test("a value only the checkpoint can refuse (msgpack cannot encode it) is reported with its state's name, not state \"\" (regression)", async () => {
  const RAW = valueState<unknown>("raw");
  const j = new Job("unencodable", { checkpoints: { storage: new MemoryStorage(`unencodable-${Math.random()}`) } });
  j.fromSource(arraySource(["u7"]), { uid: "in" })
    .keyBy((u) => u)
    .process<string>({
      open(ctx) {
        ctx.getState(RAW);
      },
      processElement(_u, ctx) {
        ctx.getState(RAW).update(Symbol("not msgpack"));
      },
    }, { uid: "keep" })
    .sinkTo(new CollectingSink<string>(), { uid: "out" });
  await assert.rejects(j.run(), (e: unknown) => {
    assert.ok(e instanceof JobFailedError, String(e));
    assert.match(e.message, /state "raw", key "u7": value must be a value msgpack can encode/);
    return true;
  });
});
