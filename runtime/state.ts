/**
 * State descriptors and the state handles user functions work with.
 *
 * Keyed state (`valueState`, `listState`, `mapState`, `reducingState`, `aggregatingState`) is scoped to
 * the key of the record being processed, exactly as in Apache Flink. Operator state
 * (`operatorListState`) is a list per subtask, redistributed by its mode when parallelism changes.
 *
 * Values are stored by reference and encoded when a checkpoint barrier passes: a value given to
 * `update`/`add`/`put` may be mutated afterwards only through the state API (mutating it and calling
 * `update` again is fine).
 *
 * A state with a typed value schema (`value: { encoding: "arrow", type }`) checks each value where it is
 * stored (`update`, `add`, `addAll`, `put`; the result of `reduce` and the accumulator of an aggregate) and
 * throws a `SchemaViolationError` naming the state, the key and the field, so a wrong value fails the
 * record that stored it — not a checkpoint much later, and not never in a job without checkpoints. The
 * check takes exactly what the chunk encoder takes (`format/value_check.ts`); fields a struct does not
 * declare are ignored, as the encoder ignores them. msgpack states take any value msgpack encodes.
 *
 * @module
 */
import type { KeyType, Redistribution, StateKind, ValueEncoding } from "../format/state_layout.ts";
import { MSGPACK_VALUES } from "../format/state_layout.ts";

/**
 * What every state descriptor has.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { StateDescriptorBase } from "./state.ts";
 * import { valueState } from "./state.ts";
 * const d: StateDescriptorBase = valueState<number>("n");
 * assert.equal(d.kind, "value");
 * assert.equal(d.value.encoding, "msgpack");
 * assert.equal(d.schemaVersion, 1);
 * ```
 */
export interface StateDescriptorBase {
  /** The state name, unique within its operator; it is the name in snapshots. */
  readonly name: string;
  /** The state kind. */
  readonly kind: StateKind;
  /** How values (list state: elements) are encoded in snapshots: typed Arrow columns or msgpack. */
  readonly value: ValueEncoding;
  /** The version of the value schema (offline migrations step n → n+1). */
  readonly schemaVersion: number;
}

/**
 * Options shared by keyed state descriptors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { StateOptions } from "./state.ts";
 * const typed: StateOptions = { value: { encoding: "arrow", type: "float64" }, schemaVersion: 2 };
 * assert.equal(typed.schemaVersion, 2);
 * ```
 */
export interface StateOptions {
  /** Value encoding; default msgpack (any msgpack-serialisable value). */
  value?: ValueEncoding;
  /** Schema version of the value; default 1. */
  schemaVersion?: number;
}

/**
 * Descriptor of a {@link ValueState}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ValueStateDescriptor } from "./state.ts";
 * import { valueState } from "./state.ts";
 * const d: ValueStateDescriptor<{ n: number }> = valueState("count");
 * assert.equal(d.name, "count");
 * ```
 */
export interface ValueStateDescriptor<T> extends StateDescriptorBase {
  /** `value`. */
  readonly kind: "value";
  /** Phantom field carrying the value type. */
  readonly __type?: T;
}

/**
 * Descriptor of a {@link ListState}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ListStateDescriptor } from "./state.ts";
 * import { listState } from "./state.ts";
 * const d: ListStateDescriptor<string> = listState("recent-pages");
 * assert.equal(d.kind, "list");
 * ```
 */
export interface ListStateDescriptor<T> extends StateDescriptorBase {
  /** `list`. */
  readonly kind: "list";
  /** Phantom field carrying the element type. */
  readonly __type?: T;
}

/**
 * Descriptor of a {@link MapState}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { MapStateDescriptor } from "./state.ts";
 * import { mapState } from "./state.ts";
 * const d: MapStateDescriptor<bigint, string> = mapState("by-id", { userKeyType: "int64" });
 * assert.equal(d.userKeyType, "int64");
 * ```
 */
export interface MapStateDescriptor<UK, V> extends StateDescriptorBase {
  /** `map`. */
  readonly kind: "map";
  /** How user keys are stored. */
  readonly userKeyType: KeyType;
  /** Phantom field carrying the user-key and value types. */
  readonly __type?: [UK, V];
}

/**
 * Descriptor of a {@link ReducingState}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ReducingStateDescriptor } from "./state.ts";
 * import { reducingState } from "./state.ts";
 * const d: ReducingStateDescriptor<number> = reducingState("max", Math.max);
 * assert.equal(d.reduce(2, 5), 5);
 * ```
 */
export interface ReducingStateDescriptor<T> extends StateDescriptorBase {
  /** `reducing`. */
  readonly kind: "reducing";
  /** Combines the stored value with an added one. */
  readonly reduce: (acc: T, value: T) => T;
}

/**
 * How an {@link AggregatingState} folds inputs into an accumulator.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AggregateFunction } from "./state.ts";
 * const mean: AggregateFunction<number, [number, number], number> = {
 *   createAccumulator: () => [0, 0],
 *   add: (v, [n, s]) => [n + 1, s + v],
 *   getResult: ([n, s]) => s / n,
 * };
 * assert.equal(mean.getResult(mean.add(4, mean.add(2, mean.createAccumulator()))), 3);
 * ```
 */
export interface AggregateFunction<IN, ACC, OUT> {
  /** A fresh accumulator. */
  createAccumulator(): ACC;
  /** Folds one input in (may return the same, mutated accumulator). */
  add(value: IN, acc: ACC): ACC;
  /** The result of an accumulator. */
  getResult(acc: ACC): OUT;
}

/**
 * Descriptor of an {@link AggregatingState}; the accumulator is what is stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { AggregatingStateDescriptor } from "./state.ts";
 * import { aggregatingState } from "./state.ts";
 * const d: AggregatingStateDescriptor<number, number, string> = aggregatingState("sum", {
 *   createAccumulator: () => 0, add: (v, acc) => acc + v, getResult: (acc) => acc.toFixed(2),
 * });
 * assert.equal(d.kind, "aggregating");
 * ```
 */
export interface AggregatingStateDescriptor<IN, ACC, OUT> extends StateDescriptorBase {
  /** `aggregating`. */
  readonly kind: "aggregating";
  /** The aggregate function. */
  readonly aggregate: AggregateFunction<IN, ACC, OUT>;
}

/**
 * Descriptor of an {@link OperatorListState}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OperatorListStateDescriptor } from "./state.ts";
 * import { operatorListState } from "./state.ts";
 * const d: OperatorListStateDescriptor<string> = operatorListState("rules", { redistribution: "broadcast" });
 * assert.equal(d.redistribution, "broadcast");
 * ```
 */
export interface OperatorListStateDescriptor<T> extends StateDescriptorBase {
  /** `operator-list`. */
  readonly kind: "operator-list";
  /** How items move when parallelism changes. */
  readonly redistribution: Redistribution;
  /** Phantom field carrying the item type. */
  readonly __type?: T;
}

/**
 * Any keyed state descriptor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { KeyedStateDescriptor } from "./state.ts";
 * import { listState, valueState } from "./state.ts";
 * const all: KeyedStateDescriptor[] = [valueState<number>("a"), listState<string>("b")];
 * assert.deepEqual(all.map((d) => d.kind), ["value", "list"]);
 * ```
 */
export type KeyedStateDescriptor =
  // deno-lint-ignore no-explicit-any
  | ValueStateDescriptor<any>
  // deno-lint-ignore no-explicit-any
  | ListStateDescriptor<any>
  // deno-lint-ignore no-explicit-any
  | MapStateDescriptor<any, any>
  // deno-lint-ignore no-explicit-any
  | ReducingStateDescriptor<any>
  // deno-lint-ignore no-explicit-any
  | AggregatingStateDescriptor<any, any, any>;

function checkName(name: string): void {
  if (typeof name !== "string" || name.length === 0 || name.length > 512) {
    throw new TypeError(`Cannot declare state as its name must be a non-empty string of at most 512 characters: current value is ${JSON.stringify(name)}`);
  }
}

function base(name: string, options: StateOptions): { name: string; value: ValueEncoding; schemaVersion: number } {
  checkName(name);
  const schemaVersion = options.schemaVersion ?? 1;
  if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
    throw new RangeError(`Cannot declare state ${JSON.stringify(name)} as schemaVersion must be a positive integer: current value is ${schemaVersion}`);
  }
  return { name, value: options.value ?? MSGPACK_VALUES, schemaVersion };
}

/**
 * Declares a keyed value state: one value per key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { valueState } from "./state.ts";
 * const count = valueState<{ n: number; sum: number }>("count", {
 *   value: { encoding: "arrow", type: { struct: [{ name: "n", type: "int32" }, { name: "sum", type: "float64" }] } },
 * });
 * assert.equal(count.kind, "value");
 * ```
 */
export function valueState<T>(name: string, options: StateOptions = {}): ValueStateDescriptor<T> {
  return { kind: "value", ...base(name, options) };
}

/**
 * Declares a keyed list state: a list of elements per key (`value` describes one element).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listState } from "./state.ts";
 * const recent = listState<number>("recent", { value: { encoding: "arrow", type: "float64" } });
 * assert.equal(recent.kind, "list");
 * ```
 */
export function listState<T>(name: string, options: StateOptions = {}): ListStateDescriptor<T> {
  return { kind: "list", ...base(name, options) };
}

/**
 * Declares a keyed map state: a map from user key to value per key. `userKeyType` defaults to `string`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapState } from "./state.ts";
 * const perPage = mapState<string, number>("per-page", { userKeyType: "string" });
 * assert.equal(perPage.userKeyType, "string");
 * ```
 */
export function mapState<UK, V>(name: string, options: StateOptions & { userKeyType?: KeyType } = {}): MapStateDescriptor<UK, V> {
  return { kind: "map", userKeyType: options.userKeyType ?? "string", ...base(name, options) };
}

/**
 * Declares a keyed reducing state: adding a value folds it into the stored one with `reduce`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reducingState } from "./state.ts";
 * const total = reducingState<number>("total", (a, b) => a + b, { value: { encoding: "arrow", type: "float64" } });
 * assert.equal(total.reduce(1, 2), 3);
 * ```
 */
export function reducingState<T>(name: string, reduce: (acc: T, value: T) => T, options: StateOptions = {}): ReducingStateDescriptor<T> {
  if (typeof reduce !== "function") throw new TypeError(`Cannot declare reducing state ${JSON.stringify(name)} as reduce must be a function`);
  return { kind: "reducing", reduce, ...base(name, options) };
}

/**
 * Declares a keyed aggregating state: inputs fold into a stored accumulator; reads give the result.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregatingState } from "./state.ts";
 * const avg = aggregatingState<number, { n: number; sum: number }, number>("avg", {
 *   createAccumulator: () => ({ n: 0, sum: 0 }),
 *   add: (v, acc) => ({ n: acc.n + 1, sum: acc.sum + v }),
 *   getResult: (acc) => acc.sum / acc.n,
 * });
 * assert.equal(avg.kind, "aggregating");
 * ```
 */
export function aggregatingState<IN, ACC, OUT>(
  name: string,
  aggregate: AggregateFunction<IN, ACC, OUT>,
  options: StateOptions = {},
): AggregatingStateDescriptor<IN, ACC, OUT> {
  if (!aggregate || typeof aggregate.add !== "function" || typeof aggregate.createAccumulator !== "function" || typeof aggregate.getResult !== "function") {
    throw new TypeError(`Cannot declare aggregating state ${JSON.stringify(name)} as aggregate needs createAccumulator, add and getResult`);
  }
  return { kind: "aggregating", aggregate, ...base(name, options) };
}

/**
 * Declares an operator (non-keyed) list state with its redistribution mode: `split` (default: the union
 * of all items dealt round-robin over the new subtasks), `union` (every subtask gets every item) or
 * `broadcast` (every subtask holds the same list; each new subtask gets one old subtask's copy).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { operatorListState } from "./state.ts";
 * const buffered = operatorListState<string>("buffered", { redistribution: "split" });
 * assert.equal(buffered.redistribution, "split");
 * ```
 */
export function operatorListState<T>(name: string, options: StateOptions & { redistribution?: Redistribution } = {}): OperatorListStateDescriptor<T> {
  const redistribution = options.redistribution ?? "split";
  if (redistribution !== "split" && redistribution !== "union" && redistribution !== "broadcast") {
    throw new TypeError(`Cannot declare operator state ${JSON.stringify(name)} as redistribution must be split, union or broadcast: current value is ${JSON.stringify(redistribution)}`);
  }
  return { kind: "operator-list", redistribution, ...base(name, options) };
}

/**
 * One value per key.
 *
 * @example
 * ```ts
 * import type { ValueState } from "./state.ts";
 * function bump(count: ValueState<number>): number {
 *   const n = (count.value() ?? 0) + 1;
 *   count.update(n);
 *   return n;
 * }
 * ```
 */
export interface ValueState<T> {
  /** The value of the current key, or undefined. */
  value(): T | undefined;
  /** Sets the value of the current key (`undefined`/`null` clears it). */
  update(value: T | undefined | null): void;
  /** Removes the value of the current key. */
  clear(): void;
}

/**
 * A list per key.
 *
 * @example
 * ```ts
 * import type { ListState } from "./state.ts";
 * function remember(recent: ListState<number>, x: number): void {
 *   recent.add(x);
 *   if (recent.get().length > 10) recent.update(recent.get().slice(-10));
 * }
 * ```
 */
export interface ListState<T> {
  /** The list of the current key (empty when none); read-only: change it through the methods. */
  get(): readonly T[];
  /** Appends an element. */
  add(value: T): void;
  /** Appends elements. */
  addAll(values: readonly T[]): void;
  /** Replaces the list (an empty list clears it). */
  update(values: readonly T[]): void;
  /** Removes the list of the current key. */
  clear(): void;
}

/**
 * A map per key.
 *
 * @example
 * ```ts
 * import type { MapState } from "./state.ts";
 * function visit(pages: MapState<string, number>, page: string): void {
 *   pages.put(page, (pages.get(page) ?? 0) + 1);
 * }
 * ```
 */
export interface MapState<UK, V> {
  /** The value of a user key, or undefined. */
  get(userKey: UK): V | undefined;
  /** Sets the value of a user key. */
  put(userKey: UK, value: V): void;
  /** Removes a user key. */
  remove(userKey: UK): void;
  /** Whether the user key is present. */
  contains(userKey: UK): boolean;
  /** The entries of the current key's map. */
  entries(): IterableIterator<[UK, V]>;
  /** The user keys. */
  keys(): IterableIterator<UK>;
  /** The values. */
  values(): IterableIterator<V>;
  /** Number of entries. */
  size(): number;
  /** Whether the map is empty. */
  isEmpty(): boolean;
  /** Removes every entry of the current key. */
  clear(): void;
}

/**
 * A value per key that `add` folds new values into.
 *
 * @example
 * ```ts
 * import type { ReducingState } from "./state.ts";
 * function addAmount(total: ReducingState<number>, amount: number): number {
 *   total.add(amount);
 *   return total.get() ?? 0;
 * }
 * ```
 */
export interface ReducingState<T> {
  /** The reduced value of the current key, or undefined. */
  get(): T | undefined;
  /** Folds a value in. */
  add(value: T): void;
  /** Removes the value of the current key. */
  clear(): void;
}

/**
 * An accumulator per key that inputs fold into.
 *
 * @example
 * ```ts
 * import type { AggregatingState } from "./state.ts";
 * function observe(avg: AggregatingState<number, number>, x: number): number | undefined {
 *   avg.add(x);
 *   return avg.get();
 * }
 * ```
 */
export interface AggregatingState<IN, OUT> {
  /** The result for the current key, or undefined when nothing was added. */
  get(): OUT | undefined;
  /** Folds an input in. */
  add(value: IN): void;
  /** Removes the accumulator of the current key. */
  clear(): void;
}

/**
 * A list per subtask, snapshotted whole at every checkpoint.
 *
 * @example
 * ```ts
 * import type { OperatorListState } from "./state.ts";
 * function keepLast(seen: OperatorListState<string>, x: string): void {
 *   seen.update([x]);
 * }
 * ```
 */
export interface OperatorListState<T> {
  /** The items of this subtask (read-only: change them through the methods). */
  get(): readonly T[];
  /** Appends an item. */
  add(value: T): void;
  /** Replaces the items. */
  update(values: readonly T[]): void;
  /** Removes every item. */
  clear(): void;
}
