/**
 * Format-level cases: encoding the live state into one Arrow chunk and decoding it back, beside JSON.
 *
 * @module
 */
import { encodeChunk } from "../format/encode_chunk.ts";
import { decodeChunk } from "../format/decode_chunk.ts";
import type { StateLayout } from "../format/state_layout.ts";
import type { BenchCase } from "./harness.ts";
import type { BenchContext } from "./cases_baseline.ts";
import type { BenchData } from "./data.ts";

/** The layout of the benchmark's value state. */
export const VALUE_LAYOUT: StateLayout = {
  kind: "value",
  keyType: "string",
  value: {
    encoding: "arrow",
    type: { struct: [{ name: "count", type: "int64" }, { name: "sum", type: "float64" }, { name: "label", type: "dictionary" }] },
  },
};

/**
 * The value state as chunk rows, sorted by key group (what a state backend that keeps state per key group
 * hands the encoder).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateData } from "./data.ts";
 * import { chunkRowsOf } from "./cases_format.ts";
 * assert.equal(chunkRowsOf(generateData(10)).length, 10);
 * ```
 */
export function chunkRowsOf(data: BenchData) {
  const byGroup: string[][] = Array.from({ length: data.maxParallelism }, () => []);
  for (const key of data.state.keys()) byGroup[data.keyGroupOf.get(key)!].push(key);
  const keyGroups = new Uint16Array(data.rows);
  const keys: string[] = [];
  const values: unknown[] = [];
  let i = 0;
  byGroup.forEach((ks, kg) => {
    for (const k of ks) {
      keyGroups[i++] = kg;
      keys.push(k);
      values.push(data.state.get(k));
    }
  });
  return { length: data.rows, keyGroups, keys, values };
}

/**
 * chunk.encode / chunk.decode and the JSON equivalents, all in memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatCases } from "./cases_format.ts";
 * import type { BenchContext } from "./cases_baseline.ts";
 * import { generateData } from "./data.ts";
 * const ctx: BenchContext = { data: generateData(100), dir: ".", snapshotBytes: () => new Uint8Array(0) };
 * const cases = formatCases(ctx);
 * assert.deepEqual(cases.map((c) => c.name), ["chunk.encode", "chunk.decode", "baseline.json.encode", "baseline.json.decode"]);
 * const encode = cases[0];
 * await encode.beforeAll?.();
 * await encode.run(); // one iteration, untimed
 * await encode.afterAll?.();
 * ```
 */
export function formatCases(ctx: BenchContext): BenchCase[] {
  const { data } = ctx;
  const rows = chunkRowsOf(data);
  let bytes: Uint8Array = new Uint8Array(0);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let jsonBytes: Uint8Array = new Uint8Array(0);
  let check = 0;
  const toJson = () => {
    const out: unknown[] = [];
    for (let i = 0; i < rows.length; i++) {
      const v = rows.values[i] as { count: bigint; sum: number; label: string };
      out.push({ kg: rows.keyGroups[i], key: rows.keys[i], count: Number(v.count), sum: v.sum, label: v.label });
    }
    return encoder.encode(JSON.stringify(out));
  };
  return [
    {
      name: "chunk.encode",
      what: "value state (sorted by key group) → one Arrow IPC chunk, in memory",
      group: "arrowpoint",
      rows: data.rows,
      bytes: () => bytes.length,
      run: () => {
        bytes = encodeChunk(VALUE_LAYOUT, rows).bytes;
      },
    },
    {
      name: "chunk.decode",
      what: "one Arrow IPC chunk → keys and values as JS, checksum verified",
      group: "arrowpoint",
      rows: data.rows,
      bytes: () => bytes.length,
      beforeAll: () => {
        bytes = encodeChunk(VALUE_LAYOUT, rows).bytes;
      },
      run: () => {
        check = decodeChunk(bytes).length;
      },
      afterAll: () => {
        if (check !== data.rows) throw new Error("chunk.decode lost rows");
      },
    },
    {
      name: "baseline.json.encode",
      what: "the same rows as JSON.stringify + UTF-8, in memory",
      group: "baseline",
      rows: data.rows,
      bytes: () => jsonBytes.length,
      run: () => {
        jsonBytes = toJson();
      },
    },
    {
      name: "baseline.json.decode",
      what: "UTF-8 + JSON.parse of those bytes, in memory",
      group: "baseline",
      rows: data.rows,
      bytes: () => jsonBytes.length,
      beforeAll: () => {
        jsonBytes = toJson();
      },
      run: () => {
        check = (JSON.parse(decoder.decode(jsonBytes)) as unknown[]).length;
      },
      afterAll: () => {
        if (check !== data.rows) throw new Error("baseline.json.decode lost rows");
      },
    },
  ];
}
