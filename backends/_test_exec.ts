// Child processes for tests: a program run to its end, its output kept. Here, in the lowest layer, so the
// tests of every layer can share it.
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** The repository's root: the default working directory of a child. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** How a program ended, and what it printed. */
export interface Exit {
  code: number | null;
  out: string;
  err: string;
}

/** The part of a spawned child this module uses. */
interface ChildEvents {
  stdout: { setEncoding(e: "utf8"): { on(event: "data", f: (s: string) => void): unknown } };
  stderr: { setEncoding(e: "utf8"): { on(event: "data", f: (s: string) => void): unknown } };
  on(event: "error", f: (e: Error) => void): unknown;
  on(event: "close", f: (code: number | null) => void): unknown;
}

/** Runs a program to its end; never rejects on a non-zero exit. */
export function exec(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...options.env })) if (v !== undefined) env[k] = v;
    // A Node test runner started with --import tsx must not hand the loader to the child: the child shows
    // what a user's plain `node` does.
    delete env.NODE_OPTIONS;
    // Typed by what is used: in Deno's PostgreSQL test group npm's @types/node displace Deno's node types,
    // and ChildProcess loses its EventEmitter methods there (TS2339).
    const child = spawn(cmd, args, { cwd: options.cwd ?? ROOT, env, stdio: ["ignore", "pipe", "pipe"] }) as unknown as ChildEvents;
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (err += s));
    child.on("error", reject);
    child.on("close", (code: number | null) => resolve({ code, out, err }));
  });
}

const IS_DENO = "Deno" in globalThis;

/** The command line that runs a TypeScript program under the current runtime, as a user would: tsx in Node, `deno run -A` in Deno. */
export function tsCommand(file: string, args: string[] = []): [string, string[]] {
  return IS_DENO ? [process.execPath, ["run", "-A", file, ...args]] : [process.execPath, ["--import", "tsx", file, ...args]];
}

/**
 * Runs a TypeScript program (a path from the repository's root) under the current runtime to its end and
 * returns what it printed; rejects with both outputs when it exits non-zero. No time limit: the program
 * ends by itself, however busy the machine.
 */
export async function runTs(file: string, args: string[] = [], options: { env?: Record<string, string | undefined> } = {}): Promise<string> {
  const [cmd, argv] = tsCommand(file, args);
  const r = await exec(cmd, argv, { env: options.env });
  if (r.code !== 0) throw new Error(`${file} ${args.join(" ")} exited ${r.code}\n${r.out}\n${r.err}`);
  return r.out;
}
