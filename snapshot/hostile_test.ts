// Hostile snapshots (issue 7, security): paths escaping the snapshot, manifests naming other buckets or
// roots, symlinks leading out of a filesystem snapshot (to a sentinel folder and to /etc/passwd), odd S3
// keys, oversized manifests and chunks, chunks that contradict their manifest. Every one is refused with a
// named error, and nothing outside the snapshot root is read or written (a sentinel folder is watched).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { openStorage } from "../backends/open.ts";
import { S3Storage } from "../backends/s3.ts";
import type { Storage } from "../backends/storage.ts";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import { checksumOf } from "../format/checksum.ts";
import { encodeChunk } from "../format/encode_chunk.ts";
import { ArrowpointError, ManifestSchemaError, PathEscapeError, SnapshotFormatError } from "../format/errors.ts";
import { assignKeyGroup } from "../format/key_group.ts";
import { type Manifest, MAX_MANIFEST_BYTES, writeManifest } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { copySnapshot } from "./copy.ts";
import { openSnapshot, readState } from "./read.ts";
import { gc } from "./retention.ts";
import { commitManifest, writeChunk } from "./write.ts";
import { savepointChunkPath } from "./layout.ts";
import { externalBytes } from "../format/_test_fuzz.ts";

let dir: string;
let sentinel: string;
let server: S3TestServer;
let sentinelBefore: Map<string, string>;

/**
 * Every file and folder under `root`, by lstat only (size, mode, inode, mtime, ctime, atime): a write, a
 * rename over, a delete or a new file changes it. Files start with atime 1 s after the epoch, older than
 * their mtime, so on a relatime or strictatime mount any read of them moves their atime too.
 */
async function fingerprint(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = await fsp.lstat(p);
      out.set(p, `${e.isDirectory() ? "dir" : e.isFile() ? "file" : "other"} ${st.size} ${st.mode} ${st.ino} ${st.mtimeMs} ${st.ctimeMs} ${e.isFile() ? st.atimeMs : ""}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out;
}

let atimeWorks = false;

before(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), "arrowpoint-hostile-"));
  sentinel = join(dir, "sentinel");
  await fsp.mkdir(join(sentinel, "inner", "s"), { recursive: true });
  // inner/ mirrors a state folder, so a link op → inner resolves to existing files outside.
  const files = [join(sentinel, "secret.txt"), join(sentinel, "inner", "s", "kg-0-127.arrow"), join(dir, "canary")];
  await fsp.writeFile(files[0], "do not read me\n");
  await fsp.writeFile(files[1], new Uint8Array(64));
  await fsp.writeFile(files[2], "canary");
  const now = new Date();
  for (const f of files) await fsp.utimes(f, new Date(1000), now);
  await fsp.readFile(files[2]);
  atimeWorks = (await fsp.stat(files[2])).atimeMs > 1000; // this mount records reads
  sentinelBefore = await fingerprint(sentinel);
  server = await startS3Server();
});

after(async () => {
  await server?.stop();
  // Nothing outside the snapshot roots was written, created, deleted (or, where the mount records reads, read).
  const now = await fingerprint(sentinel);
  const changed = [...new Set([...now.keys(), ...sentinelBefore.keys()])].filter((k) => now.get(k) !== sentinelBefore.get(k));
  await fsp.rm(dir, { recursive: true, force: true });
  assert.deepEqual(changed.map((k) => `${k}: ${sentinelBefore.get(k)} → ${now.get(k)}`), [], "the sentinel folder outside every snapshot changed");
  if (!atimeWorks) console.log("# note: this mount does not record reads (noatime); the sentinel check covers writes only");
});

const LAYOUT: StateLayout = { kind: "value", keyType: "string", value: { encoding: "arrow", type: "int64" } };

function rowsOf(keys: string[], maxP = 128) {
  const sorted = keys.map((k) => ({ k, kg: assignKeyGroup(k, maxP) })).sort((a, b) => a.kg - b.kg);
  return { length: sorted.length, keyGroups: sorted.map((r) => r.kg), keys: sorted.map((r) => r.k), values: sorted.map((_, i) => BigInt(i)) };
}

function manifest(chunks: Manifest["operators"][number]["states"][number]["chunks"], layout: StateLayout = LAYOUT): Manifest {
  return {
    format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: "2026-11-25T00:00:00.000Z",
    writer: { name: "arrowpoint", version: "test" }, job: "hostile", maxParallelism: 128, hash: "flink-murmur-java-hashcode", chunkRoot: ".",
    operators: [{ uid: "op", parallelism: 1, states: [{ name: "s", keyed: layout.kind !== "operator-list", schemaVersion: 1, ...layout, ...(layout.kind === "operator-list" ? { redistribution: "split" as const } : {}), chunks }] }],
  };
}

/** Writes a valid one-chunk savepoint at `storage`'s root; returns its chunk ref. */
async function savepoint(storage: Storage, keys = ["a", "b", "c"]) {
  const chunk = encodeChunk(LAYOUT, rowsOf(keys));
  const path = savepointChunkPath("op", "s", { start: 0, end: 127 });
  const ref = await writeChunk(storage, path, chunk, { type: "base", order: 0 });
  ref.keyGroupRange = { start: 0, end: 127 };
  await commitManifest(storage, "", manifest([ref]));
  return ref;
}

/** Manifest bytes as a hostile writer makes them: any JSON, with a correct checksum. */
function rawManifest(doc: Record<string, unknown>): Uint8Array {
  const { checksum: _drop, ...body } = doc;
  const text = JSON.stringify(body);
  return new TextEncoder().encode(text.slice(0, -1) + `,"checksum":"${checksumOf(new TextEncoder().encode(text))}"}`);
}

const isNamed = (cls: new (...a: never[]) => ArrowpointError) => (e: unknown) => {
  assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  return true;
};

test("manifests naming paths outside the snapshot (.., absolute, encoded, backslash, NUL, other buckets) are refused", async () => {
  const root = join(dir, "escape");
  const storage = await openStorage(root);
  const ref = await savepoint(storage);
  const good = JSON.parse(new TextDecoder().decode(await storage.get("_manifest.json")));
  const paths = [
    "../sentinel/secret.txt", "../../etc/passwd", "/etc/passwd", "op/../../sentinel/secret.txt", "%2e%2e/sentinel/secret.txt",
    "..%2fsentinel", "op\\..\\..\\sentinel\\secret.txt", "op/s/kg-0-127.arrow\u0000.txt", "s3://other-bucket/x.arrow",
    "file:///etc/passwd", "memory:other/x", "./op/s/kg-0-127.arrow", "op//s/kg-0-127.arrow", "~/../x", ".hidden/x", "op/s/",
    "C:\\Windows\\x", "\\\\server\\share\\x", "op/s/kg-0-127.arrow/..", "a".repeat(2000),
  ];
  for (const p of paths) {
    const doc = structuredClone(good);
    doc.operators[0].states[0].chunks[0] = { ...ref, path: p };
    await storage.put("_manifest.json", rawManifest(doc));
    await assert.rejects(openSnapshot(root), isNamed(ManifestSchemaError), p);
  }
  // A savepoint may not reach its parent folder at all.
  const doc = structuredClone(good);
  doc.chunkRoot = "..";
  await storage.put("_manifest.json", rawManifest(doc));
  await assert.rejects(openSnapshot(root), isNamed(ManifestSchemaError));
});

test("symlinks in a filesystem snapshot that lead outside it (a chunk → /etc/passwd, a chunk → sentinel, a folder → sentinel) are refused on every operation", async () => {
  const root = join(dir, "links");
  const storage = await openStorage(root);
  const ref = await savepoint(storage);
  const chunkFile = join(root, ...ref.path.split("/"));
  const manifestBytes = await storage.get("_manifest.json");
  const targets = [join(sentinel, "secret.txt"), ...(existsSync("/etc/passwd") ? ["/etc/passwd"] : [])];
  for (const target of targets) {
    await fsp.rm(chunkFile);
    await fsp.symlink(target, chunkFile);
    const snap = await openSnapshot(root);
    await assert.rejects(readState(snap, "op", "s"), isNamed(PathEscapeError), target);
    await assert.rejects(storage.get(ref.path), isNamed(PathEscapeError));
    await assert.rejects(storage.getRange(ref.path, 0, 4), isNamed(PathEscapeError));
    const copyTo = join(dir, `copy-of-links-${targets.indexOf(target)}`);
    await assert.rejects(copySnapshot(root, copyTo), isNamed(PathEscapeError));
    assert.equal(existsSync(join(copyTo, "_manifest.json")), false, "no manifest committed by a failed copy");
    const listed: string[] = [];
    for await (const o of storage.list("")) listed.push(o.path);
    assert.ok(!listed.includes(ref.path), "an outside link is not listed");
    await assert.rejects(storage.exists(ref.path), isNamed(PathEscapeError));
    // A write to the link's path replaces the link itself (rename over it), never writes through it.
    await storage.put(ref.path, new Uint8Array(1));
    assert.ok((await fsp.lstat(chunkFile)).isFile());
    await fsp.rm(chunkFile);
    await fsp.symlink(target, chunkFile);
    await storage.delete([ref.path]);
    assert.equal(existsSync(chunkFile), false, "delete removes the link, not its target");
    assert.ok(existsSync(target));
    await fsp.mkdir(dirname(chunkFile), { recursive: true }); // delete removed the emptied folders
    await fsp.symlink(target, chunkFile);
  }
  // The whole state folder is a symlink into the sentinel.
  await fsp.rm(join(root, "op"), { recursive: true, force: true });
  await fsp.symlink(join(sentinel, "inner"), join(root, "op"));
  await assert.rejects(readState(await openSnapshot(root), "op", "s"), isNamed(PathEscapeError));
  await assert.rejects(storage.put("op/s/new.arrow", new Uint8Array(3)), isNamed(PathEscapeError));
  await assert.rejects(storage.putIfAbsent("op/new.arrow", new Uint8Array(3)), isNamed(PathEscapeError));
  await assert.rejects(storage.delete(["op/x.arrow"]), isNamed(PathEscapeError));
  // gc of a checkpoint root whose folders link outside deletes nothing outside.
  const ckpt = join(dir, "links-root");
  await fsp.mkdir(ckpt, { recursive: true });
  await fsp.symlink(sentinel, join(ckpt, "shared"));
  await fsp.symlink(join(sentinel, "secret.txt"), join(ckpt, "chk-000009"));
  const report = await gc(await openStorage(ckpt), { graceMs: 0 });
  assert.deepEqual(report.deleted, []);
  // The manifest itself as a link to an outside file.
  await fsp.rm(join(root, "_manifest.json"));
  await fsp.writeFile(join(sentinel, "..", "outside-manifest.json"), manifestBytes);
  await fsp.symlink(join(sentinel, "..", "outside-manifest.json"), join(root, "_manifest.json"));
  await assert.rejects(openSnapshot(root), isNamed(PathEscapeError));
});

test("S3 keys with spaces, unicode, '+' and '%' round-trip and never alias one another", async () => {
  const s3 = new S3Storage(server.bucket, "", server.storageOptions);
  const prefixes = ["odd keys/sp 1", "odd keys/sp+1", "odd keys/sp%201", "odd keys/sp%2B1", "odd keys/ünï😀/sp-1", "odd keys/a&b=c?d#e"];
  try {
    for (const [i, prefix] of prefixes.entries()) {
      const uri = `s3://${server.bucket}/${prefix}`;
      const storage = new S3Storage(server.bucket, prefix, server.storageOptions);
      await savepoint(storage, [`key-${i}`, "shared key", "ü+%"]);
      await storage.close();
      const snap = await openSnapshot((await import("../backends/sub.ts")).subStorage(s3, prefix));
      const rows = await readState(snap, "op", "s");
      assert.deepEqual(new Set(rows.keys), new Set([`key-${i}`, "shared key", "ü+%"]), uri);
    }
    const all: string[] = [];
    for await (const o of s3.list("odd keys/")) all.push(o.path);
    assert.equal(all.length, prefixes.length * 2, all.join("\n"));
    for (const p of prefixes) assert.equal(all.filter((k) => k.startsWith(p + "/")).length, 2, p);
  } finally {
    await s3.close();
  }
});

test("an oversized manifest is refused without reading it whole; an oversized chunk without reading past its recorded size", async () => {
  const root = join(dir, "oversized");
  const storage = await openStorage(root);
  const ref = await savepoint(storage);
  // A sparse 300 MiB manifest (takes no disk space).
  const huge = join(root, "_manifest.json");
  await fsp.rm(huge);
  const fh = await fsp.open(huge, "w");
  await fh.truncate(MAX_MANIFEST_BYTES + 300 * 1024 * 1024);
  await fh.close();
  let before = externalBytes();
  await assert.rejects(openSnapshot(root), isNamed(ManifestSchemaError));
  let grew = externalBytes() - before;
  assert.ok(grew <= MAX_MANIFEST_BYTES + (8 << 20), `reading an oversized manifest allocated ${grew} bytes`);
  await fsp.rm(huge);
  await commitManifest(storage, "", manifest([ref]));
  // The chunk grows to 300 MiB (sparse) while the manifest records its real size.
  const chunkFile = join(root, ...ref.path.split("/"));
  const fh2 = await fsp.open(chunkFile, "r+");
  await fh2.truncate(300 * 1024 * 1024);
  await fh2.close();
  before = externalBytes();
  await assert.rejects(readState(await openSnapshot(root), "op", "s"), isNamed(SnapshotFormatError));
  grew = externalBytes() - before;
  assert.ok(grew <= ref.bytes + (8 << 20), `reading an oversized chunk allocated ${grew} bytes`);
});

test("chunks that contradict their manifest (layout, row count, key-group range) are named errors, never bare TypeErrors", async () => {
  const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
  const good = encodeChunk(LAYOUT, rowsOf(keys));
  const variants: [string, Uint8Array, Partial<{ rows: number; keyGroupRange: { start: number; end: number } }>][] = [
    ["operator-state chunk in a keyed state", encodeChunk({ kind: "operator-list", value: { encoding: "msgpack" } }, { length: 2, values: [1, 2] }).bytes, {}],
    ["int64 keys for a string-keyed state", encodeChunk({ ...LAYOUT, keyType: "int64" }, { length: 1, keyGroups: [5], keys: [5n], values: [1n] }).bytes, {}],
    ["a delta chunk recorded as a base", encodeChunk(LAYOUT, { ...rowsOf(["a"]), ops: Uint8Array.of(1) }).bytes, {}],
    ["rows recorded as 2^53-1", good.bytes, { rows: 2 ** 53 - 1 }],
    ["rows recorded as 1", good.bytes, { rows: 1 }],
    ["a range that excludes its rows", good.bytes, { keyGroupRange: { start: 0, end: 3 } }],
  ];
  let n = 0;
  for (const [what, bytes, over] of variants) {
    for (const range of [undefined, { start: 0, end: 63 }]) {
      const root = join(dir, `contradict-${n++}`);
      const storage = await openStorage(root);
      const path = "op/s/kg-0-127.arrow";
      await storage.put(path, bytes);
      const ref = { path, keyGroupRange: { start: 0, end: 127 }, rows: 40, bytes: bytes.length, checksum: checksumOf(bytes), compression: "none" as const, type: "base" as const, order: 0, ...over };
      await commitManifest(storage, "", manifest([ref]));
      const read = readState(await openSnapshot(root), "op", "s", range);
      if (over.rows !== undefined && range) {
        // A range read decodes only some rows: a row-count lie is not visible there (validate() sees it).
        await read.catch((e) => assert.ok(e instanceof ArrowpointError, String(e)));
      } else await assert.rejects(read, isNamed(SnapshotFormatError), `${what} (range ${JSON.stringify(range)})`);
    }
  }
});

/** A chunk whose msgpack slot (`column` of row 0) holds `depth` nested arrays around a nil. */
function deepMsgpackChunk(layout: StateLayout, column: "key" | "value", depth: number): Uint8Array {
  const total = depth + 1;
  const header = total - 2 >= 32 && total - 2 <= 255 ? 2 : 3; // str8 or str16
  const filler = "P".repeat(total - header);
  const rows = { length: 2, keyGroups: [1, 2], keys: [column === "key" ? filler : ["k", 1], ["k", 2]], values: [column === "value" ? filler : 1, 2] };
  const bytes = encodeChunk(layout, rows).bytes.slice();
  const at = new TextDecoder("latin1").decode(bytes).indexOf(filler) - header;
  assert.equal(bytes[at], header === 2 ? 0xd9 : 0xda);
  const nested = new Uint8Array(total).fill(0x91);
  nested[depth] = 0xc0;
  bytes.set(nested, at);
  return bytes;
}

test("hostile msgpack values (nesting deeper than a writer can write) are a named error on read, not a stack overflow", async () => {
  const layout: StateLayout = { kind: "value", keyType: "msgpack", value: { encoding: "msgpack" } };
  for (const column of ["key", "value"] as const) {
    for (const depth of [150, 20_000]) {
      const root = join(dir, `deep-msgpack-${column}-${depth}`);
      const storage = await openStorage(root);
      const bytes = deepMsgpackChunk(layout, column, depth);
      const path = "op/s/delta.arrow";
      await storage.put(path, bytes);
      const ref = { path, keyGroupRange: { start: 0, end: 127 }, rows: 2, bytes: bytes.length, checksum: checksumOf(bytes), compression: "none" as const, type: "delta" as const, order: 1 };
      const base = encodeChunk(layout, { length: 1, keyGroups: [3], keys: [["z", 0]], values: [0] });
      const baseRef = await writeChunk(storage, "op/s/base.arrow", base, { type: "base", order: 0 });
      baseRef.keyGroupRange = { start: 0, end: 127 };
      await commitManifest(storage, "", manifest([baseRef, ref], layout));
      await assert.rejects(readState(await openSnapshot(root), "op", "s"), isNamed(SnapshotFormatError), `${column} depth ${depth}`);
    }
  }
});
