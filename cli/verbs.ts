/**
 * Registers every CLI verb. Each verb parses its arguments, makes one library call and prints the result;
 * there is no logic here the library lacks.
 *
 * @module
 */
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  commitShards,
  compact,
  copySnapshot,
  diff,
  exportState,
  gc,
  inspect,
  isMigrations,
  ls,
  migrate,
  type Migrations,
  NotFoundError,
  openStorage,
  parseShard,
  planShards,
  type Progress,
  rekey,
  type ShardSpec,
  StorageError,
  toJson,
  validate,
  type WriteReport,
} from "../mod.ts";
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

const SHARD_FLAG = {
  type: "string" as const,
  help: "i/N: write only shard i of N (destination key groups split in N; 0 ≤ i < N) and its receipt; commit with arrowpoint commit <dst> once all N ran",
};

const WORKERS_FLAG = {
  type: "string" as const,
  help: "K ≥ 1 or auto (default): run as K shards on K threads of this process (this one and K−1 worker threads), then commit; auto = this thread alone below 16,000,000 source rows (two threads lost to one at 1M and 4M rows here, measured, see docs/scale-out.md) and for a re-hash the threads cannot share, the cores from 16,000,000; 1 for memory: URIs",
};

function workersFlag(ctx: VerbContext): number | "auto" {
  const v = str(ctx, "workers");
  if (v !== undefined && str(ctx, "shard") !== undefined) throw new UsageError("--workers and --shard do not mix: a shard runs in one thread; run several shards (processes) instead");
  if (v === undefined || v === "auto") return "auto";
  return intFlag(ctx, "workers")!;
}

function shardFlag(ctx: VerbContext): ShardSpec | undefined {
  const v = str(ctx, "shard");
  if (v === undefined) return undefined;
  try {
    return parseShard(v);
  } catch (e) {
    throw new UsageError(`--shard ${(e as Error).message.replace(/^Cannot read the shard as /, "")}`);
  }
}

function wrote(ctx: VerbContext, verb: string, source: string, r: WriteReport): void {
  ctx.bar.done();
  if (r.receipt) {
    const { index, count } = r.receipt.shard;
    if (ctx.flags.json) {
      json(ctx, { verb, source, destination: r.destination, shard: `${index}/${count}`, fingerprint: r.receipt.fingerprint, rows: r.rows, chunks: r.chunks, bytes: r.bytes, elapsedMs: r.elapsedMs });
    } else {
      ctx.out(
        `${verb}: shard ${index}/${count} wrote ${formatCount(r.rows)} rows, ${r.chunks} chunks, ${formatBytes(r.bytes)} to ${r.destination} in ${formatDuration(r.elapsedMs)} ` +
          `(plan ${r.receipt.fingerprint}); nothing is committed: once all ${count} shards ran, arrowpoint commit ${r.destination}`,
      );
    }
    return;
  }
  if (ctx.flags.json) {
    json(ctx, { verb, source, destination: r.destination, id: r.id, rows: r.rows, chunks: r.chunks, bytes: r.bytes, elapsedMs: r.elapsedMs });
    return;
  }
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
    description: "Reads a snapshot's manifest and chunk headers and prints a tree: each operator with its parallelism, each state with its kind, " +
      "key and value types, schema version, rows, bytes, chunks and incremental chain depth, and how rows spread over subtasks and key groups. " +
      "<uri> is a savepoint, a chk-<n> folder, or a checkpoint root (its latest checkpoint).",
    options: { json: { type: "boolean", help: "print the result as one JSON object instead of text" }, "no-key-groups": { type: "boolean", help: "skip the per-key-group row counts (faster on large snapshots: only manifests are read)" } },
    examples: ["arrowpoint inspect ./ckpt/savepoints/sp-1", "arrowpoint inspect s3://bucket/jobs/orders --json"],
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
    description: "Checks a snapshot end to end: the manifest against its JSON Schema, every chunk's size and checksum, row counts, that each keyed row " +
      "lies in its chunk's key-group range and each chunk with the subtask owning it, and values against the state's schema. " +
      "Prints every finding; exit 0 when valid, 1 with findings, 2 when the snapshot cannot be read at all.",
    options: { json: { type: "boolean", help: "print the result as one JSON object instead of text" }, "no-rows": { type: "boolean", help: "check files, sizes and checksums only, without decoding rows (faster)" } },
    examples: ["arrowpoint validate ./ckpt/savepoints/sp-1", "arrowpoint validate s3://bucket/jobs/orders/chk-000042 --json"],
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
    description: "Lists every snapshot under a root (a checkpoint root, or any folder holding snapshot folders): kind, id, age, size, the bytes only it holds, " +
      "how many of its chunks others share, and chain depth; then the total and the unreferenced bytes that arrowpoint gc would free " +
      "(now, or once past its grace period).",
    options: { json: { type: "boolean", help: "print the result as one JSON object instead of text" } },
    examples: ["arrowpoint ls ./ckpt", "arrowpoint ls s3://bucket/jobs/orders --json"],
    async run(ctx) {
      const [uri] = positionals(ctx, ["root-uri"], this.usage);
      const listing = await ls(uri);
      if (ctx.flags.json) json(ctx, listing);
      else ctx.out(lsText(listing));
      return EXIT.ok;
    },
  },
  compact: {
    usage: "compact <checkpoint-uri> <savepoint-uri> [--parallelism N] [--id ID] [--shard i/N | --workers K] [--json]",
    summary: "checkpoint (and its incremental chain) → self-contained canonical savepoint",
    description: "Merges a checkpoint's incremental chain (bases and deltas, deletions applied) into a new savepoint that references nothing " +
      "outside its folder, in the canonical layout. <checkpoint-uri> is a chk-<n> folder or a checkpoint root (its latest checkpoint). " +
      "The destination must not hold a snapshot; the manifest is written last.",
    options: {
      parallelism: { type: "string", help: "N ≥ 1: lay the savepoint out for this parallelism (default: each operator's own)" },
      id: { type: "string", help: "the savepoint's id (default: the destination folder's name)" },
      shard: SHARD_FLAG,
      workers: WORKERS_FLAG,
      json: { type: "boolean", help: "print the result as one JSON object instead of text" },
    },
    examples: ["arrowpoint compact ./ckpt ./ckpt/savepoints/sp-1", "arrowpoint compact s3://bucket/job/chk-000042 s3://bucket/job/savepoints/sp-42 --parallelism 8"],
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["checkpoint-uri", "savepoint-uri"], this.usage);
      wrote(ctx, "compact", src, await compact(src, dst, { parallelism: intFlag(ctx, "parallelism"), id: str(ctx, "id"), shard: shardFlag(ctx), workers: workersFlag(ctx), onProgress: progress(ctx) }));
      return EXIT.ok;
    },
  },
  rekey: {
    usage: "rekey <src> <dst> [--parallelism N] [--max-parallelism M] [--operator UID] [--id ID] [--temp URI] [--shard i/N | --workers K] [--json]",
    summary: "rescale: new parallelism (key groups move whole) or maxParallelism (every key re-hashed)",
    description: "Writes a new savepoint for another parallelism (whole key groups move to their new subtasks; chunks are sliced, rows not decoded) " +
      "or another maxParallelism (every key re-hashed into its new key group, in bounded memory). Give at least one of the two.",
    options: {
      parallelism: { type: "string", help: "N ≥ 1: the new parallelism of every operator (or of --operator only)" },
      "max-parallelism": { type: "string", help: "M ≥ 1: the new maxParallelism (number of key groups); every key is re-hashed" },
      operator: { type: "string", help: "UID: change the parallelism of this operator only" },
      id: { type: "string", help: "the savepoint's id (default: the destination folder's name)" },
      temp: { type: "string", help: "URI for spill files when re-hashing more rows than fit in memory (default: a temporary folder)" },
      shard: SHARD_FLAG,
      workers: WORKERS_FLAG,
      json: { type: "boolean", help: "print the result as one JSON object instead of text" },
    },
    examples: ["arrowpoint rekey ./ckpt/savepoints/sp-1 ./ckpt/savepoints/sp-1-p8 --parallelism 8", "arrowpoint rekey ./sp-1 ./sp-1-m512 --max-parallelism 512"],
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
        shard: shardFlag(ctx),
        workers: workersFlag(ctx),
        onProgress: progress(ctx),
      });
      wrote(ctx, "rekey", src, report);
      return EXIT.ok;
    },
  },
  migrate: {
    usage: "migrate <src> <dst> --migrations <module> [--dry-run] [--id ID] [--shard i/N | --workers K] [--json]",
    summary: "run schema migrations from a module you name (it runs as code) into a new savepoint",
    description: "Loads <module> (a .ts, .mts, .js or .mjs file whose default export is defineMigrations({...}); it runs as code with your permissions) " +
      "and runs each state's steps from its schema version to the newest, validating every new value; prints the plan, then writes the new " +
      "savepoint. TypeScript modules load in Deno, and in Node through tsx (installed with arrowpoint's dev setup, or in your project).",
    options: {
      migrations: { type: "string", help: "path of the migrations module (required)" },
      "dry-run": { type: "boolean", help: "check every step against the schemas and print the plan; write nothing" },
      id: { type: "string", help: "the savepoint's id (default: the destination folder's name)" },
      shard: SHARD_FLAG,
      workers: WORKERS_FLAG,
      json: { type: "boolean", help: "print the result as one JSON object instead of text" },
    },
    examples: ["arrowpoint migrate ./sp-1 ./sp-1-v2 --migrations ./migrations.ts --dry-run", "arrowpoint migrate ./sp-1 ./sp-1-v2 --migrations ./migrations.ts"],
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["src", "dst"], this.usage);
      const module = str(ctx, "migrations");
      if (!module) throw new UsageError(`--migrations <module> is required: a .ts/.js module whose default export is defineMigrations({...}); usage: arrowpoint ${this.usage}`);
      const migrations = await loadMigrations(module, ctx.importModule);
      const report = await migrate(src, dst, migrations, {
        dryRun: ctx.flags["dry-run"] === true,
        id: str(ctx, "id"),
        shard: shardFlag(ctx),
        workers: workersFlag(ctx),
        migrationsModule: moduleUrl(module),
        onProgress: progress(ctx),
      });
      ctx.bar.done();
      const receipt = report.written?.receipt;
      if (ctx.flags.json) json(ctx, receipt ? { ...report, shard: `${receipt.shard.index}/${receipt.shard.count}`, fingerprint: receipt.fingerprint } : report);
      else {
        ctx.out(planText(report.plan));
        if (report.dryRun) ctx.out("dry run: nothing written");
        else wrote(ctx, "migrate", src, report.written!);
      }
      return EXIT.ok;
    },
  },
  commit: {
    usage: "commit <dst> [--verify checksum|size] [--json]",
    summary: "commit a sharded run: check every shard's receipt and chunks, then write the manifest",
    description: "After compact, rekey or migrate ran as N shards (--shard i/N) into <dst>: checks that all N receipts are there, come from one " +
      "plan (same source, arguments and N) and cover every key group exactly once, verifies every chunk they list, then writes the manifest " +
      "(create-if-absent): the savepoint exists from then on. A missing, foreign or damaged shard is refused by name and nothing is committed. " +
      "Running it again after a successful commit whose clean-up was interrupted finishes it.",
    options: {
      verify: { type: "string", help: "checksum (default: read every chunk once) or size (compare listed sizes only; no chunk is read)" },
      json: { type: "boolean", help: "print the result as one JSON object instead of text" },
    },
    examples: ["arrowpoint commit s3://bucket/job/savepoints/sp-42-p64", "arrowpoint commit ./sp-1-m512 --verify size"],
    async run(ctx) {
      const [dst] = positionals(ctx, ["dst"], this.usage);
      const verify = str(ctx, "verify") ?? "checksum";
      if (verify !== "checksum" && verify !== "size") throw new UsageError(`--verify must be checksum or size: got ${JSON.stringify(verify)}`);
      const r = await commitShards(dst, { verify });
      if (ctx.flags.json) json(ctx, { verb: "commit", destination: r.destination, id: r.manifest.id, fingerprint: r.fingerprint, shards: r.shards, rows: r.rows, chunks: r.chunks, bytes: r.bytes, alreadyCommitted: r.alreadyCommitted });
      else {
        ctx.out(
          `commit: ${r.alreadyCommitted ? "already committed" : "committed"} savepoint ${r.manifest.id} to ${r.destination} from ${r.shards} shards ` +
            `(plan ${r.fingerprint}): ${formatCount(r.rows)} rows, ${r.chunks} chunks, ${formatBytes(r.bytes)}`,
        );
      }
      return EXIT.ok;
    },
  },
  plan: {
    usage: "plan <compact|rekey|migrate> <src> [<dst>] --shards N [--parallelism N] [--max-parallelism M] [--operator UID] [--json]",
    summary: "how a sharded run splits: each shard's key groups, subtasks and estimated rows and bytes",
    description: "Reads the source manifest (nothing else) and prints, for each of N shards, the destination key groups and subtasks it writes and " +
      "its estimated rows and bytes, so a batch runner can size its jobs. Give the tool's own flags that shape the destination " +
      "(--parallelism, --max-parallelism, --operator); <dst> and other flags of the tool may be given and are ignored.",
    options: {
      shards: { type: "string", help: "N ≥ 1: the number of shards (at most the destination's maxParallelism)" },
      parallelism: { type: "string", help: "N ≥ 1: the destination parallelism (compact, rekey)" },
      "max-parallelism": { type: "string", help: "M ≥ 1: the destination maxParallelism (rekey)" },
      operator: { type: "string", help: "UID: --parallelism applies to this operator only (rekey)" },
      migrations: { type: "string", help: "ignored (migrate keeps each operator's parallelism and key groups)" },
      id: { type: "string", help: "ignored" },
      temp: { type: "string", help: "ignored" },
      json: { type: "boolean", help: "print the result as one JSON object instead of text" },
    },
    examples: ["arrowpoint plan rekey s3://bucket/job/savepoints/sp-42 --max-parallelism 4096 --shards 16 --json", "arrowpoint plan compact ./ckpt --shards 4"],
    async run(ctx) {
      if (ctx.args.length < 2 || ctx.args.length > 3) throw new UsageError(`give the tool and the source; usage: arrowpoint ${this.usage}`);
      const [tool, src] = ctx.args;
      if (!["compact", "rekey", "migrate"].includes(tool)) throw new UsageError(`plan splits compact, rekey or migrate: got ${JSON.stringify(tool)}`);
      const shards = intFlag(ctx, "shards");
      if (shards === undefined) throw new UsageError(`--shards N is required; usage: arrowpoint ${this.usage}`);
      const operator = str(ctx, "operator");
      const plan = await planShards(src, shards, {
        parallelism: tool === "migrate" ? undefined : intFlag(ctx, "parallelism"),
        maxParallelism: tool === "rekey" ? intFlag(ctx, "max-parallelism") : undefined,
        operators: operator === undefined ? undefined : [operator],
      });
      if (ctx.flags.json) json(ctx, { tool, ...plan });
      else {
        ctx.out(`${tool} of ${plan.source} in ${plan.count} shards (maxParallelism ${plan.maxParallelism}; source ${formatCount(plan.rows)} rows, ${formatBytes(plan.bytes)}):`);
        for (const s of plan.shards) {
          ctx.out(`  --shard ${s.shard.padEnd(7)} key groups ${s.keyGroups.start}-${s.keyGroups.end}  ~${formatCount(s.rows)} rows  ~${formatBytes(s.bytes)}`);
        }
      }
      return EXIT.ok;
    },
  },
  diff: {
    usage: "diff <a> <b> [--json] [--sample N]",
    summary: "added, removed and changed keys per state, and schema changes; exit 1 when they differ",
    description: "Compares two snapshots key by key, per state: added, removed, changed and unchanged keys, schema changes and operators that " +
      "appear, disappear or change parallelism. Exit 0 when identical, 1 when they differ.",
    options: { json: { type: "boolean", help: "print the result as one JSON object instead of text" }, sample: { type: "string", help: "N ≥ 0: keys shown per kind of change (default 5)" } },
    examples: ["arrowpoint diff ./ckpt/chk-000041 ./ckpt/chk-000042", "arrowpoint diff ./sp-1 ./sp-1-v2 --sample 20 --json"],
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
    description: "Writes the live rows of one state (the incremental chain merged, deletions applied) as NDJSON lines or as one Arrow IPC file " +
      "that DuckDB, polars or pyarrow open directly. arrowpoint inspect lists the operators and states.",
    options: {
      operator: { type: "string", help: "UID of the operator (required)" },
      state: { type: "string", help: "name of the state (required)" },
      format: { type: "string", help: "ndjson (default) or arrow" },
      out: { type: "string", help: "FILE to write (its folder is created); default standard output" },
    },
    examples: ["arrowpoint export ./sp-1 --operator count --state count | head", "arrowpoint export ./sp-1 --operator count --state count --format arrow --out ./out/count.arrow"],
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
    usage: "cp <src-uri> <dst-uri> [--json]",
    summary: "copy a snapshot between any storages (checksums verified, manifest last); a checkpoint becomes self-contained",
    description: "Copies a snapshot to another folder or storage (file, s3://, memory:), verifying every chunk's checksum and writing the manifest " +
      "last. A checkpoint's shared chunks are copied into the folder, so the copy is self-contained. The destination must hold no snapshot and " +
      "lie neither inside the source nor around it.",
    options: { json: { type: "boolean", help: "print the result as one JSON object instead of text" } },
    examples: ["arrowpoint cp ./ckpt/savepoints/sp-1 s3://bucket/backup/sp-1", "arrowpoint cp ./ckpt/chk-000042 ./archive/chk-000042"],
    async run(ctx) {
      const [src, dst] = positionals(ctx, ["src-uri", "dst-uri"], this.usage);
      const r = await copySnapshot(src, dst);
      if (ctx.flags.json) json(ctx, { verb: "cp", source: src, ...r });
      else ctx.out(`cp: copied ${r.chunks} chunks, ${formatBytes(r.bytes)} to ${r.destination}`);
      return EXIT.ok;
    },
  },
  gc: {
    usage: "gc <root-uri> [--dry-run] [--grace-ms N] [--json]",
    summary: "delete unreferenced chunks and uncommitted folders older than the grace period (default 1 h)",
    description: "Deletes debris under a checkpoint root: chunks in shared/ and chk-<n>/ that no committed checkpoint references, and folders " +
      "without a manifest (interrupted checkpoints or savepoints), once older than the grace period. Committed savepoints and files outside " +
      "chk-*, shared/ and savepoints/ are never touched. Says how much only the grace period kept.",
    options: {
      "dry-run": { type: "boolean", help: "list what would be deleted; delete nothing" },
      "grace-ms": { type: "string", help: "N ≥ 0: leave files younger than N ms (default 3600000); 0 only when no job writes under the root" },
      json: { type: "boolean", help: "print the result as one JSON object instead of text" },
    },
    examples: ["arrowpoint gc ./ckpt --dry-run", "arrowpoint gc s3://bucket/jobs/orders --grace-ms 86400000"],
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
