// A smoke run of the whole benchmark at 20,000 rows, so it cannot rot: it must run every case and write a
// JSON report with the documented shape and an SVG chart. Speed is not asserted here (never in tests).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "./main.ts";

const NAMES = [
  "checkpoint.full.write", "checkpoint.incremental.write", "restore.full", "savepoint.compact", "rekey.parallelism",
  "rekey.maxParallelism", "migrate.addField", "s3.put", "s3.get", "runtime.records", "runtime.records.checkpointing",
  "connector.postgres.cdc", "connector.postgres.sink",
  "runtime.windows.tumbling", "runtime.windows.session", "checkpoint.timers.write",
  "baseline.json.write", "baseline.json.read", "baseline.msgpack.write", "baseline.msgpack.read", "limit.memcpy", "limit.disk.write",
];

test("npm run bench -- --rows 20000 runs every case and writes valid JSON and an SVG", async () => {
  const dir = await mkdtemp(join(tmpdir(), "arrowpoint-bench-"));
  try {
    const out = join(dir, "bench.json");
    const code = await main(["--rows", "20000", "--iterations", "2", "--out", out, "--dir", dir]);
    assert.equal(code, 0);
    const report = JSON.parse(await readFile(out, "utf8"));
    assert.equal(report.environment.rows, 20000);
    assert.ok(["node", "deno"].includes(report.environment.runtime));
    assert.ok(report.environment.cpus >= 1);
    const names = report.results.map((r: { name: string }) => r.name);
    for (const n of NAMES) assert.ok(names.includes(n), `missing ${n}`);
    for (const r of report.results) {
      for (const k of ["rowsPerSec", "bytesPerSec", "medianMs", "samples"]) assert.equal(typeof r[k], "number", `${r.name}.${k}`);
      assert.ok(r.rowsPerSec > 0 && r.medianMs > 0 && r.samples >= 2, r.name);
    }
    const svg = await readFile(join(dir, "bench.svg"), "utf8");
    assert.match(svg, /^<svg /);
    assert.ok(svg.includes("checkpoint.full.write"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
