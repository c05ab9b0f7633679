// Private: reusable byte buffers for the offline tools' chunk-sized work (chunks read, chunk files
// assembled). First touch of fresh memory is what a chunk-sized buffer costs on these VMs: allocating and
// filling 9 MB measured 38 ms of CPU under Node (27 ms Deno), filling a reused one 0.4 ms; a tool that reads
// and writes every chunk once paid that twice per chunk (docs/tools.md, "Buffers").
//
// A lease is used by one owner at a time and handed back with `release()` once nothing reads its bytes any
// more (after the write of the chunk it holds has settled). A lease never released is only garbage: the
// pool then allocates a new buffer, so forgetting a release costs speed, never correctness. Released bytes
// are overwritten by the next lease: never release a buffer something may still read.

/** A buffer on loan from the pool: `bytes` has exactly the length asked for. */
export interface Lease {
  /** The buffer (a view of exactly the requested length; its contents are undefined until written). */
  readonly bytes: Uint8Array;
  /** Hands the buffer back (a second call does nothing). */
  release(): void;
}

/** Free buffers kept: one chunk being read, one being built, one being written. */
const KEEP = 3;
/** Buffers smaller than this are plain allocations (small ones come cheap from the allocator). */
const MIN_POOLED = 1 << 20;
/** Largest buffer kept for reuse (larger ones are left to the garbage collector). */
const MAX_POOLED = 256 * 1024 * 1024;

/** Free buffers go back to the process after this long without a release (a tool run has ended). */
const IDLE_MS = 2000;

const free: ArrayBuffer[] = [];
let idle: ReturnType<typeof setTimeout> | undefined;

/** Drops the free buffers once no lease has come back for {@link IDLE_MS}; the timer never holds the process open. */
function dropWhenIdle(): void {
  if (idle !== undefined) clearTimeout(idle);
  idle = setTimeout(dropScratch, IDLE_MS);
  const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno;
  if (typeof idle === "number") deno?.unrefTimer?.(idle);
  else (idle as { unref?(): void }).unref?.();
}

/**
 * A buffer of `size` bytes, reused from an earlier released lease when one is large enough. Contents are
 * whatever was there: the caller writes every byte it uses (or zero-fills: cheap on warm memory).
 */
export function leaseBytes(size: number): Lease {
  if (size < MIN_POOLED || size > MAX_POOLED) return { bytes: new Uint8Array(size), release() {} };
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    if (free[i].byteLength >= size && (best < 0 || free[i].byteLength < free[best].byteLength)) best = i;
  }
  // Some headroom: chunks of one tool run differ by a few bytes, and the next may be slightly larger.
  const buffer = best >= 0 ? free.splice(best, 1)[0] : new ArrayBuffer(Math.min(MAX_POOLED, size + (size >> 4)));
  let out = false;
  return {
    bytes: new Uint8Array(buffer, 0, size),
    release() {
      if (out) return;
      out = true;
      if (free.length >= KEEP) {
        // Keep the larger ones: a small buffer is cheap to allocate again, a large one is not.
        let smallest = 0;
        for (let i = 1; i < free.length; i++) if (free[i].byteLength < free[smallest].byteLength) smallest = i;
        if (free[smallest].byteLength >= buffer.byteLength) return;
        free.splice(smallest, 1);
      }
      free.push(buffer);
      dropWhenIdle();
    },
  };
}

/**
 * A lease for reading an object whose size comes from a manifest (untrusted): none outside the pooled
 * sizes, so a manifest that lies about a size never makes this allocate more than the pool's largest buffer.
 */
export function scratchFor(size: number): Lease | undefined {
  return Number.isSafeInteger(size) && size >= MIN_POOLED && size <= MAX_POOLED ? leaseBytes(size) : undefined;
}

/** Drops every free buffer (tests, and a tool that ends: its memory goes back to the process). */
export function dropScratch(): void {
  free.length = 0;
  if (idle !== undefined) clearTimeout(idle);
  idle = undefined;
}
