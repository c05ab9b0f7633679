import assert from "node:assert/strict";
import { test } from "node:test";
import { dropScratch, leaseBytes, scratchFor } from "./_scratch.ts";

const MiB = 1024 * 1024;

test("leaseBytes() reuses a released buffer, never one still leased", () => {
  dropScratch();
  const a = leaseBytes(2 * MiB);
  const b = leaseBytes(2 * MiB);
  assert.notEqual(a.bytes.buffer, b.bytes.buffer, "two leases at once share no memory");
  a.bytes.fill(1);
  b.bytes.fill(2);
  a.release();
  const c = leaseBytes(2 * MiB - 5);
  assert.equal(c.bytes.buffer, a.bytes.buffer, "the released buffer serves the next lease");
  assert.equal(c.bytes.length, 2 * MiB - 5, "exactly the length asked for");
  assert.ok(b.bytes.every((x) => x === 2), "a lease still out is untouched");
  a.release(); // a second release of a returned lease does nothing
  const d = leaseBytes(2 * MiB);
  assert.notEqual(d.bytes.buffer, c.bytes.buffer, "a double release never hands one buffer to two owners");
  b.release();
  c.release();
  d.release();
  dropScratch();
});

test("leaseBytes() keeps at most three free buffers, the largest, and none after dropScratch()", () => {
  dropScratch();
  const leases = [1, 2, 3, 4].map((m) => leaseBytes(m * MiB));
  for (const l of leases) l.release();
  const big = leaseBytes(4 * MiB);
  assert.equal(big.bytes.buffer, leases[3].bytes.buffer);
  const smallest = leaseBytes(MiB);
  assert.notEqual(smallest.bytes.buffer, leases[0].bytes.buffer, "the smallest was let go");
  big.release();
  dropScratch();
  assert.notEqual(leaseBytes(4 * MiB).bytes.buffer, leases[3].bytes.buffer, "dropped buffers are not reused");
  dropScratch();
});

test("scratchFor() leases nothing for sizes a manifest could lie about", () => {
  assert.equal(scratchFor(Number.MAX_SAFE_INTEGER), undefined);
  assert.equal(scratchFor(2 ** 40), undefined);
  assert.equal(scratchFor(-1), undefined);
  assert.equal(scratchFor(1.5 * MiB + 0.5), undefined);
  assert.equal(scratchFor(100), undefined, "small reads are plain allocations");
  const l = scratchFor(3 * MiB);
  assert.equal(l?.bytes.length, 3 * MiB);
  l?.release();
  dropScratch();
});
