/**
 * Registers every CLI verb. Each verb is one library call.
 *
 * @module
 */
export {};
