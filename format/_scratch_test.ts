import assert from "node:assert/strict";
import { test } from "node:test";
import { dropScratch, leaseBytes, POISON, scratchFor, scratchTestMode } from "./_scratch.ts";

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

test("leaseBytes() keeps at most sixteen free buffers, the largest, within 96 MiB, and none after dropScratch()", () => {
  dropScratch();
  // 17 buffers of 1, 1.5, …, 9 MiB (90 MiB with headroom: under the byte cap, over the count).
  const leases = Array.from({ length: 17 }, (_, i) => leaseBytes(MiB + i * (MiB / 2)));
  for (const l of leases) l.release();
  const big = leaseBytes(9.5 * MiB);
  assert.equal(big.bytes.buffer, leases[16].bytes.buffer, "the largest was kept");
  const smallest = leaseBytes(MiB);
  assert.equal(smallest.bytes.buffer, leases[1].bytes.buffer, "the smallest was let go: the next fit serves");
  big.release();
  smallest.release();
  dropScratch();
  assert.notEqual(leaseBytes(9 * MiB).bytes.buffer, leases[16].bytes.buffer, "dropped buffers are not reused");
  const huge = [40, 40, 40].map((m) => leaseBytes(m * MiB));
  for (const l of huge) l.release();
  const again = [40, 40, 40].map((m) => leaseBytes(m * MiB));
  assert.equal(again.filter((l) => huge.some((h) => h.bytes.buffer === l.bytes.buffer)).length, 2, "96 MiB kept: two of three 40 MiB buffers");
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

test("scratchTestMode() pools small buffers and poisons each as it is released", () => {
  const was = scratchTestMode(true);
  try {
    const a = leaseBytes(100);
    a.bytes.fill(7);
    const view = a.bytes;
    a.release();
    assert.ok(view.every((x) => x === POISON), "a stale view of a released buffer reads poison");
    assert.equal(leaseBytes(90).bytes.buffer, view.buffer, "small buffers are pooled in test mode");
  } finally {
    scratchTestMode(was);
  }
  assert.equal(scratchFor(100), undefined, "off again: small reads are plain allocations");
});
