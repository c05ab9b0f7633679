import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { MigrationError, SchemaViolationError } from "../format/errors.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { migrate } from "./migrate.ts";
import { addField, custom, defineMigrations, dropField, dropOperator, dropState, renameField, renameOperator, renameState, widenType } from "./migrations.ts";
import { listAll, stateMap, writeSavepoint } from "./_test_util.ts";
import { validate } from "./validate.ts";

const V1: StateLayout = {
  kind: "value",
  keyType: "string",
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int32" }, { name: "debug", type: "utf8" }] } },
};

function v1Data(n: number): Map<string, { count: number; debug: string }> {
  const m = new Map<string, { count: number; debug: string }>();
  for (let i = 0; i < n; i++) m.set(`u${i}`, { count: i * 3, debug: `d${i}` });
  return m;
}

const chain = defineMigrations({
  "counter/counts": [
    addField("label", "dictionary", (v) => ((v as { count: number }).count % 2 ? "odd" : "even")), // v1 → v2
    dropField("debug"), // v2 → v3
    widenType("count", "int64"), // v3 → v4
    renameField("count", "total"), // v4 → v5
  ],
});

test("migrate() runs a v1 → v5 chain and yields exactly the expected rows and schema", async () => {
  clearMemoryStorage("mig-chain");
  const data = v1Data(600);
  await writeSavepoint(await openStorage("memory:mig-chain/v1"), data, { layout: V1, offsets: [[{ p: 1 }], [{ p: 2 }]] });
  const report = await migrate("memory:mig-chain/v1", "memory:mig-chain/v5", chain);
  assert.equal(report.dryRun, false);
  assert.equal(report.written!.manifest.operators[0].states[0].schemaVersion, 5);
  const expected = new Map([...data].map(([k, v]) => [k, { total: BigInt(v.count), label: v.count % 2 ? "odd" : "even" }]));
  assert.deepEqual(await stateMap("memory:mig-chain/v5"), expected);
  const st = (await openSnapshot("memory:mig-chain/v5")).manifest.operators[0].states[0];
  assert.deepEqual(st.value, { encoding: "arrow", type: { struct: [{ name: "total", type: "int64" }, { name: "label", type: "dictionary" }] } });
  assert.deepEqual(await validate("memory:mig-chain/v5"), []);
  // Operator state without a chain is carried over unchanged.
  const offsets = await readState(await openSnapshot("memory:mig-chain/v5"), "counter", "offsets");
  assert.deepEqual(offsets.values, [{ p: 1 }, { p: 2 }]);
});

test("migrate() starts a chain at the snapshot's schema version", async () => {
  clearMemoryStorage("mig-v3");
  const layoutV3: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int32" }, { name: "label", type: "dictionary" }] } } };
  const data = new Map([["a", { count: 1, label: "x" }], ["b", { count: 2, label: "y" }]]);
  await writeSavepoint(await openStorage("memory:mig-v3/in"), data, { layout: layoutV3, schemaVersion: 3 });
  const { plan } = await migrate("memory:mig-v3/in", "memory:mig-v3/out", chain);
  assert.deepEqual(plan.states[0].steps, ["widenType count → int64", "renameField count → total"]);
  assert.deepEqual(await stateMap("memory:mig-v3/out"), new Map([["a", { total: 1n, label: "x" }], ["b", { total: 2n, label: "y" }]]));
  // A snapshot newer than the chain knows is refused.
  await writeSavepoint(await openStorage("memory:mig-v3/v9"), data, { layout: layoutV3, schemaVersion: 9 });
  await assert.rejects(migrate("memory:mig-v3/v9", "memory:mig-v3/out9", chain), (e: unknown) => e instanceof MigrationError && /version 9, newer than the migrations know \(up to 5\)/.test(e.message));
});

test("migrate({ dryRun }) returns the plan and writes nothing", async () => {
  clearMemoryStorage("mig-dry");
  const root = await openStorage("memory:mig-dry");
  await writeSavepoint(await openStorage("memory:mig-dry/v1"), v1Data(100), { layout: V1 });
  const before = await listAll(root);
  const { plan, dryRun, written } = await migrate("memory:mig-dry/v1", "memory:mig-dry/v5", chain, { dryRun: true });
  assert.equal(dryRun, true);
  assert.equal(written, undefined);
  assert.deepEqual(await listAll(root), before);
  assert.equal(plan.states.length, 1);
  const s = plan.states[0];
  assert.deepEqual([s.operator, s.state, s.action, s.fromVersion, s.toVersion, s.rows], ["counter", "counts", "migrate", 1, 5, 100]);
  assert.equal(s.steps.length, 4);
  assert.ok(s.estimatedBytes > 0 && s.bytes > 0);
});

test("migrate() stops at the first row failing the new schema, naming state, key and reason, committing nothing", async () => {
  clearMemoryStorage("mig-bad");
  await writeSavepoint(await openStorage("memory:mig-bad/v1"), v1Data(50), { layout: V1 });
  const bad = defineMigrations({
    "counter/counts": [custom((v, ctx) => ctx.key === "u17" ? { count: "many" } : { count: (v as { count: number }).count }, {
      value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int32" }] } },
    })],
  });
  await assert.rejects(
    migrate("memory:mig-bad/v1", "memory:mig-bad/v2", bad),
    (e: unknown) => e instanceof SchemaViolationError && e.state === "counter/counts" && e.key === '"u17"' && /value\.count must be an integer/.test(e.message),
  );
  assert.deepEqual(await listAll(await openStorage("memory:mig-bad/v2")), []);
  // A step that cannot apply is refused before any row is read.
  await assert.rejects(migrate("memory:mig-bad/v1", "memory:mig-bad/v3", defineMigrations({ "counter/counts": [dropField("nope")] })), /no field "nope" \(fields: count, debug\)/);
  await assert.rejects(migrate("memory:mig-bad/v1", "memory:mig-bad/v3", defineMigrations({ "counter/typo": [dropField("debug")] })), /"counter\/typo".*states: counter\/counts \(v1\)/);
  await assert.rejects(migrate("memory:mig-bad/v1", "memory:mig-bad/v3", defineMigrations({ "counter/counts": [widenType("count", "int8")] })), /int32 → int8 is not a widening/);
});

test("migrate() renames and drops operators and states, and custom steps may drop rows", async () => {
  clearMemoryStorage("mig-ops");
  const other = { uid: "debug", parallelism: 1, states: [] };
  await writeSavepoint(await openStorage("memory:mig-ops/in"), v1Data(20), { layout: V1, offsets: [[1, 2, 3]], extra: [other] });
  const m = defineMigrations(
    { "counter/counts": [renameState("tallies"), custom((v, ctx) => (ctx.key === "u3" ? undefined : v))] },
    { operators: [renameOperator("counter", "counter-v2"), dropOperator("debug"), dropState("counter", "offsets")] },
  );
  const { plan } = await migrate("memory:mig-ops/in", "memory:mig-ops/out", m);
  assert.deepEqual(plan.operators, [{ uid: "counter", toUid: "counter-v2", action: "rename" }, { uid: "debug", toUid: "debug", action: "drop" }]);
  const snap = await openSnapshot("memory:mig-ops/out");
  assert.deepEqual(snap.manifest.operators.map((o) => [o.uid, o.states.map((s) => `${s.name}@${s.schemaVersion}`)]), [["counter-v2", ["tallies@3"]]]);
  const rows = await stateMap("memory:mig-ops/out", "counter-v2", "tallies");
  assert.equal(rows.size, 19);
  assert.equal(rows.has("u3"), false);
  // Running the same migrations on the output finds the states by their new names and does nothing more.
  const again = await migrate("memory:mig-ops/out", "memory:mig-ops/out2", m, { dryRun: true });
  assert.deepEqual(again.plan.states.map((s) => [s.toOperator, s.toState, s.action]), [["counter-v2", "tallies", "copy"]]);
});

test("migrate() validates msgpack values against the new JSON Schema", async () => {
  clearMemoryStorage("mig-json");
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "msgpack", jsonSchema: { type: "object", properties: { n: { type: "integer" } }, required: ["n"] } } };
  await writeSavepoint(await openStorage("memory:mig-json/in"), new Map([["a", { n: 1 }], ["b", { n: 2 }]]), { layout });
  const ok = await migrate("memory:mig-json/in", "memory:mig-json/out", defineMigrations({ "counter/counts": [addField("tag", "utf8", "t"), renameField("n", "count")] }));
  const st = ok.written!.manifest.operators[0].states[0];
  assert.deepEqual(st.value, { encoding: "msgpack", jsonSchema: { type: "object", properties: { count: { type: "integer" }, tag: { type: "string" } }, required: ["count"] } });
  assert.deepEqual(await stateMap("memory:mig-json/out"), new Map([["a", { count: 1, tag: "t" }], ["b", { count: 2, tag: "t" }]]));
  await assert.rejects(
    migrate("memory:mig-json/in", "memory:mig-json/bad", defineMigrations({ "counter/counts": [custom((v) => ({ n: String((v as { n: number }).n) }))] })),
    (e: unknown) => e instanceof SchemaViolationError && /value\/n must be integer/.test(e.message) && /"a"|"b"/.test(e.key),
  );
});
