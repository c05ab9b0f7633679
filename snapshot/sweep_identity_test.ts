// The column merge decides row identity on key, namespace and user-key bytes: these cases are where bytes
// and values disagree (0 and -0, NaN payloads) or where concatenated identity columns could collide.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gatherChunk } from "../format/chunk_slice.ts";
import { decodeChunk, openChunk } from "../format/decode_chunk.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { type ChunkInput, sweepSelections } from "./sweep.ts";

function input(layout: StateLayout, order: number, rows: { key: unknown; ns?: string; v?: number }[], delta: boolean): ChunkInput {
  const chunk = encodeChunk(layout, {
    length: rows.length,
    keyGroups: rows.map(() => 0),
    keys: rows.map((r) => r.key),
    ...(layout.namespaced ? { namespaces: rows.map((r) => r.ns ?? "") } : {}),
    ...(delta ? { ops: Uint8Array.from(rows, (r) => (r.v === undefined ? 1 : 0)) } : {}),
    values: rows.map((r) => r.v ?? null),
  });
  return { range: { start: 0, end: 0 }, type: delta ? "delta" : "base", order, rows: rows.length, path: `mem/${order}`, open: () => Promise.resolve(openChunk(chunk.bytes)) };
}

async function merged(layout: StateLayout, inputs: ChunkInput[]): Promise<string[]> {
  const out: string[] = [];
  for await (const s of sweepSelections(inputs, [{ start: 0, end: 0 }], { namespaced: layout.namespaced === true, map: false })) {
    const d = decodeChunk(gatherChunk(layout, s.files, s.src, s.row).bytes);
    for (let i = 0; i < d.length; i++) out.push(`${Object.is(d.keys![i], -0) ? "-0" : String(d.keys![i])}|${d.namespaces?.[i] ?? ""}=${String(d.values[i])}`);
  }
  return out.sort();
}

test("sweepSelections: float64 keys 0 and -0 are one key, NaN is one key (as in a Map)", async () => {
  const layout: StateLayout = { kind: "value", keyType: "float64", namespaced: true, value: { encoding: "arrow", type: "int32" } };
  const nan2 = new Float64Array(new BigInt64Array([0x7ff8000000000001n]).buffer)[0];
  const base = input(layout, 1, [{ key: -0, ns: "a", v: 1 }, { key: NaN, ns: "a", v: 2 }, { key: 1, ns: "ab", v: 3 }, { key: 1, ns: "a", v: 4 }], false);
  const delta = input(layout, 2, [{ key: 0, ns: "a", v: 10 }, { key: nan2, ns: "a" }, { key: 1, ns: "a", v: 40 }], true);
  assert.deepEqual(await merged(layout, [base, delta]), ["0|a=10", "1|a=40", "1|ab=3"]);
});

test("sweepSelections: string key and namespace bytes do not run together ('ab'+'c' is not 'a'+'bc')", async () => {
  const layout: StateLayout = { kind: "value", keyType: "string", namespaced: true, value: { encoding: "arrow", type: "int32" } };
  const base = input(layout, 1, [{ key: "ab", ns: "c", v: 1 }, { key: "a", ns: "bc", v: 2 }, { key: "", ns: "abc", v: 3 }], false);
  const delta = input(layout, 2, [{ key: "a", ns: "bc", v: 20 }, { key: "abc", ns: "" }], true);
  assert.deepEqual(await merged(layout, [base, delta]), ["ab|c=1", "a|bc=20", "|abc=3"]);
});

test("sweepSelections: int64 keys compare all 64 bits; a later base resets the key group", async () => {
  const layout: StateLayout = { kind: "value", keyType: "int64", value: { encoding: "arrow", type: "int32" } };
  const base = input(layout, 1, [{ key: 1n, v: 1 }, { key: 1n + (1n << 40n), v: 2 }, { key: -1n, v: 3 }], false);
  const delta = input(layout, 2, [{ key: 1n + (1n << 40n) }, { key: -1n, v: 30 }], true);
  assert.deepEqual(await merged(layout, [base, delta]), ["-1|=30", "1|=1"]);
  const rebase = input(layout, 3, [{ key: 7n, v: 7 }], false);
  assert.deepEqual(await merged(layout, [base, delta, rebase]), ["7|=7"]);
});

test("sweepSelections: within one delta chunk the later row of an identity wins (put then delete, delete then put)", async () => {
  const layout: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: "int32" } };
  const base = input(layout, 1, [{ key: "a", v: 1 }, { key: "b", v: 2 }], false);
  const delta = input(layout, 2, [{ key: "a", v: 10 }, { key: "a" }, { key: "b" }, { key: "b", v: 20 }, { key: "c", v: 3 }, { key: "c", v: 30 }], true);
  assert.deepEqual(await merged(layout, [base, delta]), ["b|=20", "c|=30"]);
});
