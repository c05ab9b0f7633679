// Column migrations (schema-only renames and drops, constant added fields, typed-array widenings, utf8 →
// dictionary) must give exactly what the row path gives: the same steps with a computed default (which
// forces rows) are the reference.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { readChunk } from "../snapshot/chunks.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { columnMap } from "./_apply.ts";
import { migrate } from "./migrate.ts";
import { addField, defineMigrations, dropField, renameField, renameState, type StateStep, widenType } from "./migrations.ts";
import { writeSavepoint } from "./_test_util.ts";
import { validate } from "./validate.ts";
import { longOr } from "../format/_test_fuzz.ts";

const LAYOUT: StateLayout = {
  kind: "value",
  keyType: "string",
  value: {
    encoding: "arrow",
    type: { struct: [{ name: "n", type: "int16" }, { name: "s", type: "utf8", nullable: true }, { name: "f", type: "float32" }, { name: "d", type: "dictionary" }] },
  },
};

type Row = { n: number; s: string | null; f: number; d: string };

const row = fc.record({
  n: fc.integer({ min: -32768, max: 32767 }),
  s: fc.option(fc.constantFrom("a", "bb", "ccc", "é", ""), { nil: null }),
  f: fc.float({ noNaN: true, noDefaultInfinity: true }).map(Math.fround),
  d: fc.constantFrom("x", "y", "z"),
});

/** Step lists over LAYOUT, each valid in order. */
const steps: fc.Arbitrary<((computed: boolean) => StateStep)[]> = fc.subarray([
  (c: boolean) => addField("region", "utf8", c ? () => "eu" : "eu"),
  (c: boolean) => addField("zone", "int32", c ? () => null : null, { nullable: true }),
  (c: boolean) => addField("ok", "bool", c ? () => true : true),
  (c: boolean) => addField("tag", "dictionary", c ? () => "t1" : "t1"),
  (_c: boolean) => widenType("n", "int64"),
  (_c: boolean) => widenType("s", "dictionary"),
  (_c: boolean) => widenType("f", "float64"),
  (_c: boolean) => renameField("d", "label"),
  (_c: boolean) => dropField("n"),
  (_c: boolean) => renameState("counts2"),
], { minLength: 1 });

test("column migrations equal the row path for random data and step lists, and stay valid", async () => {
  let round = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(row, { minLength: 0, maxLength: 60 }), steps, async (rows, mk) => {
      const name = `cols-${round++}`;
      clearMemoryStorage(name);
      const data = new Map<string, Row>(rows.map((r, i) => [`k${i}`, r]));
      await writeSavepoint(await openStorage(`memory:${name}/src`), data, { layout: LAYOUT, parallelism: 3 });
      const columnar = mk.map((f) => f(false));
      const rowwise = mk.map((f) => f(true));
      assert.ok(columnMap(LAYOUT, columnar), "the step list is a column rewrite");
      if (rowwise.some((s) => s.op === "addField")) assert.equal(columnMap(LAYOUT, rowwise), undefined, "computed defaults need rows");
      const a = await migrate(`memory:${name}/src`, `memory:${name}/cols`, defineMigrations({ "counter/counts": columnar }));
      const b = await migrate(`memory:${name}/src`, `memory:${name}/rows`, defineMigrations({ "counter/counts": rowwise }));
      const stA = a.written!.manifest.operators[0].states[0];
      const stB = b.written!.manifest.operators[0].states[0];
      assert.deepEqual({ ...stA, chunks: [] }, { ...stB, chunks: [] });
      const ra = await readState(await openSnapshot(`memory:${name}/cols`), "counter", stA.name);
      const rb = await readState(await openSnapshot(`memory:${name}/rows`), "counter", stB.name);
      assert.deepEqual(ra, rb);
      assert.deepEqual(await validate(`memory:${name}/cols`), []);
      clearMemoryStorage(name);
    }),
    { numRuns: longOr(40, 400), seed: 12 },
  );
});

test("a column migration rewrites chunks without reading rows: renames keep every value buffer", async () => {
  clearMemoryStorage("cols-bytes");
  const data = new Map<string, Row>(Array.from({ length: 500 }, (_, i) => [`k${i}`, { n: i, s: i % 3 ? `s${i}` : null, f: i / 2, d: "x" }]));
  await writeSavepoint(await openStorage("memory:cols-bytes/src"), data, { layout: LAYOUT });
  await migrate("memory:cols-bytes/src", "memory:cols-bytes/out", defineMigrations({ "counter/counts": [renameField("n", "count"), dropField("f")] }));
  const snap = await openSnapshot("memory:cols-bytes/out");
  const st = snap.manifest.operators[0].states[0];
  assert.deepEqual((st.value as unknown as { type: { struct: { name: string }[] } }).type.struct.map((f) => f.name), ["count", "s", "d"]);
  const d = await readChunk(snap, st.chunks[0]);
  for (let i = 0; i < d.length; i++) {
    const k = d.keys![i] as string;
    const want = data.get(k)!;
    assert.deepEqual(d.values[i], { count: want.n, s: want.s, d: want.d });
  }
});

test("steps that need rows are not column rewrites", () => {
  assert.equal(columnMap(LAYOUT, [addField("x", "utf8", () => "computed")]), undefined);
  assert.equal(columnMap(LAYOUT, [addField("x", "int8", 300)]), undefined, "a default that does not fit goes the row path (and fails there, naming the key)");
  assert.equal(columnMap(LAYOUT, [widenType("n", "int32"), widenType("n", "float64")]) !== undefined, true);
  assert.equal(columnMap({ ...LAYOUT, value: { encoding: "msgpack" } }, [renameField("a", "b")]), undefined);
  assert.equal(columnMap({ ...LAYOUT, value: { encoding: "arrow", type: "int64" } }, [widenType(undefined, "float64")]), undefined, "int64 → float64 is not exact");
});
