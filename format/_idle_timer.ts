// Private: the idle timers of the process-wide caches (scratch buffers, the last source opened, shard picks).
// A cache let go after a while must never keep the process alive: Node unrefs the timer object, Deno takes
// the timer's id (its setTimeout returns a number).

/** Calls `fn` after `ms` with a timer that never keeps the process alive; clear it with `clearTimeout`. */
export function idleTimer(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
  const t = setTimeout(fn, ms);
  const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno;
  if (typeof t === "number") deno?.unrefTimer?.(t);
  else (t as { unref?(): void }).unref?.();
  return t;
}
