// Fuzzing of the command line (issue 7): generated argument vectors — known and unknown verbs, good and
// hostile URIs (memory, filesystem, S3 on a local s3rver, garbage), flags with odd values, junk — through
// `main(argv, io)`. It never throws, exits 0, 1 or 2, prints no stack trace (no --debug given) and never
// reports an "unexpected error" (a bare error that escaped a verb). Writes only go to fresh memory
// stores and a temporary folder.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import fc from "fast-check";
import { clearMemoryStorage } from "../backends/memory.ts";
import { openStorage } from "../backends/open.ts";
import { startS3Server, type S3TestServer } from "../backends/_s3_test_server.ts";
import { entries, writeChain, writeSavepoint } from "../migrate/_test_util.ts";
import { cases, SEED, Target } from "../format/_test_fuzz.ts";
import { main } from "./main.ts";

let dir: string;
let server: S3TestServer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "arrowpoint-cli-fuzz-"));
  server = await startS3Server({ setEnv: { AWS_MAX_ATTEMPTS: "1" } });
  // Real snapshots to point at: a savepoint and a checkpoint chain in memory, on disk and on S3.
  for (const uri of ["memory:cli-fuzz", join(dir, "root"), `s3://${server.bucket}/root`]) {
    const root = await openStorage(uri);
    await writeChain(root, [{ set: [...entries(30)] }, { set: [["k1", { count: 5n, label: "x" }]], del: ["k2"] }]);
    const { subStorage } = await import("../backends/sub.ts");
    await writeSavepoint(subStorage(root, "savepoints/sp-1"), entries(20));
    await root.close();
  }
  await writeFile(join(dir, "garbage.json"), "{not json");
  await writeFile(join(dir, "not-migrations.mjs"), "export default 42;\n");
  await writeFile(join(dir, "throws.mjs"), "throw new TypeError('boom at import');\n");
  const { mkdir } = await import("node:fs/promises");
  await mkdir(join(dir, "bad-sp"), { recursive: true });
  await writeFile(join(dir, "bad-sp", "_manifest.json"), '{"format":"arrowpoint","formatVersion":99}');
});

after(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  clearMemoryStorage();
});

const VERBS = ["inspect", "validate", "ls", "compact", "rekey", "migrate", "diff", "export", "cp", "gc", "help", "--help", "-h", "--version", "inspekt", "", "-", "--", "rm"];
const FLAGS = [
  "--json", "--no-key-groups", "--no-rows", "--parallelism", "--max-parallelism", "--operator", "--state", "--id", "--temp", "--migrations",
  "--dry-run", "--sample", "--format", "--out", "--grace-ms", "--help", "--unknown", "-x", "--parallelism=", "--json=yes", "---", "-",
];

let fresh = 0;
function sources(): string[] {
  return [
    "memory:cli-fuzz/savepoints/sp-1", "memory:cli-fuzz", "memory:cli-fuzz/chk-000002", "memory:cli-fuzz/chk-000001", "memory:nothing-here",
    join(dir, "root"), join(dir, "root", "savepoints", "sp-1"), join(dir, "root", "chk-000002"), join(dir, "bad-sp"), join(dir, "garbage.json"), join(dir, "missing"),
    `s3://${server.bucket}/root`, `s3://${server.bucket}/root/savepoints/sp-1`, `s3://${server.bucket}/nothing`, "s3://no-such-bucket-xyz/a", "s3://B/x", "s3://",
    "ftp://x", "file:///%00", "\ud800", "../../../etc", "/etc/passwd", "memory:", "file://host/x", "", " ", "-", "--json",
  ];
}
function destinations(): string[] {
  fresh++;
  return [`memory:cli-out-${fresh}`, join(dir, `out-${fresh}`), `s3://${server.bucket}/out-${fresh}`, `memory:cli-out-${fresh}/savepoints/sp-9`];
}
const VALUES = ["1", "2", "4", "0", "-1", "128", "256", "32769", "1e3", "0x10", "9007199254740993", "", "abc", "ndjson", "arrow", "parquet", "counter", "counts", "sessions", "nope", " 3", "3 ", "٣"];

/** Each verb's positional arguments (S = a source, D = a fresh destination) and the flags it knows. */
const SHAPES: Record<string, { args: string; flags: string[] }> = {
  inspect: { args: "S", flags: ["--json", "--no-key-groups"] },
  validate: { args: "S", flags: ["--json", "--no-rows"] },
  ls: { args: "S", flags: ["--json"] },
  compact: { args: "SD", flags: ["--parallelism", "--id"] },
  rekey: { args: "SD", flags: ["--parallelism", "--max-parallelism", "--operator", "--id", "--parallelism", "--max-parallelism"] },
  migrate: { args: "SD", flags: ["--migrations", "--dry-run", "--json", "--id", "--migrations"] },
  diff: { args: "SS", flags: ["--json", "--sample"] },
  export: { args: "S", flags: ["--operator", "--state", "--format", "--out", "--operator", "--state"] },
  cp: { args: "SD", flags: [] },
  gc: { args: "S", flags: ["--dry-run", "--grace-ms", "--json"] },
};
const STRING_FLAGS = new Set(["--parallelism", "--max-parallelism", "--operator", "--state", "--id", "--temp", "--migrations", "--sample", "--format", "--out", "--grace-ms"]);

function flagValue(flag: string, pick: number): string {
  switch (flag) {
    case "--migrations":
      return [join(dir, "garbage.json"), join(dir, "not-migrations.mjs"), join(dir, "throws.mjs"), join(dir, "missing.mjs")][pick % 4];
    case "--out":
      return join(dir, `export-${fresh}-${pick}.out`);
    case "--operator":
      return ["counter", "op", "nope", ""][pick % 4];
    case "--state":
      return ["counts", "s", "nope", ""][pick % 4];
    case "--format":
      return ["ndjson", "arrow", "parquet", ""][pick % 4];
    default:
      return VALUES[pick % VALUES.length];
  }
}

/** A well-formed command line: a real verb, its arguments, some of its flags (values good or bad). */
function shapedArb(): fc.Arbitrary<string[]> {
  return fc.tuple(fc.constantFrom(...Object.keys(SHAPES)), fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), fc.subarray([0, 1, 2, 3, 4, 5])).map(([verb, picks, chosen]) => {
    const shape = SHAPES[verb];
    const src = sources();
    const dst = destinations();
    const argv = [verb];
    [...shape.args].forEach((a, i) => argv.push(a === "S" ? src[picks[i] % 12] : dst[picks[i] % dst.length]));
    for (const i of chosen) {
      const flag = shape.flags[i];
      if (!flag) continue;
      argv.push(flag);
      if (STRING_FLAGS.has(flag)) argv.push(flagValue(flag, picks[(i + 3) % 8]));
    }
    return argv;
  });
}

function argvArb(): fc.Arbitrary<string[]> {
  return fc.oneof({ weight: 3, arbitrary: shapedArb() }, { weight: 1, arbitrary: randomArb() });
}

/** Verbs that write or delete. */
const WRITES = new Set(["compact", "rekey", "migrate", "cp", "gc"]);

/** Whether a URI or path lies inside this test's sandbox (fresh memory stores, the temp folder, the test bucket). */
function sandboxed(x: string): boolean {
  if (x.includes("..")) return false;
  return x.startsWith("memory:") || x.startsWith(`s3://${server.bucket}/`) || x.startsWith(dir + "/");
}

function randomArb(): fc.Arbitrary<string[]> {
  return fc.tuple(
    fc.constantFrom(...VERBS),
    fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...sources()) }, { weight: 2, arbitrary: fc.constant("DEST") }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) }), { maxLength: 3 }),
    fc.array(fc.tuple(fc.constantFrom(...FLAGS), fc.option(fc.oneof(fc.constantFrom(...VALUES), fc.constant("MIGRATIONS"), fc.constant("OUTFILE"), fc.string({ maxLength: 8 })), { nil: undefined })), { maxLength: 4 }),
  ).map(([verb, positional, flags]) => {
    const dest = destinations();
    const argv = [verb];
    let d = 0;
    // Random text stays random, but anything a verb could write to lands in the temporary folder, never
    // in the working directory (a fuzz run once left a savepoint named `$F!ErkRW` in the checkout).
    const confined = (x: string) => (/^[a-z][a-z0-9+.-]*:/i.test(x) ? x : join(dir, "random", x));
    // A verb that writes or deletes (its destination, gc's root) gets only places inside the sandbox: a
    // hostile source like "../../../etc" or "-" as a destination once made a run write a savepoint into
    // /etc and into the checkout.
    const writes = WRITES.has(verb);
    positional.forEach((p, i) => {
      const v = p === "DEST" ? dest[d++ % dest.length] : sources().includes(p) ? p : confined(p);
      argv.push(writes && (i >= 1 || verb === "gc") && !sandboxed(v) ? dest[d++ % dest.length] : v);
    });
    for (const [flag, value] of flags) {
      argv.push(flag);
      if (value === "MIGRATIONS") argv.push([join(dir, "garbage.json"), join(dir, "not-migrations.mjs"), join(dir, "throws.mjs"), join(dir, "missing.mjs")][fresh % 4]);
      else if (value === "OUTFILE" || (value !== undefined && (flag === "--out" || flag === "--temp"))) argv.push(join(dir, `${flag.slice(2)}-${fresh}.out`));
      else if (value !== undefined) argv.push(VALUES.includes(value) ? value : confined(value));
    }
    return argv.filter((a) => a !== "--debug");
  });
}

test("main() never throws, exits 0/1/2 and prints no stack trace or unexpected error, whatever the arguments", async () => {
  const t = new Target("CLI: main(argv)");
  const codes = new Map<number, number>();
  const firstWords = new Map<string, number>();
  const samples = fc.sample(argvArb(), { numRuns: cases(300, 10_000), seed: SEED });
  const { existsSync, readdirSync } = await import("node:fs");
  const etcBefore = readdirSync("/etc").sort().join("\n");
  const cwdBefore = new Set(readdirSync(process.cwd()));
  for (const argv of samples) {
    const out: string[] = [];
    const err: string[] = [];
    let code: number;
    try {
      code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s), write: async () => {}, tty: false, errRaw: () => {} });
    } catch (e) {
      assert.fail(`main(${JSON.stringify(argv)}) threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    }
    t.cases++;
    codes.set(code, (codes.get(code) ?? 0) + 1);
    assert.ok(code === 0 || code === 1 || code === 2, `main(${JSON.stringify(argv)}) returned ${code}`);
    const text = err.join("\n");
    assert.doesNotMatch(text, /\n\s+at /, `stack trace for ${JSON.stringify(argv)}:\n${text}`);
    assert.doesNotMatch(text, /unexpected error/, `a bare error escaped for ${JSON.stringify(argv)}:\n${text}`);
    if (code === 2) {
      // A usage error: a one-line message on stderr, or (no verb at all) the help on stdout.
      assert.ok(/^arrowpoint: /m.test(text) || (argv[0] === "" && /Usage:/.test(out.join("\n"))), `exit 2 without a message for ${JSON.stringify(argv)}`);
      const kind = /^arrowpoint: (\S+ \S+)/.exec(text)?.[1] ?? "?";
      firstWords.set(kind, (firstWords.get(kind) ?? 0) + 1);
    } else t.valid++;
  }
  // Nothing was written outside the sandbox: /etc is as it was, and no new snapshot folder is in the cwd.
  assert.equal(readdirSync("/etc").sort().join("\n"), etcBefore, "the CLI fuzzer wrote into /etc");
  const strays = readdirSync(process.cwd()).filter((e) => !cwdBefore.has(e) && (existsSync(join(e, "_manifest.json")) || ["-", " ", "random"].includes(e)));
  assert.deepEqual(strays, [], "the CLI fuzzer wrote into the working directory");
  t.extra.exit0 = codes.get(0) ?? 0;
  t.extra.exit1 = codes.get(1) ?? 0;
  t.extra.exit2 = codes.get(2) ?? 0;
  t.record();
  assert.ok((codes.get(0) ?? 0) > 0 && (codes.get(2) ?? 0) > 0, JSON.stringify([...codes]));
});

test("a bad --id is a usage error, not an unexpected error (regression)", async () => {
  // Found by the fuzzer: compact/rekey/migrate --id " 3" reached the library's RangeError, which the CLI
  // printed as "unexpected error ... run with --debug".
  for (const id of [" 3", "", "٣", "a/b"]) {
    const err: string[] = [];
    const code = await main(["compact", "memory:cli-fuzz/savepoints/sp-1", `memory:cli-id-${encodeURIComponent(id)}`, "--id", id], { out: () => {}, err: (s) => err.push(s), tty: false, errRaw: () => {} });
    assert.equal(code, 2);
    assert.match(err.join("\n"), /^arrowpoint: Cannot name the savepoint as its id must match/);
  }
});


test("code named inside a snapshot is never loaded: only a --migrations module given on the command line runs", async () => {
  const { existsSync } = await import("node:fs");
  const { subStorage } = await import("../backends/sub.ts");
  const pwned = join(dir, "pwned");
  const evil = join(dir, "evil.mjs");
  await writeFile(evil, `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(pwned)}, "loaded");\nexport default {};\n`);
  // A savepoint whose every free-form string names the module.
  const root = await openStorage("memory:cli-evil");
  const sp = subStorage(root, "savepoints/sp-1");
  const { writeSavepoint: write } = await import("../migrate/_test_util.ts");
  const manifest = await write(sp, entries(5));
  const { commitManifest } = await import("../snapshot/write.ts");
  await sp.delete(["_manifest.json"]);
  await commitManifest(sp, "", { ...manifest, job: evil, metadata: { migrations: evil, module: `file://${evil}`, import: `import("${evil}")` } });
  const verbs = [
    ["inspect", "memory:cli-evil/savepoints/sp-1"], ["validate", "memory:cli-evil/savepoints/sp-1"], ["ls", "memory:cli-evil"],
    ["diff", "memory:cli-evil/savepoints/sp-1", "memory:cli-fuzz/savepoints/sp-1"], ["export", "memory:cli-evil/savepoints/sp-1", "--operator", "counter", "--state", "counts"],
    ["compact", "memory:cli-evil/savepoints/sp-1", "memory:cli-evil-out/a"], ["rekey", "memory:cli-evil/savepoints/sp-1", "memory:cli-evil-out/b", "--parallelism", "2"],
    ["cp", "memory:cli-evil/savepoints/sp-1", "memory:cli-evil-out/c"], ["gc", "memory:cli-evil", "--dry-run"],
    ["migrate", "memory:cli-evil/savepoints/sp-1", "memory:cli-evil-out/d", "--migrations", join(dir, "not-migrations.mjs")],
  ];
  for (const argv of verbs) {
    const code = await main(argv, { out: () => {}, err: () => {}, write: async () => {}, tty: false, errRaw: () => {} });
    assert.ok(code === 0 || code === 1 || code === 2);
    assert.equal(existsSync(pwned), false, `${argv[0]} loaded a module named inside the snapshot`);
  }
  // The control: a module named on the command line does run (that is what --migrations is for; see docs).
  await main(["migrate", "memory:cli-evil/savepoints/sp-1", "memory:cli-evil-out/e", "--migrations", evil], { out: () => {}, err: () => {}, tty: false, errRaw: () => {} });
  assert.equal(existsSync(pwned), true);
});
