import { test } from "node:test";
import assert from "node:assert/strict";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { NotFoundError } from "../format/errors.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import { type Manifest, readManifest, writeManifest } from "../format/manifest.ts";
import { type Finding, validate } from "./validate.ts";
import { COUNTS, cnt, entries, writeChain, writeSavepoint } from "./_test_util.ts";

async function fresh(name: string): Promise<Storage> {
  clearMemoryStorage(name);
  const s = await openStorage(`memory:${name}`);
  await writeSavepoint(s, entries(500), { parallelism: 4, offsets: [[1], [2]] });
  return s;
}

async function editManifest(s: Storage, edit: (m: Manifest) => void): Promise<void> {
  const m = readManifest(await s.get("_manifest.json"));
  edit(m);
  await s.put("_manifest.json", writeManifest(m));
}

function only(findings: Finding[], code: string): Finding {
  const f = findings.filter((x) => x.code === code);
  assert.equal(f.length, 1, `one ${code} finding in ${JSON.stringify(findings)}`);
  return f[0];
}

test("validate() finds nothing wrong with a good savepoint or a checkpoint chain", async () => {
  await fresh("val-good");
  assert.deepEqual(await validate("memory:val-good"), []);
  clearMemoryStorage("val-chain");
  await writeChain(await openStorage("memory:val-chain"), [{ set: [["a", cnt(1)], ["b", cnt(2)]] }, { set: [["c", cnt(3)]], del: ["a"] }]);
  assert.deepEqual(await validate("memory:val-chain"), []);
});

test("validate() names a flipped byte (checksum) and a missing chunk", async () => {
  const s = await fresh("val-flip");
  const m = readManifest(await s.get("_manifest.json"));
  const [c0, c1] = m.operators[0].states[0].chunks;
  const bytes = await s.get(c0.path);
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  await s.put(c0.path, bytes);
  await s.delete([c1.path]);
  const findings = await validate("memory:val-flip");
  const flipped = only(findings, "checksum-mismatch");
  assert.equal(flipped.path, c0.path);
  assert.equal(flipped.operator, "counter");
  assert.equal(flipped.state, "counts");
  assert.equal(only(findings, "chunk-missing").path, c1.path);
  assert.equal(findings.length, 2);
});

test("validate() names overlapping ranges and gaps", async () => {
  const s = await fresh("val-overlap");
  await editManifest(s, (m) => {
    const chunks = m.operators[0].states[0].chunks;
    chunks[1].keyGroupRange = { start: chunks[1].keyGroupRange!.start - 4, end: chunks[1].keyGroupRange!.end };
  });
  const f = only(await validate("memory:val-overlap"), "range-overlap");
  assert.match(f.message, /kg-0-31\.arrow \[0, 31\].*\[28, 63\]/);
  const g = await fresh("val-gap");
  await editManifest(g, (m) => {
    m.operators[0].states[0].chunks.splice(2, 1);
  });
  assert.match(only(await validate("memory:val-gap"), "range-gap").message, /key groups 64\.\.95/);
});

test("validate() names a key stored in the wrong key group", async () => {
  const s = await fresh("val-kg");
  const m = readManifest(await s.get("_manifest.json"));
  const ref = m.operators[0].states[0].chunks[0];
  // A key that hashes elsewhere, stored under key group 5 of chunk [0, 31].
  const stray = Array.from({ length: 100 }, (_, i) => `stray-${i}`).find((k) => assignKeyGroup(k, 128) > 40)!;
  const chunk = encodeChunk(COUNTS, { length: 2, keyGroups: [5, 5], keys: [stray, "ok"], values: [cnt(1), cnt(2)] });
  await s.put(ref.path, chunk.bytes);
  await editManifest(s, (mm) => {
    Object.assign(mm.operators[0].states[0].chunks[0], { rows: 2, bytes: chunk.bytes.length, checksum: chunk.checksum });
  });
  const findings = await validate("memory:val-kg");
  const f = only(findings, "wrong-key-group");
  assert.match(f.message, new RegExp(`key "${stray}" is stored in key group 5 but hashes to ${assignKeyGroup(stray, 128)}`));
  assert.equal(f.path, ref.path);
});

test("validate() names a chunk path escaping the snapshot, and a manifest that is not one", async () => {
  const s = await fresh("val-escape");
  const m = JSON.parse(new TextDecoder().decode(await s.get("_manifest.json")));
  delete m.checksum;
  m.operators[0].states[0].chunks[0].path = "../../etc/passwd";
  await s.put("_manifest.json", new TextEncoder().encode(JSON.stringify(m)));
  const f = only(await validate("memory:val-escape"), "path-escape");
  assert.match(f.message, /etc\/passwd/);
  await s.put("_manifest.json", new TextEncoder().encode("{ not json"));
  assert.equal(only(await validate("memory:val-escape"), "manifest-invalid").code, "manifest-invalid");
  await assert.rejects(validate("memory:val-nothing-here"), NotFoundError);
});

test("validate() names row-count and size mismatches against the manifest", async () => {
  const s = await fresh("val-count");
  await editManifest(s, (m) => {
    m.operators[0].states[0].chunks[3].rows += 1;
  });
  assert.match(only(await validate("memory:val-count"), "row-count-mismatch").message, /manifest records/);
  const t = await fresh("val-size");
  const ref = readManifest(await t.get("_manifest.json")).operators[0].states[0].chunks[2];
  await t.put(ref.path, (await t.get(ref.path)).subarray(0, 100));
  assert.equal(only(await validate("memory:val-size"), "size-mismatch").path, ref.path);
});
