// Private: checking JS values against a state's value encoding, with a reason a user can act on:
// Arrow types for typed values, the state's JSON Schema (ajv) for msgpack values.
import { Ajv, type ValidateFunction } from "ajv";
import { type FieldType, INTEGER_RANGES, type StateLayout } from "../format/state_layout.ts";

const RANGES: Readonly<Record<string, readonly [number, number]>> = INTEGER_RANGES;

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return `${typeof v} ${String(v)}${typeof v === "bigint" ? "n" : ""}`;
  return typeof v === "object" ? "an object" : typeof v;
}

/** Why `v` does not fit `type` (at `path`), or undefined when it does. */
export function checkArrowValue(type: FieldType, v: unknown, nullable: boolean, path = "value"): string | undefined {
  if (v === null || v === undefined) return nullable ? undefined : `${path} is ${v === null ? "null" : "missing"} but the field is not nullable`;
  if (typeof type === "string") {
    switch (type) {
      case "bool":
        return typeof v === "boolean" ? undefined : `${path} must be a boolean, got ${describe(v)}`;
      case "int64":
      case "uint64": {
        if (typeof v === "number" && Number.isSafeInteger(v) && (type === "int64" || v >= 0)) return undefined;
        if (typeof v !== "bigint") return `${path} must be a bigint (${type}), got ${describe(v)}`;
        const ok = type === "int64" ? v >= -(1n << 63n) && v < 1n << 63n : v >= 0n && v < 1n << 64n;
        return ok ? undefined : `${path} ${v}n is outside the ${type} range`;
      }
      case "float32":
      case "float64":
        return typeof v === "number" ? undefined : `${path} must be a number (${type}), got ${describe(v)}`;
      case "timestamp":
        if (v instanceof Date) return Number.isFinite(v.getTime()) ? undefined : `${path} is an invalid Date`;
        return typeof v === "number" && Number.isFinite(v) ? undefined : `${path} must be a number of milliseconds since the epoch, got ${describe(v)}`;
      case "utf8":
      case "dictionary":
        return typeof v === "string" ? undefined : `${path} must be a string (${type}), got ${describe(v)}`;
      case "binary":
        return v instanceof Uint8Array ? undefined : `${path} must be a Uint8Array (binary), got ${describe(v)}`;
      default: {
        const r = RANGES[type];
        if (typeof v !== "number" || !Number.isInteger(v)) return `${path} must be an integer (${type}), got ${describe(v)}`;
        return v >= r[0] && v <= r[1] ? undefined : `${path} ${v} is outside the ${type} range ${r[0]}..${r[1]}`;
      }
    }
  }
  if ("struct" in type) {
    if (typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) return `${path} must be an object with fields ${type.struct.map((f) => f.name).join(", ")}, got ${describe(v)}`;
    const obj = v as Record<string, unknown>;
    for (const f of type.struct) {
      const r = checkArrowValue(f.type, obj[f.name], f.nullable === true, `${path}.${f.name}`);
      if (r) return r;
    }
    const known = new Set(type.struct.map((f) => f.name));
    for (const k of Object.keys(obj)) if (!known.has(k) && obj[k] !== undefined) return `${path} has field ${JSON.stringify(k)}, which the schema does not declare`;
    return undefined;
  }
  if (!Array.isArray(v)) return `${path} must be an array, got ${describe(v)}`;
  for (let i = 0; i < v.length; i++) {
    const r = checkArrowValue(type.list, v[i], true, `${path}[${i}]`);
    if (r) return r;
  }
  return undefined;
}

const ajv = new Ajv({ allErrors: false, strict: false });

/** A checker of one state's values (list state: the whole list), or undefined when anything goes. */
export function valueChecker(layout: StateLayout): ((v: unknown) => string | undefined) | undefined {
  const list = layout.kind === "list";
  if (layout.value.encoding === "arrow") {
    const type = layout.value.type;
    return list ? (v) => checkArrowValue({ list: type }, v, false) : (v) => checkArrowValue(type, v, false);
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
      if (!Array.isArray(v)) return `value must be a list, got ${describe(v)}`;
      for (let i = 0; i < v.length; i++) {
        const r = one(v[i], `value[${i}]`);
        if (r) return r;
      }
      return undefined;
    }
    : (v) => one(v, "value");
}
