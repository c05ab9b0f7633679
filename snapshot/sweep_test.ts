// The read model against its definition: on random chains (bases, deltas with upserts and tombstones,
// re-bases, subtask ranges that split and join as parallelism changes, every value encoding), the
// engine's sweep — as JS rows and as a column gather — equals a naive row-level merge.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { gatherChunk } from "../format/chunk_slice.ts";
import { decodeChunk } from "../format/decode_chunk.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup, keyGroupRangeFor } from "../format/key_group.ts";
import { keyIdentity } from "../format/key_identity.ts";
import type { ChunkRef } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { checkpointDirName } from "./layout.ts";
import { openSnapshot, readState } from "./read.ts";
import type { Rows } from "./rows.ts";
import { type SelectionBatch, snapshotInputs, sweep, sweepSelections } from "./sweep.ts";
import { scratchTestMode } from "../format/_scratch.ts";
import { buildManifest, commitManifest, writeChunk } from "./write.ts";
import { longOr } from "../format/_test_fuzz.ts";

const WORD = fc.constantFrom("", "x", "yz", "é", "日本");

const LAYOUTS: { layout: StateLayout; value: fc.Arbitrary<unknown> }[] = [
  {
    layout: { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int64" }, { name: "s", type: "utf8", nullable: true }, { name: "d", type: "dictionary" }] } } },
    value: fc.record({ n: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), s: fc.option(WORD, { nil: null }), d: fc.constantFrom("a", "b", "c") }).map((o) => ({ ...o })),
  },
  { layout: { kind: "value", keyType: "string", value: { encoding: "msgpack" } }, value: fc.oneof(fc.integer(), WORD, fc.array(fc.boolean(), { maxLength: 3 })) },
  { layout: { kind: "list", keyType: "string", value: { encoding: "arrow", type: "utf8" } }, value: fc.array(WORD, { maxLength: 3 }) },
  { layout: { kind: "map", keyType: "string", userKeyType: "int32", namespaced: true, value: { encoding: "arrow", type: "float64" } }, value: fc.double({ noNaN: true }) },
];

const KEYS = Array.from({ length: 24 }, (_, i) => `u${i}`);

/** One row identity of the generated state: key, and namespace / user key where the layout has them. */
interface Cell {
  key: string;
  ns: string;
  ukey: number;
}

const cell = fc.record({ key: fc.constantFrom(...KEYS), ns: fc.constantFrom("", "w1"), ukey: fc.integer({ min: 0, max: 2 }) });

interface Step {
  parallelism: number;
  /** Per subtask: a base holding these rows, or a delta of upserts (value) and deletes (undefined). */
  parts: { base: boolean; ops: { c: Cell; v: unknown | undefined }[] }[];
}

function stepArb(value: fc.Arbitrary<unknown>): fc.Arbitrary<Step> {
  return fc.integer({ min: 1, max: 4 }).chain((parallelism) =>
    fc.record({
      parallelism: fc.constant(parallelism),
      parts: fc.array(fc.record({ base: fc.boolean(), ops: fc.array(fc.record({ c: cell, v: fc.option(value, { nil: undefined, freq: 4 }) }), { maxLength: 12 }) }), { minLength: parallelism, maxLength: parallelism }),
    })
  );
}

const idOf = (layout: StateLayout, kg: number, c: { key: unknown; ns?: unknown; ukey?: unknown }) =>
  `${kg}|${String(keyIdentity(c.key))}|${layout.namespaced ? c.ns : ""}|${layout.kind === "map" ? c.ukey : ""}`;

function asMap(layout: StateLayout, rows: Rows): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (let i = 1; i < rows.length; i++) assert.ok(rows.keyGroups![i - 1] <= rows.keyGroups![i], "rows sorted by key group");
  for (let i = 0; i < rows.length; i++) {
    const id = idOf(layout, rows.keyGroups![i], { key: rows.keys![i], ns: rows.namespaces?.[i], ukey: rows.userKeys?.[i] });
    assert.ok(!out.has(id), `row ${id} once`);
    out.set(id, rows.values[i]);
  }
  return out;
}

test("the engine's sweep equals a naive row-level merge on random chains (rows, ranges, batches, column gathers)", async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: LAYOUTS.length - 1 }).chain((li) =>
        fc.record({ li: fc.constant(li), maxP: fc.integer({ min: 4, max: 24 }), steps: fc.array(stepArb(LAYOUTS[li].value), { minLength: 1, maxLength: 5 }), batchRows: fc.integer({ min: 1, max: 40 }), range: fc.tuple(fc.nat(), fc.nat()) })
      ),
      async ({ li, maxP, steps, batchRows, range }) => {
        const { layout } = LAYOUTS[li];
        const uri = `memory:sweep-prop-${run++}`;
        clearMemoryStorage(uri.slice(7));
        const root = await openStorage(uri);
        // The naive model: per row identity, its value, applied chunk by chunk in order.
        const naive = new Map<string, { kg: number; v: unknown }>();
        const chunks: ChunkRef[] = [];
        for (let s = 0; s < steps.length; s++) {
          const id = s + 1;
          const step = steps[s];
          for (let t = 0; t < step.parallelism; t++) {
            const r = keyGroupRangeFor(t, step.parallelism, maxP);
            const part = step.parts[t];
            const last = new Map<string, { kg: number; c: Cell; v: unknown | undefined }>();
            for (const op of part.ops) {
              const kg = assignKeyGroup(op.c.key, maxP);
              if (kg < r.start || kg > r.end) continue;
              if (part.base && op.v === undefined) continue; // a base holds rows, no tombstones
              last.set(idOf(layout, kg, op.c), { kg, c: op.c, v: op.v });
            }
            const rows = [...last.values()].sort((a, b) => a.kg - b.kg);
            if (part.base) for (const [k, e] of naive) if (e.kg >= r.start && e.kg <= r.end) naive.delete(k);
            for (const [k, e] of last) {
              if (e.v === undefined) naive.delete(k);
              else naive.set(k, { kg: e.kg, v: e.v });
            }
            if (!part.base && rows.length === 0) continue;
            const chunk = encodeChunk(layout, {
              length: rows.length,
              keyGroups: rows.map((x) => x.kg),
              keys: rows.map((x) => x.c.key),
              ...(layout.namespaced ? { namespaces: rows.map((x) => x.c.ns) } : {}),
              ...(layout.kind === "map" ? { userKeys: rows.map((x) => x.c.ukey) } : {}),
              ...(part.base ? {} : { ops: Uint8Array.from(rows, (x) => (x.v === undefined ? 1 : 0)) }),
              values: rows.map((x) => (x.v === undefined ? null : x.v)),
            });
            chunks.push(await writeChunk(root, `shared/${id}-${t}.arrow`, chunk, { type: part.base ? "base" : "delta", order: id, keyGroupRange: r }));
          }
        }
        const dir = checkpointDirName(steps.length);
        await commitManifest(root, dir, buildManifest({ kind: "checkpoint", id: dir, checkpointId: steps.length, job: "prop", maxParallelism: maxP }, [
          { uid: "op", parallelism: steps[steps.length - 1].parallelism, states: [{ name: "s", keyed: true, schemaVersion: 1, ...layout, chunks }] },
        ]));
        const want = new Map([...naive].map(([k, e]) => [k, e.v]));
        const snap = await openSnapshot(root, dir);
        assert.deepEqual(asMap(layout, await readState(snap, "op", "s")), want);
        // A key-group range, read alone.
        const lo = range[0] % maxP;
        const hi = lo + (range[1] % (maxP - lo));
        const part = await readState(snap, "op", "s", { start: lo, end: hi });
        assert.deepEqual(asMap(layout, part), new Map([...naive].filter(([, e]) => e.kg >= lo && e.kg <= hi).map(([k, e]) => [k, e.v])));
        // Small batches over windows that cut across chunk ranges; JS rows and column gathers alike.
        const st = snap.manifest.operators[0].states[0];
        const windows = [{ start: 0, end: lo - 1 }, { start: lo, end: hi }, { start: hi + 1, end: maxP - 1 }].filter((w) => w.start <= w.end);
        const shape = { namespaced: layout.namespaced === true, map: layout.kind === "map", batchRows, canonical: true };
        const got = new Map<string, unknown>();
        for await (const b of sweep(snapshotInputs(snap, st), windows, shape)) for (const [k, v] of asMap(layout, b.rows)) got.set(k, v);
        assert.deepEqual(got, want);
        const gathered = new Map<string, unknown>();
        for await (const s of sweepSelections(snapshotInputs(snap, st), windows, shape)) {
          if (s.row.length === 0) continue;
          const d = decodeChunk(gatherChunk(layout, s.files, s.src, s.row).bytes);
          for (const [k, v] of asMap(layout, { ...d, keys: d.keys, values: d.values })) gathered.set(k, v);
        }
        assert.deepEqual(gathered, want);
        // The same through the scratch pool, every buffer poisoned as it goes back: every batch retained and
        // gathered only after the sweep has ended, so a buffer handed back while still picked from shows.
        const was = scratchTestMode(true);
        try {
          const kept: { s: SelectionBatch; done: () => void }[] = [];
          for await (const s of sweepSelections(snapshotInputs(snap, st), windows, { ...shape, scratch: true })) kept.push({ s, done: s.retain() });
          const pooled = new Map<string, unknown>();
          for (const { s, done } of kept) {
            if (s.row.length > 0) {
              const d = decodeChunk(gatherChunk(layout, s.files, s.src, s.row).bytes);
              for (const [k, v] of asMap(layout, { ...d, keys: d.keys, values: d.values })) pooled.set(k, v);
            }
            done();
          }
          assert.deepEqual(pooled, want);
        } finally {
          scratchTestMode(was);
        }
        clearMemoryStorage(uri.slice(7));
      },
    ),
    { numRuns: longOr(120, 1200), seed: 20261201 },
  );
});
