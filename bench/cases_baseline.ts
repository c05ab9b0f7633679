/**
 * Baselines and limits: the same state written and read as JSON and as msgpack (file written and fsynced),
 * and the machine's limits for the snapshot's bytes: memcpy and write+fsync.
 *
 * @module
 */
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { decode as msgpackDecode, encode as msgpackEncode } from "@msgpack/msgpack";
import type { BenchCase } from "./harness.ts";
import type { BenchData, BenchValue } from "./data.ts";

/** What the cases share: the data, a scratch folder, and the size of arrowpoint's snapshot of the data. */
export interface BenchContext {
  /** The data set. */
  data: BenchData;
  /** A scratch folder on the filesystem being measured. */
  dir: string;
  /** Bytes of a full arrowpoint snapshot of the value state (set by the checkpoint cases). */
  snapshotBytes: () => Uint8Array;
}

/** Writes bytes to a file and fsyncs it, as every durable write here does. */
export function writeDurably(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, "w");
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The baseline and limit cases.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { baselineCases, type BenchContext } from "./cases_baseline.ts";
 * import { generateData } from "./data.ts";
 * const ctx: BenchContext = { data: generateData(100), dir: ".", snapshotBytes: () => new Uint8Array(0) };
 * const cases = baselineCases(ctx);
 * assert.deepEqual(cases.map((c) => c.name), ["baseline.json.write", "baseline.json.read", "baseline.msgpack.write", "baseline.msgpack.read", "limit.memcpy", "limit.disk.write"]);
 * ```
 */
export function baselineCases(ctx: BenchContext): BenchCase[] {
  const { data } = ctx;
  const jsonPath = join(ctx.dir, "baseline.json");
  const msgpackPath = join(ctx.dir, "baseline.msgpack");
  const rawPath = join(ctx.dir, "limit.bin");
  let jsonBytes = 0;
  let msgpackBytes = 0;
  let sink: Map<string, BenchValue> | undefined;
  let target = new Uint8Array(0);

  const toJson = () => {
    const rows: { key: string; count: number; sum: number; label: string }[] = [];
    for (const [key, v] of data.state) rows.push({ key, count: Number(v.count), sum: v.sum, label: v.label });
    return encoder.encode(JSON.stringify(rows));
  };
  const toMsgpack = () => {
    const rows: [string, bigint, number, string][] = [];
    for (const [key, v] of data.state) rows.push([key, v.count, v.sum, v.label]);
    return msgpackEncode(rows, { useBigInt64: true });
  };

  return [
    {
      name: "baseline.json.write",
      what: "the state as JSON.stringify + UTF-8 + write + fsync",
      group: "baseline",
      rows: data.rows,
      bytes: () => jsonBytes,
      run: () => {
        const bytes = toJson();
        jsonBytes = bytes.length;
        writeDurably(jsonPath, bytes);
      },
    },
    {
      name: "baseline.json.read",
      what: "read the JSON file + parse + rebuild the state Map",
      group: "baseline",
      rows: data.rows,
      bytes: () => jsonBytes,
      beforeAll: () => writeDurably(jsonPath, toJson()),
      run: () => {
        const rows = JSON.parse(decoder.decode(readFileSync(jsonPath))) as { key: string; count: number; sum: number; label: string }[];
        const m = new Map<string, BenchValue>();
        for (const r of rows) m.set(r.key, { count: BigInt(r.count), sum: r.sum, label: r.label });
        sink = m;
      },
      afterAll: () => {
        if (sink?.size !== data.rows) throw new Error("baseline.json.read lost rows");
        rmSync(jsonPath, { force: true });
      },
    },
    {
      name: "baseline.msgpack.write",
      what: "the state as @msgpack/msgpack + write + fsync",
      group: "baseline",
      rows: data.rows,
      bytes: () => msgpackBytes,
      run: () => {
        const bytes = toMsgpack();
        msgpackBytes = bytes.length;
        writeDurably(msgpackPath, bytes);
      },
    },
    {
      name: "baseline.msgpack.read",
      what: "read the msgpack file + decode + rebuild the state Map",
      group: "baseline",
      rows: data.rows,
      bytes: () => msgpackBytes,
      beforeAll: () => writeDurably(msgpackPath, toMsgpack()),
      run: () => {
        const rows = msgpackDecode(readFileSync(msgpackPath), { useBigInt64: true }) as [string, bigint, number, string][];
        const m = new Map<string, BenchValue>();
        for (const r of rows) m.set(r[0], { count: r[1], sum: r[2], label: r[3] });
        sink = m;
      },
      afterAll: () => {
        if (sink?.size !== data.rows) throw new Error("baseline.msgpack.read lost rows");
        rmSync(msgpackPath, { force: true });
      },
    },
    {
      name: "limit.memcpy",
      what: "Uint8Array.set of the full snapshot's bytes into a reused buffer",
      group: "limit",
      rows: data.rows,
      bytes: () => ctx.snapshotBytes().length,
      beforeAll: () => {
        target = new Uint8Array(ctx.snapshotBytes().length);
        target.fill(1); // first touch outside the measurement
      },
      run: () => target.set(ctx.snapshotBytes()),
    },
    {
      name: "limit.disk.write",
      what: "write + fsync of the full snapshot's bytes",
      group: "limit",
      rows: data.rows,
      bytes: () => ctx.snapshotBytes().length,
      run: () => writeDurably(rawPath, ctx.snapshotBytes()),
      afterAll: () => rmSync(rawPath, { force: true }),
    },
  ];
}
