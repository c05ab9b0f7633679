// A restore reads chunks into reused scratch buffers only where no restored value can be a view of them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { arraySource } from "./sources.ts";
import { valueState } from "./state.ts";

const uniq = (p: string) => `${p}-${Math.random().toString(36).slice(2)}`;

/** Writes `values` under their keys into value state "v" and checkpoints at the end (parallelism 1). */
async function write<T>(storage: string, name: string, values: Map<string, T>, encoding: "msgpack" | "arrow"): Promise<void> {
  const V = encoding === "arrow" ? valueState<T>("v", { value: { encoding: "arrow", type: "utf8" } }) : valueState<T>("v");
  const job = new Job(name, { checkpoints: { storage } });
  job.fromSource(arraySource([...values.keys()]), { uid: "in" }).keyBy((k) => k).process<string>({
    processElement(k, ctx) {
      ctx.getState(V).update(values.get(k)!);
    },
  }, { uid: "k", parallelism: 1 }).sinkTo(new CollectingSink<string>(), { uid: "out" });
  await job.run();
}

/** Restores `storage` and hands each key's restored value (the object itself) to `seen`. */
async function restore<T>(storage: string, name: string, keys: string[], encoding: "msgpack" | "arrow", seen: Map<string, T>): Promise<void> {
  const V = encoding === "arrow" ? valueState<T>("v", { value: { encoding: "arrow", type: "utf8" } }) : valueState<T>("v");
  const job = new Job(name, { checkpoints: { storage: uniq("memory:restore-scratch-next") }, restore: { from: storage, allowNonRestoredState: true } });
  job.fromSource(arraySource(keys), { uid: "probe" }).keyBy((k) => k).process<string>({
    open(ctx) {
      ctx.getState(V); // registered before the first record: the restored entries are taken here
    },
    processElement(k, ctx) {
      seen.set(k, ctx.getState(V).value()!);
    },
  }, { uid: "k", parallelism: 1 }).sinkTo(new CollectingSink<string>(), { uid: "out" });
  await job.run();
}

test("restored msgpack byte values stay intact when later restores reuse the scratch buffers (they are views of the bytes read)", async () => {
  // Chunks over 1 MiB: the size from which chunk reads may go through the scratch pool.
  const arrowValues = new Map(Array.from({ length: 30_000 }, (_, i) => [`key-${i}`, `value-${i}-`.padEnd(48, "x")] as const));
  const bytesValues = new Map([["a", new Uint8Array(700_000).fill(1)], ["b", new Uint8Array(700_000).fill(2)]]);
  const arrowStore = uniq("memory:restore-scratch-arrow");
  const bytesStore = uniq("memory:restore-scratch-bytes");
  await write(arrowStore, "arrow", arrowValues, "arrow");
  await write(bytesStore, "bytes", bytesValues, "msgpack");

  const firstArrow = new Map<string, string>();
  await restore(arrowStore, "arrow", ["key-7"], "arrow", firstArrow); // leaves a chunk-sized buffer in the pool
  const restoredBytes = new Map<string, Uint8Array>();
  await restore(bytesStore, "bytes", ["a", "b"], "msgpack", restoredBytes);
  const secondArrow = new Map<string, string>();
  await restore(arrowStore, "arrow", ["key-7", "key-29999"], "arrow", secondArrow); // reads into the pool again

  assert.equal(firstArrow.get("key-7"), arrowValues.get("key-7"));
  assert.equal(secondArrow.get("key-29999"), arrowValues.get("key-29999"));
  for (const [k, v] of bytesValues) {
    const got = restoredBytes.get(k)!;
    assert.ok(got instanceof Uint8Array, `key ${k} restored as bytes`);
    assert.equal(got.length, v.length);
    assert.ok(got.every((x) => x === v[0]), `key ${k}: the restored bytes were overwritten`);
  }
  for (const s of [arrowStore, bytesStore]) clearMemoryStorage(s.slice("memory:".length));
});
