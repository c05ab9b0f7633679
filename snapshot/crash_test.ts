// Crash points of the snapshot layer (issue 7): an incremental checkpoint commit followed by retention, a
// savepoint copied from a checkpoint, retention alone, and GC — on memory, filesystem and S3 (s3rver).
// For each operation: one clean run counts its N mutating storage operations; then for every k in 1..N and
// every mode (fail, kill, torn) the operation crashes at k, and the root must be intact: every snapshot
// committed before still reads the same (or was legitimately retired by retention once its successor
// existed), a new snapshot is either absent or complete and equal to the clean run's, GC afterwards leaves
// no visible debris, and a restarted writer completes the operation.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Storage } from "../backends/storage.ts";
import { subStorage } from "../backends/sub.ts";
import { MemoryStorage } from "../backends/memory.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import type { ChunkRef, Manifest } from "../format/manifest.ts";
import { LONG, longOr, recordFigure } from "../format/_test_fuzz.ts";
import { copySnapshot } from "./copy.ts";
import { checkpointDirName } from "./layout.ts";
import { committedCheckpoints, openSnapshot } from "./read.ts";
import { applyRetention, gc } from "./retention.ts";
import { commitManifest, writeChunk } from "./write.ts";
import { LAYOUT, rowsOf, type Value } from "./_test_util.ts";
import {
  unreferenced,
  assertIntact,
  type CrashBackend,
  crashBackends,
  type CrashMode,
  type CrashRoot,
  CrashStorage,
  runCrashing,
  snapshotFacts,
  type SnapshotFacts,
} from "./_test_crash.ts";

const MAXP = 128;
const RANGES = [{ start: 0, end: 63 }, { start: 64, end: 127 }];
const KEYS = LONG ? 400 : 24;
const MODES: CrashMode[] = ["fail", "kill", "torn"];

let env: Awaited<ReturnType<typeof crashBackends>>;
before(async () => {
  env = await crashBackends();
});
after(async () => {
  await env?.stop();
});

// ---- a small incremental workload: two keyed operators in two key-group ranges, one operator state ----

/** The changes checkpoint `id` makes: a few upserts and one delete (undefined). */
function changes(id: number): [string, Value | undefined][] {
  const out: [string, Value | undefined][] = [];
  for (let j = 0; j < Math.max(3, KEYS >> 2); j++) out.push([`k${(id * 7 + j * 5) % KEYS}`, { count: BigInt(id * 1000 + j), label: `c${id}` }]);
  out.push([`k${(id * 11) % KEYS}`, undefined]);
  const seen = new Map(out);
  return [...seen];
}

/** The full state after checkpoint `id`. */
function modelAt(id: number): Map<string, Value> {
  const m = new Map<string, Value>();
  for (let k = 0; k < KEYS; k++) m.set(`k${k}`, { count: BigInt(k), label: "init" });
  for (let i = 2; i <= id; i++) for (const [k, v] of changes(i)) v ? m.set(k, v) : m.delete(k);
  return m;
}

type Chains = Record<string, ChunkRef[]>;

function manifestFor(id: number, chains: Chains, opRef: ChunkRef): Manifest {
  return {
    format: "arrowpoint", formatVersion: 1, kind: "checkpoint", id: checkpointDirName(id), checkpointId: id,
    createdAt: new Date(0).toISOString(), writer: { name: "arrowpoint", version: "test" }, job: "crash", maxParallelism: MAXP,
    hash: "flink-murmur-java-hashcode", chunkRoot: "..",
    operators: [
      ...["a", "b"].map((uid) => ({ uid, parallelism: 2, states: [{ name: "s", keyed: true, schemaVersion: 1, ...LAYOUT, chunks: chains[uid] }] })),
      { uid: "src", parallelism: 1, states: [{ name: "offsets", kind: "operator-list" as const, keyed: false, redistribution: "split" as const, value: { encoding: "msgpack" as const }, schemaVersion: 1, chunks: [opRef] }] },
    ],
  };
}

/** Writes checkpoint `id` (a base at 1 and every 4th, else a delta) on top of `chains`; returns the new chains. */
async function writeCheckpoint(storage: Storage, id: number, chains: Chains): Promise<Chains> {
  const base = id === 1 || id % 4 === 0;
  const entries: [string, Value | undefined][] = base ? [...modelAt(id)] : changes(id);
  const next: Chains = {};
  for (const uid of ["a", "b"]) {
    const refs: ChunkRef[] = [];
    for (const r of RANGES) {
      const mine = entries.filter(([k]) => {
        const kg = assignKeyGroup(k, MAXP);
        return kg >= r.start && kg <= r.end;
      });
      const chunk = encodeChunk(LAYOUT, rowsOf(mine, MAXP, !base));
      const ref = await writeChunk(storage, `shared/${uid}/${checkpointDirName(id)}-kg-${r.start}-${r.end}.arrow`, chunk, { type: base ? "base" : "delta", order: id });
      ref.keyGroupRange = { ...r };
      refs.push(ref);
    }
    next[uid] = base ? refs : [...chains[uid], ...refs];
  }
  const opChunk = encodeChunk({ kind: "operator-list", value: { encoding: "msgpack" } }, { length: 1, values: [{ offset: id * 10 }] });
  const opRef = await writeChunk(storage, `${checkpointDirName(id)}/src/offsets-0.arrow`, opChunk, { type: "base", order: id, subtask: 0 });
  await commitManifest(storage, checkpointDirName(id), manifestFor(id, next, opRef));
  return next;
}

/** The chains of the latest committed checkpoint (what a restarted writer continues from). */
async function chainsOfLatest(storage: Storage): Promise<{ id: number; chains: Chains }> {
  const ids = await committedCheckpoints(storage);
  const id = ids[ids.length - 1];
  const snap = await openSnapshot(storage, checkpointDirName(id));
  const chains: Chains = {};
  for (const op of snap.manifest.operators) if (op.uid !== "src") chains[op.uid] = op.states[0].chunks;
  return { id, chains };
}


// ---- the operations -------------------------------------------------------------------------------------

interface Operation {
  name: string;
  /** Builds the state before the operation on a fresh root. */
  setup(storage: Storage): Promise<void>;
  /** The operation, through the crashing storage. */
  run(storage: Storage): Promise<void>;
  /** Which earlier checkpoints it may retire, given what is committed after the crash. */
  mayDelete?: (id: number, now: SnapshotFacts) => boolean;
  /** A restarted process finishing the job. */
  resume(storage: Storage): Promise<void>;
  /** Which checkpoints the resume may retire (retention keeps the newest ones). */
  resumeMayDelete?: (id: number, now: SnapshotFacts) => boolean;
}

async function setupChain(storage: Storage, upTo: number, retain?: number): Promise<void> {
  let chains: Chains = {};
  for (let id = 1; id <= upTo; id++) {
    chains = await writeCheckpoint(storage, id, chains);
    if (retain) await applyRetention(storage, { retain });
  }
}

const NEW = 6;
const OPERATIONS: Operation[] = [
  {
    name: "checkpoint (incremental commit + retention)",
    setup: (s) => setupChain(s, NEW - 1, 2),
    async run(s) {
      const { chains } = await chainsOfLatest(s);
      await writeCheckpoint(s, NEW, chains);
      await applyRetention(s, { retain: 2 });
    },
    mayDelete: (id, now) => now.checkpoints.has(NEW) && id <= NEW - 2,
    resumeMayDelete: (id, now) => id <= Math.max(...now.checkpoints.keys()) - 2,
    async resume(s) {
      const { id, chains } = await chainsOfLatest(s);
      await writeCheckpoint(s, id + 1, chains);
      await applyRetention(s, { retain: 2 });
    },
  },
  {
    name: "savepoint (copy of the latest checkpoint)",
    setup: (s) => setupChain(s, 4, 2),
    async run(s) {
      await copySnapshot(await openSnapshot(s, checkpointDirName(4)), subStorage(s, "savepoints/sp-1"));
    },
    async resume(s) {
      if (!(await s.exists("savepoints/sp-1/_manifest.json"))) await copySnapshot(await openSnapshot(s, checkpointDirName(4)), subStorage(s, "savepoints/sp-1"));
    },
  },
  {
    name: "retention",
    setup: (s) => setupChain(s, 5),
    run: async (s) => void (await applyRetention(s, { retain: 1 })),
    mayDelete: (id) => id < 5,
    resumeMayDelete: (id) => id < 5,
    resume: async (s) => void (await applyRetention(s, { retain: 1 })),
  },
  {
    name: "gc",
    async setup(s) {
      await setupChain(s, 4, 2);
      await s.put("shared/a/orphan.arrow", new Uint8Array(100));
      await s.put("chk-000009/a/half.arrow", new Uint8Array(50));
      await s.put("savepoints/sp-broken/a/s/kg-0-127.arrow", new Uint8Array(7));
      await copySnapshot(await openSnapshot(s, checkpointDirName(4)), subStorage(s, "savepoints/sp-ok"));
    },
    run: async (s) => void (await gc(s, { graceMs: 0 })),
    resume: async (s) => void (await gc(s, { graceMs: 0 })),
  },
];

/** Clean facts after the operation and after a resume, computed once on memory. */
async function cleanFacts(op: Operation): Promise<SnapshotFacts> {
  const s = new MemoryStorage();
  await op.setup(s);
  await op.run(s);
  const after1 = await snapshotFacts(s);
  await op.resume(s);
  const after2 = await snapshotFacts(s);
  for (const [id, t] of after2.checkpoints) after1.checkpoints.set(id, t);
  for (const [id, t] of after2.savepoints) after1.savepoints.set(id, t);
  return after1;
}

async function crashPoints(op: Operation, backend: CrashBackend): Promise<void> {
  const clean = await cleanFacts(op);
  // Count N on this backend.
  const probeRoot = await backend.root("probe");
  await op.setup(probeRoot.storage);
  const probe = new CrashStorage(probeRoot.storage);
  await op.run(probe);
  const n = probe.operations;
  await probeRoot.close();
  assert.ok(n > 0, `${op.name}: no mutating operations`);
  const figures = { operation: op.name, backend: backend.name, operations: n, points: 0, intact: 0, completedAnyway: 0, invisibleDebris: 0, modes: MODES };
  const repeats = longOr(1, 3);
  for (let rep = 0; rep < repeats; rep++) {
    for (const mode of MODES) {
      for (let k = 1; k <= n; k++) {
        const where = `${op.name} on ${backend.name}, ${mode} at operation ${k}/${n}`;
        const root: CrashRoot = await backend.root(`${mode}-${k}`);
        try {
          await op.setup(root.storage);
          const before = await snapshotFacts(root.storage);
          const crashing = new CrashStorage(root.storage, k, mode, root.debris);
          const outcome = await runCrashing(() => op.run(crashing), `${where} (${crashing.log[k - 1] ?? "?"})`);
          if (outcome === "completed") figures.completedAnyway++;
          // Intact: what was committed is unchanged, what is new is complete.
          const now = await snapshotFacts(root.storage);
          assertIntact(before, now, clean, where, op.mayDelete);
          // A restart: finish the operation, then GC frees every visible piece of debris.
          await op.resume(root.storage);
          const resumed = await snapshotFacts(root.storage);
          assertIntact(now, resumed, clean, `${where}, after resume`, op.resumeMayDelete);
          await gc(root.storage, { graceMs: 0 });
          assert.deepEqual(await unreferenced(root.storage), [], `${where}: visible debris after gc`);
          assert.deepEqual(await snapshotFacts(root.storage), resumed, `${where}: gc changed a committed snapshot`);
          figures.invisibleDebris += await root.invisibleDebris();
          await root.sweepInvisible();
          figures.points++;
          figures.intact++;
        } finally {
          await root.close();
        }
      }
    }
  }
  recordFigure({ kind: "crash", ...figures });
}

for (const op of OPERATIONS) {
  test(`${op.name}: a crash at every storage operation, on memory, filesystem and S3, leaves every snapshot intact`, async () => {
    for (const backend of env.backends) await crashPoints(op, backend);
  });
}
