// Test helpers for the reliability campaign (docs/reliability.md): quick/long fuzz mode, outcome
// classification ("a named ArrowpointError or a valid result, never anything else"), allocation bounds,
// and figures written for the docs.
//
// - `ARROWPOINT_LONG=1` switches every fuzz target to long mode (≥ 10,000 cases).
// - `ARROWPOINT_FIGURES=<file>` makes every target append one JSON line with its figures to that file
//   (`npm run test:long` is run with it to fill docs/reliability.md).
import { appendFileSync } from "node:fs";
import process from "node:process";
import assert from "node:assert/strict";
import { ArrowpointError } from "./errors.ts";

function env(name: string): string | undefined {
  try {
    return process.env[name];
  } catch {
    return undefined;
  }
}

/** Whether the long mode is on (`ARROWPOINT_LONG=1`). */
export const LONG: boolean = env("ARROWPOINT_LONG") === "1";

/** Number of cases for a target: `quick` normally, `long` (≥ 10,000) in long mode. */
export function cases(quick: number, long = 10_000): number {
  return LONG ? Math.max(long, 10_000) : quick;
}

/** A count that is `quick` normally and `long` in long mode (no 10,000 floor: crash points, kills, rounds). */
export function longOr(quick: number, long: number): number {
  return LONG ? long : quick;
}

/** The runtime the tests run under, for figures. */
export const RUNTIME: string = "Deno" in globalThis ? "deno" : "node";

/** External (ArrayBuffer) memory now, in bytes; works in Node and Deno (Deno reports arrayBuffers as 0). */
export function externalBytes(): number {
  const m = process.memoryUsage();
  return Math.max(m.external, m.arrayBuffers);
}

/** The outcome of one fuzz case. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: ArrowpointError };

/**
 * Figures of one fuzz or crash target: cases run, outcomes by error class. `check` runs one case and fails
 * the test on anything but a valid result or a named {@link ArrowpointError}.
 */
export class Target {
  cases = 0;
  valid = 0;
  readonly errors: Map<string, number> = new Map();
  readonly extra: Record<string, number | string> = {};
  constructor(readonly name: string) {}

  /** Runs `fn` as one case; asserts it returns or throws a named ArrowpointError (with a code and a message). */
  check<T>(fn: () => T, describe: () => string = () => ""): Outcome {
    this.cases++;
    let value: T;
    try {
      value = fn();
    } catch (e) {
      return this.#error(e, describe);
    }
    this.valid++;
    return { ok: true, value };
  }

  /** The async form of {@link Target.check}. */
  async checkAsync<T>(fn: () => Promise<T>, describe: () => string = () => ""): Promise<Outcome> {
    this.cases++;
    let value: T;
    try {
      value = await fn();
    } catch (e) {
      return this.#error(e, describe);
    }
    this.valid++;
    return { ok: true, value };
  }

  #error(e: unknown, describe: () => string): Outcome {
    if (!(e instanceof ArrowpointError)) {
      const name = (e as Error)?.constructor?.name ?? typeof e;
      assert.fail(`${this.name}: case ${this.cases} threw ${name} (not a named ArrowpointError): ${(e as Error)?.message ?? String(e)}\n${describe()}\n${(e as Error)?.stack ?? ""}`);
    }
    assert.ok(e.code.startsWith("ARROWPOINT_"), `${this.name}: error code ${e.code}`);
    assert.ok(e.message.length > 0, `${this.name}: empty message`);
    assert.ok(!/\n\s+at /.test(e.message), `${this.name}: a stack trace in the message: ${e.message}`);
    this.errors.set(e.name, (this.errors.get(e.name) ?? 0) + 1);
    return { ok: false, error: e };
  }

  /** Merges another target's counts into this one. */
  add(other: Target): void {
    this.cases += other.cases;
    this.valid += other.valid;
    for (const [k, n] of other.errors) this.errors.set(k, (this.errors.get(k) ?? 0) + n);
  }

  /** Appends the figures to `$ARROWPOINT_FIGURES` (one JSON line) when set. */
  record(): void {
    const file = env("ARROWPOINT_FIGURES");
    if (!file) return;
    const line = {
      kind: "fuzz",
      target: this.name,
      runtime: RUNTIME,
      long: LONG,
      cases: this.cases,
      valid: this.valid,
      errors: Object.fromEntries([...this.errors].sort()),
      ...this.extra,
    };
    appendFileSync(file, JSON.stringify(line) + "\n");
  }
}

/** Appends a free-form figure line (crash points, kills) to `$ARROWPOINT_FIGURES` when set. */
export function recordFigure(line: Record<string, unknown>): void {
  const file = env("ARROWPOINT_FIGURES");
  if (!file) return;
  appendFileSync(file, JSON.stringify({ runtime: RUNTIME, long: LONG, ...line }) + "\n");
}

/** A small deterministic PRNG (mulberry32) for mutation fuzzing outside fast-check. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of this run: `ARROWPOINT_SEED` or a fresh one (printed on failure by the tests). */
export const SEED: number = Number(env("ARROWPOINT_SEED") ?? Math.floor(Math.random() * 2 ** 31));
