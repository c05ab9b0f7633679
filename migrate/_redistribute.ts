// Private: how operator (non-keyed) list state is laid out over a new parallelism in a snapshot.
import type { Redistribution } from "../format/state_layout.ts";

/**
 * The per-subtask lists to store for operator state moving from `oldParallelism` to `parallelism`
 * subtasks. What is stored is chosen so that the runtime's restore (runtime/operator_state.ts) gives
 * every subtask what the mode promises:
 * - `split`: the items of all old subtasks, in subtask order, dealt round-robin (item i → subtask i mod p);
 * - `union`: each item stored once (old subtask i's list → new subtask i mod p), since a restore hands
 *   every subtask the union of all lists; storing copies would multiply the items;
 * - `broadcast`: new subtask i gets a copy of old subtask (i mod old parallelism)'s list.
 */
export function redistributeItems(mode: Redistribution, values: readonly unknown[], subtasks: readonly number[], oldParallelism: number, parallelism: number): unknown[][] {
  const out: unknown[][] = Array.from({ length: parallelism }, () => []);
  if (mode === "split") {
    for (let i = 0; i < values.length; i++) out[i % parallelism].push(values[i]);
    return out;
  }
  const byOld: unknown[][] = Array.from({ length: Math.max(oldParallelism, 1) }, () => []);
  for (let i = 0; i < values.length; i++) byOld[Math.min(subtasks[i] ?? 0, byOld.length - 1)].push(values[i]);
  if (mode === "union") {
    for (let i = 0; i < byOld.length; i++) for (const v of byOld[i]) out[i % parallelism].push(v);
  } else {
    for (let i = 0; i < parallelism; i++) out[i] = byOld[i % byOld.length].slice();
  }
  return out;
}
