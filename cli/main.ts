/**
 * The `arrowpoint` command line: thin argument parsing over the library. Every verb is one library call a
 * user could make; this module only parses, prints and maps errors to exit codes
 * (0 ok, 1 findings, 2 usage or I/O error).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ArrowpointError, VERSION } from "../mod.ts";
import { type ModuleImporter, runtimeImport } from "./load_module.ts";
import { ProgressBar } from "./progress.ts";

/**
 * Exit codes of the CLI: 0 ok, 1 findings (validate) or differences (diff), 2 usage or I/O error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EXIT, main } from "./main.ts";
 * const code = await main(["validate", "./sp-1"]); // prints "arrowpoint: … not found …" to stderr
 * assert.equal(code, EXIT.error); // 0 valid, 1 findings, 2 usage or I/O error
 * ```
 */
export const EXIT = { ok: 0, findings: 1, error: 2 } as const;

/**
 * A usage error: bad flag, missing argument. Printed as one line, exit code 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./main.ts";
 * assert.equal(new UsageError("--parallelism must be an integer ≥ 1: got \"x\"").code, "ARROWPOINT_USAGE");
 * ```
 */
export class UsageError extends ArrowpointError {
  /** Creates the error. */
  constructor(message: string) {
    super("ARROWPOINT_USAGE", message);
  }
}

/** What a verb gets: its positional arguments, flags and where to print. */
export interface VerbContext {
  /** Positional arguments after the verb. */
  args: string[];
  /** Parsed flags. */
  flags: Record<string, string | boolean | undefined>;
  /** Writes a line to standard output. */
  out: (line: string) => void;
  /** Writes a line to standard error. */
  err: (line: string) => void;
  /** Writes raw bytes to standard output (for `export` without `--out`). */
  write: (bytes: Uint8Array) => Promise<void>;
  /** The progress bar on standard error (draws only on a terminal). */
  bar: ProgressBar;
  /** Imports a module the user named (`--migrations`). */
  importModule: ModuleImporter;
}

/** Where the CLI reads and writes; every field defaults to the process's own streams. */
export interface CliIo {
  /** Writes a line to standard output. */
  out?: (s: string) => void;
  /** Writes a line to standard error. */
  err?: (s: string) => void;
  /** Writes raw bytes to standard output. */
  write?: (bytes: Uint8Array) => Promise<void>;
  /** Whether standard error is a terminal (progress bars are drawn only then). */
  tty?: boolean;
  /** Writes raw text to standard error (the progress bar). */
  errRaw?: (s: string) => void;
  /**
   * Imports a module the user named (`--migrations`); default the runtime's `import()`. `cli/bin.mjs` gives
   * one that loads TypeScript under a Node that cannot by itself.
   */
  importModule?: ModuleImporter;
}

/** One CLI verb. */
export interface Verb {
  /** Usage line, e.g. `inspect <uri> [--json]`. */
  usage: string;
  /** One-line summary. */
  summary: string;
  /** What it does, for `arrowpoint <verb> --help`. */
  description: string;
  /** Flags it accepts (for node:util parseArgs), each with what it means. */
  options: Record<string, { type: "string" | "boolean"; short?: string; help: string }>;
  /** Command lines showing typical use. */
  examples: string[];
  /** Runs it; resolves to the exit code. */
  run: (ctx: VerbContext) => Promise<number>;
}

const verbs = new Map<string, Verb>();

/**
 * Registers a verb (cli/verbs.ts registers them all).
 *
 * @example
 * ```ts
 * import { registerVerb } from "./main.ts";
 * registerVerb("hello", { usage: "hello", summary: "says hello", description: "Says hello.", options: {}, examples: ["arrowpoint hello"], run: async (c) => { c.out("hi"); return 0; } });
 * ```
 */
export function registerVerb(name: string, verb: Verb): void {
  verbs.set(name, verb);
}

function help(): string {
  const lines = [
    `arrowpoint ${VERSION} — Arrow-native checkpoints and savepoints for keyed streaming state`,
    "",
    "Usage: arrowpoint <verb> [arguments] [flags]",
    "",
    "Verbs:",
    ...[...verbs.values()].map((v) => (v.usage.length <= 34 ? `  ${v.usage.padEnd(36)}${v.summary}` : `  ${v.usage}\n  ${"".padEnd(36)}${v.summary}`)),
    "",
    "Storage URIs: a path, file:///abs/path, s3://bucket/prefix (AWS_REGION, AWS_ENDPOINT_URL_S3, credentials",
    "chain as the AWS SDK reads them) or memory:name.",
    "ARROWPOINT_S3_TIMEOUT_MS: milliseconds an S3 request may stall before it is retried or fails (default 60000).",
    "Flags for every verb: --help (what it does, its flags, examples), --debug (stack traces).",
    "Exit codes: 0 ok, 1 findings, 2 usage or I/O error.",
  ];
  return lines.join("\n");
}

/**
 * `--parallelism -3`: parseArgs takes a value starting with "-" for an option and refuses it as ambiguous,
 * suggesting `--parallelism=-XYZ`. A number is never an option, so join it to its flag and let the verb
 * say what the value must be.
 */
function negativeValues(args: string[], verb: Verb): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const flag = /^--([^=]+)$/.exec(args[i])?.[1];
    if (flag !== undefined && verb.options[flag]?.type === "string" && /^-\d/.test(args[i + 1] ?? "")) {
      out.push(`${args[i]}=${args[i + 1]}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

function parseOptions(verb: Verb): Record<string, { type: "string" | "boolean"; short?: string }> {
  return Object.fromEntries(Object.entries(verb.options).map(([name, o]) => [name, o.short === undefined ? { type: o.type } : { type: o.type, short: o.short }]));
}

function wrap(text: string, indent: string, width = 100): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/** `arrowpoint <verb> --help`: what it does, each flag, examples. */
function verbHelp(name: string, verb: Verb): string {
  const flags: [string, string][] = Object.entries(verb.options).map(([flag, o]) => [`--${flag}${o.type === "string" ? " <value>" : ""}`, o.help]);
  flags.push(["--debug", "print the stack trace of an error"], ["--help", "this help"]);
  const pad = Math.max(...flags.map(([f]) => f.length)) + 4;
  return [
    `Usage: arrowpoint ${verb.usage}`,
    "",
    ...wrap(verb.description, ""),
    "",
    "Flags:",
    ...flags.flatMap(([f, h]) => wrap(h, " ".repeat(pad + 2)).map((l, i) => (i === 0 ? `  ${f.padEnd(pad)}${l.trimStart()}` : l))),
    "",
    "Examples:",
    ...verb.examples.map((e) => `  ${e}`),
    "",
    `Exit codes: 0 ok, ${name === "validate" ? "1 findings, " : name === "diff" ? "1 differences, " : ""}2 usage or I/O error.`,
  ].join("\n");
}

/** Standard output closed early (`arrowpoint export ... | head`): the verb stops, quietly. */
class OutputClosed extends ArrowpointError {
  constructor() {
    super("ARROWPOINT_OUTPUT_CLOSED", "standard output was closed");
  }
}

function stdoutWriter(): (bytes: Uint8Array) => Promise<void> {
  let closed = false;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") closed = true;
  });
  return (bytes) =>
    new Promise<void>((resolve, reject) => {
      if (closed) return reject(new OutputClosed());
      process.stdout.write(bytes, (e) => (e ? reject((e as NodeJS.ErrnoException).code === "EPIPE" ? new OutputClosed() : e) : resolve()));
    });
}

/**
 * The AWS SDK prints an 8-line NodeVersionSupportWarning on Node < 22 ("versions published after January
 * 2027 will require node >= 22") with every command that touches S3. It concerns SDK versions arrowpoint
 * does not use: the SDK is pinned to an exact version that supports Node 20. So the command turns it off
 * with the SDK's own switch, unless the user set that switch either way.
 */
function quietSdkWarning(): void {
  try {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  } catch {
    // Deno without --allow-env: the SDK cannot read the variable either, and S3 needs --allow-env anyway.
  }
}

/**
 * Runs the CLI with `argv` (without the program name) and resolves to the exit code. Never throws.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * const code = await main(["--help"]); // prints the verbs, 0
 * ```
 */
export async function main(argv: string[], io: CliIo = {}): Promise<number> {
  const out = io.out ?? ((s: string) => console.log(s));
  const err = io.err ?? ((s: string) => console.error(s));
  const write = io.write ?? stdoutWriter();
  const tty = io.tty ?? (process.stderr.isTTY === true);
  const bar = new ProgressBar(io.errRaw ?? ((s: string) => process.stderr.write(s)), tty, process.stderr.columns ?? 100);
  quietSdkWarning();
  await import("./verbs.ts");
  const [verbName, ...rest] = argv;
  if (!verbName || verbName === "--help" || verbName === "-h" || verbName === "help") {
    out(help());
    return verbName ? EXIT.ok : EXIT.error;
  }
  if (verbName === "--version" || verbName === "-V") {
    out(VERSION);
    return EXIT.ok;
  }
  const verb = verbs.get(verbName);
  const debug = rest.includes("--debug");
  try {
    if (!verb) throw new UsageError(`unknown verb ${JSON.stringify(verbName)}; run arrowpoint --help for the list`);
    let parsed;
    try {
      parsed = parseArgs({
        args: negativeValues(rest, verb),
        options: { ...parseOptions(verb), help: { type: "boolean", short: "h" }, debug: { type: "boolean" } },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new UsageError(`${(e as Error).message}; usage: arrowpoint ${verb.usage}`);
    }
    if (parsed.values.help) {
      out(verbHelp(verbName, verb));
      return EXIT.ok;
    }
    try {
      return await verb.run({ args: parsed.positionals, flags: parsed.values as VerbContext["flags"], out, err, write, bar, importModule: io.importModule ?? runtimeImport });
    } finally {
      bar.done();
    }
  } catch (e) {
    if (e instanceof OutputClosed) return EXIT.ok;
    if (e instanceof ArrowpointError) err(`arrowpoint: ${e.message}`);
    // The library's misuse errors ("Cannot <do X> as <reason>: current value is <Z>", STYLE.md) that reach
    // here were caused by an argument (say --id "a b"): say so like any usage error.
    else if ((e instanceof TypeError || e instanceof RangeError) && /^Cannot .+ as .+: current value is /s.test(e.message)) err(`arrowpoint: ${e.message}`);
    // Deno refuses an access the process was not granted (NotCapable; PermissionDenied before Deno 2):
    // its message names the permission and the flag, which is all the user needs.
    else if (e instanceof Error && (e.name === "NotCapable" || e.name === "PermissionDenied")) err(`arrowpoint: missing Deno permission: ${e.message.replace(/, run again with the (--allow-\w+) flag$/, "; run again with $1 (or -A)")}`);
    else err(`arrowpoint: unexpected error: ${(e as Error)?.message ?? String(e)} (run with --debug for details)`);
    if (debug) err((e as Error)?.stack ?? String(e));
    return EXIT.error;
  }
}

// `deno run -A cli/main.ts <verb> ...` (Node runs cli/bin.mjs). No top-level await: verbs.ts imports this
// module, and awaiting here would make that import wait for itself.
if ((import.meta as { main?: boolean }).main) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
