/**
 * Registers every CLI verb. Each verb parses its arguments, makes one library call and prints the result;
 * there is no logic here the library lacks.
 *
 * @module
 */
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { openStorage } from "../backends/open.ts";
import { NotFoundError, StorageError } from "../format/errors.ts";
import { copySnapshot } from "../snapshot/copy.ts";
import { gc } from "../snapshot/retention.ts";
import {
  compact,
  diff,
  exportState,
  inspect,
  isMigrations,
  ls,
  migrate,
  type Migrations,
  type Progress,
  rekey,
  toJson,
  validate,
  type WriteReport,
} from "../migrate/mod.ts";
import { diffText, findingsText, formatBytes, gcText, formatCount, formatDuration, inspectText, lsText, planText } from "./format.ts";
import { describeLoadError, type ModuleImporter, moduleUrl, runtimeImport } from "./load_module.ts";
import { EXIT, registerVerb, UsageError, type Verb, type VerbContext } from "./main.ts";

function positionals(ctx: VerbContext, names: string[], usage: string): string[] {
  if (ctx.args.length < names.length) throw new UsageError(`missing ${names.slice(ctx.args.length).map((n) => `<${n}>`).join(" ")}; usage: arrowpoint ${usage}`);
  if (ctx.args.length > names.length) throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[names.length])}; usage: arrowpoint ${usage}`);
  return ctx.args;
}

function intFlag(ctx: VerbContext, name: string, min = 1): number | undefined {
  const v = ctx.flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be ${min === 1 ? "a positive integer" : `an integer ≥ ${min}`}: got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Runs a file-system call on a local output file, turning its refusal into one line saying what to do. */
async function localFile<T>(verb: string, path: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException)?.code;
    if (typeof code !== "string") throw e;
    const why = code === "EISDIR"
      ? "it is a folder; give a file path, e.g. --out " + join(path, "state.arrow")
      : code === "ENOTDIR" || code === "EEXIST"
      ? "a file is in the way of its folder; give a path whose parent is a folder"
      : code === "EACCES" || code === "EPERM" || code === "EROFS"
      ? `not allowed to write there (${code}); give a path you may write`
      : `${code}: ${(e as Error).message}`;
    throw new StorageError(verb, path, why, { cause: e });
  }
}

function str(ctx: VerbContext, name: string): string | undefined {
  const v = ctx.flags[name];
  return typeof v === "string" ? v : undefined;
}

function json(ctx: VerbContext, value: unknown): void {
  ctx.out(JSON.stringify(JSON.parse(toJson(value)), null, 2));
}

function progress(ctx: VerbContext): (p: Progress) => void {
  return (p) => ctx.bar.update(p);
}

function wrote(ctx: VerbContext, verb: string, r: WriteReport): void {
  ctx.bar.done();
  const secs = r.elapsedMs / 1000;
  ctx.out(
    `${verb}: wrote savepoint ${r.id} to ${r.destination}: ${formatCount(r.rows)} rows, ${r.chunks} chunks, ${formatBytes(r.bytes)} in ${formatDuration(r.elapsedMs)}` +
      (secs > 0 && r.rows > 0 ? ` (${formatCount(r.rows / secs)} rows/s)` : ""),
  );
}

const verbs: Record<string, Verb> = {
  inspect: {
    usage: "inspect <uri> [--json] [--no-key-groups]",
    summary: "operators, states, schema versions, rows, bytes, chunks, chain depth and key-group skew",
    options: { json: { type: "boolean" }, "no-key-groups": { type: "boolean" } },
    async run(ctx) {
      const [uri] = positionals(ctx, ["uri"], this.usage);
      const info = await inspect(uri, { keyGroups: !ctx.flags["no-key-groups"], onProgress: progress(ctx) });
      ctx.bar.done();
      if (ctx.flags.json) json(ctx, info);
      else ctx.out(inspectText(info));
      return EXIT.ok;
    },
  },
  validate: {
    usage: "validate <uri> [--json] [--no-rows]",
    summary: "check manifest, checksums, sizes, row counts, key-group ranges and placement, schemas; exit 1 on findings",
    options: { json: { type: "boolean" }, "no-rows": { type: "boolean" } },
    async run(ctx) {
      const [uri] = positionals(ctx, ["uri"], this.usage);
      const findings = await validate(uri, { rows: !ctx.flags["no-rows"], onProgress: progress(ctx) });
      ctx.bar.done();
      if (ctx.flags.json) json(ctx, { uri, valid: findings.length === 0, findings });
      else ctx.out(findingsText(uri, findings));
      return findings.length ? EXIT.findings : EXIT.ok;
    },
  },
  ls: {
    usage: "ls <root-uri> [--json]",
    summary: "checkpoints and savepoints under a root with sizes, ages and shared chunks",
    options: { json: { type: "boolean" } },
    async run(ctx) {
      const [uri] = positionals(ctx, ["root-uri"], this.usage);
      const listing = await ls(uri);
      if (ctx.flags.json) json(ctx, listing);
      else ctx.out(lsText(listing));
      return EXIT.ok;
    },
  },
  compact: {
    usage: "compact <checkpoint-uri> <savepoint-uri> [--parallelism N]",
    summary: "checkpoint (and its incremental chain) → self-contained canonical savepoint",
    options: { parallelism: { type: "string" }, id: { type: "string" } },
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["checkpoint-uri", "savepoint-uri"], this.usage);
      wrote(ctx, "compact", await compact(src, dst, { parallelism: intFlag(ctx, "parallelism"), id: str(ctx, "id"), onProgress: progress(ctx) }));
      return EXIT.ok;
    },
  },
  rekey: {
    usage: "rekey <src> <dst> [--parallelism N] [--max-parallelism M] [--operator UID]",
    summary: "rescale: new parallelism (key groups move whole) or maxParallelism (every key re-hashed)",
    options: { parallelism: { type: "string" }, "max-parallelism": { type: "string" }, operator: { type: "string" }, id: { type: "string" }, temp: { type: "string" } },
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["src", "dst"], this.usage);
      const parallelism = intFlag(ctx, "parallelism");
      const maxParallelism = intFlag(ctx, "max-parallelism");
      const operator = str(ctx, "operator");
      if (parallelism === undefined && maxParallelism === undefined) throw new UsageError(`give --parallelism and/or --max-parallelism; usage: arrowpoint ${this.usage}`);
      if (operator !== undefined && parallelism === undefined) throw new UsageError("--operator limits --parallelism to one operator; give --parallelism too");
      const report = await rekey(src, dst, {
        parallelism,
        maxParallelism,
        operators: operator === undefined ? undefined : [operator],
        id: str(ctx, "id"),
        tempUri: str(ctx, "temp"),
        onProgress: progress(ctx),
      });
      wrote(ctx, "rekey", report);
      return EXIT.ok;
    },
  },
  migrate: {
    usage: "migrate <src> <dst> --migrations <module> [--dry-run] [--json]",
    summary: "run schema migrations from a module you name (it runs as code) into a new savepoint",
    options: { migrations: { type: "string" }, "dry-run": { type: "boolean" }, json: { type: "boolean" }, id: { type: "string" } },
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["src", "dst"], this.usage);
      const module = str(ctx, "migrations");
      if (!module) throw new UsageError(`--migrations <module> is required: a .ts/.js module whose default export is defineMigrations({...}); usage: arrowpoint ${this.usage}`);
      const migrations = await loadMigrations(module, ctx.importModule);
      const report = await migrate(src, dst, migrations, { dryRun: ctx.flags["dry-run"] === true, id: str(ctx, "id"), onProgress: progress(ctx) });
      ctx.bar.done();
      if (ctx.flags.json) json(ctx, report);
      else {
        ctx.out(planText(report.plan));
        if (report.dryRun) ctx.out("dry run: nothing written");
        else wrote(ctx, "migrate", report.written!);
      }
      return EXIT.ok;
    },
  },
  diff: {
    usage: "diff <a> <b> [--json] [--sample N]",
    summary: "added, removed and changed keys per state, and schema changes; exit 1 when they differ",
    options: { json: { type: "boolean" }, sample: { type: "string" } },
    async run(ctx) {
      const [a, b] = positionals(ctx, ["a", "b"], this.usage);
      const d = await diff(a, b, { sample: intFlag(ctx, "sample", 0), onProgress: progress(ctx) });
      ctx.bar.done();
      if (ctx.flags.json) json(ctx, d);
      else ctx.out(diffText(d));
      return d.identical ? EXIT.ok : EXIT.findings;
    },
  },
  export: {
    usage: "export <uri> --operator UID --state NAME [--format ndjson|arrow] [--out FILE]",
    summary: "one state as NDJSON or one plain Arrow IPC file (DuckDB, polars, pyarrow), to stdout or a file",
    options: { operator: { type: "string" }, state: { type: "string" }, format: { type: "string" }, out: { type: "string" } },
    async run(ctx) {
      const [uri] = positionals(ctx, ["uri"], this.usage);
      const operator = str(ctx, "operator");
      const state = str(ctx, "state");
      if (!operator || !state) throw new UsageError(`--operator and --state are required; usage: arrowpoint ${this.usage} (arrowpoint inspect lists them)`);
      const format = str(ctx, "format") ?? "ndjson";
      if (format !== "ndjson" && format !== "arrow") throw new UsageError(`--format must be ndjson or arrow: got ${JSON.stringify(format)}`);
      const outPath = str(ctx, "out");
      const stream = exportState(uri, { operator, state, format, onProgress: progress(ctx) });
      if (!outPath) {
        for await (const bytes of stream) await ctx.write(bytes);
        return EXIT.ok;
      }
      // Write to a temporary name and rename, so a failed export leaves no half file under the name. The
      // folder is created as a storage would create it; what the file system still refuses is one line.
      const tmp = `${outPath}.tmp-${Date.now().toString(36)}`;
      const fh = await localFile("export", outPath, async () => {
        await mkdir(dirname(resolve(outPath)), { recursive: true });
        if ((await stat(outPath).catch(() => undefined))?.isDirectory()) throw Object.assign(new Error("is a folder"), { code: "EISDIR" });
        return await open(tmp, "wx");
      });
      let n = 0;
      try {
        for await (const bytes of stream) {
          await fh.write(bytes);
          n += bytes.length;
        }
        await fh.sync();
      } catch (e) {
        await fh.close();
        await rm(tmp, { force: true });
        throw e;
      }
      await fh.close();
      await localFile("export", outPath, () => rename(tmp, outPath));
      ctx.bar.done();
      ctx.err(`export: wrote ${formatBytes(n)} to ${outPath}`);
      return EXIT.ok;
    },
  },
  cp: {
    usage: "cp <src-uri> <dst-uri>",
    summary: "copy a snapshot between any storages (checksums verified, manifest last); a checkpoint becomes self-contained",
    options: {},
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["src-uri", "dst-uri"], this.usage);
      const r = await copySnapshot(src, dst);
      ctx.out(`cp: copied ${r.chunks} chunks, ${formatBytes(r.bytes)} to ${r.destination}`);
      return EXIT.ok;
    },
  },
  gc: {
    usage: "gc <root-uri> [--dry-run] [--grace-ms N] [--json]",
    summary: "delete unreferenced chunks and uncommitted folders older than the grace period (default 1 h)",
    options: { "dry-run": { type: "boolean" }, "grace-ms": { type: "string" }, json: { type: "boolean" } },
    async run(ctx) {
      const [uri] = positionals(ctx, ["root-uri"], this.usage);
      const root = await openStorage(uri);
      try {
        // A mistyped root lists nothing, and "would free 0 B" would read as "all clean".
        let any = false;
        for await (const _ of root.list("")) {
          any = true;
          break;
        }
        if (!any) throw new NotFoundError("gc", root.uri, "nothing is stored under this root; check the path or URI");
        const r = await gc(root, { dryRun: ctx.flags["dry-run"] === true, graceMs: intFlag(ctx, "grace-ms", 0) });
        if (ctx.flags.json) json(ctx, r);
        else ctx.out(gcText(r));
        return EXIT.ok;
      } finally {
        await root.close();
      }
    },
  },
};

/**
 * Loads a migrations module: a path to a `.ts`/`.js`/`.mjs` file (relative to the current directory) or a
 * module specifier, whose default export (or `migrations` export) is a `defineMigrations({...})` result.
 * The module runs as code, with your permissions: load only modules you wrote or trust. arrowpoint never
 * loads code named inside a snapshot.
 *
 * @example
 * ```ts
 * import { loadMigrations } from "./verbs.ts";
 * // const migrations = await loadMigrations("./migrations/counter.ts");
 * ```
 */
export async function loadMigrations(specifier: string, importer: ModuleImporter = runtimeImport): Promise<Migrations> {
  const url = moduleUrl(specifier);
  let mod: Record<string, unknown>;
  try {
    mod = await importer(url);
  } catch (e) {
    const why = describeLoadError(e, url) ?? `${((e as Error)?.message ?? String(e)).split("\n")[0]}; give a path to a .ts, .mts, .js or .mjs file`;
    throw new UsageError(`cannot load migrations module ${JSON.stringify(specifier)}: ${why}`);
  }
  // A .ts outside a "type": "module" package is compiled to CommonJS by tsx: Node then hands the whole
  // module.exports as the default export, and the user's default export is one level down.
  const cjs = mod.default as Record<string, unknown> | undefined;
  const m = [mod.default, mod.migrations, cjs?.default, cjs?.migrations].find(isMigrations) ?? mod.default ?? mod.migrations;
  if (!isMigrations(m)) {
    throw new UsageError(`migrations module ${JSON.stringify(specifier)} must export default defineMigrations({...}) (or export const migrations); it exports ${Object.keys(mod).join(", ") || "nothing"}`);
  }
  return m;
}

for (const [name, verb] of Object.entries(verbs)) registerVerb(name, verb);
