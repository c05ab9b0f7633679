/**
 * Human-readable output of the CLI: sizes, durations, the `inspect` tree with a key-group skew chart,
 * tables for `ls`, findings for `validate`, summaries for `diff` and the migration plan.
 *
 * @module
 */
import type { FieldType, Finding, GcReport, InspectReport as SnapshotInfo, Listing, MigrationPlan, SnapshotDiff, StateInfo, TimerSummary } from "../mod.ts";

/**
 * Bytes in binary units: `512 B`, `1.5 KiB`, `12.3 MiB`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./format.ts";
 * assert.equal(formatBytes(1536), "1.5 KiB");
 * ```
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/**
 * A duration: `850 ms`, `12.3 s`, `4 min 5 s`, `3 h 20 min`, `2 d 4 h`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./format.ts";
 * assert.equal(formatDuration(245_000), "4 min 5 s");
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * A count with thousands separators: `1,234,567`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatCount } from "./format.ts";
 * assert.equal(formatCount(1234567), "1,234,567");
 * ```
 */
export function formatCount(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

const BARS = "▁▂▃▄▅▆▇█";

/**
 * A sparkline of counts, binned down to at most `width` characters (bin = sum of its counts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sparkline } from "./format.ts";
 * assert.equal(sparkline([1, 2, 4, 8]), "▂▃▅█");
 * ```
 */
export function sparkline(counts: readonly number[], width = 64): string {
  if (counts.length === 0) return "";
  const bins = Math.min(width, counts.length);
  const sums = new Array<number>(bins).fill(0);
  for (let i = 0; i < counts.length; i++) sums[Math.floor((i * bins) / counts.length)] += counts[i];
  const max = Math.max(...sums);
  if (max === 0) return BARS[0].repeat(bins);
  return sums.map((v) => (v === 0 ? " " : BARS[Math.min(BARS.length - 1, Math.floor((v / max) * (BARS.length - 1) + 0.5))])).join("");
}

function typeText(t: FieldType): string {
  if (typeof t === "string") return t;
  if ("struct" in t) return `{${t.struct.map((f) => `${f.name}${f.nullable ? "?" : ""}: ${typeText(f.type)}`).join(", ")}}`;
  return `list<${typeText(t.list)}>`;
}

function stateLine(s: StateInfo): string {
  const value = s.value.encoding === "arrow" ? typeText(s.value.type) : s.value.jsonSchema ? "msgpack (JSON Schema)" : "msgpack";
  const kind = s.keyed
    ? `${s.kind}<${s.keyType}${s.userKeyType ? ` × ${s.userKeyType}` : ""} → ${value}>${s.namespaced ? " namespaced" : ""}`
    : `operator-list (${s.redistribution}) ${value}`;
  const parts = [`${s.name}  ${kind}  v${s.schemaVersion}`, `${formatCount(s.rows)} ${s.keyed ? "rows" : "items"}`];
  if (s.deltaRows) parts.push(`+${formatCount(s.deltaRows)} delta rows`);
  parts.push(formatBytes(s.bytes), `${s.chunks} chunk${s.chunks === 1 ? "" : "s"}`);
  if (s.keyed) parts.push(`chain ${s.chainDepth}`);
  if (s.sharedChunks) parts.push(`${s.sharedChunks} shared`);
  return parts.join(" · ");
}

function timerText(domain: string, t: TimerSummary): string {
  if (t.count === 0) return `no ${domain}-time`;
  return `${formatCount(t.count)} ${domain}-time, earliest ${t.earliest} (${new Date(t.earliest!).toISOString()}), latest ${t.latest} (${new Date(t.latest!).toISOString()})`;
}

/**
 * The `inspect` tree.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CollectingSink, generatorSource, Job, valueState, inspect } from "../mod.ts";
 * // A job counting clicks per user: one checkpoint, then stopped with a savepoint.
 * const COUNT = valueState<number>("counts", { value: { encoding: "arrow", type: "int32" } });
 * const job = new Job("counter", { checkpoints: { storage: "memory:inspect-text-example" } });
 * job.fromSource(generatorSource({ count: Infinity, make: (i) => `user-${i % 10}` }), { uid: "events" })
 *   .keyBy((user) => user)
 *   .process<string>({ processElement(user, ctx) { const c = ctx.getState(COUNT); c.update((c.value() ?? 0) + 1); } }, { uid: "counter" })
 *   .sinkTo(new CollectingSink<string>(), { uid: "out" });
 * await job.start();
 * await job.triggerCheckpoint();
 * const sp = await job.stopWithSavepoint("memory:inspect-text-example/savepoints/sp-1");
 * import { inspectText } from "./format.ts";
 * assert.match(inspectText(await inspect(sp.location)), /^savepoint .* · job counter · /);
 * ```
 */
export function inspectText(info: SnapshotInfo): string {
  const lines: string[] = [];
  lines.push(`${info.kind} ${info.id}${info.checkpointId !== undefined ? ` (checkpoint ${info.checkpointId})` : ""} · job ${info.job} · created ${info.createdAt} · ${info.writer.name} ${info.writer.version} · format v${info.formatVersion}`);
  lines.push(`${info.location}`);
  lines.push(`maxParallelism ${info.maxParallelism} · ${info.operators.length} operator${info.operators.length === 1 ? "" : "s"} · ${info.chunks} chunks · ${formatCount(info.rows)} rows · ${formatBytes(info.bytes)}${info.chainDepth > 1 ? ` · incremental chain depth ${info.chainDepth}` : ""}`);
  info.operators.forEach((op, i) => {
    const lastOp = i === info.operators.length - 1;
    lines.push(`${lastOp ? "└─" : "├─"} ${op.uid}${op.name && op.name !== op.uid ? ` (${op.name})` : ""}  parallelism ${op.parallelism} · ${formatCount(op.rows)} rows · ${formatBytes(op.bytes)}`);
    const pad = lastOp ? "   " : "│  ";
    op.states.forEach((s, j) => {
      const lastSt = j === op.states.length - 1;
      lines.push(`${pad}${lastSt ? "└─" : "├─"} ${stateLine(s)}`);
      const sub = `${pad}${lastSt ? "   " : "│  "}   `;
      if (s.rows > 0 && s.subtaskRows.length > 1) {
        const k = s.subtaskSkew;
        lines.push(`${sub}subtasks   ${sparkline(s.subtaskRows, 32)}  min ${formatCount(k.min)} · max ${formatCount(k.max)} · max/mean ${k.ratio.toFixed(2)}`);
      }
      if (s.keyGroupRows && s.rows > 0) {
        const k = s.keyGroupSkew!;
        lines.push(`${sub}key groups ${sparkline(s.keyGroupRows, 64)}  max/mean ${k.ratio.toFixed(2)}`);
      }
      if (s.timers) lines.push(`${sub}timers     ${timerText("event", s.timers.event)} · ${timerText("processing", s.timers.processing)}`);
    });
  });
  const meta = Object.entries(info.metadata);
  if (meta.length) lines.push(`metadata: ${meta.map(([k, v]) => `${k}=${v.length > 60 ? v.slice(0, 59) + "…" : v}`).join(", ")}`);
  return lines.join("\n");
}

function table(rows: string[][], right: Set<number>): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (right.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join("  ").trimEnd()).join("\n");
}

/** What `ls` says of unreferenced files, so that it never promises more than `gc` frees now. */
function unreferencedText(l: Listing): string {
  const all = formatBytes(l.unreferencedBytes);
  if (l.freeableBytes === l.unreferencedBytes) return `${all} unreferenced (arrowpoint gc frees it)`;
  const grace = formatDuration(l.graceMs);
  if (l.freeableBytes === 0) return `${all} unreferenced, younger than gc's ${grace} grace period (a job may still be writing it; arrowpoint gc frees it once older)`;
  return `${all} unreferenced (arrowpoint gc frees ${formatBytes(l.freeableBytes)} now; the rest is younger than its ${grace} grace period)`;
}

/**
 * The `gc` summary, saying when the grace period is why files were kept.
 *
 * @example
 * ```ts
 * import { gcText } from "./format.ts";
 * console.log(gcText({ deleted: [], bytesFreed: 0, dryRun: true, kept: 2, young: 2, youngBytes: 2048, graceMs: 3_600_000 }).includes("grace period")); // true
 * ```
 */
export function gcText(r: GcReport): string {
  const lines = r.deleted.map((p) => `${r.dryRun ? "would delete" : "deleted"} ${p}`);
  let summary = `gc: ${r.dryRun ? "would free" : "freed"} ${formatBytes(r.bytesFreed)} in ${r.deleted.length} file(s); ${r.kept} kept`;
  if (r.young > 0) {
    summary += `, of which ${r.young} unreferenced file(s) (${formatBytes(r.youngBytes)}) only because they are younger than the grace period (${formatDuration(r.graceMs)}): ` +
      "a job may still be writing them; --grace-ms 0 includes them when nothing writes under this root";
  }
  lines.push(summary);
  return lines.join("\n");
}

/**
 * The `ls` table.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lsText } from "./format.ts";
 * assert.equal(lsText({ root: "memory:x", snapshots: [], totalBytes: 0, unreferencedBytes: 0, freeableBytes: 0, graceMs: 3_600_000 }), "no snapshots under memory:x");
 * ```
 */
export function lsText(l: Listing): string {
  if (l.snapshots.length === 0) return `no snapshots under ${l.root}`;
  const rows = [["PATH", "KIND", "ID", "AGE", "SIZE", "OWN", "CHUNKS", "SHARED", "DEPTH"]];
  for (const s of l.snapshots) {
    rows.push([
      s.path || ".",
      s.kind ?? "?",
      s.id,
      s.ageMs === undefined ? "?" : formatDuration(s.ageMs),
      formatBytes(s.bytes),
      formatBytes(s.ownBytes),
      String(s.chunks),
      String(s.sharedChunks),
      String(s.chainDepth),
    ]);
  }
  const lines = [table(rows, new Set([3, 4, 5, 6, 7, 8]))];
  for (const s of l.snapshots) {
    if (s.error) lines.push(`! ${s.path}: ${s.error}`);
    if (s.missingChunks) lines.push(`! ${s.path}: ${s.missingChunks} chunk(s) missing; run arrowpoint validate`);
  }
  lines.push(`${l.snapshots.length} snapshot(s), ${formatBytes(l.totalBytes)} under ${l.root}${l.unreferencedBytes ? `, ${unreferencedText(l)}` : ""}`);
  return lines.join("\n");
}

/**
 * The `validate` report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findingsText } from "./format.ts";
 * assert.equal(findingsText("sp-1", []), "valid: sp-1");
 * ```
 */
export function findingsText(location: string, findings: readonly Finding[]): string {
  if (findings.length === 0) return `valid: ${location}`;
  const lines = [`${findings.length} finding(s) in ${location}:`];
  for (const f of findings) {
    const where = [f.operator && f.state ? `${f.operator}/${f.state}` : f.operator, f.path].filter(Boolean).join(" ");
    lines.push(`  ${f.code}${where ? `  ${where}` : ""}\n      ${f.message}`);
  }
  return lines.join("\n");
}

/**
 * The `diff` summary.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { diffText } from "./format.ts";
 * assert.equal(diffText({ a: "a", b: "b", job: [], operators: [], states: [], identical: true }), "identical: a and b");
 * ```
 */
export function diffText(d: SnapshotDiff): string {
  if (d.identical) return `identical: ${d.a} and ${d.b}`;
  const lines = [`--- ${d.a}`, `+++ ${d.b}`];
  for (const j of d.job) lines.push(`job: ${j}`);
  for (const o of d.operators) {
    if (o.status !== "both") lines.push(`operator ${o.uid}: ${o.status}`);
    else if (o.parallelism && o.parallelism.a !== o.parallelism.b) lines.push(`operator ${o.uid}: parallelism ${o.parallelism.a} → ${o.parallelism.b}`);
  }
  for (const s of d.states) {
    if (s.status === "same") {
      lines.push(`  ${s.operator}/${s.state}: same (${formatCount(s.unchanged)} rows)`);
      continue;
    }
    lines.push(`${s.status === "added" ? "+" : s.status === "removed" ? "-" : "~"} ${s.operator}/${s.state}: ${s.status} · +${formatCount(s.added)} added · -${formatCount(s.removed)} removed · ~${formatCount(s.changed)} changed · ${formatCount(s.unchanged)} same`);
    for (const x of s.schema?.details ?? []) lines.push(`    schema: ${x}`);
    for (const k of s.samples.added) lines.push(`    + ${k}`);
    for (const k of s.samples.removed) lines.push(`    - ${k}`);
    for (const c of s.samples.changed) lines.push(`    ~ ${c.key}: ${c.a} → ${c.b}`);
  }
  return lines.join("\n");
}

/**
 * The migration plan (`migrate --dry-run`, and before a real run).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planText } from "./format.ts";
 * assert.equal(planText({ source: "sp-1", states: [], operators: [], rows: 0, estimatedBytes: 0 }).split("\n")[0], "migration plan for sp-1");
 * ```
 */
export function planText(p: MigrationPlan): string {
  const lines = [`migration plan for ${p.source}`];
  for (const o of p.operators) if (o.action !== "keep") lines.push(`  operator ${o.uid}: ${o.action}${o.action === "rename" ? ` → ${o.toUid}` : ""}`);
  for (const s of p.states) {
    const to = s.toOperator !== s.operator || s.toState !== s.state ? ` → ${s.toOperator}/${s.toState}` : "";
    if (s.action === "drop") lines.push(`  ${s.operator}/${s.state}: drop (${formatCount(s.rows)} rows, ${formatBytes(s.bytes)})`);
    else if (s.action === "copy") lines.push(`  ${s.operator}/${s.state}${to}: v${s.fromVersion}, unchanged (${formatCount(s.rows)} rows)`);
    else {
      lines.push(`  ${s.operator}/${s.state}${to}: v${s.fromVersion} → v${s.toVersion} · ${formatCount(s.rows)} rows · ${formatBytes(s.bytes)} → ~${formatBytes(s.estimatedBytes)}`);
      s.steps.forEach((st, i) => lines.push(`      v${s.fromVersion + i} → v${s.fromVersion + i + 1}: ${st}`));
    }
  }
  lines.push(`  ${formatCount(p.rows)} rows to migrate · output ~${formatBytes(p.estimatedBytes)}`);
  return lines.join("\n");
}
