// Savepoints are open data: export one state to a plain Arrow IPC file and read it with an independent
// Arrow implementation (@uwdata/flechette), as DuckDB, polars or pyarrow would.
//
//   npx tsx examples/export_arrow.ts [folder]
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tableFromIPC } from "@uwdata/flechette";
import { CollectingSink, exportState, generatorSource, Job, mapState, valueState } from "../mod.ts";

const dir = process.argv[2] ?? mkdtempSync(join(tmpdir(), "arrowpoint-export-"));
const TOTALS = valueState<{ count: bigint; sum: number; label: string }>("totals", {
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "sum", type: "float64" }, { name: "label", type: "dictionary" }] } },
});
const PAGES = mapState<string, number>("pages");

const job = new Job("shop", { maxParallelism: 128, checkpoints: { storage: join(dir, "checkpoints") } });
job
  .fromSource(generatorSource({ count: 5_000, seed: 3, make: (i, rng) => ({ user: `user-${i % 300}`, amount: rng.int(100), page: `p${rng.int(5)}` }) }), { uid: "events" })
  .keyBy((e) => e.user)
  .process<string>({
    open(ctx) {
      ctx.getState(TOTALS);
      ctx.getMapState(PAGES);
    },
    processElement(e, ctx) {
      const totals = ctx.getState(TOTALS);
      const t = totals.value() ?? { count: 0n, sum: 0, label: e.amount > 50 ? "big" : "small" };
      totals.update({ count: t.count + 1n, sum: t.sum + e.amount, label: t.label });
      const pages = ctx.getMapState(PAGES);
      pages.put(e.page, (pages.get(e.page) ?? 0) + 1);
    },
  }, { uid: "shop", parallelism: 3 })
  .sinkTo(new CollectingSink<string>(), { uid: "out" });
const { snapshots } = await job.run();
const checkpoint = snapshots[snapshots.length - 1].location;

// Export the value state as one Arrow file.
const file = join(dir, "totals.arrow");
const parts: Uint8Array[] = [];
for await (const bytes of exportState(checkpoint, { operator: "shop", state: "totals", format: "arrow" })) parts.push(bytes);
writeFileSync(file, Buffer.concat(parts));

// Read it with flechette, a different Arrow implementation than the one that wrote it.
const table = tableFromIPC(readFileSync(file), { useBigInt: true });
const names = table.schema.fields.map((f) => f.name);
const rows = table.toArray() as Record<string, unknown>[];
const count = rows.reduce((n, r) => n + BigInt((r.value as { count: bigint }).count), 0n);
if (table.numRows !== 300 || count !== 5000n) throw new Error(`expected 300 keys and 5000 events, got ${table.numRows} and ${count}`);
console.log(`${file}: ${table.numRows} rows, columns ${names.join(", ")}; flechette reads ${count} events in all`);

// The NDJSON export of the map state, one JSON object per (key, user key).
let lines = 0;
const decoder = new TextDecoder();
for await (const bytes of exportState(checkpoint, { operator: "shop", state: "pages", format: "ndjson" })) lines += decoder.decode(bytes).split("\n").filter(Boolean).length;
console.log(`pages as NDJSON: ${lines} rows`);
