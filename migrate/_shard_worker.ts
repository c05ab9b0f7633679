// Private: the worker-thread side of `workers` (see _workers.ts): runs the shards the parent hands it, one at
// a time, through the same tool functions a shard process runs, and reports progress and the outcome.
import { threadId } from "node:worker_threads";
import { parentLink } from "../platform/worker.ts";
import { ArrowpointError } from "../format/errors.ts";
import { compact } from "./compact.ts";
import { migrate } from "./migrate.ts";
import { isMigrations, type Migrations } from "./migrations.ts";
import { rekey } from "./rekey.ts";
import type { WriteReport } from "./_rewrite.ts";
import type { HashTask, ShardTask, WorkerReply, WorkerTask } from "./_workers.ts";
import { openSnapshot, type Snapshot } from "../snapshot/read.ts";
import { asShared, type HashedUnit, hashUnit } from "./_shared_hash.ts";
import { dropShared, shareUnits } from "./_shard_cache.ts";
import type { Lease } from "../format/_scratch.ts";

const parent = parentLink();
const reply = (m: WorkerReply) => parent.post(m);

async function migrationsOf(task: ShardTask): Promise<Migrations> {
  if (task.migrations && "module" in task.migrations) {
    const mod = (await import(task.migrations.module)) as Record<string, unknown>;
    const cjs = mod.default as Record<string, unknown> | undefined;
    const m = [mod.default, mod.migrations, cjs?.default, cjs?.migrations].find(isMigrations);
    if (!m) throw new TypeError(`Cannot load migrations in a worker as ${task.migrations.module} exports no defineMigrations() result`);
    return m;
  }
  if (!isMigrations(task.migrations)) throw new TypeError("Cannot migrate in a worker as no migrations were given");
  return task.migrations;
}

// The source of the run whose units this thread hashes, opened once for all of them.
let source: { run: string; snap: Promise<Snapshot> } | undefined;

function closeSource(): void {
  const s = source;
  source = undefined;
  s?.snap.then((snap) => snap.storage.close(), () => {});
}

async function hash(task: HashTask): Promise<HashedUnit> {
  if (source?.run !== task.run) {
    closeSource();
    source = { run: task.run, snap: openSnapshot(task.src) };
  }
  const leases: Lease[] = [];
  const { unit, file } = await hashUnit(await source.snap, task.unit, task.maxParallelism, leases, task.buffer);
  shareUnits(task.run, [asShared(unit, file)], leases);
  return unit;
}

async function run(task: ShardTask): Promise<WriteReport> {
  if (task.shared) shareUnits(task.shared.run, task.shared.units.map((u) => asShared(u)));
  const options = { ...task.options, shard: task.shard, onProgress: task.progress ? (p: unknown) => reply({ type: "progress", shard: task.shard.index, progress: p as never }) : undefined };
  if (task.tool === "compact") return await compact(task.src, task.dst, options);
  if (task.tool === "rekey") return await rekey(task.src, task.dst, options);
  return (await migrate(task.src, task.dst, await migrationsOf(task), options)).written!;
}

/** An error's own fields that survive a structured clone (a named error's path, expected, shards, …). */
function fieldsOf(err: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (typeof err !== "object" || err === null) return fields;
  for (const [k, v] of Object.entries(err)) {
    if (k === "message" || k === "name" || k === "stack" || k === "cause") continue;
    try {
      fields[k] = structuredClone(v);
    } catch {
      // A field that cannot cross threads stays behind; the message still says what went wrong.
    }
  }
  return fields;
}

parent.onMessage((m) => {
  const task = m as WorkerTask;
  if (task.type === "forget") {
    dropShared(task.run);
    if (source?.run === task.run) closeSource();
    return;
  }
  const work: Promise<WorkerReply> = task.type === "hash"
    ? hash(task).then((unit) => ({ type: "hashed", unit }))
    : run(task).then((r) => ({ type: "done", shard: task.shard.index, rows: r.rows, bytes: r.bytes, chunks: r.chunks, thread: threadId }));
  work.then(
    reply,
    (e: unknown) => {
      const err = e as Error;
      reply({
        type: "error",
        shard: task.type === "hash" ? -1 : task.shard.index,
        during: task.type === "hash" ? "hash" : undefined,
        name: err?.name ?? "Error",
        code: e instanceof ArrowpointError ? e.code : undefined,
        message: err?.message ?? String(e),
        stack: typeof err?.stack === "string" ? err.stack : undefined,
        fields: fieldsOf(e),
      });
    },
  );
});
