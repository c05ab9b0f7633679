#!/usr/bin/env node
// The `arrowpoint` command. A published package runs the compiled dist/; a checkout runs the TypeScript
// sources through tsx (a dev dependency), so `npx arrowpoint` works right after `npm ci`.
import { existsSync } from "node:fs";

const compiled = new URL("../dist/cli/main.js", import.meta.url);
let mod;
if (existsSync(compiled)) {
  mod = await import(compiled.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  mod = await import(new URL("./main.ts", import.meta.url).href);
}
process.exitCode = await mod.main(process.argv.slice(2));
