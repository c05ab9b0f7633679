// Crash points of the offline tools (issue 7): compact, rekey (new parallelism: slicing; new
// maxParallelism: re-hash) and migrate, on memory, filesystem and S3, crashed at every storage operation of
// their destination (fail, kill, torn; see snapshot/_test_crash.ts). After each crash: the source snapshots
// are intact and validate() finds nothing wrong with them; the destination either has no manifest or is a
// complete savepoint equal to a clean run's, which validate() accepts; GC frees the debris; running the tool
// again completes it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../backends/memory.ts";
import type { Storage } from "../backends/storage.ts";
import { subStorage } from "../backends/sub.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { LONG, longOr, prng, recordFigure, SEED } from "../format/_test_fuzz.ts";
import { checkpointDirName } from "../snapshot/layout.ts";
import { committedCheckpoints, openSnapshot } from "../snapshot/read.ts";
import { gc } from "../snapshot/retention.ts";
import { allPaths, type CrashBackend, crashBackends, type CrashMode, CrashStorage, runCrashing, snapshotFacts, stateText } from "../snapshot/_test_crash.ts";
import { compact } from "./compact.ts";
import { migrate } from "./migrate.ts";
import { addField, defineMigrations, dropField, renameField, widenType } from "./migrations.ts";
import { rekey } from "./rekey.ts";
import { validate } from "./validate.ts";
import { entries, writeChain, writeSavepoint } from "./_test_util.ts";

const KEYS = LONG ? 1000 : 300;
const MODES: CrashMode[] = ["fail", "kill", "torn"];

const V1: StateLayout = {
  kind: "value",
  keyType: "string",
  value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int32" }, { name: "debug", type: "utf8" }] } },
};
const CHAIN = defineMigrations({
  "counter/counts": [
    addField("label", "dictionary", (v) => ((v as { count: number }).count % 2 ? "odd" : "even")),
    dropField("debug"),
    widenType("count", "int64"),
    renameField("count", "total"),
  ],
});

let env: Awaited<ReturnType<typeof crashBackends>>;
before(async () => {
  env = await crashBackends();
});
after(async () => {
  await env?.stop();
});

/** A checkpoint chain, a savepoint and a v1 savepoint under one root. */
async function setup(root: Storage): Promise<void> {
  const all = [...entries(KEYS)];
  await writeChain(root, [
    { set: all },
    { set: all.slice(0, KEYS >> 3).map(([k, v]) => [k, { ...v, count: v.count + 1n }]), del: [`k${KEYS - 1}`] },
    { set: [[`new`, { count: 7n, label: "n" }]], del: [`k${KEYS - 2}`] },
  ]);
  await writeSavepoint(subStorage(root, "savepoints/sp-1"), entries(KEYS), { offsets: [[{ p: 1 }], [{ p: 2 }], [{ p: 3 }]] });
  const v1 = new Map<string, { count: number; debug: string }>();
  for (let i = 0; i < KEYS; i++) v1.set(`u${i}`, { count: i * 3, debug: `d${i}` });
  await writeSavepoint(subStorage(root, "savepoints/v1"), v1, { layout: V1, offsets: [[{ p: 1 }], [{ p: 2 }]] });
}

interface Tool {
  name: string;
  run(root: Storage, dst: Storage): Promise<unknown>;
}

const TOOLS: Tool[] = [
  {
    name: "compact (checkpoint chain → savepoint)",
    run: async (root, dst) => compact(await openSnapshot(root, checkpointDirName(Math.max(...(await committedCheckpoints(root))))), dst, { maxChunkRows: 97 }),
  },
  { name: "rekey (parallelism 4 → 3: slicing)", run: async (root, dst) => rekey(await openSnapshot(root, "savepoints/sp-1"), dst, { parallelism: 3 }) },
  { name: "rekey (maxParallelism 128 → 256: re-hash)", run: async (root, dst) => rekey(await openSnapshot(root, "savepoints/sp-1"), dst, { maxParallelism: 256, parallelism: 2, maxChunkRows: 113 }) },
  { name: "migrate (schema v1 → v5)", run: async (root, dst) => migrate(await openSnapshot(root, "savepoints/v1"), dst, CHAIN, { maxChunkRows: 101 }) },
];

const DST = "savepoints/out";

async function crashTool(tool: Tool, backend: CrashBackend, sample: number): Promise<void> {
  // The clean result, and the number of storage operations on this backend.
  const reference = new MemoryStorage();
  await setup(reference);
  await tool.run(reference, subStorage(reference, DST));
  const want = await stateText(reference, DST);
  const probeRoot = await backend.root("tool-probe");
  await setup(probeRoot.storage);
  const probe = new CrashStorage(probeRoot.storage);
  await tool.run(probeRoot.storage, subStorage(probe, DST));
  const n = probe.operations;
  await probeRoot.close();
  const rnd = prng(SEED ^ n);
  const ks = Array.from({ length: n }, (_, i) => i + 1).filter((k) => sample >= n || k === n || rnd() < sample / n);
  const figures = { kind: "crash", operation: tool.name, backend: backend.name, operations: n, points: 0, intact: 0, committedAnyway: 0, validated: 0, invisibleDebris: 0, modes: MODES };
  for (const mode of MODES) {
    for (const k of ks) {
      const where = `${tool.name} on ${backend.name}, ${mode} at operation ${k}/${n}`;
      const root = await backend.root(`tool-${mode}-${k}`);
      try {
        await setup(root.storage);
        const before = await snapshotFacts(root.storage);
        const crashing = new CrashStorage(root.storage, k, mode, root.debris);
        await runCrashing(() => tool.run(root.storage, subStorage(crashing, DST)), `${where} (${crashing.log[k - 1] ?? "?"})`);
        // Sources intact and valid.
        const now = await snapshotFacts(root.storage);
        assert.deepEqual(now.checkpoints, before.checkpoints, `${where}: a source checkpoint changed`);
        for (const [id, text] of before.savepoints) assert.equal(now.savepoints.get(id), text, `${where}: source savepoint ${id} changed`);
        for (const sp of ["sp-1", "v1"]) assert.deepEqual(await validate(await openSnapshot(root.storage, `savepoints/${sp}`)), [], `${where}: source ${sp} invalid`);
        // The destination: absent, or complete and equal to the clean run's, and valid.
        if (now.savepoints.has("out")) {
          figures.committedAnyway++;
          assert.equal(now.savepoints.get("out"), want, `${where}: a committed but different destination`);
          assert.deepEqual(await validate(await openSnapshot(root.storage, DST)), [], `${where}: the destination is invalid`);
        }
        // GC frees the debris; running the tool again completes it.
        await gc(root.storage, { graceMs: 0 });
        const left = (await allPaths(root.storage)).filter((p) => p.startsWith(DST + "/"));
        if (!now.savepoints.has("out")) assert.deepEqual(left, [], `${where}: debris of the destination after gc`);
        figures.invisibleDebris += await root.invisibleDebris();
        await root.sweepInvisible();
        if (!now.savepoints.has("out")) await tool.run(root.storage, subStorage(root.storage, DST));
        assert.equal(await stateText(root.storage, DST), want, `${where}: the re-run differs`);
        assert.deepEqual(await validate(await openSnapshot(root.storage, DST)), [], `${where}: the re-run is invalid`);
        figures.validated++;
        figures.points++;
        figures.intact++;
      } finally {
        await root.close();
      }
    }
  }
  recordFigure(figures);
}

for (const tool of TOOLS) {
  test(`${tool.name}: a crash at every storage operation of its destination leaves the sources intact and valid, and no half savepoint`, async () => {
    await crashTool(tool, env.backends[0], Infinity);
    await crashTool(tool, env.backends[1], longOr(12, Infinity));
    await crashTool(tool, env.backends[2], longOr(8, Infinity));
  });
}
