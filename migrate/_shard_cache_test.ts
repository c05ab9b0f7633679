import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { commitShards } from "../snapshot/shards.ts";
import { migrate } from "./migrate.ts";
import { addField, defineMigrations } from "./migrations.ts";
import { rekey } from "./rekey.ts";
import { dropScratch, leaseBytes } from "../format/_scratch.ts";
import { keepPicks, keptPicks, releasePicks, shardSourceChunk, type HashedPicks, takePicks } from "./_shard_cache.ts";
import { entries, writeSavepoint } from "./_test_util.ts";

const picks = (): HashedPicks => ({ files: [], src: new Uint32Array(1), row: new Uint32Array(1), keyGroups: new Uint16Array(1), length: 1 });

test("kept picks go to the other shards of the same run only, and are let go once every shard has had them", () => {
  const p = picks();
  keepPicks("a", { index: 0, count: 3 }, p);
  assert.equal(takePicks("b", { index: 1, count: 3 }), undefined, "another source or plan");
  assert.equal(takePicks("a", { index: 1, count: 4 }), undefined, "another shard count");
  assert.equal(takePicks("a", { index: 1, count: 3 }), p);
  assert.equal(takePicks("a", { index: 1, count: 3 }), p, "a shard run again");
  assert.equal(keptPicks(), "a");
  assert.equal(takePicks("a", { index: 2, count: 3 }), p);
  assert.equal(keptPicks(), undefined, "every shard had them");
  // One shard of one: nothing to keep; a new source replaces the old one.
  keepPicks("a", { index: 0, count: 1 }, p);
  assert.equal(keptPicks(), undefined);
  keepPicks("a", { index: 0, count: 2 }, p);
  keepPicks("c", { index: 0, count: 2 }, picks());
  assert.equal(takePicks("a", { index: 1, count: 2 }), undefined);
  assert.equal(takePicks("c", { index: 1, count: 2 })?.src.length, 1);
  assert.equal(keptPicks(), undefined);
});

test("rekey shards of a new maxParallelism run one after another share the first shard's picks and equal one run", async () => {
  clearMemoryStorage("cache");
  await writeSavepoint(await openStorage("memory:cache/sp"), entries(2000), { parallelism: 4, maxP: 128 });
  const opts = { maxParallelism: 512, parallelism: 5 };
  for (let index = 0; index < 4; index++) {
    await rekey("memory:cache/sp", "memory:cache/sharded/out", { ...opts, shard: { index, count: 4 } });
    // Kept after the first shard, for the others; let go after the last.
    assert.equal(keptPicks() !== undefined, index < 3, `after shard ${index}`);
  }
  await commitShards("memory:cache/sharded/out");
  await rekey("memory:cache/sp", "memory:cache/single/out", opts);
  const read = async (uri: string) => {
    const snap = await openSnapshot(uri);
    return { chunks: snap.manifest.operators[0].states[0].chunks.map((c) => [c.path, c.rows, c.checksum]), rows: await readState(snap, "counter", "counts") };
  };
  assert.deepEqual(await read("memory:cache/sharded/out"), await read("memory:cache/single/out"));
  // A different source (here: other chunks under the same name) is not served the old picks.
  await rekey("memory:cache/sp", "memory:cache/again/out", { ...opts, shard: { index: 0, count: 2 } });
  assert.ok(keptPicks());
  clearMemoryStorage("cache");
  await writeSavepoint(await openStorage("memory:cache/sp"), entries(1500), { parallelism: 4, maxP: 128 });
  await rekey("memory:cache/sp", "memory:cache/again2/out", { ...opts, shard: { index: 1, count: 2 } });
  await rekey("memory:cache/sp", "memory:cache/again2/out", { ...opts, shard: { index: 0, count: 2 } });
  await commitShards("memory:cache/again2/out");
  await rekey("memory:cache/sp", "memory:cache/single2/out", opts);
  assert.deepEqual(await read("memory:cache/again2/out"), await read("memory:cache/single2/out"));
  assert.equal(keptPicks(), undefined);
  clearMemoryStorage("cache");
});

test("shards run one after another read a source chunk they share once; another chunk or source is read anew", async () => {
  clearMemoryStorage("chunks");
  await writeSavepoint(await openStorage("memory:chunks/sp"), entries(2000), { parallelism: 2, maxP: 128 });
  const storage = await openStorage("memory:chunks/sp");
  const reads: string[] = [];
  const counting = new Proxy(storage, {
    get(target, prop, receiver) {
      if (prop === "getRange") return (path: string, offset: number, length: number) => (reads.push(path), target.getRange(path, offset, length));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const snap = await openSnapshot(counting);
  const m = defineMigrations({ "counter/counts": [addField("seen", "bool", true)] });
  // 4 shards of 2 source chunks (key groups 0–63, 64–127): shards 0 and 1 slice the first, 2 and 3 the second.
  for (let index = 0; index < 4; index++) await migrate(snap, "memory:chunks/sharded/out", m, { shard: { index, count: 4 } });
  assert.deepEqual(reads.filter((p) => p.endsWith(".arrow")).sort(), ["counter/counts/kg-0-63.arrow", "counter/counts/kg-64-127.arrow"]);
  await commitShards("memory:chunks/sharded/out");
  await migrate("memory:chunks/sp", "memory:chunks/single/out", m);
  const rows = async (uri: string) => await readState(await openSnapshot(uri), "counter", "counts");
  assert.deepEqual(await rows("memory:chunks/sharded/out"), await rows("memory:chunks/single/out"));
  let n = 0;
  const read = async () => (n++, new Uint8Array([n]));
  const bytes = async (key: string) => {
    const lease = await shardSourceChunk(key, 1, read);
    lease.release();
    return lease.bytes;
  };
  assert.deepEqual(await bytes("a"), new Uint8Array([1]));
  assert.deepEqual(await bytes("a"), new Uint8Array([1]));
  assert.deepEqual(await bytes("b"), new Uint8Array([2]));
  assert.deepEqual(await bytes("a"), new Uint8Array([3]));
  clearMemoryStorage("chunks");
});

test("a kept source chunk's scratch buffer goes back to the pool only once no run reads it", async () => {
  dropScratch();
  const size = 2 << 20;
  const fill = (v: number) => async (into?: Uint8Array) => (into ?? new Uint8Array(size)).fill(v);
  const a = await shardSourceChunk("pool/a", size, fill(1));
  // Another chunk is kept now; "a" is still read by its run: its buffer must not serve anyone else.
  const b = await shardSourceChunk("pool/b", size, fill(2));
  const other = leaseBytes(size);
  assert.notEqual(other.bytes.buffer, a.bytes.buffer);
  other.bytes.fill(0);
  assert.ok(a.bytes.every((x) => x === 1));
  a.release();
  // Released and no longer kept: the pool hands it out again.
  const again = leaseBytes(size);
  assert.equal(again.bytes.buffer, a.bytes.buffer);
  // "b" is still kept for the next shard: releasing its lease keeps its bytes.
  b.release();
  assert.equal((await shardSourceChunk("pool/b", size, fill(3))).bytes[0], 2);
  again.release();
  other.release();
  dropScratch();
});

test("kept picks hand their source buffers back only once let go and no shard gathers from them any more", () => {
  let released = 0;
  const lease = { bytes: new Uint8Array(8), release: () => void released++ };
  const p = picks();
  keepPicks("leases", { index: 0, count: 2 }, p, [lease]);
  assert.equal(takePicks("leases", { index: 1, count: 2 }), p);
  assert.equal(keptPicks(), undefined, "every shard had them: let go");
  releasePicks(p); // the shard that kept them is done
  assert.equal(released, 0, "shard 1 still gathers from them");
  releasePicks(p);
  assert.equal(released, 1);
  releasePicks(p);
  assert.equal(released, 1, "handed back once");
  // Replaced by another source while nobody gathers: handed back at once.
  const q = picks();
  keepPicks("q", { index: 0, count: 2 }, q, [lease]);
  releasePicks(q);
  assert.equal(released, 1, "still kept for shard 1");
  keepPicks("other", { index: 0, count: 2 }, picks());
  assert.equal(released, 2);
});
