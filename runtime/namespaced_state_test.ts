import { test } from "node:test";
import assert from "node:assert/strict";
import { KeyedStateBackend } from "./keyed_backend.ts";
import { keySlotsOf, type NamespacedValueState, namespacedTable, namespacedValueState } from "./namespaced_state.ts";
import { SchemaViolationError } from "../format/errors.ts";

const W = namespacedValueState<number>("w");

function setup(track = true) {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", track);
  const t = namespacedTable(b, W);
  return { b, t, h: t.handle as NamespacedValueState<number> };
}

const rowsOf = (c: { length: number; keyGroups: number[]; keys: unknown[]; namespaces?: string[]; values: unknown[]; ops?: Uint8Array }) =>
  Array.from({ length: c.length }, (_, i) => `${c.keyGroups[i]}|${c.keys[i]}|${c.namespaces![i]}|${c.values[i]}|${c.ops?.[i] ?? "-"}`).sort();

test("namespaced state keeps one value per key and namespace", () => {
  const { b, h } = setup();
  b.setCurrentKey("a", 1);
  h.put("x", 1);
  h.put("y", 2);
  h.put("x", 3);
  b.setCurrentKey("b", 2);
  assert.equal(h.get("x"), undefined);
  h.put("x", 10);
  b.setCurrentKey("a", 1);
  assert.deepEqual(h.entries().sort(), [["x", 3], ["y", 2]]);
  h.remove("y");
  h.put("x", null as unknown as number); // null removes, as value state's update does
  assert.deepEqual(h.entries(), []);
  b.setCurrentKey("b", 2);
  assert.deepEqual(h.entries(), [["x", 10]]);
});

test("a delta holds upserts and the deletes of rows a capture wrote; rows born and gone between captures write nothing", () => {
  const { b, t, h } = setup();
  b.setCurrentKey("a", 1);
  h.put("kept", 1);
  h.put("gone", 2);
  assert.deepEqual(rowsOf(t.captureDirty(0)), ["1|a|gone|2|0", "1|a|kept|1|0"]);
  t.clearDirty();
  b.setCurrentKey("a", 1);
  h.remove("gone");
  h.put("brief", 5);
  h.remove("brief");
  h.remove("kept");
  h.put("kept", 7); // removed and created again: an upsert only
  assert.deepEqual(rowsOf(t.captureDirty(0)), ["1|a|gone|null|1", "1|a|kept|7|0"]);
  t.clearDirty();
  assert.equal(t.captureDirty(0).length, 0);
  assert.deepEqual(rowsOf(t.captureAll(0)), ["1|a|kept|7|-"]);
});

test("captured rows restore into another backend's range, and deleting a restored row is a delete", () => {
  const { b, t, h } = setup();
  for (let i = 0; i < 50; i++) {
    b.setCurrentKey(`k${i}`, i % 128);
    h.put(`n${i % 3}`, i);
  }
  const all = t.captureAll(0);
  assert.deepEqual(all.keyGroups, all.keyGroups.slice().sort((x, y) => x - y));
  const b2 = new KeyedStateBackend({ start: 0, end: 63 }, "string", true);
  const t2 = namespacedTable(b2, W);
  t2.restore(0, 63, all);
  assert.equal(t2.size(), all.keyGroups.filter((g) => g <= 63).length);
  assert.equal(t2.captureDirty(0).length, 0);
  b2.setCurrentKey("k5", 5);
  const h2 = t2.handle as NamespacedValueState<number>;
  assert.equal(h2.get("n2"), 5);
  h2.remove("n2");
  assert.deepEqual(rowsOf(t2.captureDirty(0)), ["5|k5|n2|null|1"]);
});

test("a value its schema cannot hold is refused where it is put", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const h = namespacedTable(b, namespacedValueState<number>("typed", { value: { encoding: "arrow", type: "int32" } })).handle as NamespacedValueState<unknown>;
  b.setCurrentKey("a", 1);
  assert.throws(() => h.put("x", "not a number"), SchemaViolationError);
  h.put("x", 4);
  assert.equal(h.get("x"), 4);
});

test("key slots are reused by keys that come back, and freed only after a whole sweep interval unused", () => {
  const { b, t, h } = setup(false);
  const slots = keySlotsOf(b);
  b.setCurrentKey("hot", 1);
  h.put("x", 1);
  const hot = slots.find();
  h.remove("x");
  // Many keys come and go: sweeps run as new keys are interned.
  for (let i = 0; i < 20_000; i++) {
    b.setCurrentKey(`k${i}`, i % 128);
    h.put("x", i);
    h.remove("x");
    if (i % 100 === 0) {
      b.setCurrentKey("hot", 1);
      h.put("x", i);
      assert.equal(slots.find(), hot); // used often: never freed
      h.remove("x");
    }
  }
  assert.equal(t.size(), 0);
  // The keys unused for a sweep interval were freed: far fewer slots than keys seen.
  assert.ok(slots.keys.filter((k) => k !== undefined).length < 15_000);
  b.setCurrentKey("k3", 3);
  h.put("y", 9);
  assert.deepEqual(h.entries(), [["y", 9]]);
});
