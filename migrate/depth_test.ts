import { test } from "node:test";
import assert from "node:assert/strict";
import { chainDepth } from "./inspect.ts";
import { coverage } from "./_rows.ts";

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type C = { range: { start: number; end: number }; type: "base" | "delta"; order: number };

function bruteDepth(chunks: C[], maxP: number): number {
  const depth = new Array<number>(maxP).fill(0);
  for (const c of [...chunks].sort((a, b) => a.order - b.order)) {
    for (let g = Math.max(0, c.range.start); g <= Math.min(c.range.end, maxP - 1); g++) depth[g] = c.type === "base" ? 1 : depth[g] + 1;
  }
  return Math.max(0, ...depth);
}

test("chainDepth() equals the chunk-by-chunk count on random chains", () => {
  const rnd = prng(7);
  for (let round = 0; round < 300; round++) {
    const maxP = 1 + Math.floor(rnd() * 64);
    const chunks: C[] = Array.from({ length: Math.floor(rnd() * 12) }, () => {
      const a = Math.floor(rnd() * maxP);
      const b = Math.floor(rnd() * maxP);
      return { range: { start: Math.min(a, b), end: Math.max(a, b) }, type: rnd() < 0.4 ? "base" : "delta", order: Math.floor(rnd() * 8) * 2 + (rnd() < 0.5 ? 0 : 1) };
    });
    // Distinct orders per base/delta pair at one order are ambiguous; keep orders unique.
    chunks.forEach((c, i) => (c.order = c.order * 100 + i));
    assert.equal(chainDepth(chunks, maxP), bruteDepth(chunks, maxP), JSON.stringify(chunks));
  }
});

test("chainDepth() and coverage() stay fast on a hostile manifest of 200,000 full-range chunks", () => {
  const chunks: C[] = Array.from({ length: 200_000 }, (_, i) => ({ range: { start: 0, end: 32767 }, type: i % 10 ? "delta" : "base", order: i }));
  const t0 = performance.now();
  assert.equal(chainDepth(chunks, 32768), 10);
  const cov = coverage(chunks.map((c) => c.range), 32768);
  assert.equal(cov[12345], 200_000);
  assert.ok(performance.now() - t0 < 5000, `took ${performance.now() - t0} ms`);
});
