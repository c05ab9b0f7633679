// Schema-only rewrites (fields renamed, dropped, reordered) copy column bytes instead of rebuilding the
// columns: the result must read back as the rebuilt chunk would, here and in a second Arrow implementation.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { tableFromIPC } from "@uwdata/flechette";
import { encodeChunk } from "./encode_chunk.ts";
import { decodeChunk, openChunk } from "./decode_chunk.ts";
import { gatherChunk, rewriteChunk } from "./chunk_slice.ts";
import { tableFromIPC as arrowTableFromIPC } from "apache-arrow";
import type { StateLayout } from "./state_layout.ts";
import { longOr } from "./_test_fuzz.ts";

const FIELDS = [
  { name: "count", type: "int64", nullable: true },
  { name: "sum", type: "float64" },
  { name: "label", type: "dictionary", nullable: true },
  { name: "tags", type: { list: "utf8" } },
  { name: "tag", type: "dictionary" },
] as const;

function layoutOf(fields: readonly { name: string; type: unknown; nullable?: boolean }[], namespaced: boolean): StateLayout {
  return { kind: "value", keyType: "string", ...(namespaced ? { namespaced: true } : {}), value: { encoding: "arrow", type: { struct: fields.map((f) => ({ ...f })) } } } as StateLayout;
}

/** Added fields: constant columns spliced in as buffers. */
const CONSTANTS = [
  { field: { name: "region", type: "utf8" }, value: "eu", decoded: "eu" },
  { field: { name: "seen", type: "bool" }, value: true, decoded: true },
  { field: { name: "n64", type: "int64", nullable: true }, value: null, decoded: null },
  { field: { name: "n32", type: "int32" }, value: -7, decoded: -7 },
  { field: { name: "w", type: "float64" }, value: 2.5, decoded: 2.5 },
  { field: { name: "b", type: "binary", nullable: true }, value: Uint8Array.of(1, 2), decoded: Uint8Array.of(1, 2) },
] as const;

const row = fc.record({
  count: fc.option(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), { nil: null }),
  sum: fc.double(),
  label: fc.option(fc.constantFrom("a", "b", "é"), { nil: null }),
  tags: fc.array(fc.constantFrom("", "x", "日本"), { maxLength: 3 }),
  tag: fc.constantFrom("p", "q"),
});

test("rewriteChunk(): renamed, dropped, reordered and added constant struct fields read back as the values mapped in JS, also with flechette (property)", () => {
  fc.assert(
    fc.property(
      fc.array(row, { maxLength: 20 }),
      fc.shuffledSubarray([0, 1, 2, 3, 4], { minLength: 1 }),
      fc.boolean(),
      fc.boolean(),
      fc.subarray([...CONSTANTS.keys()]),
      (values, keep, delta, namespaced, added) => {
        const n = values.length;
        const src = encodeChunk(layoutOf(FIELDS, namespaced), {
          length: n,
          keyGroups: values.map((_, i) => Math.floor(i / 3)),
          keys: values.map((_, i) => `k${i}`),
          ...(namespaced ? { namespaces: values.map((_, i) => `ns${i % 2}`) } : {}),
          ...(delta ? { ops: Uint8Array.from(values, (_, i) => (i % 4 === 3 ? 1 : 0)) } : {}),
          values: values.map((v, i) => (delta && i % 4 === 3 ? null : v)),
        });
        const fields = [...keep.map((i) => ({ ...FIELDS[i], name: `${FIELDS[i].name}_${i}` })), ...added.map((k) => CONSTANTS[k].field)];
        const sources = [...keep.map((i) => ({ from: FIELDS[i].name })), ...added.map((k) => ({ constant: CONSTANTS[k].value }))];
        const out = rewriteChunk(src.bytes, {}, { layout: layoutOf(fields, namespaced), value: { fields: sources } });
        const got = decodeChunk(out.bytes, { checksum: out.checksum });
        const before = decodeChunk(src.bytes);
        assert.deepEqual(got.keys, before.keys);
        assert.deepEqual(got.keyGroups, before.keyGroups);
        assert.deepEqual(got.namespaces, before.namespaces);
        assert.deepEqual(got.ops, before.ops);
        const want = before.values.map((v) =>
          v === null ? null : Object.fromEntries([
            ...keep.map((i) => [`${FIELDS[i].name}_${i}`, (v as Record<string, unknown>)[FIELDS[i].name]]),
            ...added.map((k) => [CONSTANTS[k].field.name, CONSTANTS[k].decoded]),
          ])
        );
        assert.deepEqual(got.values, want);
        assert.deepEqual(out.keyGroupRange, src.keyGroupRange);
        assert.equal(openChunk(out.bytes).rows, n);
        const t = tableFromIPC(out.bytes, { useBigInt: true });
        assert.equal(t.numRows, n);
        const valueType = t.schema.fields.find((f) => f.name === "value")?.type as { children?: { name: string }[] } | undefined;
        assert.deepEqual(valueType?.children?.map((c) => c.name), fields.map((f) => f.name));
      },
    ),
    { numRuns: longOr(150, 1500) },
  );
});

test("gatherChunk() writes its Arrow file directly: picked rows read back equal, here, in apache-arrow and in flechette (property)", () => {
  fc.assert(
    fc.property(fc.array(row, { maxLength: 30 }), fc.array(row, { maxLength: 30 }), fc.infiniteStream(fc.nat()), (a, b, picks) => {
      const layout = layoutOf(FIELDS, false);
      const chunkOf = (values: typeof a) => encodeChunk(layout, { length: values.length, keyGroups: values.map(() => 0), keys: values.map((_, i) => `k${i}`), values });
      const files = [openChunk(chunkOf(a).bytes), openChunk(chunkOf(b).bytes)];
      const src: number[] = [];
      const rowIx: number[] = [];
      const it = picks[Symbol.iterator]();
      const n = (it.next().value as number) % 40;
      for (let i = 0; i < n; i++) {
        const f = (it.next().value as number) % 2;
        const len = f === 0 ? a.length : b.length;
        if (len === 0) continue;
        src.push(f);
        rowIx.push((it.next().value as number) % len);
      }
      const out = gatherChunk(layout, files, Uint32Array.from(src), Uint32Array.from(rowIx));
      const got = decodeChunk(out.bytes, { checksum: out.checksum });
      const want = src.map((f, i) => decodeChunk(chunkOf(f === 0 ? a : b).bytes).values[rowIx[i]]);
      assert.deepEqual(got.values, want);
      assert.equal(tableFromIPC(out.bytes, { useBigInt: true }).numRows, src.length);
      assert.equal(arrowTableFromIPC(out.bytes).numRows, src.length);
    }),
    { numRuns: longOr(150, 1500) },
  );
});
