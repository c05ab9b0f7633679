/**
 * The one place that decides whether chunk encoding and decoding may generate code (`new Function`) for
 * their hot loops. Generated loops read object fields with monomorphic property loads (2–3× faster on 1M
 * rows); where code generation from strings is disallowed (e.g. `--disallow-code-generation-from-strings`)
 * generic loops are used instead. Tests switch `codegen.enabled` off to cover those.
 *
 * @module
 */

/** Whether generated loops are used; set to false to force the generic ones. */
export const codegen: { enabled: boolean } = { enabled: true };

/**
 * Compiles a function from source, or returns null (and disables code generation) if the runtime refuses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileFunction } from "./_chunk_codegen.ts";
 * const add = compileFunction<(a: number, b: number) => number>(["a", "b"], "return a + b;");
 * assert.equal(add?.(1, 2), 3);
 * ```
 */
export function compileFunction<F>(params: readonly string[], body: string): F | null {
  if (!codegen.enabled) return null;
  try {
    return new Function(...params, body) as F;
  } catch {
    codegen.enabled = false;
    return null;
  }
}
