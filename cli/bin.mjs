#!/usr/bin/env node
// The `arrowpoint` command under Node (Deno runs cli/main.ts itself).
//
// In a checkout (cli/main.ts beside this file) it always runs the TypeScript sources through tsx, a dev
// dependency: a dist/ built earlier (`prepare` builds one on install) would run code older than the sources.
// A published package has no sources and runs the compiled dist/; a TypeScript module given to it
// (`--migrations m.ts`) is loaded through tsx when the user's project has it, since Node 20 cannot.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const sources = new URL("./main.ts", import.meta.url);
const checkout = existsSync(sources);
if (checkout) {
  try {
    await import("tsx"); // ESM and CommonJS hooks both: a .ts outside a "type": "module" package loads too
  } catch (e) {
    if (e?.code !== "ERR_MODULE_NOT_FOUND") throw e;
    console.error("arrowpoint: this checkout runs its TypeScript sources through tsx, which is not installed; run npm install");
    process.exit(2);
  }
}

/** Where tsx's loader is, from this package or from the user's project (the current directory). */
function findTsx() {
  for (const from of [import.meta.url, pathToFileURL(join(process.cwd(), "package.json")).href]) {
    try {
      return pathToFileURL(createRequire(from).resolve("tsx")).href;
    } catch {
      // not there; try the next place
    }
  }
  return undefined;
}

let tsxLoaded = checkout;
/** `import()`, and for a TypeScript file this Node refuses, the same through tsx's loader. */
async function importModule(url) {
  try {
    return await import(url);
  } catch (e) {
    if (e?.code !== "ERR_UNKNOWN_FILE_EXTENSION" || !/\.[mc]?ts$/.test(new URL(url).pathname) || tsxLoaded) throw e;
    const tsx = findTsx();
    if (!tsx) {
      throw Object.assign(
        new Error(
          `this Node (${process.version}) does not run TypeScript by itself and tsx was not found; install it in your project ` +
            "(npm install --save-dev tsx), compile the module to .mjs, or run arrowpoint with Deno",
        ),
        { code: "ARROWPOINT_TYPESCRIPT_LOADER" },
      );
    }
    await import(tsx);
    tsxLoaded = true;
    // Node remembers the failed import of this URL: ask again under another one.
    const again = new URL(url);
    again.searchParams.set("arrowpoint-tsx", "1");
    return await import(again.href);
  }
}

const mod = await import((checkout ? sources : new URL("../dist/cli/main.js", import.meta.url)).href);
process.exitCode = await mod.main(process.argv.slice(2), { importModule });
