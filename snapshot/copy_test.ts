import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStorage } from "../backends/open.ts";
import { S3Storage } from "../backends/s3.ts";
import { subStorage } from "../backends/sub.ts";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import { AlreadyExistsError, ChecksumMismatchError } from "../format/errors.ts";
import type { ObjectInfo, Storage } from "../backends/storage.ts";
import { copySnapshot } from "./copy.ts";
import { openSnapshot, readState } from "./read.ts";
import { writeCheckpoint } from "./_test_util.ts";

let server: S3TestServer;
let dir: string;
before(async () => {
  server = await startS3Server();
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-copy-"));
});
after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function files(s: Storage): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const infos: ObjectInfo[] = [];
  for await (const o of s.list("")) infos.push(o);
  for (const o of infos) out.set(o.path, await s.get(o.path));
  return out;
}

const v = (count: number) => ({ count: BigInt(count), label: "x" });

test("copySnapshot() turns a checkpoint into a self-contained copy and moves it fs → S3 → fs byte for byte", async () => {
  const root = await openStorage(join(dir, "ckpt"));
  const c1 = await writeCheckpoint(root, 1, Array.from({ length: 500 }, (_, i) => [`k${i}`, v(i)]), [], true);
  await writeCheckpoint(root, 2, [["k1", v(-1)], ["k2", undefined]], c1, false);
  const expected = await readState(await openSnapshot(join(dir, "ckpt")), "op", "s");

  const firstCopy = join(dir, "copy-1");
  const r1 = await copySnapshot(join(dir, "ckpt", "chk-000002"), firstCopy);
  assert.equal(r1.chunks, 2);
  const local = await openSnapshot(firstCopy);
  assert.equal(local.manifest.chunkRoot, ".");

  const s3 = subStorage(new S3Storage(server.bucket, "", server.storageOptions), "backup/sp-1");
  await copySnapshot(firstCopy, s3);
  const back = join(dir, "copy-2");
  await copySnapshot(await openSnapshot(s3), back);

  const a = await files(await openStorage(firstCopy));
  const b = await files(await openStorage(back));
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [p, bytes] of a) assert.deepEqual(b.get(p), bytes, p);
  const rows = await readState(await openSnapshot(back), "op", "s");
  assert.deepEqual(new Map(rows.keys!.map((k, i) => [k, rows.values[i]])), new Map(expected.keys!.map((k, i) => [k, expected.values[i]])));
  await s3.close();
});

test("copySnapshot() refuses to overwrite a snapshot and refuses a corrupt source without committing", async () => {
  const src = join(dir, "src");
  const root = await openStorage(src);
  const [ref] = await writeCheckpoint(root, 1, [["a", v(1)]], [], true);
  const dst = join(dir, "dst");
  await copySnapshot(join(src, "chk-000001"), dst);
  await assert.rejects(copySnapshot(join(src, "chk-000001"), dst), AlreadyExistsError);

  const bytes = await root.get(ref.path);
  bytes[bytes.length - 3] ^= 0xff;
  await root.put(ref.path, bytes);
  const dst2 = join(dir, "dst2");
  await assert.rejects(copySnapshot(join(src, "chk-000001"), dst2), ChecksumMismatchError);
  assert.equal(await (await openStorage(dst2)).exists("_manifest.json"), false);
});
