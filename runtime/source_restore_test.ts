// Finished bounded sources stay finished after a restore (as in Flink); new data needs its own source uid.
import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { Job } from "./job.ts";
import { CollectingSink } from "./sinks.ts";
import { arraySource, type Source } from "./sources.ts";

function run(storage: string, sink: CollectingSink<number>, sources: { source: Source<number>; uid: string; parallelism?: number }[], allowNonRestoredState = false): Promise<{ records: number }> {
  const job = new Job("bounded", { checkpoints: { storage }, restore: { from: "latest", allowNonRestoredState } });
  const [first, ...rest] = sources.map((s) => job.fromSource(s.source, { uid: s.uid, parallelism: s.parallelism ?? 2 }));
  first.union(...rest).sinkTo(sink, { uid: "out" });
  return job.run();
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

test("a finished bounded source stays finished after a restore, at any parallelism, even when its data grew", async () => {
  const storage = `memory:finished-${Math.random().toString(36).slice(2)}`;
  const sink = new CollectingSink<number>();
  assert.equal((await run(storage, sink, [{ source: arraySource(range(0, 100), { splits: 3 }), uid: "nums" }])).records, 100);

  const snap = await openSnapshot(storage);
  const positions = (await readState(snap, "nums", "positions")).values as { id: string; position: number; done: boolean }[];
  await snap.storage.close();
  assert.deepEqual(positions.map((p) => [p.id, p.position, p.done]).sort(), [["0", 34, true], ["1", 68, true], ["2", 100, true]]);

  for (const parallelism of [1, 3]) {
    const again = await run(storage, sink, [{ source: arraySource(range(0, 200), { splits: 3 }), uid: "nums", parallelism }]);
    assert.equal(again.records, 0, `restored at parallelism ${parallelism}, the finished splits are not read again`);
  }
  assert.deepEqual(sink.committed.slice().sort((a, b) => a - b), range(0, 100));

  // New data under its own source uid is read, once.
  const more = await run(storage, sink, [
    { source: arraySource(range(0, 200), { splits: 3 }), uid: "nums" },
    { source: arraySource(range(100, 150)), uid: "nums-2" },
  ]);
  assert.equal(more.records, 50);
  // The old source under a new uid (its positions dropped) reads every split from the start.
  const renamed = await run(storage, sink, [{ source: arraySource(range(0, 10)), uid: "nums-v2" }], true);
  assert.equal(renamed.records, 10);
  assert.deepEqual(sink.committed.slice().sort((a, b) => a - b), [...range(0, 10), ...range(0, 150)].sort((a, b) => a - b));
  clearMemoryStorage(storage.slice("memory:".length));
});

/** One split per file; position: index of the next line. */
function filesSource(files: Record<string, number[]>): Source<number> {
  return {
    name: "files",
    splits: () => Object.keys(files).map((id) => ({ id })),
    reader(split, position) {
      let next = typeof position === "number" ? position : 0;
      const rows = files[split.id];
      return {
        read(out, max) {
          if (next >= rows.length) return -1;
          const end = Math.min(rows.length, next + max);
          const c = end - next;
          while (next < end) out.push(rows[next++]);
          return c;
        },
        position: () => next,
      };
    },
  };
}

test("a split the source lists and the snapshot does not hold is new: read once from its beginning, at any parallelism", async () => {
  const storage = `memory:new-split-${Math.random().toString(36).slice(2)}`;
  const sink = new CollectingSink<number>();
  const files: Record<string, number[]> = { a: range(0, 30), b: range(30, 40) };
  assert.equal((await run(storage, sink, [{ source: filesSource(files), uid: "files" }])).records, 40);
  files.a.push(999); // a finished split's growth is not read
  files.c = range(40, 60);
  files.d = range(60, 65);
  files.e = range(65, 66);
  assert.equal((await run(storage, sink, [{ source: filesSource(files), uid: "files", parallelism: 3 }])).records, 26);
  assert.equal((await run(storage, sink, [{ source: filesSource(files), uid: "files", parallelism: 1 }])).records, 0, "the new splits are now in the snapshot, finished");
  assert.deepEqual(sink.committed.slice().sort((x, y) => x - y), range(0, 66));
  clearMemoryStorage(storage.slice("memory:".length));
});

test("a split never opened before the snapshot is restored with position undefined, as at a first start (regression: null)", async () => {
  const target = `memory:never-opened-${Math.random().toString(36).slice(2)}`;
  const given: unknown[] = [];
  let release: (() => void) | undefined;
  const source: Source<number> = {
    name: "two",
    splits: () => [{ id: "a" }, { id: "b" }],
    reader(split, position) {
      given.push(position);
      let next = typeof position === "number" ? position : 0;
      return {
        read(out) {
          if (next >= 3) return -1;
          // Split "a" waits on its first read, so split "b" is never opened before the savepoint.
          if (split.id === "a" && next === 0 && release === undefined) return new Promise<number>((r) => (release = () => r(0)));
          out.push(next++);
          return 1;
        },
        position: () => next,
      };
    },
  };
  const a = new Job("never-opened");
  a.fromSource(source, { uid: "two", parallelism: 1 }).sinkTo(new CollectingSink<number>(), { uid: "out" });
  await a.start();
  while (release === undefined) await new Promise((r) => setTimeout(r, 1));
  await a.stopWithSavepoint(target);
  release();
  await a.done;
  assert.deepEqual(given, [undefined]);
  const sink = new CollectingSink<number>();
  const b = new Job("never-opened", { restore: { from: target } });
  b.fromSource(source, { uid: "two", parallelism: 1 }).sinkTo(sink, { uid: "out" });
  await b.run();
  assert.deepEqual(given.slice(1).sort(), [0, undefined], "a resumes at 0, b starts at undefined");
  assert.deepEqual(sink.committed.sort(), [0, 0, 1, 1, 2, 2]);
  clearMemoryStorage(target.slice("memory:".length));
});
