// cli/ is a client of the library: it reaches it through mod.ts only, so anything the CLI needs is public.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

test("cli/ source files import the library through ../mod.ts only", () => {
  const dir = fileURLToPath(new URL(".", import.meta.url));
  const offenders: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!/\.(ts|mjs)$/.test(name) || name.endsWith("_test.ts")) continue;
    const text = readFileSync(dir + name, "utf8");
    for (const m of text.matchAll(/from\s+"(\.\.\/[^"]+)"|import\(\s*"(\.\.\/[^"]+)"\s*\)/g)) {
      const spec = m[1] ?? m[2];
      if (spec !== "../mod.ts") offenders.push(`${name}: ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});
