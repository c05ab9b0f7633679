#!/usr/bin/env node
// Keeps the README honest: runs every shell command in its ```sh blocks, in order, from the repository
// root, and type-checks its TypeScript blocks (together, importing the working tree as "arrowpoint").
// `npm install` and `npm test` are run by CI itself (.ci/run), so they are not repeated here.
import { execSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const readme = readFileSync(join(root, "README.md"), "utf8");
const blocks = (lang) => [...readme.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]);
const byCi = new Set(["npm install", "npm test", "npm ci"]);

rmSync(join(root, "arrowpoint-demo"), { recursive: true, force: true });
let ran = 0;
for (const block of blocks("sh")) {
  for (const line of block.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))) {
    for (const command of line.split("&&").map((c) => c.trim())) {
      if (byCi.has(command)) {
        console.log(`(run by .ci/run) ${command}`);
        continue;
      }
      console.log(`$ ${command}`);
      execSync(command, { cwd: root, stdio: ["ignore", "ignore", "inherit"], timeout: 300_000 });
      ran++;
    }
  }
}

const tmp = join(root, ".tmp");
mkdirSync(tmp, { recursive: true });
const file = join(tmp, "readme_snippets.ts");
const code = blocks("ts").join("\n").replaceAll('from "arrowpoint"', 'from "../mod.ts"');
// Imports first (the blocks are one module), then the statements in README order.
const lines = code.split("\n");
const imports = [];
const rest = [];
for (let i = 0; i < lines.length; i++) {
  if (/^import /.test(lines[i])) {
    let stmt = lines[i];
    while (!/;\s*$/.test(stmt)) stmt += "\n" + lines[++i];
    imports.push(stmt);
  } else rest.push(lines[i]);
}
writeFileSync(file, imports.join("\n") + "\nexport {};\n" + rest.join("\n"));
execSync(`${join(root, "node_modules/.bin/deno")} check ${file}`, { cwd: root, stdio: "inherit" });
console.log(`README: ${ran} commands ran, ${blocks("ts").length} TypeScript blocks type-check`);
