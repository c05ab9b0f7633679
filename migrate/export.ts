/**
 * `exportState`: one state of a snapshot as NDJSON or as one plain Arrow IPC file, streamed.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { RecordBatch, RecordBatchFileWriter, Schema, tableFromIPC } from "apache-arrow";
import { encodeChunk } from "../format/encode_chunk.ts";
import type { FieldType, KeyType, StateLayout } from "../format/state_layout.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { openSnapshot, requireState } from "../snapshot/read.ts";
import { readOperatorItems, shapeOf, snapshotInputs, sweep, sweepSelections } from "../snapshot/sweep.ts";
import { gatherChunk } from "../format/chunk_slice.ts";
import { layoutOf } from "./_sink.ts";
import type { Rows } from "../snapshot/rows.ts";
import type { Progress } from "./progress.ts";

/** Options of {@link exportState}. */
export interface ExportOptions {
  /** Operator uid. */
  operator: string;
  /** State name. */
  state: string;
  /** `ndjson` (default) or `arrow`. */
  format?: "ndjson" | "arrow";
  /** Rows per batch (default 16,384). */
  batchRows?: number;
  /** Called after each batch. */
  onProgress?: (p: Progress) => void;
  /** Cancels between batches. */
  signal?: AbortSignal;
}

const encoder = new TextEncoder();

/**
 * The JSON form of a state value, as NDJSON export writes it: bigints become JSON numbers when they are
 * safe integers (|n| ≤ 2^53 - 1) and decimal strings otherwise; `Uint8Array` becomes a base64 string;
 * `Date` an ISO-8601 string; NaN and ±Infinity become null (JSON has no such numbers).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toJson } from "./export.ts";
 * assert.equal(toJson({ n: 5n, big: 2n ** 64n, b: new Uint8Array([1, 2]) }), '{"n":5,"big":"18446744073709551616","b":"AQI="}');
 * ```
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, jsonReplacer) ?? "null";
}

function jsonReplacer(this: unknown, _key: string, v: unknown): unknown {
  if (typeof v === "bigint") return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
  return v;
}

function ndjsonOf(rows: Rows, keyed: boolean, subtasks?: number[]): Uint8Array {
  let out = "";
  for (let i = 0; i < rows.length; i++) {
    if (keyed) {
      out += `{"key":${toJson(rows.keys![i])},"keyGroup":${rows.keyGroups![i]}`;
      if (rows.namespaces) out += `,"namespace":${toJson(rows.namespaces[i])}`;
      if (rows.userKeys) out += `,"userKey":${toJson(rows.userKeys[i])}`;
    } else out += `{"subtask":${subtasks![i]}`;
    out += `,"value":${toJson(rows.values[i])}}\n`;
  }
  return encoder.encode(out);
}

/** Arrow export layout: dictionaries as plain utf8 (one file cannot replace dictionaries), msgpack as JSON text. */
/**
 * Whether a state's chunk columns are already its export columns: no msgpack (exported as JSON text) and
 * no dictionary (an Arrow file cannot replace a dictionary between batches, so those become utf8).
 */
function passThrough(l: StateLayout): boolean {
  const hasDict = (t: FieldType): boolean => typeof t === "string" ? t === "dictionary" : "struct" in t ? t.struct.some((f) => hasDict(f.type)) : hasDict(t.list);
  return l.keyType !== "msgpack" && l.userKeyType !== "msgpack" && l.value.encoding === "arrow" && !hasDict(l.value.type);
}

function exportLayout(l: StateLayout): { layout: StateLayout; keyJson: boolean; ukeyJson: boolean; valueJson: boolean } {
  const plain = (t: FieldType): FieldType => typeof t === "string" ? (t === "dictionary" ? "utf8" : t) : "struct" in t ? { struct: t.struct.map((f) => ({ ...f, type: plain(f.type) })) } : { list: plain(t.list) };
  const keyJson = l.keyType === "msgpack";
  const ukeyJson = l.userKeyType === "msgpack";
  const valueJson = l.value.encoding === "msgpack";
  const key = (t: KeyType | undefined): KeyType | undefined => (t === "msgpack" ? "string" : t);
  const layout: StateLayout = {
    kind: l.kind,
    ...(l.keyType ? { keyType: key(l.keyType) } : {}),
    ...(l.userKeyType ? { userKeyType: key(l.userKeyType) } : {}),
    ...(l.namespaced ? { namespaced: true } : {}),
    value: valueJson ? { encoding: "arrow", type: "utf8" } : { encoding: "arrow", type: plain(l.value.type) },
  };
  return { layout, keyJson, ukeyJson, valueJson };
}

/**
 * Streams one state of a snapshot:
 * - `ndjson`: one JSON object per line, in key-group order: `{"key", "keyGroup", "namespace"?, "userKey"?,
 *   "value"}` for keyed state, `{"subtask", "value"}` for operator state, values as {@link toJson} writes
 *   them (int64 as numbers when safe, else strings; bytes as base64);
 * - `arrow`: one plain Arrow IPC file (no arrowpoint metadata) with columns `kg`, `key`, `ns`?, `ukey`?,
 *   `value`, readable by DuckDB, polars, pyarrow; dictionary columns are written as plain utf8 and msgpack
 *   values and keys as JSON text. A keyed state with neither passes its columns through (gathered from the
 *   chunks' buffers, no value decoded); the others are decoded and re-encoded batch by batch.
 * Chains are applied first; memory holds one batch of rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, exportState } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:export-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:export-example/savepoints/sp-1");
 * import { appendFileSync, readFileSync } from "node:fs";
 * for await (const bytes of exportState(sp.location, { operator: "counter", state: "counts" })) appendFileSync("counts.ndjson", bytes);
 * const rows = readFileSync("counts.ndjson", "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
 * assert.ok(rows.every((r) => r.key.startsWith("user-") && r.value >= 1 && r.keyGroup < 128));
 * ```
 */
export async function* exportState(uri: string | Snapshot, options: ExportOptions): AsyncGenerator<Uint8Array> {
  const snap = typeof uri === "string" ? await openSnapshot(uri) : uri;
  try {
    const st = requireState(snap, options.operator, options.state);
    const format = options.format ?? "ndjson";
    if (format !== "ndjson" && format !== "arrow") throw new TypeError(`Cannot export as format must be "ndjson" or "arrow": current value is ${JSON.stringify(format)}`);
    const started = Date.now();
    let rowsDone = 0;
    let bytesDone = 0;
    const progress = (rows: number, bytes: number) => {
      rowsDone += rows;
      bytesDone += bytes;
      options.onProgress?.({ phase: "export", rows: rowsDone, bytes: bytesDone, totalRows: st.chunks.reduce((n, c) => n + c.rows, 0), elapsedMs: Date.now() - started });
    };
    const batches = async function* (): AsyncGenerator<{ rows: Rows; subtasks?: number[] }> {
      if (!st.keyed) {
        const { values, subtasks } = await readOperatorItems(snap, st);
        yield { rows: { length: values.length, values }, subtasks };
        return;
      }
      const inputs = snapshotInputs(snap, st);
      for await (const b of sweep(inputs, [{ start: 0, end: snap.manifest.maxParallelism - 1 }], { ...shapeOf(st), batchRows: options.batchRows, signal: options.signal })) {
        if (b.rows.length) yield { rows: b.rows };
      }
    };
    if (format === "ndjson") {
      for await (const { rows, subtasks } of batches()) {
        const bytes = ndjsonOf(rows, st.keyed, subtasks);
        progress(rows.length, bytes.length);
        yield bytes;
      }
      return;
    }
    const { layout, keyJson, ukeyJson, valueJson } = exportLayout(layoutOf(st));
    const json = (a: unknown[] | undefined, on: boolean) => (a && on ? a.map((x) => toJson(x)) : a);
    const encode = (rows: Rows) =>
      encodeChunk(layout, {
        length: rows.length,
        keyGroups: rows.keyGroups,
        keys: json(rows.keys, keyJson),
        namespaces: rows.namespaces,
        userKeys: json(rows.userKeys, ukeyJson),
        values: json(rows.values, valueJson)!,
      }, { state: `${options.operator}/${options.state}` }).bytes;
    const writer = new RecordBatchFileWriter();
    const queue = writer[Symbol.asyncIterator]();
    let pending = queue.next();
    const NOTHING = Symbol("nothing");
    const drain = async function* (): AsyncGenerator<Uint8Array> {
      for (;;) {
        const r = await Promise.race([pending, Promise.resolve(NOTHING)]);
        if (r === NOTHING || (r as IteratorResult<Uint8Array>).done) return;
        yield (r as IteratorResult<Uint8Array>).value;
        pending = queue.next();
      }
    };
    let schema: Schema | undefined;
    const write = (bytes: Uint8Array) => {
      const table = tableFromIPC(bytes);
      if (!schema) {
        schema = new Schema(table.schema.fields);
        writer.reset(undefined, schema);
      }
      for (const b of table.batches) writer.write(new RecordBatch(schema, b.data));
    };
    const src = layoutOf(st);
    if (st.keyed && passThrough(src)) {
      // Columns pass through: each batch's rows are picked on the identity columns and gathered column by
      // column from the chunks' buffers (no row becomes JS values).
      const inputs = snapshotInputs(snap, st);
      for await (const s of sweepSelections(inputs, [{ start: 0, end: snap.manifest.maxParallelism - 1 }], { ...shapeOf(st), batchRows: options.batchRows, signal: options.signal })) {
        if (s.row.length === 0) continue;
        write(gatherChunk(src, s.files, s.src, s.row).bytes);
        progress(s.row.length, 0);
        for await (const chunk of drain()) {
          bytesDone += chunk.length;
          yield chunk;
        }
      }
    } else {
      for await (const { rows } of batches()) {
        write(encode(rows));
        progress(rows.length, 0);
        for await (const chunk of drain()) {
          bytesDone += chunk.length;
          yield chunk;
        }
      }
    }
    if (!schema) write(encode({ length: 0, keyGroups: new Uint16Array(0), keys: [], namespaces: st.namespaced ? [] : undefined, userKeys: st.kind === "map" ? [] : undefined, values: [] }));
    writer.finish();
    for (let r = await pending; !r.done; r = await queue.next()) yield r.value;
  } finally {
    if (typeof uri === "string") await snap.storage.close();
  }
}
