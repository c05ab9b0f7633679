import { test } from "node:test";
import assert from "node:assert/strict";
import { assignKeyGroup } from "../format/key_group.ts";
import { SchemaViolationError } from "../format/errors.ts";
import { KeyedStateBackend, keyedLayout } from "./keyed_backend.ts";
import { keyIdentity } from "../format/key_identity.ts";
import { aggregatingState, listState, mapState, reducingState, valueState } from "./state.ts";

function at(b: KeyedStateBackend, key: string | number): void {
  b.setCurrentKey(key, assignKeyGroup(key, 128));
}

test("value state is scoped to the current key and tracks upserts and deletes", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const s = b.getState(valueState<number>("v"));
  at(b, "a");
  s.update(1);
  at(b, "b");
  assert.equal(s.value(), undefined);
  s.update(2);
  at(b, "a");
  assert.equal(s.value(), 1);
  const t = b.table("v")!;
  assert.equal(t.dirtySize(), 2);
  t.clearDirty();
  s.clear();
  const d = t.captureDirty(0);
  assert.equal(d.length, 1);
  assert.deepEqual(d.keys, ["a"]);
  assert.deepEqual([...d.ops!], [1]);
  assert.equal(d.values[0], null);
  const all = t.captureAll(0);
  assert.deepEqual(all.keys, ["b"]);
  assert.deepEqual(all.values, [2]);
});

test("captured rows are sorted by key group", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const s = b.getState(valueState<number>("v"));
  for (let i = 0; i < 500; i++) {
    at(b, `k${i}`);
    s.update(i);
  }
  for (const rows of [b.table("v")!.captureAll(0), b.table("v")!.captureDirty(0)]) {
    assert.equal(rows.length, 500);
    for (let i = 1; i < rows.length; i++) assert.ok(rows.keyGroups[i - 1] <= rows.keyGroups[i]);
    for (let i = 0; i < rows.length; i++) assert.equal(rows.keyGroups[i], assignKeyGroup(rows.keys[i] as string, 128));
  }
});

test("list, reducing and aggregating state", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const l = b.getListState(listState<number>("l"));
  const r = b.getReducingState(reducingState<number>("r", (x, y) => x + y));
  const a = b.getAggregatingState(aggregatingState<number, { n: number; s: number }, number>("a", {
    createAccumulator: () => ({ n: 0, s: 0 }),
    add: (v, acc) => ({ n: acc.n + 1, s: acc.s + v }),
    getResult: (acc) => acc.s / acc.n,
  }));
  at(b, "k");
  for (const x of [1, 2, 3]) {
    l.add(x);
    r.add(x);
    a.add(x);
  }
  assert.deepEqual(l.get(), [1, 2, 3]);
  assert.equal(r.get(), 6);
  assert.equal(a.get(), 2);
  l.update([]);
  assert.deepEqual(l.get(), []);
  assert.equal(b.table("l")!.captureDirty(0).ops![0], 1);
});

test("map state tracks changes per user key, clear deletes every entry", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const m = b.getMapState(mapState<string, number>("m"));
  at(b, "k");
  m.put("x", 1);
  m.put("y", 2);
  assert.equal(m.size(), 2);
  assert.deepEqual([...m.entries()].sort(), [["x", 1], ["y", 2]]);
  const t = b.table("m")!;
  assert.equal(t.dirtySize(), 2);
  t.clearDirty();
  m.clear();
  const d = t.captureDirty(0);
  assert.deepEqual(d.userKeys!.slice().sort(), ["x", "y"]);
  assert.deepEqual([...d.ops!], [1, 1]);
  assert.equal(t.size(), 0);
});

test("state access outside a record and kind clashes are refused", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const s = b.getState(valueState<number>("v"));
  assert.throws(() => s.value(), TypeError);
  assert.throws(() => b.getListState(listState<number>("v")), TypeError);
});

test("without change tracking nothing is recorded as dirty", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", false);
  const s = b.getState(valueState<number>("v"));
  at(b, "a");
  s.update(1);
  assert.equal(b.table("v")!.dirtySize(), 0);
  assert.equal(b.table("v")!.size(), 1);
});

test("keyIdentity gives equal ids to equal composite keys", () => {
  assert.equal(keyIdentity(["a", 1]), keyIdentity(["a", 1]));
  assert.notEqual(keyIdentity(["a", 1]), keyIdentity(["a", "1"]));
  assert.equal(keyIdentity(new Uint8Array([1, 2])), keyIdentity(new Uint8Array([1, 2])));
  assert.equal(keyIdentity(7), 7);
});

test("a map state listed with no chunks (emptied on every subtask) restores as empty", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const layout = keyedLayout(mapState<string, number>("m"), "string");
  b.stageRestored("m", layout, 1, { length: 0, values: [] }, 0, true);
  const m = b.getMapState(mapState<string, number>("m"));
  assert.equal(b.table("m")!.size(), 0);
  at(b, "a");
  assert.equal(m.size(), 0);
});

test("a value a typed state cannot hold is refused where it is stored, naming the state, the key and the call (regression)", () => {
  const b = new KeyedStateBackend({ start: 0, end: 127 }, "string", true);
  const count = b.getState(valueState<number>("mycount", { value: { encoding: "arrow", type: "int32" } }));
  const recent = b.getListState(listState<number>("recent", { value: { encoding: "arrow", type: "int32" } }));
  const byCat = b.getMapState(mapState<bigint, { n: number }>("by-cat", { userKeyType: "int64", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }] } } }));
  const total = b.getReducingState(reducingState<number>("total", (x, y) => x + y, { value: { encoding: "arrow", type: "int8" } }));
  const anything = b.getState(valueState<unknown>("anything"));
  at(b, "u7");
  const refused = (f: () => void, state: string, pattern: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof SchemaViolationError && e.state === state && e.key === '"u7"' && pattern.test(e.message), `${state}: ${pattern}`);
  refused(() => count.update("12" as unknown as number), "mycount", /^state "mycount", key "u7": update\(\) was given a value .*must be an integer in -2147483648\.\.2147483647 \(int32\), got string "12"/);
  refused(() => count.update(2 ** 31), "mycount", /got number 2147483648/);
  refused(() => recent.add(1.5), "recent", /add\(\) was given a list element .*got number 1\.5/);
  refused(() => recent.addAll([1, "2" as unknown as number]), "recent", /addAll\(\)/);
  refused(() => recent.update([null as unknown as number]), "recent", /update\(\) .*list element is null but it is not nullable/);
  refused(() => byCat.put("x" as unknown as bigint, { n: 1 }), "by-cat", /put\(\) was given a user key .*int64.*`userKeyType`/);
  refused(() => byCat.put(1n, { n: "1" as unknown as number }), "by-cat", /value\.n must be an integer/);
  total.add(100);
  refused(() => total.add(100), "total", /add\(\) \(the result of reduce\) .*got number 200/);
  // Nothing refused was stored; valid values and untyped (msgpack) states are unaffected.
  assert.equal(count.value(), undefined);
  assert.deepEqual(recent.get(), []);
  assert.equal(byCat.size(), 0);
  assert.equal(total.get(), 100);
  count.update(-5);
  recent.addAll([1, 2]);
  byCat.put(3n, { n: 1 });
  byCat.put(4 as unknown as bigint, { n: 2 }); // an integer number is a valid int64, as the encoder takes it
  anything.update("a string, a number, anything msgpack encodes");
  assert.equal(count.value(), -5);
  assert.equal(byCat.size(), 2);
});

test("a record's read-modify-write of value state looks its key up once, and the kept entry never outlives its key", () => {
  const b = new KeyedStateBackend({ start: 0, end: 0 }, "string", true);
  const s = b.getState(valueState<number>("v"));
  const t = b.table("v") as unknown as { tables: (Map<unknown, unknown> | undefined)[] };
  let lookups = 0;
  class CountingMap<K, V> extends Map<K, V> {
    override get(k: K): V | undefined {
      lookups++;
      return super.get(k);
    }
  }
  t.tables[0] = new CountingMap();
  // Every key in key group 0 of a one-group range: the same map serves all of them.
  b.setCurrentKey("a", 0);
  s.update((s.value() ?? 0) + 1);
  assert.equal(lookups, 1);
  b.setCurrentKey("b", 0);
  assert.equal(s.value(), undefined);
  s.update(10);
  b.setCurrentKey("a", 0);
  assert.equal(s.value(), 1);
  s.update(s.value()! + 1);
  b.setCurrentKey("b", 0);
  assert.equal(s.value(), 10);
  s.clear();
  assert.equal(s.value(), undefined);
  s.update(11);
  assert.equal(s.value(), 11);
  b.setCurrentKey("a", 0);
  assert.equal(s.value(), 2);
  assert.equal(lookups, 5); // one per record (a, b, a, b, a), whatever it reads and writes
  const all = b.table("v")!.captureAll(0);
  assert.deepEqual(new Map(all.keys.map((k, i) => [k, all.values[i]])), new Map([["a", 2], ["b", 11]]));
});
