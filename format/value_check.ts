/**
 * Whether a JS value fits a typed (Arrow) value encoding, decided with exactly the rules of the chunk
 * encoder, so a value can be refused when user code stores it instead of when a checkpoint encodes it
 * (long after, and never without checkpoints).
 *
 * This is the one rule set for JS values against an Arrow type: the runtime checks state updates with it
 * and the offline tools check the output of custom migration steps with it ({@link valueChecker}). The
 * rule is "what the chunk encoder stores exactly": an int64/uint64/timestamp number is accepted when it is
 * an integer in range (a double that is an integer converts to int64 exactly, safe or not); struct fields
 * the type does not declare are ignored (the encoder writes declared fields only; checking every key of
 * every object would tax each state update, and a schema change that drops a field must go through a
 * migration step, which declares it).
 *
 * {@link compileValueCheck} builds a predicate once per type (closures chosen per field type: no type
 * dispatch per call, no allocation); {@link explainValue} says why a value does not fit, for the error
 * message, and is only called after the predicate said no.
 *
 * @module
 */
import { Ajv, type ValidateFunction } from "ajv";
import { describeValue } from "./_describe_value.ts";
import { type FieldType, INTEGER_RANGES, type KeyType, type StateLayout } from "./state_layout.ts";

/**
 * A precomputed check of one value: true when the chunk encoder can store it.
 *
 * @example
 * ```ts
 * import { compileValueCheck, type ValueCheck } from "./value_check.ts";
 * const isCount: ValueCheck = compileValueCheck("int32");
 * console.log(isCount(3), isCount("3")); // true false
 * ```
 */
export type ValueCheck = (value: unknown) => boolean;

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;
const TWO63 = 9223372036854775808;
const TWO64 = 18446744073709551616;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// String.prototype.isWellFormed (Node 20, Deno 2) is native; the regex is the encoder's own test.
const wellFormed: (s: string) => boolean = typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
  ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);

const isFloat: ValueCheck = (v) => typeof v === "number";
const isBool: ValueCheck = (v) => typeof v === "boolean";
const isString: ValueCheck = (v) => typeof v === "string" && wellFormed(v);
const isBytes: ValueCheck = (v) => v instanceof Uint8Array;
const isInt64Number = (v: number): boolean => Math.floor(v) === v && v >= -TWO63 && v < TWO63;
const isInt64: ValueCheck = (v) => (typeof v === "number" ? isInt64Number(v) : typeof v === "bigint" && v >= INT64_MIN && v <= INT64_MAX);
const isUint64: ValueCheck = (v) => (typeof v === "number" ? Math.floor(v) === v && v >= 0 && v < TWO64 : typeof v === "bigint" && v >= 0n && v <= UINT64_MAX);
const isTimestamp: ValueCheck = (v) => typeof v === "number" ? isInt64Number(v) : v instanceof Date && isInt64Number(v.getTime());

// `(v | 0) === v` is one integer truncation instead of Math.floor: the common int32 case costs a compare.
function intCheck(lo: number, hi: number): ValueCheck {
  if (hi > 2147483647) return (v) => typeof v === "number" && (v >>> 0) === v;
  if (lo === -2147483648 && hi === 2147483647) return (v) => typeof v === "number" && (v | 0) === v;
  return (v) => typeof v === "number" && (v | 0) === v && v >= lo && v <= hi;
}

const INT_CHECKS: Readonly<Record<string, ValueCheck>> = Object.fromEntries(
  Object.entries(INTEGER_RANGES).map(([t, [lo, hi]]) => [t, intCheck(lo, hi)]),
);

function isList(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function scalarCheck(type: string): ValueCheck {
  switch (type) {
    case "float32":
    case "float64":
      return isFloat;
    case "bool":
      return isBool;
    case "utf8":
    case "dictionary":
      return isString;
    case "binary":
      return isBytes;
    case "int64":
      return isInt64;
    case "uint64":
      return isUint64;
    case "timestamp":
      return isTimestamp;
    default: {
      const c = INT_CHECKS[type];
      if (!c) throw new TypeError(`Cannot check values of type ${JSON.stringify(type)} as it is not a scalar type`);
      return c;
    }
  }
}

/**
 * Compiles the check of a value of `type` (non-nullable unless `nullable`): scalars, structs (a non-null
 * object; each declared field checked, undeclared ones ignored as the encoder ignores them) and lists (an
 * array or typed array of non-null items).
 *
 * @example
 * ```ts
 * import { compileValueCheck } from "./value_check.ts";
 * const ok = compileValueCheck({ struct: [{ name: "n", type: "int32" }, { name: "tag", type: "utf8", nullable: true }] });
 * console.log(ok({ n: 3 }), ok({ n: "3" }), ok({ n: 2 ** 31 })); // true false false
 * ```
 */
export function compileValueCheck(type: FieldType, nullable = false): ValueCheck {
  const inner = compileNonNull(type);
  return nullable ? (v) => v === null || v === undefined || inner(v) : inner;
}

function compileNonNull(type: FieldType): ValueCheck {
  if (typeof type === "string") return scalarCheck(type);
  if ("struct" in type) {
    const names = type.struct.map((f) => f.name);
    const checks = type.struct.map((f) => compileValueCheck(f.type, f.nullable === true));
    const n = names.length;
    // The common small structs get an unrolled check: one property load and one call per field.
    if (n === 1) {
      const [a] = names, [ca] = checks;
      return (v) => typeof v === "object" && v !== null && ca((v as Record<string, unknown>)[a]);
    }
    if (n === 2) {
      const [a, b] = names, [ca, cb] = checks;
      return (v) => typeof v === "object" && v !== null && ca((v as Record<string, unknown>)[a]) && cb((v as Record<string, unknown>)[b]);
    }
    if (n === 3) {
      const [a, b, c] = names, [ca, cb, cc] = checks;
      return (v) =>
        typeof v === "object" && v !== null && ca((v as Record<string, unknown>)[a]) && cb((v as Record<string, unknown>)[b]) &&
        cc((v as Record<string, unknown>)[c]);
    }
    return (v) => {
      if (typeof v !== "object" || v === null) return false;
      const o = v as Record<string, unknown>;
      for (let i = 0; i < n; i++) if (!checks[i](o[names[i]])) return false;
      return true;
    };
  }
  const item = compileNonNull(type.list);
  return (v) => {
    if (!isList(v)) return false;
    for (let i = 0; i < v.length; i++) if (!item(v[i])) return false;
    return true;
  };
}

/**
 * The check of a key or map user key of a key type, or undefined for `msgpack` (any value).
 *
 * @example
 * ```ts
 * import { keyCheck } from "./value_check.ts";
 * console.log(keyCheck("int64")!(5n), keyCheck("string")!(5), keyCheck("msgpack")); // true false undefined
 * ```
 */
export function keyCheck(keyType: KeyType): ValueCheck | undefined {
  const type = keyFieldType(keyType);
  return type === undefined ? undefined : compileValueCheck(type);
}

function expected(type: string): string {
  switch (type) {
    case "float32":
    case "float64":
      return `a number (${type})`;
    case "bool":
      return "a boolean (bool)";
    case "utf8":
    case "dictionary":
      return `a string of well-formed Unicode (${type})`;
    case "binary":
      return "a Uint8Array (binary)";
    case "int64":
      return "a bigint or an integer number in int64 range (int64)";
    case "uint64":
      return "a bigint or an integer number in uint64 range (uint64)";
    case "timestamp":
      return "milliseconds since the epoch as an integer number, or a Date (timestamp)";
    default: {
      const r = INTEGER_RANGES[type as keyof typeof INTEGER_RANGES];
      return r ? `an integer in ${r[0]}..${r[1]} (${type})` : type;
    }
  }
}

/**
 * Why `value` does not fit `type` (the first problem, at a path such as `value.user.id`), or undefined
 * when it fits. Same rules as {@link compileValueCheck}.
 *
 * @example
 * ```ts
 * import { explainValue } from "./value_check.ts";
 * console.log(explainValue("int32", "7")); // value must be an integer in -2147483648..2147483647 (int32), got string "7"
 * ```
 */
export function explainValue(type: FieldType, value: unknown, nullable = false, path = "value"): string | undefined {
  if (value === null || value === undefined) return nullable ? undefined : `${path} is ${describeValue(value)} but it is not nullable`;
  if (typeof type === "string") return scalarCheck(type)(value) ? undefined : `${path} must be ${expected(type)}, got ${describeValue(value)}${typeof value === "string" && !wellFormed(value) ? " (it has a lone surrogate, which UTF-8 cannot hold)" : ""}`;
  if ("struct" in type) {
    if (typeof value !== "object") return `${path} must be an object with fields ${type.struct.map((f) => f.name).join(", ")}, got ${describeValue(value)}`;
    for (const f of type.struct) {
      const why = explainValue(f.type, (value as Record<string, unknown>)[f.name], f.nullable === true, `${path}.${f.name}`);
      if (why !== undefined) return why;
    }
    return undefined;
  }
  if (!isList(value)) return `${path} must be an array, got ${describeValue(value)}`;
  for (let i = 0; i < value.length; i++) {
    const why = explainValue(type.list, value[i], false, `${path}[${i}]`);
    if (why !== undefined) return why;
  }
  return undefined;
}

/**
 * The field type a key type is checked as, or undefined for `msgpack` (any value).
 *
 * @example
 * ```ts
 * import { keyFieldType } from "./value_check.ts";
 * console.log(keyFieldType("bytes"), keyFieldType("msgpack")); // "binary" undefined
 * ```
 */
export function keyFieldType(keyType: KeyType): FieldType | undefined {
  switch (keyType) {
    case "string":
      return "utf8";
    case "bytes":
      return "binary";
    case "msgpack":
      return undefined;
    default:
      return keyType;
  }
}

const ajv = new Ajv({ allErrors: false, strict: false });

/**
 * Why a value does not fit a state's value encoding (list state: the whole list), as a message, or
 * undefined when it fits; undefined instead of a checker when anything goes (msgpack without a JSON
 * Schema). Arrow types follow {@link explainValue}; msgpack values with a `jsonSchema` are checked by it
 * (ajv).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { valueChecker } from "./value_check.ts";
 * const check = valueChecker({ kind: "value", keyType: "string", value: { encoding: "arrow", type: "int32" } })!;
 * assert.equal(check(3), undefined);
 * assert.match(check("3")!, /value must be an integer/);
 * assert.equal(valueChecker({ kind: "value", keyType: "string", value: { encoding: "msgpack" } }), undefined);
 * ```
 */
export function valueChecker(layout: StateLayout): ((value: unknown) => string | undefined) | undefined {
  const list = layout.kind === "list";
  if (layout.value.encoding === "arrow") {
    const type = layout.value.type;
    const fast = compileValueCheck(list ? { list: type } : type);
    return (v) => (fast(v) ? undefined : explainValue(list ? { list: type } : type, v));
  }
  const schema = layout.value.jsonSchema;
  if (!schema) return undefined;
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    return () => `the state's JSON Schema does not compile: ${(e as Error).message}`;
  }
  const one = (v: unknown, path: string): string | undefined => {
    if (validate(v)) return undefined;
    const err = validate.errors?.[0];
    return `${path}${err?.instancePath ?? ""} ${err?.message ?? "does not match the JSON Schema"}`;
  };
  return list
    ? (v) => {
      if (!Array.isArray(v)) return `value must be a list, got ${describeValue(v)}`;
      for (let i = 0; i < v.length; i++) {
        const r = one(v[i], `value[${i}]`);
        if (r) return r;
      }
      return undefined;
    }
    : (v) => one(v, "value");
}
