// cli/ reaches the library through mod.ts only: every CLI verb is one call a user of the library could make,
// so a call the CLI needs and mod.ts lacks is added to the library, not imported around it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL(".", import.meta.url));

/** The module specifiers of a source: static and dynamic imports, re-exports, also in doc examples. */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*(?:\*\s*)?import\s+)(["'])([^"'\n]+)\1/gm;
  for (const m of source.matchAll(pattern)) found.push(m[2]);
  return found;
}

/** The specifiers that reach our code other than through ../mod.ts or a sibling file of cli/. */
function offenders(source: string, siblings: ReadonlySet<string>): string[] {
  return specifiers(source).filter((s) => {
    if (s === "../mod.ts") return false;
    if (s.startsWith("./")) return !siblings.has(s.slice(2));
    // Anything else relative or absolute is a path into our tree; bare specifiers are packages or node:.
    return s.startsWith("../") || s.startsWith("/") || s.startsWith("file:");
  });
}

test("the import check finds deep imports, dynamic ones and those in doc examples", () => {
  const siblings = new Set(["main.ts"]);
  assert.deepEqual(
    offenders(
      [
        `import { gc } from "../snapshot/retention.ts";`,
        `import type { Progress } from '../migrate/progress.ts';`,
        `const m = await import("../backends/open.ts");`,
        `export { x } from "./not_in_cli.ts";`,
        ` * import { VERSION } from "../format/version.ts";`,
        `import { main } from "./main.ts";`,
        `import { openStorage } from "../mod.ts";`,
        `import { parseArgs } from "node:util";`,
      ].join("\n"),
      siblings,
    ),
    ["../snapshot/retention.ts", "../migrate/progress.ts", "../backends/open.ts", "./not_in_cli.ts", "../format/version.ts"],
  );
});

test("cli/ imports the library through ../mod.ts only", () => {
  const files = readdirSync(CLI).filter((f) => /\.(ts|mts|mjs|js)$/.test(f));
  const siblings = new Set(files.filter((f) => !f.endsWith("_test.ts")));
  const sources = [...siblings];
  assert.ok(sources.includes("verbs.ts") && sources.includes("main.ts"), `cli/ sources not found in ${CLI}`);
  const found: string[] = [];
  for (const file of sources) {
    for (const spec of offenders(readFileSync(`${CLI}/${file}`, "utf8"), siblings)) found.push(`cli/${file} imports ${spec}`);
  }
  assert.deepEqual(found, [], "import these from ../mod.ts (add to mod.ts what is missing there)");
});
