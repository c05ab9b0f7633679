/**
 * Operator (non-keyed) list state of one subtask, and the redistribution of a snapshot's lists over a new
 * parallelism: `split`, `union`, `broadcast`.
 *
 * @module
 */
import { IncompatibleSnapshotError } from "../format/errors.ts";
import type { Redistribution } from "../format/state_layout.ts";
import type { OperatorListState, OperatorListStateDescriptor } from "./state.ts";
import { stableStringify } from "./keyed_backend.ts";

class ListImpl<T> implements OperatorListState<T> {
  items: T[] = [];
  get(): readonly T[] {
    return this.items;
  }
  add(value: T): void {
    this.items.push(value);
  }
  update(values: readonly T[]): void {
    this.items = values.slice();
  }
  clear(): void {
    this.items = [];
  }
}

/** One registered operator state. */
export interface OperatorStateEntry {
  /** The descriptor. */
  // deno-lint-ignore no-explicit-any
  readonly desc: OperatorListStateDescriptor<any>;
  /** The handle (its `items` are what is snapshotted). */
  readonly list: { items: unknown[] };
}

/**
 * The operator states of one subtask.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OperatorStateStore } from "./operator_state.ts";
 * import { operatorListState } from "./state.ts";
 * const store = new OperatorStateStore();
 * const seen = store.getListState(operatorListState<string>("seen"));
 * seen.add("a");
 * assert.deepEqual(store.entry("seen")!.list.items, ["a"]);
 * ```
 */
export class OperatorStateStore {
  private readonly states = new Map<string, OperatorStateEntry>();
  private readonly restored = new Map<string, { redistribution: Redistribution; value: unknown; schemaVersion: number; items: unknown[] }>();

  /** The list state of a descriptor (registering it on first use; restored items are loaded then). */
  getListState<T>(desc: OperatorListStateDescriptor<T>): OperatorListState<T> {
    const existing = this.states.get(desc.name);
    if (existing) return existing.list as unknown as OperatorListState<T>;
    const list = new ListImpl<T>();
    const r = this.restored.get(desc.name);
    if (r) {
      this.restored.delete(desc.name);
      if (r.redistribution !== desc.redistribution || stableStringify(r.value) !== stableStringify(desc.value) || r.schemaVersion !== desc.schemaVersion) {
        throw new IncompatibleSnapshotError(
          `Cannot restore operator state ${JSON.stringify(desc.name)} as its mode or value layout changed ` +
            `(snapshot ${r.redistribution} ${stableStringify(r.value)} v${r.schemaVersion}, job ${desc.redistribution} ${stableStringify(desc.value)} v${desc.schemaVersion}); ` +
            "migrate the snapshot first or give the state a new name",
        );
      }
      list.items = r.items as T[];
    }
    this.states.set(desc.name, { desc, list: list as unknown as { items: unknown[] } });
    return list;
  }

  /** A registered state by name. */
  entry(name: string): OperatorStateEntry | undefined {
    return this.states.get(name);
  }

  /** Every registered state. */
  all(): IterableIterator<OperatorStateEntry> {
    return this.states.values();
  }

  /** Stages restored items of a state for this subtask; loaded on registration. */
  stageRestored(name: string, redistribution: Redistribution, value: unknown, schemaVersion: number, items: unknown[]): void {
    this.restored.set(name, { redistribution, value, schemaVersion, items });
  }

  /** Names restored but not registered. */
  pendingRestored(): string[] {
    return [...this.restored.keys()];
  }

  /** Drops restored items that were not registered. */
  dropPendingRestored(): void {
    this.restored.clear();
  }
}

/**
 * Deals a snapshot's operator-state items (each tagged with the old subtask it came from) to the
 * subtasks of a new parallelism:
 * - `split`: the items of all old subtasks, in subtask order, dealt round-robin (item i → subtask i mod p);
 * - `union`: every new subtask gets every item;
 * - `broadcast`: new subtask i gets the list of old subtask i mod (old parallelism).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { redistribute } from "./operator_state.ts";
 * const parts = redistribute("split", ["a", "b", "c"], [0, 0, 1], 2, 2);
 * assert.deepEqual(parts, [["a", "c"], ["b"]]);
 * ```
 */
export function redistribute(mode: Redistribution, values: readonly unknown[], subtasks: readonly number[], oldParallelism: number, parallelism: number): unknown[][] {
  const out: unknown[][] = Array.from({ length: parallelism }, () => []);
  if (mode === "union") {
    for (const list of out) for (const v of values) list.push(v);
  } else if (mode === "broadcast") {
    const byOld: unknown[][] = Array.from({ length: Math.max(oldParallelism, 1) }, () => []);
    for (let i = 0; i < values.length; i++) byOld[subtasks[i] ?? 0]?.push(values[i]);
    for (let i = 0; i < parallelism; i++) out[i] = byOld[i % byOld.length].slice();
  } else {
    for (let i = 0; i < values.length; i++) out[i % parallelism].push(values[i]);
  }
  return out;
}
