// Cross-checks: our chunk bytes read by two other Arrow implementations (@uwdata/flechette 2.6.0 and
// apache-arrow) give the same values as our decoder, and files they write in our layout read back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tableFromIPC as flechetteFromIPC } from "@uwdata/flechette";
import { tableFromIPC as arrowFromIPC, tableToIPC } from "apache-arrow";
import { decode as msgpackDecode } from "@msgpack/msgpack";
import { encodeChunk } from "./encode_chunk.ts";
import { decodeChunk } from "./decode_chunk.ts";
import type { StateLayout } from "./state_layout.ts";

const LAYOUT: StateLayout = {
  kind: "map",
  keyType: "string",
  userKeyType: "msgpack",
  namespaced: true,
  value: {
    encoding: "arrow",
    type: {
      struct: [
        { name: "b", type: "bool" },
        { name: "i8", type: "int8" },
        { name: "i16", type: "int16" },
        { name: "i32", type: "int32", nullable: true },
        { name: "i64", type: "int64" },
        { name: "u8", type: "uint8" },
        { name: "u16", type: "uint16" },
        { name: "u32", type: "uint32" },
        { name: "u64", type: "uint64" },
        { name: "f32", type: "float32" },
        { name: "f64", type: "float64", nullable: true },
        { name: "s", type: "utf8" },
        { name: "d", type: "dictionary", nullable: true },
        { name: "bin", type: "binary" },
        { name: "ts", type: "timestamp" },
        { name: "tags", type: { list: "utf8" }, nullable: true },
        { name: "inner", type: { struct: [{ name: "x", type: "float64" }, { name: "y", type: { list: "dictionary" } }] }, nullable: true },
      ],
    },
  },
};

function rows() {
  const n = 40;
  const keyGroups = Array.from({ length: n }, (_, i) => i >> 2);
  return {
    length: n,
    keyGroups,
    keys: keyGroups.map((_, i) => (i % 5 ? `user-${i}` : `ユーザー-${i}-😀`)),
    namespaces: keyGroups.map((_, i) => `window-${i % 3}`),
    userKeys: keyGroups.map((_, i) => [i, `sub-${i}`]),
    ops: Uint8Array.from(keyGroups, (_, i) => (i % 9 === 4 ? 1 : 0)),
    values: keyGroups.map((_, i) => ({
      b: i % 2 === 0,
      i8: (i % 256) - 128,
      i16: i === 0 ? 0 : -i * 100,
      i32: i % 4 === 3 ? null : i * 100_000,
      i64: i === 0 ? -(2n ** 63n) : i === 1 ? 2n ** 63n - 1n : BigInt(i) * 10n ** 12n,
      u8: i,
      u16: 65535 - i,
      u32: 4294967295 - i,
      u64: i === 2 ? 2n ** 64n - 1n : BigInt(i),
      f32: i / 4,
      f64: i % 6 === 1 ? null : i * Math.PI,
      s: `s${i}é`,
      d: i % 7 === 0 ? null : `label-${i % 3}`,
      bin: new Uint8Array([i, 255 - i]),
      ts: 1_700_000_000_000 + i * 1000,
      tags: i % 5 === 2 ? null : Array.from({ length: i % 3 }, (_, k) => `t${k}`),
      inner: i % 8 === 3 ? null : { x: i * 0.5, y: [`y${i % 2}`] },
    })),
  };
}

/** Typed arrays (flechette's numeric lists) as plain arrays; everything else as is. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<unknown>);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

test("@uwdata/flechette reads our chunks to the same values", () => {
  const r = rows();
  for (const compression of ["none"] as const) {
    const c = encodeChunk(LAYOUT, r, { compression });
    const ours = decodeChunk(c.bytes);
    const t = flechetteFromIPC(c.bytes, { useBigInt: true });
    assert.deepEqual(t.names, ["kg", "key", "ns", "ukey", "op", "value"]);
    assert.equal(t.numRows, r.length);
    assert.deepEqual(Array.from(t.getChild("kg")!.toArray() as ArrayLike<number>), [...ours.keyGroups!]);
    assert.deepEqual(t.getChild("key")!.toArray(), ours.keys);
    assert.deepEqual(t.getChild("ns")!.toArray(), ours.namespaces);
    assert.deepEqual((t.getChild("ukey")!.toArray() as Uint8Array[]).map((b) => msgpackDecode(b)), ours.userKeys);
    assert.deepEqual(Array.from(t.getChild("op")!.toArray() as ArrayLike<number>), [...ours.ops!]);
    assert.deepEqual(plain(t.getChild("value")!.toArray()), plain(ours.values));
    // And the values are the ones we wrote.
    assert.deepEqual(ours.values[0], r.values[0]);
    assert.equal(ours.values[4], null);
  }
});

test("apache-arrow reads our chunks to the same values and its re-serialization reads back", () => {
  const r = rows();
  const c = encodeChunk(LAYOUT, r);
  const ours = decodeChunk(c.bytes);
  const t = arrowFromIPC(c.bytes);
  assert.equal(t.schema.metadata.get("arrowpoint.formatVersion"), "1");
  assert.deepEqual(JSON.parse(t.schema.metadata.get("arrowpoint.layout")!), LAYOUT);
  assert.deepEqual(t.getChild("key")!.toArray(), ours.keys);
  const values = t.getChild("value")!;
  for (let i = 0; i < r.length; i++) {
    const row = values.get(i);
    const want = ours.values[i] as Record<string, unknown> | null;
    if (want === null) {
      assert.equal(row, null);
      continue;
    }
    const got = row!.toJSON() as Record<string, unknown>;
    for (const [k, v] of Object.entries(want)) {
      let g = got[k];
      if (g !== null && typeof g === "object" && "toArray" in (g as object)) g = Array.from((g as { toArray(): ArrayLike<unknown> }).toArray());
      if (k === "inner" && g) g = { x: (g as { x: number }).x, y: Array.from((g as { y: { toArray(): ArrayLike<unknown> } }).y.toArray()) };
      assert.deepEqual(plain(g), plain(v), `row ${i} field ${k}`);
    }
  }
  // A file re-written by apache-arrow (same schema and metadata) decodes to the same values.
  assert.deepEqual(decodeChunk(tableToIPC(t, "file")).values, ours.values);
});
