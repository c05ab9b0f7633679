/**
 * What crosses a thread boundary between subtasks: stream elements encoded for `postMessage` (a record
 * batch as one buffer that moves, column-wise or msgpack as `_batch_codec.ts` decides, never a structured
 * clone per record), the sending end of a channel whose consumer runs in another thread (credit-based
 * backpressure), errors, and the storage relay through which a worker reaches the job's storages. Private to the runtime (the leading underscore).
 *
 * @module
 */
import type { ObjectInfo, Storage } from "../backends/storage.ts";
import { ArrowpointError, NotFoundError } from "../format/errors.ts";
import { decodeBatch, encodeBatch } from "./_batch_codec.ts";
import { Barrier, BARRIER, BATCH, type ChannelWriter, END, END_OF_INPUT, RecordBatch, type StreamElement, Watermark, WATERMARK } from "./channel.ts";

/** Sends a message to another thread, moving the listed buffers. */
export type Post = (message: unknown, transfer?: ArrayBuffer[]) => void;

/** Where a barrier's chunks go, in a form another thread can rebuild its `ChunkTarget` from. */
export interface TargetSpec {
  readonly kind: "checkpoint" | "savepoint";
  /** The storage's id in the relay. */
  readonly sid: number;
  /** The storage's URI. */
  readonly uri: string;
  /** The savepoint's folder (checkpoints: ""). */
  readonly dir: string;
}

/**
 * A stream element on the wire. A batch carries bare `ArrayBuffer`s, not typed-array views: Deno's
 * `node:worker_threads` walks every message a worker receives with `for…in` (looking for `MessagePort`s
 * to patch), which visits each index of a typed array, i.e. every byte of a record batch (measured: the
 * largest item of a Deno worker's profile), while a bare buffer has no enumerable keys.
 */
export type WireElement =
  | { readonly tag: typeof BATCH; readonly data: ArrayBuffer; readonly kgs: ArrayBuffer | null }
  | { readonly tag: typeof BARRIER; readonly id: number; readonly kind: "checkpoint" | "savepoint"; readonly stop: boolean; readonly target: TargetSpec }
  | { readonly tag: typeof END }
  | { readonly tag: typeof WATERMARK; readonly timestamp: number; readonly idle: boolean };


/** Encodes an element for another thread; `transfer` lists the buffers that move with it. */
export function encodeElement(el: StreamElement, targetOf: (b: Barrier) => TargetSpec): { wire: WireElement; transfer: ArrayBuffer[] } {
  switch (el.tag) {
    case BATCH: {
      // Keys are not sent: the receiver applies the edge's key selector again (cheaper than encoding them).
      const data = encodeBatch(el.values);
      const kgs = el.kgs === null ? null : Uint16Array.from(el.kgs).buffer;
      const transfer = [data];
      if (kgs !== null) transfer.push(kgs);
      return { wire: { tag: BATCH, data, kgs }, transfer };
    }
    case BARRIER:
      return { wire: { tag: BARRIER, id: el.id, kind: el.kind, stop: el.stop, target: targetOf(el) }, transfer: [] };
    case WATERMARK:
      return { wire: { tag: WATERMARK, timestamp: el.timestamp, idle: el.idle }, transfer: [] };
    default:
      return { wire: { tag: END }, transfer: [] };
  }
}

/**
 * Decodes an element; `barrierOf` gives the one `Barrier` object of a checkpoint id in this thread,
 * `keyOf` the key of a record on a keyed edge.
 */
export function decodeElement(w: WireElement, barrierOf: (w: Extract<WireElement, { tag: typeof BARRIER }>) => Barrier, keyOf?: (v: unknown) => unknown): StreamElement {
  switch (w.tag) {
    case BATCH: {
      const values = decodeBatch(w.data);
      if (w.kgs === null || keyOf === undefined) return new RecordBatch(values, null, null);
      const keys = new Array<unknown>(values.length);
      for (let i = 0; i < values.length; i++) keys[i] = keyOf(values[i]);
      return new RecordBatch(values, keys, Array.from(new Uint16Array(w.kgs)));
    }
    case BARRIER:
      return barrierOf(w);
    case WATERMARK:
      return new Watermark(w.timestamp, w.idle);
    default:
      return END_OF_INPUT;
  }
}

/**
 * The sending end of a channel whose consumer runs in another thread. It may have `capacity` elements
 * the consumer has not taken yet; the consumer grants space back ({@link RemoteSender.credit}) as it
 * takes them, so memory stays bounded exactly as with a {@link Channel} in one thread.
 */
export class RemoteSender implements ChannelWriter {
  private outstanding = 0;
  private waiter: (() => void) | null = null;
  private closed = false;

  /** Creates the end of channel `id`; `send` encodes and posts an element. */
  constructor(readonly id: number, readonly capacity: number, private readonly send: (el: StreamElement) => void) {}

  /** Whether the consumer holds `capacity` elements it has not taken (never once closed: a closed channel takes anything). */
  get full(): boolean {
    return !this.closed && this.outstanding >= this.capacity;
  }

  /** Sends an element. */
  push(el: StreamElement): void {
    if (this.closed) return;
    this.outstanding++;
    this.send(el);
  }

  /** The consumer took `n` elements. */
  credit(n: number): void {
    this.outstanding -= n;
    const w = this.waiter;
    if (w !== null && !this.full) {
      this.waiter = null;
      w();
    }
  }

  /** Resolves once the consumer has room. */
  waitSpace(): Promise<void> {
    if (this.closed || !this.full) return Promise.resolve();
    return new Promise<void>((resolve) => (this.waiter = resolve));
  }

  /** Stops sending and releases a waiting producer. */
  close(): void {
    this.closed = true;
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}

/**
 * Grants credit back to the producers of channels read in this thread, one message per channel and turn
 * of the microtask queue instead of one per element taken: a consumer that takes several queued batches
 * in a row (the common case when it is the slower side) sends one credit message for all of them. The
 * credit arrives no later than the consumer's next wait, so backpressure stays exact.
 */
export class CreditBatcher {
  private readonly owed = new Map<number, number>();
  private scheduled = false;

  /** Creates the batcher; `send` posts one credit message of `n` elements for channel `c`. */
  constructor(private readonly send: (c: number, n: number) => void) {}

  /** The consumer took one element of channel `c`. */
  take(c: number): void {
    this.owed.set(c, (this.owed.get(c) ?? 0) + 1);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** Sends what is owed now. */
  readonly flush = (): void => {
    this.scheduled = false;
    for (const [c, n] of this.owed) this.send(c, n);
    this.owed.clear();
  };
}

/** An error as it crosses a thread boundary. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly code?: string;
}

/** An error in a form `postMessage` keeps (class, code and stack survive by name). */
export function toWire(e: unknown): WireError {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack, code: (e as { code?: unknown }).code as string | undefined };
  return { name: "Error", message: String(e) };
}

/** Rebuilds an error sent by {@link toWire}: a storage miss as a `NotFoundError`, a coded error as an `ArrowpointError`. */
export function fromWire(w: WireError): Error {
  let e: Error;
  if (w.code === "ARROWPOINT_NOT_FOUND") e = Object.assign(new NotFoundError("get", "(relayed)"), { message: w.message });
  else if (w.code !== undefined) e = new ArrowpointError(w.code, w.message);
  else e = new Error(w.message);
  e.name = w.name;
  if (w.stack !== undefined) e.stack = w.stack;
  return e;
}

/** A storage operation a worker asks the main thread to run. */
export interface StorageRequest {
  readonly t: "storage";
  readonly req: number;
  readonly sid: number;
  readonly op: "put" | "putIfAbsent" | "get" | "getRange" | "list" | "delete" | "exists";
  readonly args: readonly unknown[];
}

/** The answer to a {@link StorageRequest}. */
export interface StorageReply {
  readonly t: "storage-reply";
  readonly req: number;
  readonly value?: unknown;
  readonly error?: WireError;
}

/** Runs a relayed storage operation on the storage it names; bytes read are copied so they can move. */
export async function serveStorage(storage: Storage, r: StorageRequest): Promise<{ reply: StorageReply; transfer: ArrayBuffer[] }> {
  try {
    const a = r.args;
    let value: unknown;
    const transfer: ArrayBuffer[] = [];
    switch (r.op) {
      case "put":
        value = await storage.put(a[0] as string, a[1] as Uint8Array);
        break;
      case "putIfAbsent":
        value = await storage.putIfAbsent(a[0] as string, a[1] as Uint8Array);
        break;
      case "get":
      case "getRange": {
        const bytes = r.op === "get" ? await storage.get(a[0] as string) : await storage.getRange(a[0] as string, a[1] as number, a[2] as number);
        // A storage may hand out the bytes it keeps (memory): move a copy, never its own buffer. A bare
        // ArrayBuffer, as record batches: Deno's worker walks a received message with for…in, every byte of a view.
        const copy = bytes.slice().buffer as ArrayBuffer;
        transfer.push(copy);
        value = copy;
        break;
      }
      case "list": {
        const all: ObjectInfo[] = [];
        for await (const o of storage.list(a[0] as string)) all.push(o);
        value = all;
        break;
      }
      case "delete":
        value = await storage.delete(a[0] as string[]);
        break;
      case "exists":
        value = await storage.exists(a[0] as string);
        break;
    }
    return { reply: { t: "storage-reply", req: r.req, value }, transfer };
  } catch (e) {
    return { reply: { t: "storage-reply", req: r.req, error: toWire(e) }, transfer: [] };
  }
}

/**
 * A storage of the main thread seen from a worker: every operation is a message to the main thread,
 * which runs it on the job's own storage object (a memory storage, a fault-injecting wrapper: whatever the
 * job was given) and answers. Written bytes are copied once and the copy moves.
 */
export class RelayStorage implements Storage {
  private static nextReq = 1;
  private static readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();

  /** Settles the operation a reply answers. */
  static reply(r: StorageReply): void {
    const w = RelayStorage.waiting.get(r.req);
    if (!w) return;
    RelayStorage.waiting.delete(r.req);
    if (r.error) w.reject(fromWire(r.error));
    else w.resolve(r.value);
  }

  /** Fails every operation still waiting (the job is aborted). */
  static abortAll(error: unknown): void {
    for (const w of RelayStorage.waiting.values()) w.reject(error);
    RelayStorage.waiting.clear();
  }

  /** Creates the relay of storage `sid` (whose URI is `uri`), posting requests with `post`. */
  constructor(readonly uri: string, private readonly sid: number, private readonly post: Post) {}

  private call<T>(op: StorageRequest["op"], args: unknown[], transfer: ArrayBuffer[] = []): Promise<T> {
    const req = RelayStorage.nextReq++;
    return new Promise<T>((resolve, reject) => {
      RelayStorage.waiting.set(req, { resolve: resolve as (v: unknown) => void, reject });
      const msg: StorageRequest = { t: "storage", req, sid: this.sid, op, args };
      this.post(msg, transfer);
    });
  }

  private static movable(bytes: Uint8Array): { bytes: Uint8Array; transfer: ArrayBuffer[] } {
    // A copy moves: callers may still read the bytes they wrote (a chunk's length and checksum go into its
    // ref after the put), and a memcpy costs far less than the write.
    const copy = bytes.slice();
    return { bytes: copy, transfer: [copy.buffer as ArrayBuffer] };
  }

  /** See {@link Storage.put}; a copy of the bytes moves to the main thread. */
  put(path: string, bytes: Uint8Array): Promise<void> {
    const m = RelayStorage.movable(bytes);
    return this.call("put", [path, m.bytes], m.transfer);
  }
  /** See {@link Storage.putStream} (collected here, then one put). */
  async putStream(path: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const p of source) (parts.push(p), n += p.length);
    const all = new Uint8Array(n);
    let at = 0;
    for (const p of parts) (all.set(p, at), at += p.length);
    await this.put(path, all);
  }
  /** See {@link Storage.putIfAbsent}. */
  putIfAbsent(path: string, bytes: Uint8Array): Promise<boolean> {
    const m = RelayStorage.movable(bytes);
    return this.call("putIfAbsent", [path, m.bytes], m.transfer);
  }
  /** See {@link Storage.get}. */
  async get(path: string): Promise<Uint8Array> {
    return new Uint8Array(await this.call<ArrayBuffer>("get", [path]));
  }
  /** See {@link Storage.getRange}. */
  async getRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    return new Uint8Array(await this.call<ArrayBuffer>("getRange", [path, offset, length]));
  }
  /** See {@link Storage.list} (one round trip for the whole listing). */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* await this.call<ObjectInfo[]>("list", [prefix]);
  }
  /** See {@link Storage.delete}. */
  delete(paths: readonly string[]): Promise<void> {
    return this.call("delete", [paths.slice()]);
  }
  /** See {@link Storage.exists}. */
  exists(path: string): Promise<boolean> {
    return this.call("exists", [path]);
  }
  /** The main thread owns the storage: nothing to release here. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
