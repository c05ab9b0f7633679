/**
 * Loading a module the user names on the command line (`--migrations`): it runs as code, with the user's
 * permissions. What fails is said in one line: a syntax error as `file:line:col: message` from whichever
 * compiler read the file (tsx's esbuild in Node, Deno's own, or V8 for JavaScript), and a TypeScript file
 * that this Node cannot run with what to do.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Imports a module by URL; `cli/bin.mjs` passes one that can also load TypeScript under plain Node. */
export type ModuleImporter = (url: string) => Promise<Record<string, unknown>>;

/** The default importer: the runtime's own `import()`. */
export const runtimeImport: ModuleImporter = (url) => import(url);

/**
 * The URL of a module named on the command line: a path (relative to the current directory) or a URL.
 *
 * @example
 * ```ts
 * import { moduleUrl } from "./load_module.ts";
 * console.log(moduleUrl("/work/m.ts")); // "file:///work/m.ts"
 * ```
 */
export function moduleUrl(specifier: string): string {
  return /^[a-z][a-z0-9+.-]*:/i.test(specifier) && !/^[a-z]:[\\/]/i.test(specifier) ? specifier : pathToFileURL(resolve(specifier)).href;
}

const TS = /\.[mc]?ts$/;

/**
 * One line saying why a module could not be loaded and what to do, or undefined when the error is not a
 * loading problem this module knows (the caller then reports it as it is).
 *
 * @example
 * ```ts
 * import { describeLoadError } from "./load_module.ts";
 * const e = new Error('Transform failed with 1 error:\n/w/m.ts:2:10: ERROR: Unexpected ";"');
 * console.log(describeLoadError(e, "file:///w/m.ts")); // '/w/m.ts:2:11: syntax error: Unexpected ";"; fix the module'
 * ```
 */
export function describeLoadError(e: unknown, url: string): string | undefined {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown })?.code;
  // tsx (esbuild): "Transform failed with 1 error:\n<file>:<line>:<col>: ERROR: <text>", col counted from 0.
  const esbuild = /^(.+):(\d+):(\d+): ERROR: (.*)$/m.exec(message);
  if (/^Transform failed/.test(message) && esbuild) {
    return `${esbuild[1]}:${esbuild[2]}:${Number(esbuild[3]) + 1}: syntax error: ${esbuild[4]}; fix the module`;
  }
  // Deno: "SyntaxError: <text>\n  |\n2 | <source>\n  |   ~\n    at file:///<file>:<line>:<col>".
  const deno = /^(SyntaxError: .*)$[\s\S]*^\s+at (file:\/\/\S+?):(\d+):(\d+)\s*$/m.exec(message);
  if (deno) return `${fileURLToPath(deno[2])}:${deno[3]}:${deno[4]}: syntax error: ${deno[1].replace(/^SyntaxError: /, "")}; fix the module`;
  // V8 in Node names neither file nor line for a module that does not parse; `node --check` does.
  if (e instanceof SyntaxError && !("Deno" in globalThis) && url.startsWith("file:")) {
    const file = fileURLToPath(url);
    const checked = spawnSync(process.execPath, ["--check", file], { encoding: "utf8", timeout: 30_000 });
    const lines = (checked.stderr ?? "").split("\n");
    const at = /^(.+):(\d+)$/.exec(lines[0] ?? "");
    const caret = (lines[2] ?? "").indexOf("^");
    if (at) return `${at[1]}:${at[2]}${caret >= 0 ? `:${caret + 1}` : ""}: syntax error: ${message}; fix the module`;
    return `${file}: syntax error: ${message}; fix the module`;
  }
  if (code === "ERR_UNKNOWN_FILE_EXTENSION" && TS.test(url)) {
    return `this Node (${process.version}) does not run TypeScript by itself; run arrowpoint through its npm bin with tsx installed ` +
      "in your project (npm install --save-dev tsx), compile the module to .mjs, or use Deno";
  }
  if (code === "ARROWPOINT_TYPESCRIPT_LOADER") return message;
  if (/require\(\)|ES Module|Cannot use import statement/.test(message)) {
    return `${message.split("\n")[0]}; the file was loaded as CommonJS: name it .mts/.mjs or put it in a package with "type": "module"`;
  }
  return undefined;
}
