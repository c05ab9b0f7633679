import { test } from "node:test";
import assert from "node:assert/strict";
import { advanceChain, type ChainSettings, chunkKind } from "./_chain_policy.ts";
import type { ChainInfo } from "./keyed_backend.ts";

const settings: ChainSettings = { incremental: true, fullEvery: 3, maxChainLength: 16, compression: "none" };

/** Runs `n` checkpoints with `rows(i)` changed rows each; returns what each wrote ("-" for nothing). */
function run(c: ChainInfo, s: ChainSettings, rows: (i: number) => number, n: number): string {
  let out = "";
  for (let i = 0; i < n; i++) {
    const kind = chunkKind(c, s);
    out += advanceChain(c, kind, rows(i)) ? (kind === "base" ? "B" : "d") : "-";
  }
  return out;
}

test("chain policy: a base first, then deltas, a base again every fullEvery checkpoints; empty deltas write nothing but count", () => {
  const c: ChainInfo = { chainLength: 0, sinceBase: 0, forceBase: false };
  assert.equal(run(c, settings, (i) => (i === 4 ? 0 : 5), 7), "BddB-dB");
  assert.equal(c.chainLength, 1);
});

test("chain policy: an empty base of a state without a chain writes nothing and stays without one", () => {
  const c: ChainInfo = { chainLength: 0, sinceBase: 0, forceBase: false };
  assert.equal(run(c, settings, () => 0, 3), "---");
  assert.equal(c.chainLength, 0);
});

test("chain policy: forceBase (failed checkpoint, restore from elsewhere), maxChainLength and non-incremental force bases", () => {
  const c: ChainInfo = { chainLength: 2, sinceBase: 1, forceBase: true };
  assert.equal(chunkKind(c, settings), "base");
  advanceChain(c, "base", 1);
  assert.equal(c.forceBase, false);
  assert.equal(chunkKind(c, settings), "delta");
  assert.equal(chunkKind({ chainLength: 16, sinceBase: 0, forceBase: false }, { ...settings, fullEvery: 100 }), "base");
  assert.equal(chunkKind({ chainLength: 1, sinceBase: 0, forceBase: false }, { ...settings, incremental: false }), "base");
});
