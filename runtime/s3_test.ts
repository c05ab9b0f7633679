// The runtime against the S3 backend (s3rver on loopback, put-if-absent enforced): checkpoints to an
// s3:// root, a kill between data and manifest, a restore at another parallelism, a savepoint on S3.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { openStorage } from "../backends/open.ts";
import { type S3TestServer, startS3Server } from "../backends/_s3_test_server.ts";
import type { Storage } from "../backends/storage.ts";
import { openSnapshot, readState } from "../snapshot/read.ts";
import { JobFailedError } from "./errors.ts";
import { CollectingSink } from "./sinks.ts";
import type { Job, SnapshotInfo } from "./job.ts";
import { events, sessionJob, sorted, withHook } from "./_test_util.ts";

let server: S3TestServer;
let root: Storage;

before(async () => {
  server = await startS3Server();
  root = await openStorage(`s3://${server.bucket}/jobs/sessions`, { s3: server.storageOptions });
});

after(async () => {
  await root?.close();
  await server?.stop();
});

test("checkpoints on S3: killed between data and manifest, restored at another parallelism, exactly-once", async () => {
  const N = 1500;
  const clean = new CollectingSink<string>();
  await sessionJob({ source: events(N, 5), sink: clean, parallelism: 2 }).run();

  const sink = new CollectingSink<string>();
  let n = 0;
  let last = 0;
  const source = withHook(events(N, 5), (records) => {
    if (records - last >= 200 && a.status === "running") {
      last = records;
      a.triggerCheckpoint().catch(() => {});
    }
  });
  const a: Job = sessionJob({
    source,
    sink,
    parallelism: 3,
    storage: root,
    faults: { killAt: (p) => p.kind === "checkpoint" && p.stage === "acked" && ++n === 2 },
  });
  await assert.rejects(a.run(), JobFailedError);
  assert.ok(a.snapshots.length >= 1, "a checkpoint completed before the kill");
  // The killed checkpoint left chunks but no manifest: it does not exist for readers.
  const killed = a.snapshots[a.snapshots.length - 1].id + 1;
  assert.equal(await root.exists(`chk-${String(killed).padStart(6, "0")}/_manifest.json`), false);

  const spUri = `s3://${server.bucket}/savepoints/sessions-mid`;
  const spStorage = await openStorage(spUri, { s3: server.storageOptions });
  let savepoint: Promise<SnapshotInfo> | undefined;
  const resumed = withHook(events(N, 5), (records) => {
    if (!savepoint && records >= 100 && b.status === "running") {
      savepoint = b.savepoint(spStorage);
      savepoint.catch(() => {});
    }
  });
  const b: Job = sessionJob({ source: resumed, sink, parallelism: 5, storage: root, restore: { from: "latest" } });
  const result = await b.run();
  assert.equal(result.restore?.checkpointId, a.snapshots[a.snapshots.length - 1].id);
  assert.deepEqual(sorted(sink.committed), sorted(clean.committed), "a running savepoint does not break exactly-once");

  assert.ok(savepoint, "a savepoint was taken while running");
  const sp = await savepoint!;
  assert.equal(sp.location, spStorage.uri);
  const snap = await openSnapshot(spStorage);
  assert.equal(snap.manifest.kind, "savepoint");
  assert.equal(snap.manifest.chunkRoot, ".");
  for (const op of snap.manifest.operators) for (const st of op.states) for (const c of st.chunks) assert.ok(await spStorage.exists(c.path), `${c.path} is inside the savepoint`);
  assert.ok((await readState(snap, "sessions", "count")).length > 0);
  await spStorage.close();
});
