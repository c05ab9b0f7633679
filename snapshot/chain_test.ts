import { test } from "node:test";
import assert from "node:assert/strict";
import { chainDepth, coverage, isPlainBaseSet, pruneChain } from "./chain.ts";

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type C = { keyGroupRange: { start: number; end: number }; type: "base" | "delta"; order: number };

function bruteDepth(chunks: C[], maxP: number): number {
  const depth = new Array<number>(maxP).fill(0);
  for (const c of [...chunks].sort((a, b) => a.order - b.order)) {
    for (let g = Math.max(0, c.keyGroupRange.start); g <= Math.min(c.keyGroupRange.end, maxP - 1); g++) depth[g] = c.type === "base" ? 1 : depth[g] + 1;
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
      return { keyGroupRange: { start: Math.min(a, b), end: Math.max(a, b) }, type: rnd() < 0.4 ? "base" : "delta", order: Math.floor(rnd() * 8) * 2 + (rnd() < 0.5 ? 0 : 1) };
    });
    // Distinct orders per base/delta pair at one order are ambiguous; keep orders unique.
    chunks.forEach((c, i) => (c.order = c.order * 100 + i));
    assert.equal(chainDepth(chunks, maxP), bruteDepth(chunks, maxP), JSON.stringify(chunks));
  }
});

test("chainDepth() and coverage() answer on a hostile manifest of 200,000 full-range chunks", () => {
  const chunks: C[] = Array.from({ length: 200_000 }, (_, i) => ({ keyGroupRange: { start: 0, end: 32767 }, type: i % 10 ? "delta" : "base", order: i }));
  assert.equal(chainDepth(chunks, 32768), 10);
  const cov = coverage(chunks.map((c) => c.keyGroupRange), 32768);
  assert.equal(cov[12345], 200_000);
});

test("chainDepth() over a range counts only the key groups in it", () => {
  const chunks: C[] = [
    { keyGroupRange: { start: 0, end: 127 }, type: "base", order: 1 },
    { keyGroupRange: { start: 0, end: 63 }, type: "delta", order: 2 },
    { keyGroupRange: { start: 0, end: 31 }, type: "delta", order: 3 },
  ];
  assert.equal(chainDepth(chunks, 128), 3);
  assert.equal(chainDepth(chunks, 128, { start: 32, end: 127 }), 2);
  assert.equal(chainDepth(chunks, 128, { start: 64, end: 127 }), 1);
});

test("pruneChain() keeps exactly the chunks some key group still needs, and isPlainBaseSet() tells a chain from a set", () => {
  const rnd = prng(11);
  for (let round = 0; round < 200; round++) {
    const maxP = 1 + Math.floor(rnd() * 32);
    const chunks: C[] = Array.from({ length: 1 + Math.floor(rnd() * 10) }, (_, i) => {
      const a = Math.floor(rnd() * maxP);
      const b = Math.floor(rnd() * maxP);
      return { keyGroupRange: { start: Math.min(a, b), end: Math.max(a, b) }, type: rnd() < 0.4 ? "base" : "delta", order: i + 1 };
    });
    const kept = new Set(pruneChain(chunks, maxP));
    for (const c of chunks) {
      // Needed: some key group of c has no newer base.
      let needed = false;
      for (let g = c.keyGroupRange.start; g <= c.keyGroupRange.end; g++) {
        if (!chunks.some((x) => x.order > c.order && x.type === "base" && x.keyGroupRange.start <= g && g <= x.keyGroupRange.end)) needed = true;
      }
      assert.equal(kept.has(c), needed, JSON.stringify({ c, chunks }));
    }
    const plain = chunks.every((c) => c.type === "base") &&
      chunks.every((c, i) => chunks.every((d, j) => i === j || c.keyGroupRange.end < d.keyGroupRange.start || d.keyGroupRange.end < c.keyGroupRange.start));
    assert.equal(isPlainBaseSet(chunks), plain);
  }
});
