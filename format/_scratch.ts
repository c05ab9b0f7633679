// Private: reusable byte buffers for the offline tools' chunk-sized work (chunks read, chunk files
// assembled). First touch of fresh memory is what a chunk-sized buffer costs on these VMs: allocating and
// filling 9 MB measured 38 ms of CPU under Node (27 ms Deno), filling a reused one 0.4 ms; a tool that reads
// and writes every chunk once paid that twice per chunk (docs/tools.md, "Buffers").
//
// A lease is used by one owner at a time and handed back with `release()` once nothing reads its bytes any
// more (after the write of the chunk it holds has settled). A lease never released is only garbage: the
// pool then allocates a new buffer, so forgetting a release costs speed, never correctness. Released bytes
// are overwritten by the next lease: never release a buffer something may still read.

import { idleTimer } from "./_idle_timer.ts";

/** A buffer on loan from the pool: `bytes` has exactly the length asked for. */
export interface Lease {
  /** The buffer (a view of exactly the requested length; its contents are undefined until written). */
  readonly bytes: Uint8Array;
  /** Hands the buffer back (a second call does nothing). */
  release(): void;
}

/** Free buffers kept: chunks being read, built (columns and file) and written. */
const KEEP = 16;
/** Bytes of free buffers kept at most (what an idle pool adds to the process's memory). */
const KEEP_BYTES = 96 * 1024 * 1024;
/** Buffers smaller than this are plain allocations (small ones come cheap from the allocator). */
const MIN_POOLED = 1 << 20;
let minPooled = MIN_POOLED;
/** Largest buffer kept for reuse (larger ones are left to the garbage collector). */
const MAX_POOLED = 256 * 1024 * 1024;

/** Free buffers go back to the process after this long without a release (a tool run has ended). */
const IDLE_MS = 2000;

const free: ArrayBuffer[] = [];
let freeBytes = 0;
let idle: ReturnType<typeof setTimeout> | undefined;

/** Drops the free buffers once no lease has come back for {@link IDLE_MS}; the timer never holds the process open. */
function dropWhenIdle(): void {
  if (idle !== undefined) clearTimeout(idle);
  idle = idleTimer(dropScratch, IDLE_MS);
}

/**
 * A buffer of `size` bytes, reused from an earlier released lease when one is large enough. Contents are
 * whatever was there: the caller writes every byte it uses (or zero-fills: cheap on warm memory).
 */
export function leaseBytes(size: number): Lease {
  if (size < minPooled || size > MAX_POOLED) return { bytes: new Uint8Array(size), release() {} };
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    if (free[i].byteLength >= size && (best < 0 || free[i].byteLength < free[best].byteLength)) best = i;
  }
  // Some headroom: chunks of one tool run differ by a few bytes, and the next may be slightly larger.
  let buffer: ArrayBuffer;
  if (best >= 0) {
    buffer = free.splice(best, 1)[0];
    freeBytes -= buffer.byteLength;
  } else buffer = new ArrayBuffer(Math.min(MAX_POOLED, size + (size >> 4)));
  let out = false;
  return {
    bytes: new Uint8Array(buffer, 0, size),
    release() {
      if (out) return;
      out = true;
      if (poison) new Uint8Array(buffer).fill(POISON);
      if (buffer.byteLength > KEEP_BYTES) return;
      while (free.length >= KEEP || freeBytes + buffer.byteLength > KEEP_BYTES) {
        // Make room from the smallest ones: a small buffer is cheap to allocate again, a large one is not.
        let smallest = 0;
        for (let i = 1; i < free.length; i++) if (free[i].byteLength < free[smallest].byteLength) smallest = i;
        if (free[smallest].byteLength >= buffer.byteLength) return;
        freeBytes -= free.splice(smallest, 1)[0].byteLength;
      }
      free.push(buffer);
      freeBytes += buffer.byteLength;
      dropWhenIdle();
    },
  };
}

/**
 * A lease for reading an object whose size comes from a manifest (untrusted): none outside the pooled
 * sizes, so a manifest that lies about a size never makes this allocate more than the pool's largest buffer.
 */
export function scratchFor(size: number): Lease | undefined {
  return Number.isSafeInteger(size) && size >= minPooled && size <= MAX_POOLED ? leaseBytes(size) : undefined;
}

/** The byte released buffers are filled with under {@link scratchTestMode}. */
export const POISON = 0xa5;
let poison = false;

/**
 * Tests: pool buffers of every size (test chunks are small) and fill each buffer with {@link POISON} as it
 * is released, so that a read of a buffer released too early sees garbage at once (and fails a test)
 * instead of bytes that happen to be still there. Off by default. Returns the previous setting.
 */
export function scratchTestMode(on: boolean): boolean {
  const was = poison;
  poison = on;
  minPooled = on ? 1 : MIN_POOLED;
  dropScratch();
  return was;
}

/** Drops every free buffer (tests, and a tool that ends: its memory goes back to the process). */
export function dropScratch(): void {
  free.length = 0;
  freeBytes = 0;
  if (idle !== undefined) clearTimeout(idle);
  idle = undefined;
}

/** Typed arrays an {@link Arena} hands out. */
type Typed = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/**
 * Zero-filled, 8-byte-aligned arrays carved from leased buffers, all handed back at once with
 * {@link Arena.release}: for columns that live only until a chunk file has copied them.
 */
export class Arena {
  readonly #leases: Lease[] = [];
  #buf: Uint8Array = new Uint8Array(0);
  #at = 0;

  /** `n` elements of `Type`, zeroed. */
  array<T extends Typed>(Type: { new (buffer: ArrayBuffer, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number }, n: number): T {
    const bytes = n * Type.BYTES_PER_ELEMENT;
    if (this.#at + bytes > this.#buf.length) {
      const lease = leaseBytes(Math.max(bytes, SEGMENT));
      this.#leases.push(lease);
      this.#buf = lease.bytes;
      this.#at = 0;
    }
    const at = this.#at;
    this.#at = (at + bytes + 7) & ~7;
    this.#buf.fill(0, at, at + bytes);
    return new Type(this.#buf.buffer as ArrayBuffer, this.#buf.byteOffset + at, n);
  }

  /** Hands every buffer back: nothing may read the arrays after this. */
  release(): void {
    for (const l of this.#leases.splice(0)) l.release();
    this.#buf = new Uint8Array(0);
    this.#at = 0;
  }
}

/** Bytes an arena leases at a time (more for a larger array). */
const SEGMENT = 4 * 1024 * 1024;
