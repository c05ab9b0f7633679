import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { FORMAT_VERSION, type Manifest, readManifest, writeManifest } from "./manifest.ts";
import { MANIFEST_SCHEMA } from "./manifest_schema.ts";
import { ManifestSchemaError, UnsupportedFormatVersionError } from "./errors.ts";

function sample(): Manifest {
  return {
    format: "arrowpoint",
    formatVersion: FORMAT_VERSION,
    kind: "checkpoint",
    id: "chk-000007",
    checkpointId: 7,
    createdAt: "2026-11-25T17:00:00.000Z",
    writer: { name: "arrowpoint", version: "0.1.0" },
    job: "sessions",
    maxParallelism: 128,
    hash: "flink-murmur-java-hashcode",
    chunkRoot: "..",
    operators: [
      {
        uid: "counter",
        parallelism: 2,
        states: [
          {
            name: "counts",
            kind: "value",
            keyed: true,
            keyType: "string",
            value: { encoding: "arrow", type: { struct: [{ name: "count", type: "int64" }, { name: "label", type: "dictionary", nullable: true }] } },
            schemaVersion: 1,
            chunks: [
              { path: "shared/a.arrow", keyGroupRange: { start: 0, end: 63 }, rows: 10, bytes: 100, checksum: "crc32:0badf00d", compression: "none", type: "base", order: 1 },
              { path: "chk-000007/b.arrow", keyGroupRange: { start: 64, end: 127 }, rows: 3, bytes: 60, rawBytes: 90, checksum: "crc32:00000001", compression: "deflate", type: "delta", order: 7 },
            ],
          },
          {
            name: "tags",
            kind: "map",
            keyed: true,
            keyType: "int64",
            userKeyType: "string",
            value: { encoding: "msgpack", jsonSchema: { type: "number" } },
            schemaVersion: 3,
            chunks: [],
          },
        ],
      },
      {
        uid: "source",
        parallelism: 1,
        states: [
          { name: "offsets", kind: "operator-list", keyed: false, redistribution: "split", value: { encoding: "msgpack" }, schemaVersion: 1, chunks: [{ path: "chk-000007/o.arrow", subtask: 0, rows: 1, bytes: 10, checksum: "crc32:00000002", compression: "none", type: "base", order: 7 }] },
        ],
      },
    ],
    metadata: { note: "hello" },
  };
}

const enc = new TextEncoder();
const mutate = (f: (m: Record<string, any>) => void): Uint8Array => {
  const m = JSON.parse(new TextDecoder().decode(writeManifest(sample())));
  delete m.checksum;
  f(m);
  return enc.encode(JSON.stringify(m));
};

test("writeManifest() then readManifest() round-trips every field and adds a checksum", () => {
  const bytes = writeManifest(sample());
  const back = readManifest(bytes, "chk-000007/_manifest.json");
  const { checksum, ...rest } = back;
  assert.match(checksum ?? "", /^crc32:[0-9a-f]{8}$/);
  assert.deepEqual(rest, sample());
});

test("readManifest() detects an edited manifest through its checksum", () => {
  const text = new TextDecoder().decode(writeManifest(sample())).replace('"rows": 10', '"rows": 11');
  assert.throws(() => readManifest(enc.encode(text), "x/_manifest.json"), (e: unknown) => e instanceof ManifestSchemaError && /checksum/.test(e.message) && /x\/_manifest.json/.test(e.message));
});

test("readManifest() refuses a newer formatVersion with UnsupportedFormatVersionError naming both versions", () => {
  const bytes = mutate((m) => (m.formatVersion = 2));
  assert.throws(() => readManifest(bytes, "sp/_manifest.json"), (e: unknown) => e instanceof UnsupportedFormatVersionError && e.found === 2 && e.supported === 1 && /2.*1/.test(e.message));
});

test("readManifest() names the field of a schema violation", () => {
  assert.throws(() => readManifest(mutate((m) => (m.maxParallelism = "128")), "m.json"), (e: unknown) => e instanceof ManifestSchemaError && e.field === "/maxParallelism");
  assert.throws(() => readManifest(mutate((m) => (m.operators[0].states[0].kind = "bag"))), (e: unknown) => e instanceof ManifestSchemaError && e.field === "/operators/0/states/0/kind");
  assert.throws(() => readManifest(mutate((m) => (m.operators[0].states[0].chunks[0].rows = -1))), ManifestSchemaError);
  assert.throws(() => readManifest(mutate((m) => (m.surprise = true))), ManifestSchemaError);
});

test("readManifest() rejects paths that are absolute or escape the snapshot", () => {
  for (const p of ["../x.arrow", "/etc/passwd", "shared/../../x", "a//b", "a\\b", "%2e%2e/x", "./a", ".hidden", "a/\u0000"]) {
    assert.throws(() => readManifest(mutate((m) => (m.operators[0].states[0].chunks[0].path = p))), (e: unknown) => e instanceof ManifestSchemaError && e.field === "/operators/0/states/0/chunks/0/path", p);
  }
});

test("readManifest() rejects inconsistent values a schema cannot see", () => {
  const cases: [string, (m: Record<string, any>) => void, RegExp][] = [
    ["range past maxParallelism", (m) => (m.operators[0].states[0].chunks[0].keyGroupRange = { start: 0, end: 128 }), /outside/],
    ["inverted range", (m) => (m.operators[0].states[0].chunks[0].keyGroupRange = { start: 9, end: 3 }), /outside/],
    ["duplicate uid", (m) => (m.operators[1].uid = "counter"), /twice/],
    ["duplicate state", (m) => (m.operators[0].states[1].name = "counts"), /twice/],
    ["parallelism > maxParallelism", (m) => (m.operators[0].parallelism = 129), /exceeds/],
    ["keyed without keyType", (m) => delete m.operators[0].states[0].keyType, /keyType/],
    ["map without userKeyType", (m) => delete m.operators[0].states[1].userKeyType, /userKeyType/],
    ["operator state without mode", (m) => delete m.operators[1].states[0].redistribution, /redistribution/],
    ["operator chunk subtask out of range", (m) => (m.operators[1].states[0].chunks[0].subtask = 1), /subtask/],
    ["compressed without rawBytes", (m) => delete m.operators[0].states[0].chunks[1].rawBytes, /rawBytes/],
    ["savepoint not self-contained", (m) => (m.kind = "savepoint"), /self-contained/],
  ];
  for (const [name, f, re] of cases) assert.throws(() => readManifest(mutate(f)), (e: unknown) => e instanceof ManifestSchemaError && re.test(e.message), name);
});

test("readManifest() turns any garbage into ManifestSchemaError, never a bare error", () => {
  const inputs = ["", "null", "[]", "42", "{", '{"format":"other"}', '{"format":"arrowpoint","formatVersion":"1"}', '{"format":"arrowpoint","formatVersion":1}'];
  for (const s of inputs) assert.throws(() => readManifest(enc.encode(s)), ManifestSchemaError, s);
  assert.throws(() => readManifest(new Uint8Array([0xff, 0xfe, 0x00])), ManifestSchemaError);
  let seed = 7;
  for (let i = 0; i < 300; i++) {
    const bytes = writeManifest(sample());
    seed = (seed * 1103515245 + 12345) >>> 0;
    bytes[seed % bytes.length] ^= 1 << (seed >>> 29);
    try {
      readManifest(bytes);
    } catch (e) {
      assert.ok(e instanceof ManifestSchemaError || e instanceof UnsupportedFormatVersionError, String(e));
    }
  }
});

test("writeManifest() refuses an invalid manifest instead of committing it", () => {
  const m = sample();
  m.operators[0].states[0].chunks[0].path = "../escape.arrow";
  assert.throws(() => writeManifest(m), ManifestSchemaError);
});

test("format/manifest.schema.json is the schema the code enforces", () => {
  const file = JSON.parse(readFileSync(new URL("./manifest.schema.json", import.meta.url), "utf8"));
  assert.deepEqual(file, JSON.parse(JSON.stringify(MANIFEST_SCHEMA)));
});
