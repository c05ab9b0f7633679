/**
 * The version of arrowpoint, written into every manifest's `writer.version`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VERSION } from "./version.ts";
 * assert.equal(VERSION, "0.1.0");
 * ```
 */
export const VERSION: string = "0.1.0";
