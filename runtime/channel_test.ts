import { test } from "node:test";
import assert from "node:assert/strict";
import { Barrier, Channel, END_OF_INPUT, InputGate, RecordBatch } from "./channel.ts";
import { redistribute } from "./operator_state.ts";
import { pruneChain } from "../snapshot/chain.ts";
import type { ChunkRef } from "../format/manifest.ts";

test("a full channel makes its producer wait until the consumer polls", async () => {
  const ch = new Channel(1);
  ch.push(new RecordBatch([1], null, null));
  assert.equal(ch.full, true);
  let released = false;
  const w = ch.waitSpace().then(() => (released = true));
  await Promise.resolve();
  assert.equal(released, false);
  ch.poll();
  await w;
  assert.equal(released, true);
});

test("the gate skips blocked and ended channels and wakes on data", async () => {
  const a = new Channel(4), b = new Channel(4);
  const gate = new InputGate([a, b]);
  a.push(new Barrier(1, "checkpoint", false));
  a.push(new RecordBatch(["after-barrier"], null, null));
  assert.equal(gate.poll(), 0);
  assert.ok(gate.element instanceof Barrier);
  gate.blocked[0] = 1;
  assert.equal(gate.poll(), -1, "a blocked channel is not read");
  const woke = gate.waitData();
  b.push(END_OF_INPUT);
  await woke;
  assert.equal(gate.poll(), 1);
  gate.ended[1] = 1;
  gate.unblockAll();
  assert.equal(gate.poll(), 0);
  assert.deepEqual((gate.element as unknown as RecordBatch).values, ["after-barrier"]);
});

test("redistribute deals items by mode", () => {
  const values = ["a", "b", "c", "d", "e"];
  const from = [0, 0, 1, 1, 2];
  assert.deepEqual(redistribute("split", values, from, 3, 2), [["a", "c", "e"], ["b", "d"]]);
  assert.deepEqual(redistribute("union", values, from, 3, 2), [values, values]);
  assert.deepEqual(redistribute("broadcast", ["x", "x"], [0, 1], 2, 3), [["x"], ["x"], ["x"]]);
  const split7 = redistribute("split", values, from, 3, 7);
  assert.equal(split7.flat().length, 5);
  assert.deepEqual(split7.flat().sort(), values);
});

function ref(path: string, type: "base" | "delta", order: number, start: number, end: number): ChunkRef {
  return { path, type, order, keyGroupRange: { start, end }, rows: 1, bytes: 1, checksum: "crc32:00000000", compression: "none" };
}

test("pruneChain keeps the latest base per key group and the deltas after it", () => {
  const chain = [
    ref("b1-lo", "base", 1, 0, 63), ref("b1-hi", "base", 1, 64, 127),
    ref("d2-lo", "delta", 2, 10, 20), ref("d2-hi", "delta", 2, 70, 80),
    ref("b3-lo", "base", 3, 0, 63),
    ref("d4-lo", "delta", 4, 5, 5),
  ];
  assert.deepEqual(pruneChain(chain, 128).map((c) => c.path), ["b1-hi", "d2-hi", "b3-lo", "d4-lo"]);
  // After a rescale: one new base over everything supersedes every older chunk.
  assert.deepEqual(pruneChain([...chain, ref("b5", "base", 5, 0, 127)], 128).map((c) => c.path), ["b5"]);
});
