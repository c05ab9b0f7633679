/**
 * Schema migrations: typed, versioned steps per state (schemaVersion n → n + 1) and operator-level steps,
 * collected with {@link defineMigrations} and applied by `migrate()`.
 *
 * A migrations module is code: the CLI loads it with `--migrations <module>` only when you name it.
 * Nothing inside a snapshot is ever loaded or run as code.
 *
 * @example A migrations module for `arrowpoint migrate src dst --migrations ./migrations.ts`
 * ```ts
 * import { addField, custom, defineMigrations, dropOperator, renameField, widenType } from "./migrations.ts";
 * export default defineMigrations({
 *   "counter/counts": [
 *     addField("label", "utf8", "none"),             // v1 → v2
 *     renameField("count", "total"),                // v2 → v3
 *     widenType("total", "int64"),                  // v3 → v4 (int32 number → int64 bigint)
 *   ],
 *   "sessions/open": [custom((v) => ({ ...(v as object), migrated: true }))],
 * }, { operators: [dropOperator("old-debug-sink")] });
 * ```
 *
 * @module
 */
import type { FieldType, ScalarType, ValueEncoding } from "../format/state_layout.ts";
import { SCALAR_TYPES } from "../format/state_layout.ts";

/** What a custom step's function gets besides the value. */
export interface RowContext {
  /** The operator uid (as in the source snapshot). */
  readonly operator: string;
  /** The state name before this step. */
  readonly state: string;
  /** The row's key (undefined for operator state). */
  readonly key: unknown;
  /** The row's namespace, when the state is namespaced. */
  readonly namespace?: string;
  /** The row's user key (map state). */
  readonly userKey?: unknown;
  /** The schema version the value has before this step. */
  readonly fromVersion: number;
}

/**
 * The default of an added field: a value (copied into every row) or a function of the row's old value
 * and context.
 */
export type FieldDefault =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | readonly unknown[]
  | { readonly [field: string]: unknown }
  | ((value: unknown, ctx: RowContext) => unknown);

/** A step of a state's chain: it takes the state from schema version n to n + 1. */
export type StateStep =
  | { readonly op: "addField"; readonly name: string; readonly type: FieldType; readonly default: FieldDefault; readonly nullable: boolean }
  | { readonly op: "dropField"; readonly name: string }
  | { readonly op: "renameField"; readonly from: string; readonly to: string }
  | { readonly op: "widenType"; readonly field: string | undefined; readonly to: ScalarType }
  | { readonly op: "renameState"; readonly to: string }
  | {
    readonly op: "custom";
    readonly fn: (value: unknown, ctx: RowContext) => unknown;
    readonly value: ValueEncoding | ((old: ValueEncoding) => ValueEncoding) | undefined;
    readonly description: string;
  };

/** An operator-level step, applied before the state chains, in order. */
export type OperatorStep =
  | { readonly op: "renameOperator"; readonly from: string; readonly to: string }
  | { readonly op: "dropOperator"; readonly uid: string }
  | { readonly op: "dropState"; readonly uid: string; readonly state: string };

/** A validated set of migrations, from {@link defineMigrations}. */
export interface Migrations {
  /** Marks the object as built by `defineMigrations`. */
  readonly kind: "arrowpoint.migrations";
  /** State chains by `"uid/state"` (the names in the snapshot at schema version 1). */
  readonly states: Readonly<Record<string, readonly StateStep[]>>;
  /** Operator-level steps. */
  readonly operators: readonly OperatorStep[];
}

function checkName(name: unknown, what: string): string {
  if (typeof name !== "string" || name.length === 0 || name.length > 1024 || name === "__proto__") {
    throw new TypeError(`Cannot define the migration as ${what} must be a non-empty string: current value is ${JSON.stringify(name)}`);
  }
  return name;
}

function checkType(type: unknown): FieldType {
  if (typeof type === "string") {
    if (!SCALAR_TYPES.includes(type as ScalarType)) throw new TypeError(`Cannot define the migration as the type must be one of ${SCALAR_TYPES.join(", ")}, a struct or a list: current value is ${JSON.stringify(type)}`);
    return type as ScalarType;
  }
  if (type && typeof type === "object" && ("struct" in type || "list" in type)) return type as FieldType;
  throw new TypeError(`Cannot define the migration as the type must be a scalar type name, { struct } or { list }: current value is ${JSON.stringify(type)}`);
}

/**
 * Adds a field with a default (a value, or a function of the old value and the row).
 *
 * @example
 * ```ts
 * import { addField } from "./migrations.ts";
 * const step = addField("label", "utf8", "none");
 * const computed = addField("big", "bool", (v) => (v as { count: number }).count > 100);
 * ```
 */
export function addField(name: string, type: FieldType, defaultValue: FieldDefault, options: { nullable?: boolean } = {}): StateStep {
  return { op: "addField", name: checkName(name, "the field name"), type: checkType(type), default: defaultValue, nullable: options.nullable === true };
}

/**
 * Drops a field.
 *
 * @example
 * ```ts
 * import { dropField } from "./migrations.ts";
 * const step = dropField("debugInfo");
 * ```
 */
export function dropField(name: string): StateStep {
  return { op: "dropField", name: checkName(name, "the field name") };
}

/**
 * Renames a field.
 *
 * @example
 * ```ts
 * import { renameField } from "./migrations.ts";
 * const step = renameField("count", "total");
 * ```
 */
export function renameField(from: string, to: string): StateStep {
  return { op: "renameField", from: checkName(from, "the old field name"), to: checkName(to, "the new field name") };
}

/**
 * Widens a field's type (or the whole value's, with `field` undefined): int8/int16/int32/uint8/uint16 →
 * int32/int64, uint32 → int64, float32 → float64, any integer → float64 (only values a double holds
 * exactly), utf8 → dictionary. Arrow-typed values only.
 *
 * @example
 * ```ts
 * import { widenType } from "./migrations.ts";
 * const a = widenType("count", "int64");
 * const b = widenType(undefined, "float64"); // a scalar state value
 * ```
 */
export function widenType(field: string | undefined, to: ScalarType): StateStep {
  if (field !== undefined) checkName(field, "the field name");
  const t = checkType(to);
  if (typeof t !== "string") throw new TypeError("Cannot widen to a struct or list type: widenType takes a scalar type name");
  return { op: "widenType", field, to: t };
}

/**
 * Renames the state (its later steps and the output use the new name).
 *
 * @example
 * ```ts
 * import { renameState } from "./migrations.ts";
 * const step = renameState("countsByUser");
 * ```
 */
export function renameState(to: string): StateStep {
  return { op: "renameState", to: checkName(to, "the new state name") };
}

/**
 * A custom per-row step: `fn(value, ctx)` returns the new value (list state: the whole list), or
 * `undefined` to drop the row. `options.value` gives the new value encoding (or a function of the old one)
 * when the step changes the schema; every output value is validated against it.
 *
 * @example
 * ```ts
 * import { custom } from "./migrations.ts";
 * const cents = custom((v) => ({ amount: Math.round((v as { amount: number }).amount * 100) }), {
 *   value: { encoding: "arrow", type: { struct: [{ name: "amount", type: "int32" }] } },
 *   description: "amount in cents",
 * });
 * ```
 */
export function custom(
  fn: (value: unknown, ctx: RowContext) => unknown,
  options: { value?: ValueEncoding | ((old: ValueEncoding) => ValueEncoding); description?: string } = {},
): StateStep {
  if (typeof fn !== "function") throw new TypeError(`Cannot define a custom step as fn must be a function: current value is ${typeof fn}`);
  return { op: "custom", fn, value: options.value, description: options.description ?? (fn.name ? `custom ${fn.name}` : "custom") };
}

/**
 * Renames (remaps) an operator uid.
 *
 * @example
 * ```ts
 * import { renameOperator } from "./migrations.ts";
 * const step = renameOperator("counter", "counter-v2");
 * ```
 */
export function renameOperator(from: string, to: string): OperatorStep {
  return { op: "renameOperator", from: checkName(from, "the old uid"), to: checkName(to, "the new uid") };
}

/**
 * Drops an operator and all its state.
 *
 * @example
 * ```ts
 * import { dropOperator } from "./migrations.ts";
 * const step = dropOperator("debug-sink");
 * ```
 */
export function dropOperator(uid: string): OperatorStep {
  return { op: "dropOperator", uid: checkName(uid, "the uid") };
}

/**
 * Drops one state of an operator.
 *
 * @example
 * ```ts
 * import { dropState } from "./migrations.ts";
 * const step = dropState("counter", "legacyCache");
 * ```
 */
export function dropState(uid: string, state: string): OperatorStep {
  return { op: "dropState", uid: checkName(uid, "the uid"), state: checkName(state, "the state name") };
}

const STATE_OPS = new Set(["addField", "dropField", "renameField", "widenType", "renameState", "custom"]);
const OPERATOR_OPS = new Set(["renameOperator", "dropOperator", "dropState"]);

/**
 * Collects migrations: per state (keyed `"uid/state"`, the names the state has at schema version 1) an
 * ordered chain whose step i takes schema version i + 1 to i + 2, plus operator-level steps. A snapshot
 * state at version v runs the steps from index v - 1 on, to the newest version (chain length + 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addField, defineMigrations, renameOperator } from "./migrations.ts";
 * const m = defineMigrations({ "counter/counts": [addField("label", "utf8", "none")] }, { operators: [renameOperator("counter", "counter2")] });
 * assert.equal(m.states["counter/counts"].length, 1);
 * ```
 */
export function defineMigrations(states: Record<string, readonly StateStep[]>, options: { operators?: readonly OperatorStep[] } = {}): Migrations {
  if (!states || typeof states !== "object" || Array.isArray(states)) throw new TypeError("Cannot define migrations as states must be an object of \"uid/state\": [steps]");
  const out: Record<string, readonly StateStep[]> = {};
  for (const [key, chain] of Object.entries(states)) {
    if (!/^.+\/.+$/s.test(key)) throw new TypeError(`Cannot define migrations as ${JSON.stringify(key)} is not "uid/state"`);
    if (!Array.isArray(chain)) throw new TypeError(`Cannot define migrations as the chain of ${key} must be an array of steps`);
    chain.forEach((s: StateStep, i: number) => {
      if (!s || !STATE_OPS.has(s.op)) throw new TypeError(`Cannot define migrations as step ${i} of ${key} is not a state step (use addField, dropField, renameField, widenType, renameState or custom)`);
    });
    out[key] = Object.freeze([...chain]);
  }
  const operators = [...(options.operators ?? [])];
  operators.forEach((s, i) => {
    if (!s || !OPERATOR_OPS.has(s.op)) throw new TypeError(`Cannot define migrations as operator step ${i} is not an operator step (use renameOperator, dropOperator or dropState)`);
  });
  return Object.freeze({ kind: "arrowpoint.migrations" as const, states: Object.freeze(out), operators: Object.freeze(operators) });
}

/**
 * Whether a value is a {@link Migrations} object (what a migrations module must export).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineMigrations, isMigrations } from "./migrations.ts";
 * assert.equal(isMigrations(defineMigrations({})), true);
 * assert.equal(isMigrations({}), false);
 * ```
 */
export function isMigrations(x: unknown): x is Migrations {
  return typeof x === "object" && x !== null && (x as Migrations).kind === "arrowpoint.migrations" && typeof (x as Migrations).states === "object" && Array.isArray((x as Migrations).operators);
}

/**
 * A one-line description of a step, as the dry-run plan shows it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addField, describeStep } from "./migrations.ts";
 * assert.equal(describeStep(addField("label", "utf8", "none")), "addField label: utf8");
 * ```
 */
export function describeStep(s: StateStep): string {
  switch (s.op) {
    case "addField":
      return `addField ${s.name}: ${typeName(s.type)}${s.nullable ? "?" : ""}`;
    case "dropField":
      return `dropField ${s.name}`;
    case "renameField":
      return `renameField ${s.from} → ${s.to}`;
    case "widenType":
      return `widenType ${s.field ?? "value"} → ${s.to}`;
    case "renameState":
      return `renameState → ${s.to}`;
    case "custom":
      return s.description;
  }
}

/**
 * A short text form of a field type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { typeName } from "./migrations.ts";
 * assert.equal(typeName({ struct: [{ name: "count", type: "int64" }] }), "{count: int64}");
 * ```
 */
export function typeName(t: FieldType): string {
  if (typeof t === "string") return t;
  if ("struct" in t) return `{${t.struct.map((f) => `${f.name}: ${typeName(f.type)}`).join(", ")}}`;
  return `list<${typeName(t.list)}>`;
}
