import { test } from "node:test";
import assert from "node:assert/strict";
import { tableFromIPC } from "apache-arrow";
import { tableFromIPC as flechetteFromIPC } from "@uwdata/flechette";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { assignKeyGroup, keyGroupRangeFor } from "../format/key_group.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { compact } from "./compact.ts";
import { diff } from "./diff.ts";
import { exportState, toJson } from "./export.ts";
import { inspect } from "./inspect.ts";
import { ls } from "./ls.ts";
import { cnt, entries, writeChain, writeSavepoint } from "./_test_util.ts";

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test("inspect() reports operators, states, rows, bytes, chain depth and per key group / subtask counts", async () => {
  clearMemoryStorage("insp");
  const root = await openStorage("memory:insp");
  const live = await writeChain(root, [{ set: [...entries(400)] }, { set: [["k1", cnt(9)]], del: ["k2"] }, { set: [["k3", cnt(9)]] }]);
  const chk = await inspect("memory:insp");
  assert.equal(chk.kind, "checkpoint");
  assert.equal(chk.checkpointId, 3);
  const st = chk.operators[0].states[0];
  assert.equal(st.rows, 400);
  assert.equal(st.deltaChunks, 3);
  assert.ok(st.sharedChunks >= 4);
  assert.equal(chk.chainDepth, 3);
  await compact("memory:insp", "memory:insp/savepoints/sp-3");
  const sp = await inspect("memory:insp/savepoints/sp-3");
  const s = sp.operators[0].states[0];
  assert.equal(s.rows, live.size);
  assert.equal(s.chainDepth, 1);
  assert.equal(s.keyGroupRows!.length, 128);
  const perKg = new Array(128).fill(0);
  for (const k of live.keys()) perKg[assignKeyGroup(k, 128)]++;
  assert.deepEqual(s.keyGroupRows, perKg);
  const perSubtask = [0, 1, 2, 3].map((i) => { const r = keyGroupRangeFor(i, 4, 128); return perKg.slice(r.start, r.end + 1).reduce((a, b) => a + b, 0); });
  assert.deepEqual(s.subtaskRows, perSubtask);
  assert.equal(s.subtaskSkew.max, Math.max(...perSubtask));
  const shallow = await inspect("memory:insp/savepoints/sp-3", { keyGroups: false });
  assert.equal(shallow.operators[0].states[0].keyGroupRows, undefined);
  assert.equal(shallow.operators[0].states[0].subtaskRows.reduce((a, b) => a + b, 0), live.size);
});

test("ls() lists checkpoints and savepoints with sizes, ages and shared chunks", async () => {
  clearMemoryStorage("ls");
  const root = await openStorage("memory:ls");
  await writeChain(root, [{ set: [...entries(50)] }, { set: [["k1", cnt(9)]] }]);
  await compact("memory:ls", "memory:ls/savepoints/sp-2");
  await root.put("chk-000003/debris.arrow", new Uint8Array(10));
  const listing = await ls("memory:ls", { now: new Date(60_000) });
  assert.deepEqual(listing.snapshots.map((s) => [s.path, s.kind]), [["chk-000001", "checkpoint"], ["chk-000002", "checkpoint"], ["savepoints/sp-2", "savepoint"]]);
  const [c1, c2, sp] = listing.snapshots;
  assert.equal(c1.sharedChunks, 4, "checkpoint 2 still references every base of checkpoint 1");
  assert.equal(c2.chunks, 5);
  assert.equal(c2.chainDepth, 2);
  assert.equal(sp.sharedChunks, 0);
  assert.equal(sp.ownBytes, sp.bytes);
  assert.equal(c1.ageMs, 60_000);
  assert.equal(listing.unreferencedBytes, 10);
});

test("diff() counts and samples added, removed and changed keys, and schema changes", async () => {
  clearMemoryStorage("diff");
  const a = entries(300);
  const b = new Map(a);
  b.delete("k1");
  b.delete("k2");
  b.set("k3", cnt(333, "changed"));
  b.set("new", cnt(1));
  await writeSavepoint(await openStorage("memory:diff/a"), a, { parallelism: 4 });
  await writeSavepoint(await openStorage("memory:diff/b"), b, { parallelism: 2 });
  const d = await diff("memory:diff/a", "memory:diff/b", { batchRows: 50 });
  assert.equal(d.identical, false);
  const s = d.states[0];
  assert.deepEqual([s.status, s.added, s.removed, s.changed, s.unchanged], ["changed", 1, 2, 1, 297]);
  assert.deepEqual(s.samples.added, ['"new"']);
  assert.deepEqual([...s.samples.removed].sort(), ['"k1"', '"k2"']);
  assert.equal(s.samples.changed[0].key, '"k3"');
  assert.match(s.samples.changed[0].b, /333n.*changed/);
  assert.deepEqual(d.operators, [{ uid: "counter", status: "both", parallelism: { a: 4, b: 2 } }]);
  const same = await diff("memory:diff/a", "memory:diff/a");
  assert.equal(same.identical, true);
  // A schema change is reported.
  const v2: StateLayout = { kind: "value", keyType: "string", value: { encoding: "msgpack" } };
  await writeSavepoint(await openStorage("memory:diff/c"), a, { layout: v2, schemaVersion: 2 });
  const sc = (await diff("memory:diff/a", "memory:diff/c")).states[0];
  assert.ok(sc.schema && sc.schema.details.some((x) => /schemaVersion 1 → 2/.test(x)));
});

test("exportState() writes NDJSON with safe int64 as numbers, others as strings, bytes as base64", async () => {
  clearMemoryStorage("exp");
  const layout: StateLayout = { kind: "value", keyType: "int64", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int64" }, { name: "b", type: "binary" }] } } };
  const data = new Map<bigint, unknown>([[1n, { n: 5n, b: new Uint8Array([1, 2, 3]) }], [2n, { n: 2n ** 62n, b: new Uint8Array() }]]);
  await writeSavepoint(await openStorage("memory:exp/sp"), data, { layout });
  const text = new TextDecoder().decode(await collect(exportState("memory:exp/sp", { operator: "counter", state: "counts" })));
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  const one = lines.find((l) => l.key === 1)!;
  assert.deepEqual(one, { key: 1, keyGroup: assignKeyGroup(1n, 128), value: { n: 5, b: "AQID" } });
  assert.deepEqual(lines.find((l) => l.key === 2)!.value, { n: String(2n ** 62n), b: "" });
  assert.equal(toJson(-(2n ** 53n)), '"-9007199254740992"');
});

test("exportState() writes one plain Arrow IPC file that apache-arrow and flechette read", async () => {
  clearMemoryStorage("exp-arrow");
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "label", type: "dictionary" }] } } };
  const data = new Map<string, unknown>();
  for (let i = 0; i < 3000; i++) data.set(`user-${i}`, { count: BigInt(i), label: `l${i % 7}` });
  await writeSavepoint(await openStorage("memory:exp-arrow/sp"), data, { layout });
  const bytes = await collect(exportState("memory:exp-arrow/sp", { operator: "counter", state: "counts", format: "arrow", batchRows: 500 }));
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 6)), "ARROW1");
  const t = tableFromIPC(bytes);
  assert.equal(t.numRows, 3000);
  assert.ok(t.batches.length > 1, "streamed in several record batches");
  assert.deepEqual(t.schema.fields.map((f) => f.name), ["kg", "key", "value"]);
  assert.equal(t.schema.metadata.size, 0, "no arrowpoint metadata");
  const keys = t.getChild("key")!.toArray() as string[];
  const values = t.getChild("value")!;
  const got = new Map<string, unknown>();
  for (let i = 0; i < t.numRows; i++) got.set(keys[i], { count: values.get(i)!.count, label: values.get(i)!.label });
  assert.deepEqual(got, data);
  const f = flechetteFromIPC(bytes, { useBigInt: true });
  assert.equal(f.numRows, 3000);
  // The empty state still gives a readable file with the schema.
  await writeSavepoint(await openStorage("memory:exp-arrow/empty"), new Map(), { layout });
  const empty = tableFromIPC(await collect(exportState("memory:exp-arrow/empty", { operator: "counter", state: "counts", format: "arrow" })));
  assert.equal(empty.numRows, 0);
  assert.equal(empty.schema.fields.length, 3);
});

test("exportState() as Arrow passes columns through (no dictionary, no msgpack) with the same rows as ndjson", async () => {
  clearMemoryStorage("exp-pass");
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "label", type: "utf8", nullable: true }] } } };
  const data = new Map<string, unknown>();
  for (let i = 0; i < 2000; i++) data.set(`user-${i}`, { count: BigInt(i), label: i % 3 === 0 ? null : `l${i}` });
  await writeSavepoint(await openStorage("memory:exp-pass/sp"), data, { layout });
  const t = tableFromIPC(await collect(exportState("memory:exp-pass/sp", { operator: "counter", state: "counts", format: "arrow", batchRows: 300 })));
  assert.ok(t.batches.length > 1, "streamed in several record batches");
  assert.equal(t.schema.metadata.size, 0, "no arrowpoint metadata");
  assert.deepEqual(t.schema.fields.map((f) => `${f.name}:${f.type}`), ["kg:Uint16", "key:Utf8", "value:Struct<{count:Int64, label:Utf8}>"]);
  const keys = t.getChild("key")!.toArray() as string[];
  const kgs = t.getChild("kg")!.toArray() as Uint16Array;
  const values = t.getChild("value")!;
  const got = new Map<string, unknown>();
  for (let i = 0; i < t.numRows; i++) {
    assert.equal(kgs[i], assignKeyGroup(keys[i], 128));
    got.set(keys[i], { count: values.get(i)!.count, label: values.get(i)!.label });
  }
  assert.deepEqual(got, data);
});

test("diff() of chunks read into reused scratch buffers (over 1 MiB) counts every row right across chunk boundaries", async () => {
  clearMemoryStorage("diff-scratch");
  const a = entries(120_000, "a-key-long-enough-to-make-chunks-large-");
  const b = new Map(a);
  let changed = 0;
  for (const k of a.keys()) if (changed++ < 1000) b.set(k, cnt(-1, "changed"));
  for (const k of [...a.keys()].slice(-10)) b.delete(k);
  // Other parallelisms: side b opens its next chunk while side a's chunk is still being read.
  const ma = await writeSavepoint(await openStorage("memory:diff-scratch/a"), a, { parallelism: 2 });
  const mb = await writeSavepoint(await openStorage("memory:diff-scratch/b"), b, { parallelism: 4 });
  // Chunks from 1 MiB up are read through the scratch pool, and each is handed back once passed.
  for (const m of [ma, mb]) assert.ok(m.operators[0].states[0].chunks.every((c) => c.bytes > 1024 * 1024), "chunks large enough for the scratch pool");
  for (let round = 0; round < 2; round++) { // the second round reads into the buffers the first handed back
    const s = (await diff("memory:diff-scratch/a", "memory:diff-scratch/b", { batchRows: 4096 })).states[0];
    assert.deepEqual([s.status, s.added, s.removed, s.changed, s.unchanged], ["changed", 0, 10, 1000, 120_000 - 1010]);
  }
  clearMemoryStorage("diff-scratch");
});
