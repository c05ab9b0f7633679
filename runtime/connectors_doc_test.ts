// Runs the TypeScript blocks of docs/connectors.md as written (each a complete program importing
// "arrowpoint"), under the runtime running this test: tsx under Node, deno under Deno.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { exec, runTs } from "../backends/_test_exec.ts";

const root = new URL("..", import.meta.url).pathname;
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const dir = join(root, ".tmp", `connectors-doc-${isDeno ? "deno" : "node"}-${process.pid}`);

const deno = join(root, "node_modules", ".bin", "deno");

async function typeCheck(file: string): Promise<void> {
  const r = await exec(deno, ["check", file]);
  assert.equal(r.code, 0, `${file} does not type-check\n${r.out}\n${r.err}`);
}

async function blocks(): Promise<string[]> {
  const md = await readFile(join(root, "docs", "connectors.md"), "utf8");
  return [...md.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
}

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("docs/connectors.md has the two complete examples, importing only from arrowpoint and node:", async () => {
  const all = await blocks();
  assert.equal(all.length, 2);
  for (const b of all) {
    for (const m of b.matchAll(/from "([^"]+)"/g)) assert.ok(m[1] === "arrowpoint" || m[1].startsWith("node:"), `import from ${m[1]}`);
  }
});

const EXPECTED = [
  "source example: 8 lines, each once",
  "sink example: 0 records visible after the crash, 1000 after the restore, each once",
];

for (const [i, expected] of EXPECTED.entries()) {
  test(`docs/connectors.md example ${i + 1} type-checks, runs and keeps its promises: "${expected}"`, async () => {
    const code = (await blocks())[i].replaceAll('from "arrowpoint"', `from ${JSON.stringify(join(root, "mod.ts"))}`);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `example-${i + 1}.ts`);
    await writeFile(file, code);
    await typeCheck(file); // as written (neither tsx nor deno run checks types)
    const out = await runTs(file);
    assert.match(out, new RegExp(`^${expected}$`, "m"));
  });
}
