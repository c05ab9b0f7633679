// One description of a value in error messages, for the encoder and the value checks (they must agree).

/** "string \"ab\"", "number 1.5", "an array", "Date 2026-…", …: what a message says a value was. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  switch (typeof v) {
    case "string":
      return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
    case "number":
    case "boolean":
      return `${typeof v} ${v}`;
    case "bigint":
      return `bigint ${v}n`;
    case "object":
      if (Array.isArray(v)) return "an array";
      if (v instanceof Date) return `Date ${Number.isNaN(v.getTime()) ? "(invalid)" : v.toISOString()}`;
      return `an object (${(v as object).constructor?.name ?? "null prototype"})`;
    default:
      return typeof v;
  }
}
