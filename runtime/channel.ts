/**
 * The seam between subtasks: bounded FIFO channels of record batches, barriers and end-of-input markers,
 * and the input gate a subtask reads its channels through (with barrier alignment: a blocked channel is
 * not read until every other channel delivered the same barrier).
 *
 * Everything crossing a channel is a plain object, so a channel could be backed by a `MessagePort` of a
 * worker thread without changing the tasks on either side.
 *
 * @module
 */

/**
 * Tag of a {@link RecordBatch}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BATCH, RecordBatch } from "./channel.ts";
 * assert.equal(new RecordBatch([], null, null).tag === BATCH, true);
 * ```
 */
export const BATCH = 0 as const;
/**
 * Tag of a {@link Barrier}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BARRIER, Barrier } from "./channel.ts";
 * assert.equal(new Barrier(1, "checkpoint", false).tag === BARRIER, true);
 * ```
 */
export const BARRIER = 1 as const;
/**
 * Tag of an {@link EndOfInput}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { END, END_OF_INPUT } from "./channel.ts";
 * assert.equal(END_OF_INPUT.tag === END, true);
 * ```
 */
export const END = 2 as const;

/**
 * Tag of a {@link Watermark}.
 *
 * @example
 * ```ts
 * import { WATERMARK, Watermark } from "./channel.ts";
 * console.log(new Watermark(5, false).tag === WATERMARK); // true
 * ```
 */
export const WATERMARK = 3 as const;

/**
 * Event-time progress of a channel: no record with a timestamp ≤ `timestamp` follows on it (records that
 * do are late). `idle` marks a producer with no active input: consumers leave it out of their minimum
 * until it sends a watermark again.
 *
 * @example
 * ```ts
 * import { Watermark } from "./channel.ts";
 * const w = new Watermark(59_999, false);
 * console.log(w.timestamp, w.idle); // 59999 false
 * ```
 */
export class Watermark {
  /** Always {@link WATERMARK}. */
  readonly tag: typeof WATERMARK = WATERMARK;
  /** Creates a watermark. */
  constructor(
    /** Milliseconds of event time (`Infinity` at the end of the input). */
    readonly timestamp: number,
    /** The producer has no active input (its timestamp is then the last one it sent). */
    readonly idle: boolean,
  ) {}
}

/**
 * A batch of records: values, and for keyed edges the key and key group of each, computed once by the
 * sender so the receiver never re-hashes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecordBatch } from "./channel.ts";
 * const b = new RecordBatch(["a", "b"], null, null);
 * assert.equal(b.values.length, 2);
 * ```
 */
export class RecordBatch {
  /** Always {@link BATCH}. */
  readonly tag: typeof BATCH = BATCH;
  /** Creates a batch over the given arrays (not copied). */
  constructor(
    /** The records. */
    readonly values: unknown[],
    /** The key of each record (keyed edges), else null. */
    readonly keys: unknown[] | null,
    /** The key group of each record (keyed edges), else null. */
    readonly kgs: number[] | null,
  ) {}
}

/**
 * A checkpoint or savepoint barrier: everything before it on a channel belongs to the snapshot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Barrier } from "./channel.ts";
 * const b = new Barrier(7, "checkpoint", false);
 * assert.equal(b.id, 7);
 * assert.equal(b.kind, "checkpoint");
 * ```
 */
export class Barrier {
  /** Always {@link BARRIER}. */
  readonly tag: typeof BARRIER = BARRIER;
  /** Creates a barrier. */
  constructor(
    /** The checkpoint id. */
    readonly id: number,
    /** Checkpoint (incremental, into the checkpoint root) or savepoint (self-contained, full). */
    readonly kind: "checkpoint" | "savepoint",
    /** Stop-with-savepoint: sources emit nothing after this barrier. */
    readonly stop: boolean,
  ) {}
}

/**
 * The end of a channel: its producer finished.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { END_OF_INPUT } from "./channel.ts";
 * assert.equal(END_OF_INPUT.tag, 2);
 * ```
 */
export class EndOfInput {
  /** Always {@link END}. */
  readonly tag: typeof END = END;
}

/**
 * The one end-of-input marker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Channel, END_OF_INPUT } from "./channel.ts";
 * const ch = new Channel(1);
 * ch.push(END_OF_INPUT);
 * assert.equal(ch.poll() === END_OF_INPUT, true);
 * ```
 */
export const END_OF_INPUT: EndOfInput = new EndOfInput();

/** What travels through a channel. */
export type StreamElement = RecordBatch | Barrier | EndOfInput | Watermark;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The producer's side of a channel: a {@link Channel} in the same thread, or the sending end of one whose
 * consumer runs in another thread (which grants space back as it reads: credit-based backpressure).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Channel, type ChannelWriter, RecordBatch } from "./channel.ts";
 * const out: ChannelWriter = new Channel(1);
 * out.push(new RecordBatch([1], null, null));
 * assert.equal(out.full, true);
 * ```
 */
export interface ChannelWriter {
  /** Whether the producer should wait before pushing more. */
  readonly full: boolean;
  /** Enqueues an element (always: the producer may overshoot by what it is processing). */
  push(el: StreamElement): void;
  /** Resolves once there is room again (or the channel was closed). */
  waitSpace(): Promise<void>;
  /** Drops everything and releases a waiting producer (the job is aborted). */
  close(): void;
}

/**
 * A bounded single-producer single-consumer FIFO. `push` always enqueues (a producer may overshoot by
 * the output of the batch it is processing); the producer then awaits {@link Channel.waitSpace} while the
 * channel is {@link Channel.full}: that is the backpressure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Channel, RecordBatch } from "./channel.ts";
 * const ch = new Channel(2);
 * ch.push(new RecordBatch([1], null, null));
 * ch.push(new RecordBatch([2], null, null));
 * assert.equal(ch.full, true);
 * assert.deepEqual((ch.poll() as RecordBatch).values, [1]);
 * ```
 */
export class Channel implements ChannelWriter {
  /** How many elements the channel holds before its producer must wait. */
  readonly capacity: number;
  private items: (StreamElement | undefined)[] = [];
  private head = 0;
  private spaceWaiter: (() => void) | null = null;
  private closed = false;
  /** Called on every push (the consumer's gate). */
  onData: (() => void) | null = null;
  /** Called whenever the consumer takes an element (a producer in another thread gets its credit back). */
  onTake: (() => void) | null = null;

  /** Creates a channel holding up to `capacity` elements. */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Cannot create a channel as capacity must be a positive integer: current value is ${capacity}`);
    }
    this.capacity = capacity;
  }

  /** Number of queued elements. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Whether the producer should wait before pushing more. */
  get full(): boolean {
    return this.items.length - this.head >= this.capacity;
  }

  /** Enqueues an element and wakes the consumer. */
  push(el: StreamElement): void {
    if (this.closed) return;
    this.items.push(el);
    const cb = this.onData;
    if (cb !== null) cb();
  }

  /** The next element, or undefined when empty. */
  poll(): StreamElement | undefined {
    const items = this.items;
    if (this.head >= items.length) return undefined;
    const el = items[this.head];
    items[this.head++] = undefined;
    if (this.head >= items.length) {
      items.length = 0;
      this.head = 0;
    } else if (this.head >= 1024) {
      items.splice(0, this.head);
      this.head = 0;
    }
    const t = this.onTake;
    if (t !== null) t();
    const w = this.spaceWaiter;
    if (w !== null && items.length - this.head < this.capacity) {
      this.spaceWaiter = null;
      w();
    }
    return el;
  }

  /** Resolves once the channel is below capacity (immediately if it is, or once it is closed). */
  waitSpace(): Promise<void> {
    if (this.closed || !this.full) return RESOLVED;
    return new Promise<void>((resolve) => {
      this.spaceWaiter = resolve;
    });
  }

  /** Drops everything and releases a waiting producer: used when a job is aborted. */
  close(): void {
    this.closed = true;
    this.items = [];
    this.head = 0;
    const w = this.spaceWaiter;
    this.spaceWaiter = null;
    if (w) w();
  }
}

/**
 * The inputs of one subtask: reads its channels round-robin, except channels blocked by barrier alignment
 * or already ended.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Channel, InputGate, RecordBatch } from "./channel.ts";
 * const a = new Channel(4), b = new Channel(4);
 * const gate = new InputGate([a, b]);
 * b.push(new RecordBatch(["x"], null, null));
 * assert.equal(gate.poll(), 1);
 * assert.equal(gate.element?.tag, 0);
 * ```
 */
export class InputGate {
  /** The channels, by input index. */
  readonly channels: readonly Channel[];
  /** 1 where a channel is blocked (aligned on a barrier). */
  readonly blocked: Uint8Array;
  /** 1 where a channel has ended. */
  readonly ended: Uint8Array;
  /** The element returned by the last successful {@link InputGate.poll}. */
  element: StreamElement | undefined = undefined;
  private next = 0;
  private waiter: (() => void) | null = null;
  private signaled = false;
  private readonly wake = (): void => {
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      w();
    } else this.signaled = true;
  };

  /** Creates a gate over channels (it becomes their consumer). */
  constructor(channels: readonly Channel[]) {
    this.channels = channels;
    this.blocked = new Uint8Array(channels.length);
    this.ended = new Uint8Array(channels.length);
    for (const ch of channels) ch.onData = this.wake;
  }

  /** Polls the next readable channel; returns its index (the element is in {@link InputGate.element}) or -1. */
  poll(): number {
    const chs = this.channels;
    const n = chs.length;
    for (let k = 0; k < n; k++) {
      let i = this.next + k;
      if (i >= n) i -= n;
      if (this.blocked[i] === 1 || this.ended[i] === 1) continue;
      const el = chs[i].poll();
      if (el !== undefined) {
        this.next = i + 1 === n ? 0 : i + 1;
        this.element = el;
        return i;
      }
    }
    this.element = undefined;
    return -1;
  }

  /** Resolves when any channel receives an element (or {@link InputGate.interrupt} is called). */
  waitData(): Promise<void> {
    if (this.signaled) {
      this.signaled = false;
      return RESOLVED;
    }
    return new Promise<void>((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Wakes a waiting reader (new work that is not on a channel, or an abort). */
  interrupt(): void {
    this.wake();
  }

  /** Unblocks every channel (after a barrier was aligned). */
  unblockAll(): void {
    this.blocked.fill(0);
  }

  /** Whether every channel has ended. */
  allEnded(): boolean {
    for (let i = 0; i < this.ended.length; i++) if (this.ended[i] === 0) return false;
    return true;
  }
}
