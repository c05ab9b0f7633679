// Private: applying migration steps: the layout change (checked before any row is read) and the
// per-value change.
import { MigrationError } from "../format/errors.ts";
import { columnConvertible, constantFits, type FieldSource, type ValueMap } from "../format/chunk_slice.ts";
import type { Field, FieldType, ScalarType, StateLayout, ValueEncoding } from "../format/state_layout.ts";
import { describeStep, type RowContext, type StateStep, typeName } from "./migrations.ts";


const INT_RANK: Record<string, number> = { int8: 1, int16: 2, int32: 3, int64: 4, uint8: 1.5, uint16: 2.5, uint32: 3.5, uint64: 5 };

function widenAllowed(from: ScalarType, to: ScalarType): boolean {
  if (from === to) return true;
  if (from === "utf8" && to === "dictionary") return true;
  if (from === "float32" && to === "float64") return true;
  if (from in INT_RANK && to === "float64") return true;
  if (from in INT_RANK && (to === "int32" || to === "int64")) {
    if (from === "uint64") return false;
    if (from === "uint32") return to === "int64";
    return INT_RANK[from] <= INT_RANK[to];
  }
  return false;
}

/** The structural layout after one step; throws MigrationError (naming the state) when it cannot apply. */
export function stepLayout(step: StateStep, layout: StateLayout, where: string): StateLayout {
  const fail = (why: string): never => {
    throw new MigrationError(`Cannot apply ${describeStep(step)} to state ${where}: ${why}`);
  };
  const v = layout.value;
  const withValue = (value: ValueEncoding): StateLayout => ({ ...layout, value });
  const structFields = (): readonly Field[] => {
    if (v.encoding !== "arrow") return fail("unreachable");
    const t = v.type;
    if (typeof t === "string" || !("struct" in t)) return fail(`its value is ${typeName(t)}, not a struct`);
    return t.struct;
  };
  switch (step.op) {
    case "renameState":
      return layout;
    case "custom":
      if (step.value === undefined) return layout;
      return withValue(typeof step.value === "function" ? step.value(v) : step.value);
    case "addField": {
      if (v.encoding === "msgpack") {
        const s = v.jsonSchema as { properties?: Record<string, unknown> } | undefined;
        if (s?.properties && Object.hasOwn(s.properties, step.name)) fail(`field ${JSON.stringify(step.name)} already exists`);
        return s?.properties ? withValue({ encoding: "msgpack", jsonSchema: { ...s, properties: { ...s.properties, [step.name]: jsonSchemaOf(step.type, step.nullable) } } }) : layout;
      }
      const fields = structFields();
      if (fields.some((f) => f.name === step.name)) fail(`field ${JSON.stringify(step.name)} already exists`);
      return withValue({ encoding: "arrow", type: { struct: [...fields, step.nullable ? { name: step.name, type: step.type, nullable: true } : { name: step.name, type: step.type }] } });
    }
    case "dropField": {
      if (v.encoding === "msgpack") return withValue({ encoding: "msgpack", ...(v.jsonSchema ? { jsonSchema: schemaWithout(v.jsonSchema, step.name) } : {}) });
      const fields = structFields();
      if (!fields.some((f) => f.name === step.name)) fail(`there is no field ${JSON.stringify(step.name)} (fields: ${fields.map((f) => f.name).join(", ")})`);
      if (fields.length === 1) fail("a struct needs at least one field; use custom() to change the value type");
      return withValue({ encoding: "arrow", type: { struct: fields.filter((f) => f.name !== step.name) } });
    }
    case "renameField": {
      if (v.encoding === "msgpack") return withValue({ encoding: "msgpack", ...(v.jsonSchema ? { jsonSchema: schemaRenamed(v.jsonSchema, step.from, step.to) } : {}) });
      const fields = structFields();
      if (!fields.some((f) => f.name === step.from)) fail(`there is no field ${JSON.stringify(step.from)} (fields: ${fields.map((f) => f.name).join(", ")})`);
      if (fields.some((f) => f.name === step.to)) fail(`field ${JSON.stringify(step.to)} already exists`);
      return withValue({ encoding: "arrow", type: { struct: fields.map((f) => (f.name === step.from ? { ...f, name: step.to } : f)) } });
    }
    case "widenType": {
      if (v.encoding !== "arrow") return fail("widenType applies to Arrow-typed values; this state stores msgpack (use custom())");
      if (step.field === undefined) {
        if (typeof v.type !== "string") return fail(`the value is ${typeName(v.type)}; name the field to widen`);
        if (!widenAllowed(v.type, step.to)) fail(`${v.type} → ${step.to} is not a widening (allowed: smaller int → int32/int64, float32 → float64, int → float64, utf8 → dictionary)`);
        return withValue({ encoding: "arrow", type: step.to });
      }
      const fields = structFields();
      const f = fields.find((x) => x.name === step.field);
      if (!f) return fail(`there is no field ${JSON.stringify(step.field)} (fields: ${fields.map((x) => x.name).join(", ")})`);
      if (typeof f.type !== "string") return fail(`field ${step.field} is ${typeName(f.type)}, not a scalar`);
      if (!widenAllowed(f.type, step.to)) fail(`${f.type} → ${step.to} is not a widening (allowed: smaller int → int32/int64, float32 → float64, int → float64, utf8 → dictionary)`);
      return withValue({ encoding: "arrow", type: { struct: fields.map((x) => (x.name === step.field ? { ...x, type: step.to } : x)) } });
    }
  }
}

function jsonSchemaOf(t: FieldType, nullable: boolean): Record<string, unknown> {
  let s: Record<string, unknown>;
  if (typeof t === "string") {
    if (t === "bool") s = { type: "boolean" };
    else if (t === "utf8" || t === "dictionary") s = { type: "string" };
    else if (t === "float32" || t === "float64" || t === "timestamp") s = { type: "number" };
    else if (t === "int64" || t === "uint64" || t === "binary") s = {};
    else s = { type: "integer" };
  } else if ("list" in t) s = { type: "array", items: jsonSchemaOf(t.list, true) };
  else s = { type: "object" };
  return nullable && typeof s.type === "string" ? { ...s, type: [s.type, "null"] } : s;
}

function schemaWithout(schema: Readonly<Record<string, unknown>>, name: string): Record<string, unknown> {
  const props = schema.properties as Record<string, unknown> | undefined;
  const required = schema.required as string[] | undefined;
  const out: Record<string, unknown> = { ...schema };
  if (props) out.properties = Object.fromEntries(Object.entries(props).filter(([k]) => k !== name));
  if (required) out.required = required.filter((k) => k !== name);
  return out;
}

function schemaRenamed(schema: Readonly<Record<string, unknown>>, from: string, to: string): Record<string, unknown> {
  const props = schema.properties as Record<string, unknown> | undefined;
  const required = schema.required as string[] | undefined;
  const out: Record<string, unknown> = { ...schema };
  if (props) out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k === from ? to : k, v]));
  if (required) out.required = required.map((k) => (k === from ? to : k));
  return out;
}

function cloneDefault(d: unknown): unknown {
  if (d === null || typeof d !== "object") return d;
  return structuredClone(d);
}

function widenValue(x: unknown, to: ScalarType, where: () => string): unknown {
  if (x === null || x === undefined) return x;
  if (to === "int64") return typeof x === "number" ? BigInt(x) : x;
  if (to === "float64") {
    if (typeof x === "bigint") {
      const n = Number(x);
      if (BigInt(n) !== x) throw new MigrationError(`${where()}: ${x}n has no exact float64 value; widen with a custom() step that decides how to round`);
      return n;
    }
    return x;
  }
  return x;
}

/**
 * The per-value function of one step, for a state of layout `before` (the element for list state
 * field steps). `ctxOf` gives the row context for messages and custom functions.
 */
export function stepValue(step: StateStep, before: StateLayout, where: string): ((value: unknown, ctx: RowContext) => unknown) | undefined {
  const list = before.kind === "list";
  const perElement = (f: (el: unknown, ctx: RowContext) => unknown) => list ? (v: unknown, ctx: RowContext) => (Array.isArray(v) ? v.map((el) => f(el, ctx)) : f(v, ctx)) : f;
  const objectOf = (el: unknown, ctx: RowContext): Record<string, unknown> => {
    if (el === null || typeof el !== "object" || Array.isArray(el) || el instanceof Uint8Array) {
      throw new MigrationError(`Cannot apply ${describeStep(step)} to state ${where}, key ${keyLabel(ctx.key)}: the value is not an object`);
    }
    return el as Record<string, unknown>;
  };
  switch (step.op) {
    case "renameState":
      return undefined;
    case "custom":
      return (v, ctx) => {
        try {
          return step.fn(v, ctx);
        } catch (e) {
          if (e instanceof MigrationError) throw e;
          throw new MigrationError(`${step.description} failed on state ${where}, key ${keyLabel(ctx.key)}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
        }
      };
    case "addField":
      return perElement((el, ctx) => {
        const o = objectOf(el, ctx);
        const d = typeof step.default === "function" ? (step.default as (v: unknown, c: RowContext) => unknown)(el, ctx) : cloneDefault(step.default);
        const out = copyWithout(o, step.name);
        out[step.name] = d;
        return out;
      });
    case "dropField":
      return perElement((el, ctx) => {
        return copyWithout(objectOf(el, ctx), step.name);
      });
    case "renameField":
      return perElement((el, ctx) => {
        const o = objectOf(el, ctx);
        const out: Record<string, unknown> = {};
        for (const k of Object.keys(o)) out[k === step.from ? step.to : k] = o[k];
        return out;
      });
    case "widenType":
      if (step.field === undefined) return perElement((el, ctx) => widenValue(el, step.to, () => `state ${where}, key ${keyLabel(ctx.key)}`));
      return perElement((el, ctx) => {
        const o = objectOf(el, ctx);
        const out = copyWithout(o, undefined);
        out[step.field!] = widenValue(o[step.field!], step.to, () => `state ${where}, key ${keyLabel(ctx.key)}, field ${step.field}`);
        return out;
      });
  }
}

/**
 * A copy of a value object without one property. A plain loop, not `{ ...o }`: V8 gives spread copies a
 * large out-of-object backing store (about 350 bytes for a 4-field row against 127), which multiplies the
 * memory of every buffered row.
 */
function copyWithout(o: Record<string, unknown>, drop: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in o) if (k !== drop && Object.hasOwn(o, k)) out[k] = o[k];
  return out;
}

function keyLabel(k: unknown): string {
  if (typeof k === "bigint") return `${k}n`;
  if (typeof k === "string") return JSON.stringify(k);
  try {
    return JSON.stringify(k) ?? String(k);
  } catch {
    return String(k);
  }
}

/**
 * The steps of a keyed state as one column rewrite of its value (see `rewriteChunk`), or undefined when a
 * step needs rows: a custom function, a computed default, a nested added field, a widening that is not an
 * exact typed-array conversion, or msgpack values. Renames and drops touch the schema only.
 */
export function columnMap(src: StateLayout, todo: readonly StateStep[]): ValueMap | undefined {
  if (src.value.encoding !== "arrow") return undefined;
  const t = src.value.type;
  if (typeof t === "string") {
    let cur: ScalarType = t;
    for (const step of todo) {
      if (step.op === "renameState") continue;
      if (step.op !== "widenType" || step.field !== undefined || !columnConvertible(cur, step.to)) return undefined;
      cur = step.to;
    }
    return { scalar: cur };
  }
  if (!("struct" in t)) return undefined;
  const entries: { name: string; type: FieldType; src: FieldSource }[] = t.struct.map((f) => ({ name: f.name, type: f.type, src: { from: f.name } }));
  for (const step of todo) {
    switch (step.op) {
      case "renameState":
        continue;
      case "renameField": {
        const e = entries.find((x) => x.name === step.from);
        if (!e) return undefined;
        e.name = step.to;
        continue;
      }
      case "dropField": {
        const i = entries.findIndex((x) => x.name === step.name);
        if (i < 0) return undefined;
        entries.splice(i, 1);
        continue;
      }
      case "addField":
        if (typeof step.type !== "string" || typeof step.default === "function" || !constantFits(step.type, step.nullable, step.default)) return undefined;
        entries.push({ name: step.name, type: step.type, src: { constant: step.default } });
        continue;
      case "widenType": {
        const e = step.field === undefined ? undefined : entries.find((x) => x.name === step.field);
        if (!e || !("from" in e.src) || typeof e.type !== "string" || !columnConvertible(e.type, step.to)) return undefined;
        e.src = { from: e.src.from, to: step.to };
        e.type = step.to;
        continue;
      }
      case "custom":
        return undefined;
    }
  }
  return { fields: entries.map((e) => e.src) };
}
