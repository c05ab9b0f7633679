// `ls` and `gc` call the same files unreferenced (issue 11, defect 4): before, ls counted every file no
// listed manifest named, a user's own files included, while gc deleted only debris in the places arrowpoint
// writes and only past its grace period; ls said "1.5 MiB unreferenced (see arrowpoint gc)" and gc
// --dry-run "would free 0 B".
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { DEFAULT_GC_GRACE_MS, gc } from "../snapshot/retention.ts";
import { entries, writeChain, writeSavepoint } from "./_test_util.ts";
import { ls } from "./ls.ts";

test("ls reports as unreferenced exactly what gc frees, now or after the grace period, and never a user's own files", async () => {
  clearMemoryStorage("ls-gc");
  const root = await openStorage("memory:ls-gc");
  await writeChain(root, [{ set: [...entries(200)] }, { del: ["k1"] }]);
  await writeSavepoint(await openStorage("memory:ls-gc/savepoints/sp-1"), entries(20));
  await root.put("pages.arrow", new Uint8Array(700)); // a user's file beside the snapshots
  await root.put("copy-of-sp-1/notes.txt", new Uint8Array(300));
  await root.put("shared/orphan.arrow", new Uint8Array(1000)); // debris: no manifest names it
  await root.put("savepoints/half/counter/x.arrow", new Uint8Array(50)); // an uncommitted savepoint

  const now = await ls(root);
  assert.equal(now.unreferencedBytes, 1050);
  assert.equal(now.freeableBytes, 0, "all debris is younger than the grace period");
  assert.equal(now.graceMs, DEFAULT_GC_GRACE_MS);
  const dry = await gc(root, { dryRun: true });
  assert.deepEqual([dry.bytesFreed, dry.young, dry.youngBytes, dry.graceMs], [0, 2, 1050, DEFAULT_GC_GRACE_MS]);

  const later = new Date(Date.now() + DEFAULT_GC_GRACE_MS + 60_000);
  const old = await ls(root, { now: later });
  const dryLater = await gc(root, { dryRun: true, now: later });
  assert.equal(old.freeableBytes, dryLater.bytesFreed);
  assert.equal(old.unreferencedBytes, dryLater.bytesFreed);
  assert.deepEqual(dryLater.deleted, ["savepoints/half/counter/x.arrow", "shared/orphan.arrow"]);
  assert.equal(dryLater.young, 0);
});
