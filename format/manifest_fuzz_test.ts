// Fuzzing of the manifest reader (issue 7): property-based (fast-check) generation of valid manifests and
// mutation fuzzing of their JSON values and bytes. Every case must end in a valid manifest that satisfies the
// consistency rules, or a named error (ManifestSchemaError / UnsupportedFormatVersionError): never a bare
// TypeError/RangeError, a hang, or a crash.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { checksumOf } from "./checksum.ts";
import { ManifestSchemaError, UnsupportedFormatVersionError } from "./errors.ts";
import { type Manifest, MAX_MANIFEST_BYTES, readManifest, writeManifest } from "./manifest.ts";
import { checkSnapshotPath } from "./snapshot_path.ts";
import { cases, prng, SEED, Target } from "./_test_fuzz.ts";

const encoder = new TextEncoder();

// ---- a generator of valid manifests -------------------------------------------------------------------

const segment = fc.stringMatching(/^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,11}$/);
const chunkPath = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
const keyType = fc.constantFrom("string", "int32", "int64", "float64", "bytes", "msgpack");
const scalar = fc.constantFrom("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "utf8", "dictionary", "binary", "timestamp");
const { fieldType } = fc.letrec<{ fieldType: unknown }>((tie) => ({
  fieldType: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalar,
    fc.record({ struct: fc.uniqueArray(fc.record({ name: fc.string({ minLength: 1, maxLength: 8 }), type: tie("fieldType"), nullable: fc.boolean() }, { requiredKeys: ["name", "type"] }), { minLength: 1, maxLength: 4, selector: (f) => f.name }) }),
    fc.record({ list: tie("fieldType") }),
  ),
}));
const valueEncoding = fc.oneof(
  fc.record({ encoding: fc.constant("arrow"), type: fieldType }),
  fc.record({ encoding: fc.constant("msgpack"), jsonSchema: fc.constantFrom({ type: "object" }, { type: "number", minimum: 0 }) }, { requiredKeys: ["encoding"] }),
);

function chunkArb(maxP: number, keyed: boolean, parallelism: number) {
  const sizes = { rows: fc.nat({ max: 1_000_000 }), bytes: fc.nat({ max: 1 << 30 }), order: fc.nat({ max: 1000 }) };
  const common = {
    path: chunkPath,
    ...sizes,
    checksum: fc.integer({ min: 0, max: 0xffffffff }).map((n) => "crc32:" + n.toString(16).padStart(8, "0")),
    type: fc.constantFrom("base", "delta"),
  };
  const located = keyed
    ? fc.tuple(fc.nat({ max: maxP - 1 }), fc.nat({ max: maxP - 1 })).map(([a, b]) => ({ keyGroupRange: { start: Math.min(a, b), end: Math.max(a, b) } }))
    : fc.nat({ max: parallelism - 1 }).map((subtask) => ({ subtask }));
  const compression = fc.oneof(fc.constant({ compression: "none" }), fc.nat({ max: 1 << 30 }).map((rawBytes) => ({ compression: "deflate", rawBytes })));
  return fc.tuple(fc.record(common), located, compression).map(([c, l, z]) => ({ ...c, ...l, ...z }));
}

function stateArb(maxP: number, parallelism: number) {
  return fc.oneof(
    fc.tuple(fc.constantFrom("value", "list", "reducing", "aggregating"), keyType, valueEncoding, fc.boolean()).chain(([kind, kt, value, ns]) =>
      fc.record({
        name: fc.string({ minLength: 1, maxLength: 12 }),
        kind: fc.constant(kind),
        keyed: fc.constant(true),
        keyType: fc.constant(kt),
        namespaced: fc.constant(ns),
        value: fc.constant(value),
        schemaVersion: fc.integer({ min: 1, max: 50 }),
        chunks: fc.array(chunkArb(maxP, true, parallelism), { maxLength: 4 }),
      })
    ),
    fc.tuple(keyType, keyType, valueEncoding).chain(([kt, ukt, value]) =>
      fc.record({
        name: fc.string({ minLength: 1, maxLength: 12 }),
        kind: fc.constant("map"),
        keyed: fc.constant(true),
        keyType: fc.constant(kt),
        userKeyType: fc.constant(ukt),
        value: fc.constant(value),
        schemaVersion: fc.integer({ min: 1, max: 50 }),
        chunks: fc.array(chunkArb(maxP, true, parallelism), { maxLength: 4 }),
      })
    ),
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 12 }),
      kind: fc.constant("operator-list"),
      keyed: fc.constant(false),
      redistribution: fc.constantFrom("split", "union", "broadcast"),
      value: fc.constant({ encoding: "msgpack" }),
      schemaVersion: fc.integer({ min: 1, max: 50 }),
      chunks: fc.array(chunkArb(maxP, false, parallelism), { maxLength: 3 }),
    }),
  );
}

const manifestArb: fc.Arbitrary<Manifest> = fc
  .tuple(fc.constantFrom("checkpoint", "savepoint"), fc.oneof(fc.integer({ min: 1, max: 256 }), fc.constantFrom(1, 128, 32768)))
  .chain(([kind, maxP]) =>
    fc.record({
      format: fc.constant("arrowpoint"),
      formatVersion: fc.constant(1),
      kind: fc.constant(kind),
      id: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
      checkpointId: fc.nat(),
      createdAt: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
      writer: fc.record({ name: fc.constant("arrowpoint"), version: fc.constant("0.1.0") }),
      job: fc.string({ maxLength: 20 }),
      maxParallelism: fc.constant(maxP),
      hash: fc.constant("flink-murmur-java-hashcode"),
      chunkRoot: kind === "savepoint" ? fc.constant(".") : fc.constantFrom(".", ".."),
      operators: fc.uniqueArray(
        fc.integer({ min: 1, max: maxP }).chain((p) =>
          fc.record({ uid: fc.string({ minLength: 1, maxLength: 10 }), parallelism: fc.constant(p), states: fc.uniqueArray(stateArb(maxP, p), { maxLength: 3, selector: (s) => s.name }) })
        ),
        { maxLength: 3, selector: (o) => o.uid },
      ),
      metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
    }, { requiredKeys: ["format", "formatVersion", "kind", "id", "createdAt", "writer", "job", "maxParallelism", "hash", "chunkRoot", "operators"] })
  ) as unknown as fc.Arbitrary<Manifest>;

// ---- an independent statement of what a valid manifest satisfies ---------------------------------------

function assertConsistent(m: Manifest): void {
  assert.equal(m.format, "arrowpoint");
  assert.ok(Number.isInteger(m.maxParallelism) && m.maxParallelism >= 1 && m.maxParallelism <= 32768);
  if (m.kind === "savepoint") assert.equal(m.chunkRoot, ".");
  const uids = new Set<string>();
  for (const op of m.operators) {
    assert.ok(!uids.has(op.uid));
    uids.add(op.uid);
    assert.ok(op.parallelism >= 1 && op.parallelism <= m.maxParallelism);
    const names = new Set<string>();
    for (const st of op.states) {
      assert.ok(!names.has(st.name));
      names.add(st.name);
      for (const c of st.chunks) {
        checkSnapshotPath(c.path);
        assert.ok(Number.isSafeInteger(c.rows) && c.rows >= 0);
        assert.ok(Number.isSafeInteger(c.bytes) && c.bytes >= 0);
        if (c.compression !== "none") assert.ok(Number.isSafeInteger(c.rawBytes) && c.rawBytes! >= 0);
        if (st.keyed) {
          const r = c.keyGroupRange!;
          assert.ok(r.start >= 0 && r.start <= r.end && r.end < m.maxParallelism);
        } else {
          assert.ok(Number.isInteger(c.subtask) && c.subtask! >= 0 && c.subtask! < op.parallelism);
        }
      }
    }
  }
  // Whatever a reader accepts, a writer can write again (and reading that gives the same manifest).
  const { checksum: _a, ...again } = readManifest(writeManifest(m));
  const { checksum: _b, ...read } = m;
  assert.deepEqual(again, read);
}

function consistentOrExplain(m: Manifest, input: string): void {
  try {
    assertConsistent(m);
  } catch (e) {
    throw new Error(`accepted an inconsistent manifest: ${(e as Error).message}\ninput: ${input.slice(0, 600)}`, { cause: e });
  }
}

// ---- mutation of JSON values ---------------------------------------------------------------------------

const DEEP = "\u0000DEEP\u0000";
const BIG = "\u0000BIG\u0000";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every [container, key] in a JSON tree. */
function slots(root: Json): [Json[] | { [k: string]: Json }, string | number][] {
  const out: [Json[] | { [k: string]: Json }, string | number][] = [];
  const stack: Json[] = [root];
  while (stack.length) {
    const x = stack.pop()!;
    if (Array.isArray(x)) x.forEach((v, i) => (out.push([x, i]), stack.push(v)));
    else if (x && typeof x === "object") for (const k of Object.keys(x)) (out.push([x, k]), stack.push(x[k]));
  }
  return out;
}

const INTERESTING: Json[] = [
  -1, 0, 1, -0, 0.5, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53 + 2, 1e308, -1e308, 32767, 32768, 65535, 65536,
  "", "x", "../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "%2e%2e/x", "a\u0000b", "a//b", ".hidden", "~", "C:\\x",
  "s3://other-bucket/x", "file:///etc/passwd", "checkpoint", "savepoint", "operator-list", "value", "map", "chekpoint", "VALUE",
  "deflate", "none", "zstd", "crc32:00000000", "md5:00", "base", "delta", "..", ".", null, true, false, [], {}, [[]], { "": null },
  { start: 0, end: 0 }, { start: 5, end: 2 }, { start: 0, end: 32768 }, { struct: [] }, { list: "int8" }, { encoding: "arrow" },
];

function mutate(doc: { [k: string]: Json }, rnd: () => number): string {
  const all = slots(doc);
  const n = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < n && all.length; i++) {
    const [c, k] = all[Math.floor(rnd() * all.length)];
    const cur = (c as Record<string | number, Json>)[k];
    const op = Math.floor(rnd() * 10);
    if (op <= 3) (c as Record<string | number, Json>)[k] = INTERESTING[Math.floor(rnd() * INTERESTING.length)];
    else if (op === 4) {
      if (Array.isArray(c)) c.splice(k as number, 1);
      else delete c[k as string];
    } else if (op === 5) {
      // duplicate an element (duplicate uid / state / overlapping chunk) or add an unknown property
      if (Array.isArray(c)) c.push(JSON.parse(JSON.stringify(cur ?? null)));
      else c["x-unknown-" + Math.floor(rnd() * 9)] = 1;
    } else if (op === 6 && typeof cur === "number") (c as Record<string | number, Json>)[k] = [-cur, cur * 1024, cur + 0.5, -1 - cur][Math.floor(rnd() * 4)];
    else if (op === 6 && typeof cur === "string") (c as Record<string | number, Json>)[k] = cur.repeat(1 + Math.floor(rnd() * 100));
    else if (op === 7) (c as Record<string | number, Json>)[k] = typeof cur === "number" ? String(cur) : typeof cur === "string" ? cur.length : cur === null ? 0 : null; // wrong types
    else if (op === 8) (c as Record<string | number, Json>)[k] = DEEP;
    else (c as Record<string | number, Json>)[k] = rnd() < 0.5 ? BIG : { swap: cur ?? null };
  }
  const deep = "[".repeat(20_000) + "]".repeat(20_000);
  return JSON.stringify(doc).replaceAll(JSON.stringify(DEEP), deep).replaceAll(JSON.stringify(BIG), JSON.stringify("A".repeat(100_000)));
}

/** Serializes compact JSON text with a correct checksum, so that mutations reach the checks behind it. */
function withChecksum(text: string): string {
  const noChecksum = text.replace(/,"checksum":"[^"]*"/, "");
  return noChecksum.slice(0, -1) + `,"checksum":"${checksumOf(encoder.encode(noChecksum))}"}`;
}

// ---- tests ---------------------------------------------------------------------------------------------

test("readManifest() round-trips every generated valid manifest (fast-check)", () => {
  const t = new Target("manifest: generated valid");
  fc.assert(
    fc.property(manifestArb, (m) => {
      const out = t.check(() => readManifest(writeManifest(m)));
      assert.ok(out.ok, out.ok ? "" : out.error.message);
      assertConsistent(out.value as Manifest);
    }),
    { numRuns: cases(200), seed: SEED },
  );
  t.record();
});

test("readManifest() of mutated manifests (inconsistent values, wrong types, unknown kinds) ends in a named error or a consistent manifest", () => {
  const t = new Target("manifest: value mutations");
  fc.assert(
    fc.property(manifestArb, fc.integer(), fc.boolean(), (m, seed, fixChecksum) => {
      const doc = JSON.parse(new TextDecoder().decode(writeManifest(m)));
      delete doc.checksum;
      const text = mutate(doc, prng(seed));
      const bytes = encoder.encode(fixChecksum ? withChecksum(text) : text);
      const out = t.check(() => readManifest(bytes, "fuzz/_manifest.json"), () => text.slice(0, 300));
      if (out.ok) consistentOrExplain(out.value as Manifest, text);
      else assert.ok(out.error instanceof ManifestSchemaError || out.error instanceof UnsupportedFormatVersionError, out.error.name);
    }),
    { numRuns: cases(300), seed: SEED },
  );
  assert.ok(t.errors.size >= 1);
  t.record();
});

test("readManifest() of bit-flipped, truncated and spliced manifest bytes ends in a named error or a consistent manifest", () => {
  const t = new Target("manifest: byte mutations");
  fc.assert(
    fc.property(manifestArb, fc.integer(), (m, seed) => {
      const rnd = prng(seed);
      const bytes = writeManifest(m).slice();
      let b: Uint8Array = bytes;
      switch (Math.floor(rnd() * 4)) {
        case 0:
          for (let i = 0, n = 1 + Math.floor(rnd() * 4); i < n; i++) b[Math.floor(rnd() * b.length)] ^= 1 << Math.floor(rnd() * 8);
          break;
        case 1:
          b = b.subarray(0, Math.floor(rnd() * b.length));
          break;
        case 2: {
          const at = Math.floor(rnd() * b.length);
          const junk = Uint8Array.from({ length: 1 + Math.floor(rnd() * 16) }, () => Math.floor(rnd() * 256));
          b = new Uint8Array([...b.subarray(0, at), ...junk, ...b.subarray(at)]);
          break;
        }
        default: {
          const from = Math.floor(rnd() * b.length);
          const to = Math.floor(rnd() * b.length);
          b = new Uint8Array([...b.subarray(0, to), ...b.subarray(from, Math.min(b.length, from + 64)), ...b.subarray(to)]);
        }
      }
      const out = t.check(() => readManifest(b));
      if (out.ok) assertConsistent(out.value as Manifest);
    }),
    { numRuns: cases(300), seed: SEED },
  );
  t.record();
});

test("readManifest() refuses deeply nested JSON with a named error, not a stack overflow (regression)", () => {
  // Found by the fuzzer: with a checksum present, the reader re-serialized the parsed object to verify
  // it, and JSON.stringify threw a bare RangeError (Maximum call stack size exceeded) on deep nesting.
  const m = JSON.parse(new TextDecoder().decode(writeManifest({
    format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: "2026-11-25T00:00:00Z",
    writer: { name: "arrowpoint", version: "0.1.0" }, job: "demo", maxParallelism: 128, hash: "flink-murmur-java-hashcode",
    chunkRoot: ".", operators: [],
  })));
  delete m.checksum;
  for (const depth of [300, 20_000, 1_000_000]) {
    const deep = "[".repeat(depth) + "]".repeat(depth);
    const text = JSON.stringify({ ...m, metadata: { a: "x" } }).replace('"x"', deep);
    for (const variant of [text, withChecksum(text)]) {
      assert.throws(() => readManifest(encoder.encode(variant)), (e: unknown) => e instanceof ManifestSchemaError, `depth ${depth}`);
    }
  }
  // A deep (but schema-valid) jsonSchema, with a checksum.
  const withDeepSchema = JSON.stringify({
    ...m,
    operators: [{ uid: "o", parallelism: 1, states: [{ name: "s", kind: "value", keyed: true, keyType: "string", value: { encoding: "msgpack", jsonSchema: { a: "x" } }, schemaVersion: 1, chunks: [] }] }],
  });
  for (const depth of [300, 20_000]) {
    const deep = "[".repeat(depth) + "]".repeat(depth);
    const text = withDeepSchema.replace('"x"', deep);
    for (const variant of [text, withChecksum(text)]) {
      assert.throws(() => readManifest(encoder.encode(variant)), (e: unknown) => e instanceof ManifestSchemaError && /nest/.test(e.message), `jsonSchema depth ${depth}`);
    }
  }
});

test("readManifest() handles giant inputs within bounds: over the size limit refused unparsed, giant strings refused by the schema", () => {
  const over = new Uint8Array(MAX_MANIFEST_BYTES + 1).fill(0x20);
  assert.throws(() => readManifest(over), (e: unknown) => e instanceof ManifestSchemaError && /limit/.test(e.message));
  const m = {
    format: "arrowpoint", formatVersion: 1, kind: "savepoint", id: "sp-1", createdAt: "2026-11-25T00:00:00Z",
    writer: { name: "arrowpoint", version: "0.1.0" }, job: "J".repeat(8 << 20), maxParallelism: 128, hash: "flink-murmur-java-hashcode",
    chunkRoot: ".", operators: [],
  };
  assert.throws(() => readManifest(encoder.encode(withChecksum(JSON.stringify(m)))), (e: unknown) => e instanceof ManifestSchemaError && e.field === "/job");
  // Many operators (the schema allows 100,000): valid, and read whole.
  const ops = Array.from({ length: 20_000 }, (_, i) => ({ uid: `op-${i}`, parallelism: 1, states: [] }));
  const big = readManifest(encoder.encode(JSON.stringify({ ...m, job: "j", operators: ops })));
  assert.equal(big.operators.length, 20_000);
});
