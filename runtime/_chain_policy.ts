/**
 * The base-or-delta policy of incremental checkpoints: per keyed state of a subtask, whether the next
 * checkpoint writes a full base or a delta of what changed, and how the chain's bookkeeping moves once
 * it is captured. Private to the runtime (the leading underscore); kept apart from the subtasks so the
 * policy can be read, tested and changed without the capture and write machinery around it.
 *
 * @module
 */
import type { ChainInfo } from "./keyed_backend.ts";

/** Settings of incremental checkpoints a task needs. */
export interface ChainSettings {
  /** Whether checkpoints are incremental. */
  readonly incremental: boolean;
  /** Write a base at least every this many checkpoints. */
  readonly fullEvery: number;
  /** Write a base when this many chunks overlap the subtask's range. */
  readonly maxChainLength: number;
  /** Compression of checkpoint chunks. */
  readonly compression: "none" | "deflate";
}

/** What the next checkpoint writes for a state whose chain is `c`. */
export function chunkKind(c: ChainInfo, settings: ChainSettings): "base" | "delta" {
  const base = !settings.incremental || c.forceBase || c.chainLength === 0 || c.sinceBase + 1 >= settings.fullEvery || c.chainLength >= settings.maxChainLength;
  return base ? "base" : "delta";
}

/**
 * Moves the chain past a captured checkpoint chunk of `rows` rows; false when nothing is to be written
 * (an empty delta, or an empty base of a state that has no chain to reset).
 */
export function advanceChain(c: ChainInfo, kind: "base" | "delta", rows: number): boolean {
  if (kind === "base") {
    c.forceBase = false;
    c.sinceBase = 0;
    if (rows === 0 && c.chainLength === 0) return false; // nothing to write, nothing to reset
    c.chainLength = 1;
    return true;
  }
  c.sinceBase++;
  if (rows === 0) return false;
  c.chainLength++;
  return true;
}
