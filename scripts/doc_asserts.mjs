#!/usr/bin/env node
// Rewrites JSDoc example lines `console.log(a, b); // A B` into `assert.equal(a, A); assert.equal(b, B);`
// (assert.deepEqual for objects), where the comment parses as that many JavaScript literals, and adds
// `import assert from "node:assert/strict";` to each example it changes. Lines it cannot read are listed for
// a hand edit. Run scripts/doctest.mjs afterwards: a comment that was wrong now fails.
//
//   node scripts/doc_asserts.mjs FILE.ts ...
import { readFileSync, writeFileSync } from "node:fs";
import vm from "node:vm";

function splitArgs(s) {
  const out = [];
  let depth = 0, cur = "", q = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      cur += c;
      if (c === "\\") { cur += s[++i]; continue; }
      if (c === q) q = null;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") { q = c; cur += c; continue; }
    if ("([{".includes(c)) depth++;
    if (")]}".includes(c)) depth--;
    if (c === "," && depth === 0) { out.push(cur.trim()); cur = ""; continue; }
    cur += c;
  }
  if (depth !== 0 || q) return undefined;
  out.push(cur.trim());
  return out;
}

function literal(text) {
  const t = text.replace(/\b(Uint8Array|Uint16Array|Int32Array|Float64Array) \[([^\]]*)\]/g, "new $1([$2])");
  try {
    const v = vm.runInNewContext("(" + t + ")", {}, { timeout: 50 });
    if (typeof v === "function") return undefined;
    return { text: t, v };
  } catch {
    return undefined;
  }
}

// split a comment into n literals separated by spaces
function splitValues(comment, n) {
  const c = comment.trim();
  if (n === 1) {
    const l = literal(c);
    return l ? [l] : undefined;
  }
  const spaces = [];
  for (let i = 0; i < c.length; i++) if (c[i] === " ") spaces.push(i);
  for (const sp of spaces) {
    const head = literal(c.slice(0, sp));
    if (!head) continue;
    const rest = splitValues(c.slice(sp + 1), n - 1);
    if (rest) return [head, ...rest];
  }
  return undefined;
}

const isPrim = (v) => v === null || (typeof v !== "object" && typeof v !== "function");
let converted = 0;
const left = [];
for (const file of process.argv.slice(2)) {
  const lines = readFileSync(file, "utf8").split("\n");
  let inDoc = false, inCode = false, blockStart = -1, blockUses = false, changed = false;
  const inserts = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!inDoc) { if (/^\s*\/\*\*/.test(line) && !/\*\/\s*$/.test(line)) inDoc = true; continue; }
    if (/\*\/\s*$/.test(line)) { inDoc = false; continue; }
    if (!inCode) {
      if (/^\s*\*\s?```(ts|typescript)\b/.test(line)) { inCode = true; blockStart = i; blockUses = /node:assert/.test(""); }
      continue;
    }
    if (/^\s*\*\s?```\s*$/.test(line)) {
      inCode = false;
      if (blockUses) {
        const has = lines.slice(blockStart, i).some((l) => /node:assert/.test(l));
        if (!has) inserts.push(blockStart);
      }
      continue;
    }
    const m = /^(\s*\*\s*)console\.log\((.*)\);\s*\/\/\s*(.*)$/.exec(line);
    if (!m) { if (/console\.log/.test(line)) left.push(`${file}:${i + 1}: ${line.trim()}`); continue; }
    const args = splitArgs(m[2]);
    const vals = args && splitValues(m[3], args.length);
    if (!vals) { left.push(`${file}:${i + 1}: ${line.trim()}`); continue; }
    lines[i] = args.map((a, k) => `${m[1]}assert.${isPrim(vals[k].v) ? "equal" : "deepEqual"}(${a}, ${vals[k].text});`).join("\n");
    blockUses = true; changed = true; converted++;
  }
  for (const at of inserts.reverse()) {
    const indent = /^(\s*\*\s?)/.exec(lines[at])[1];
    lines.splice(at + 1, 0, `${indent}import assert from "node:assert/strict";`);
  }
  if (changed) writeFileSync(file, lines.join("\n"));
}
console.log(`converted ${converted}`);
console.log(left.join("\n"));
