/**
 * The copy that makes a captured snapshot consistent while it is encoded later. States hold values by
 * reference, and user code may change a held value in place after the barrier (an accumulator's
 * `acc.count++`, a list state's `add` pushing onto the stored array); a chunk encoded from the references
 * after the barrier would then hold post-barrier values. So whatever a value could change through is copied:
 * nothing for immutable scalars, the declared fields of a struct, the elements of a list, the bytes of a
 * `Uint8Array`. Value-like tables copy a captured value when user code first reaches it before the encode
 * (`StateTable.holdCaptured`); other tables' values are copied at the capture. Private to the runtime (the
 * leading underscore).
 *
 * @module
 */
import type { FieldType, StateLayout } from "../format/state_layout.ts";

/** Copies one value so that changing the original later does not change the copy; null when no copy is needed. */
export type ValueCopier = ((v: unknown) => unknown) | null;

const copiers = new WeakMap<StateLayout, ValueCopier>();

/**
 * How the values of a state with `layout` are copied at capture (compiled once per layout). List state
 * values are arrays whose elements follow `layout.value`.
 */
export function valueCopierOf(layout: StateLayout): ValueCopier {
  let c = copiers.get(layout);
  if (c !== undefined) return c;
  const element: ValueCopier = layout.value.encoding === "arrow" ? typedCopier(layout.value.type) : copyPlain;
  if (layout.kind === "list") {
    c = element === null
      ? (v) => (Array.isArray(v) ? v.slice() : v)
      : (v) => (Array.isArray(v) ? v.map(element) : v);
  } else c = element;
  copiers.set(layout, c);
  return c;
}

/**
 * Replaces `values[i]` (for i < n) by copies in place; the array is the capture's own.
 * Returns the array.
 */
export function copyValues(values: unknown[], n: number, copy: ValueCopier): unknown[] {
  if (copy === null) return values;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== null && typeof v === "object") values[i] = copy(v);
  }
  return values;
}

/** A copier from the declared Arrow type: only what the encoder reads is copied. */
function typedCopier(t: FieldType): ValueCopier {
  if (typeof t === "string") {
    // Strings, numbers, bigints and booleans cannot change; bytes and dates can.
    if (t === "binary" || t === "timestamp") return copyPlain;
    return null;
  }
  if ("list" in t) {
    const el = typedCopier(t.list);
    return el === null ? (v) => (Array.isArray(v) ? v.slice() : v) : (v) => (Array.isArray(v) ? v.map((x) => (x !== null && typeof x === "object" ? el(x) : x)) : v);
  }
  const fields = t.struct.map((f) => ({ name: f.name, copy: typedCopier(f.type) }));
  return (v) => {
    if (v === null || typeof v !== "object") return v;
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      const x = src[f.name];
      out[f.name] = f.copy !== null && x !== null && typeof x === "object" ? f.copy(x) : x;
    }
    return out;
  };
}

/**
 * A deep copy of plain data (what msgpack encodes): objects (own enumerable fields, prototype kept so
 * getters still read them), arrays, maps, typed arrays, dates. Anything else is returned as it is.
 */
export function copyPlain(v: unknown): unknown {
  if (v === null || typeof v !== "object") return v;
  const proto = Object.getPrototypeOf(v) as object | null;
  if (proto === Object.prototype) {
    // The common case first: a literal object (for-in sees only its own fields: Object.prototype has no enumerable ones).
    const out: Record<string, unknown> = {};
    for (const k in v) {
      const x = (v as Record<string, unknown>)[k];
      out[k] = x !== null && typeof x === "object" ? copyPlain(x) : x;
    }
    return out;
  }
  if (Array.isArray(v)) return v.map(copyPlain);
  if (ArrayBuffer.isView(v)) return v instanceof DataView ? new DataView(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) : (v as unknown as { slice(): unknown }).slice();
  if (v instanceof Date) return new Date(v.getTime());
  if (v instanceof Map) {
    const m = new Map<unknown, unknown>();
    for (const [k, x] of v) m.set(k, copyPlain(x));
    return m;
  }
  if (v instanceof Set) return new Set([...v].map(copyPlain));
  const out: Record<string, unknown> = Object.create(proto);
  for (const k of Object.keys(v)) out[k] = copyPlain((v as Record<string, unknown>)[k]);
  return out;
}
