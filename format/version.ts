/**
 * The version of arrowpoint, written into every manifest's `writer.version`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(VERSION); // "0.1.0"
 * ```
 */
export const VERSION: string = "0.1.0";
