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
import type { ShardTask, WorkerReply } from "./_workers.ts";

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

async function run(task: ShardTask): Promise<WriteReport> {
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
  const task = m as ShardTask;
  run(task).then(
    (r) => reply({ type: "done", shard: task.shard.index, rows: r.rows, bytes: r.bytes, chunks: r.chunks, thread: threadId }),
    (e: unknown) => {
      const err = e as Error;
      reply({
        type: "error",
        shard: task.shard.index,
        name: err?.name ?? "Error",
        code: e instanceof ArrowpointError ? e.code : undefined,
        message: err?.message ?? String(e),
        stack: typeof err?.stack === "string" ? err.stack : undefined,
        fields: fieldsOf(e),
      });
    },
  );
});
