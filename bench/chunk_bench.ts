/**
 * Chunk encode/decode throughput beside JSON and msgpack, in one run (ratios from one run are what to
 * compare: the machine is noisy).
 *
 * ```
 * npx tsx bench/chunk_bench.ts [--rows 1000000] [--rounds 3] [--iterations 3] [--only chunk.]
 * npx deno run -A bench/chunk_bench.ts [--rows 1000000]
 * ```
 *
 * Data: `rows` entries `{ key: "user-000123", value: { count: int64, sum: float64, label: one of 50 } }` with
 * their key groups (maxParallelism 128), the benchmark suite's deterministic data set (bench/data.ts).
 * Every case runs on tinybench with a fixed iteration count (`time: 0`: tinybench's time budget counts only
 * measured time, PERFORMANCE-NOTES pitfall 8), in interleaved rounds; a case's figure is the median of its
 * per-round medians.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { crc32 as zlibCrc32 } from "node:zlib";
import { decode as msgpackDecode, Encoder as MsgpackEncoder } from "@msgpack/msgpack";
import { runCases, type BenchCase, type CaseResult } from "./harness.ts";
import { generateData } from "./data.ts";
import { chunkRowsOf, VALUE_LAYOUT } from "./cases_format.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { decodeChunk, readKeyGroupRange } from "../format/decode_chunk.ts";
import { sliceChunk } from "../format/chunk_slice.ts";
import { checksumOf, crc32Js } from "../format/checksum.ts";
import { decompress } from "../format/compression.ts";

/** The cases of this benchmark for `rows` entries. */
export function chunkBenchCases(rows: number, seed = 42): BenchCase[] {
  const data = generateData(rows, seed);
  const chunkRows = chunkRowsOf(data);
  const n = chunkRows.length;
  let bytes: Uint8Array = encodeChunk(VALUE_LAYOUT, chunkRows).bytes;
  const checksum = checksumOf(bytes);
  const deflated = encodeChunk(VALUE_LAYOUT, chunkRows, { compression: "deflate", level: 1 });
  let check = 0;
  const sink = (x: number) => (check = x);
  // Baselines see the same rows as plain objects (count as a number: JSON has no int64).
  const objects = Array.from({ length: n }, (_, i) => {
    const v = chunkRows.values[i] as { count: bigint; sum: number; label: string };
    return { kg: chunkRows.keyGroups[i], key: chunkRows.keys[i], count: Number(v.count), sum: v.sum, label: v.label };
  });
  const te = new TextEncoder();
  const td = new TextDecoder();
  let json: Uint8Array = te.encode(JSON.stringify(objects));
  const packer = new MsgpackEncoder({ useBigInt64: true });
  let packed: Uint8Array = packer.encode(objects);
  let slice = 0;
  const eighth = { start: 16, end: 31 }; // 16 of 128 key groups ≈ 1/8 of the rows
  const eighthRows = chunkRows.keyGroups.filter((g) => g >= eighth.start && g <= eighth.end).length;
  return [
    { name: "chunk.encode", what: "rows → Arrow IPC file (uncompressed), + crc32", group: "arrowpoint", rows: n, bytes: () => bytes.length, run: () => void (bytes = encodeChunk(VALUE_LAYOUT, chunkRows).bytes) },
    { name: "chunk.decode", what: "Arrow IPC file → JS keys and values (validated)", group: "arrowpoint", rows: n, bytes: () => bytes.length, run: () => void sink(decodeChunk(bytes).length) },
    { name: "chunk.decode+crc", what: "the same with the checksum verified", group: "arrowpoint", rows: n, bytes: () => bytes.length, run: () => void sink(decodeChunk(bytes, { checksum }).length) },
    { name: "chunk.readKeyGroupRange", what: "16 of 128 key groups (~1/8 of the rows) → JS", group: "arrowpoint", rows: eighthRows, bytes: () => bytes.length, run: () => void sink(readKeyGroupRange(bytes, eighth).length) },
    { name: "chunk.slice", what: "16 of 128 key groups → a new chunk, no JS values", group: "arrowpoint", rows: eighthRows, bytes: () => slice, run: () => void (slice = sliceChunk(bytes, eighth).bytes.length) },
    { name: "chunk.encode.deflate1", what: "rows → Arrow IPC file, deflate level 1 (fflate)", group: "arrowpoint", rows: n, bytes: () => deflated.bytes.length, iterations: 3, run: () => void sink(encodeChunk(VALUE_LAYOUT, chunkRows, { compression: "deflate", level: 1 }).rows) },
    { name: "chunk.inflate", what: "deflate level 1 → Arrow IPC file (node:zlib, capped)", group: "arrowpoint", rows: n, bytes: () => deflated.bytes.length, run: () => void sink(decompress(deflated.bytes, { compression: "deflate", rawBytes: deflated.rawBytes }).length) },
    { name: "json.encode", what: "JSON.stringify + TextEncoder", group: "baseline", rows: n, bytes: () => json.length, run: () => void (json = te.encode(JSON.stringify(objects))) },
    { name: "json.decode", what: "TextDecoder + JSON.parse", group: "baseline", rows: n, bytes: () => json.length, run: () => void sink((JSON.parse(td.decode(json)) as unknown[]).length) },
    { name: "msgpack.encode", what: "@msgpack/msgpack Encoder.encode of the row objects", group: "baseline", rows: n, bytes: () => packed.length, run: () => void (packed = packer.encode(objects)) },
    { name: "msgpack.decode", what: "@msgpack/msgpack decode", group: "baseline", rows: n, bytes: () => packed.length, run: () => void sink((msgpackDecode(packed) as unknown[]).length) },
    { name: "crc32.native", what: "node:zlib crc32 of the chunk bytes", group: "limit", rows: n, bytes: () => bytes.length, run: () => void sink(zlibCrc32(bytes)) },
    { name: "crc32.js", what: "slicing-by-8 JS crc32 of the chunk bytes", group: "limit", rows: n, bytes: () => bytes.length, run: () => void sink(crc32Js(bytes)) },
  ];
}

function fmt(results: readonly CaseResult[]): string {
  const json = (name: string) => results.find((r) => r.name === name);
  const lines = ["case                        M rows/s    median ms   MB/s      bytes        vs JSON  spread"];
  for (const r of results) {
    const base = r.name.endsWith(".decode") || r.name.includes("decode") ? json("json.decode") : json("json.encode");
    const ratio = r.group === "limit" || !base ? "" : `${(r.rowsPerSec / base.rowsPerSec).toFixed(2)}×`;
    lines.push(
      `${r.name.padEnd(26)} ${(r.rowsPerSec / 1e6).toFixed(2).padStart(9)} ${r.medianMs.toFixed(1).padStart(11)} ${(r.bytesPerSec / 1e6).toFixed(0).padStart(7)} ${String(r.bytes).padStart(12)} ${ratio.padStart(9)} ${(100 * r.spread).toFixed(0).padStart(5)}%`,
    );
  }
  return lines.join("\n");
}

/** Runs the benchmark with command-line arguments and prints the table. */
export async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { rows: { type: "string", default: "1000000" }, iterations: { type: "string", default: "3" }, rounds: { type: "string", default: "3" }, only: { type: "string" } },
    strict: true,
  });
  const rows = Number(values.rows);
  if (!Number.isSafeInteger(rows) || rows < 1) throw new RangeError(`Cannot run the benchmark as --rows must be a positive integer: current value is ${values.rows}`);
  const rounds = Math.max(1, Number(values.rounds));
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  console.log(
    `chunk bench: ${rows} rows, ${deno ? `Deno ${deno.version.deno}` : `Node ${process.version}`}, ${rounds} interleaved rounds × ${values.iterations} iterations per case`,
  );
  let cases = chunkBenchCases(rows);
  if (values.only) cases = cases.filter((c) => c.name.includes(values.only!));
  // No gc() between iterations: in this VM a forced full GC made even crc32 of a live buffer 5× slower
  // for the next iteration, distorting every memory-bound case.
  const perRound: CaseResult[][] = [];
  for (let r = 0; r < rounds; r++) perRound.push(await runCases(cases, { iterations: Number(values.iterations) }));
  // Median over the rounds of each case's median: rounds interleave cases, so load changes hit all alike.
  const results = cases.map((_, i) => {
    const sorted = perRound.map((round) => round[i]).sort((a, b) => a.medianMs - b.medianMs);
    return sorted[sorted.length >> 1];
  });
  console.log(fmt(results));
}

if (import.meta.url === `file://${process.argv[1]}` || (globalThis as { Deno?: { mainModule?: string } }).Deno?.mainModule === import.meta.url) {
  await main(process.argv.slice(2).filter((a) => a !== "--"));
}
