// Chunks read into the scratch pool (`scratch: true`) go back to it only when the sweep has passed them and
// no retained batch picks from them. The pool's test mode poisons every buffer as it is released, so a
// buffer handed back while still read shows as garbage at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gatherChunk } from "../format/chunk_slice.ts";
import { decodeChunk, openChunk } from "../format/decode_chunk.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { POISON, scratchTestMode } from "../format/_scratch.ts";
import { type ChunkInput, type SelectionBatch, sweepSelections } from "./sweep.ts";

const LAYOUT: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int64" }, { name: "s", type: "utf8" }] } } };

/** A chunk of keys `k<kg>-<i>` over key groups [start, end], read into the buffer the sweep passes. */
function input(start: number, end: number, order: number, delta: boolean, tag: string): ChunkInput {
  const kgs: number[] = [];
  const keys: string[] = [];
  for (let g = start; g <= end; g++) for (let i = 0; i < 3; i++) {
    kgs.push(g);
    keys.push(`k${g}-${i}`);
  }
  const chunk = encodeChunk(LAYOUT, {
    length: kgs.length,
    keyGroups: kgs,
    keys,
    ...(delta ? { ops: new Uint8Array(kgs.length) } : {}),
    values: keys.map((k, i) => ({ n: BigInt(i), s: `${tag}:${k}` })),
  });
  return {
    range: { start, end },
    type: delta ? "delta" : "base",
    order,
    rows: kgs.length,
    path: `mem/${tag}`,
    scratchBytes: chunk.bytes.length + 1,
    open: (into) => {
      if (!into) return Promise.resolve(openChunk(chunk.bytes.slice()));
      into.set(chunk.bytes);
      return Promise.resolve(openChunk(into.subarray(0, chunk.bytes.length)));
    },
  };
}

/** Two bases over [0, 7] and [8, 15] and a newer delta over [0, 15] that rewrites every key. */
function inputs(): ChunkInput[] {
  return [input(0, 7, 1, false, "a"), input(8, 15, 1, false, "b"), input(0, 15, 2, true, "new")];
}

function rowsOf(s: SelectionBatch): string[] {
  if (s.row.length === 0) return [];
  const d = decodeChunk(gatherChunk(LAYOUT, s.files, s.src, s.row).bytes);
  return Array.from({ length: d.length }, (_, i) => `${String(d.keys![i])}=${(d.values[i] as { s: string }).s}`);
}

const OPTS = { namespaced: false, map: false, batchRows: 6, scratch: true };

test("sweepSelections (scratch): batches retained past the sweep's end gather the same rows as batches gathered at once", async () => {
  const was = scratchTestMode(true);
  try {
    const direct: string[] = [];
    for await (const s of sweepSelections(inputs(), [{ start: 0, end: 15 }], OPTS)) direct.push(...rowsOf(s));
    // Every key exactly once, and the delta (newer) wins over the bases everywhere.
    assert.equal(direct.length, 48);
    assert.ok(direct.every((r) => r.includes("=new:")), direct.join(" "));
    const kept: { s: SelectionBatch; done: () => void }[] = [];
    for await (const s of sweepSelections(inputs(), [{ start: 0, end: 15 }], OPTS)) kept.push({ s, done: s.retain() });
    assert.ok(kept.length >= 4, "several batches, so chunks are passed while earlier batches are still held");
    const later: string[] = [];
    for (const { s, done } of kept) {
      later.push(...rowsOf(s));
      done();
      done(); // a second call does nothing
    }
    assert.deepEqual(later, direct);
  } finally {
    scratchTestMode(was);
  }
});

test("sweepSelections (scratch): a chunk the sweep has passed, with no retain, is back in the pool (poisoned): the retain is what keeps it", async () => {
  const was = scratchTestMode(true);
  try {
    let first: SelectionBatch | undefined;
    for await (const s of sweepSelections(inputs(), [{ start: 0, end: 15 }], OPTS)) first ??= s;
    // The first batch's bases were released once the sweep passed them: their bytes are poison now. This is
    // what a consumer that forgot to retain would read, and why the test above would fail without retains.
    const file = first!.files.find((f) => f.plan.index.op < 0)!;
    const key = file.columns[file.plan.index.key];
    assert.ok((key.values as Uint8Array).subarray(0, 8).every((b) => b === POISON));
    // A retain that comes after the release is refused instead of reading recycled bytes.
    assert.throws(() => first!.retain(), /retained after it went back to the scratch pool/);
  } finally {
    scratchTestMode(was);
  }
});

test("sweepSelections: without scratch, chunks are never pooled (a late read still sees the chunk)", async () => {
  const was = scratchTestMode(true);
  try {
    let first: SelectionBatch | undefined;
    for await (const s of sweepSelections(inputs(), [{ start: 0, end: 15 }], { ...OPTS, scratch: false })) first ??= s;
    assert.deepEqual(rowsOf(first!).slice(0, 1), ["k0-0=new:k0-0"]);
    first!.retain()();
  } finally {
    scratchTestMode(was);
  }
});
