/**
 * Worker threads behind one small seam, the same to the rest of arrowpoint (the runtime's subtasks and the
 * offline tools' shards both run in them). Node and Deno both run `node:worker_threads` here, although the
 * issue that asked for threads named Deno's Web Workers: a Web Worker cannot be unreferenced, so a pool of
 * idle workers kept for the next job (which cut a job's start from 1–1.6 s to 8–20 ms) would keep a Deno
 * process alive; Deno's `node:worker_threads` can, and runs TypeScript modules as they are. A host with
 * neither (browser-like) gets Web Workers.
 *
 * The protocol is deliberately tiny: a worker module calls {@linkcode parentLink} at its top level, the
 * parent's {@linkcode startWorker} resolves once that link exists (so no message can arrive before a
 * listener does), and both sides exchange structured-cloneable messages, moving `ArrayBuffer`s instead of
 * copying them when they are listed as transfers. Batching records into such buffers is the caller's
 * business: one structured clone per record costs more than the work it carries.
 *
 * This module imports nothing of ours but the shared error types, so every layer may use it.
 *
 * @module
 */

import { ArrowpointError } from "../format/errors.ts";

/** One side of a worker connection: send messages, receive them. */
export interface WorkerLink {
  /**
   * Sends a message. Buffers listed in `transfer` move to the other side (they are detached here), the rest
   * of the message is structured-cloned.
   */
  post(message: unknown, transfer?: ArrayBuffer[]): void;
  /** Sets the one handler for incoming messages. Messages that arrived earlier are delivered to it first. */
  onMessage(handler: (message: unknown) => void): void;
}

/** How a worker ended. */
export interface WorkerExit {
  /** The uncaught error that ended it, if any (rebuilt on this side: name, message and stack survive). */
  error?: Error;
}

/** A running worker as its parent sees it. */
export interface WorkerThread extends WorkerLink {
  /** Settles once the worker has ended: by an uncaught error, by {@linkcode WorkerThread.terminate}, or on its own. */
  readonly exited: Promise<WorkerExit>;
  /** Stops the worker at once (work in flight is abandoned) and waits until it has ended. */
  terminate(): Promise<void>;
  /** Lets the process end while this worker is alive (an idle worker kept for later work). */
  unref(): void;
  /** Undoes {@linkcode WorkerThread.unref}: the worker keeps the process alive again. */
  ref(): void;
}

/** Options of {@linkcode startWorker}. */
export interface StartWorkerOptions {
  /** A name that shows in debuggers and error messages. */
  name?: string;
}

/**
 * A worker could not be started, or ended before its module set up its link to the parent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WorkerStartError } from "./worker.ts";
 * const e = new WorkerStartError("file:///x/missing.ts", new Error("not found"));
 * assert.match(e.message, /missing\.ts/);
 * assert.equal(e.code, "ARROWPOINT_WORKER_START");
 * ```
 */
export class WorkerStartError extends ArrowpointError {
  /** Creates the error for the worker module at `module`. */
  constructor(module: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      "ARROWPOINT_WORKER_START",
      `the worker ${module} did not start: ${why}. ` +
        "Check that the module exists and calls parentLink() at its top level; run with fewer workers (workers: 0) to see the error in this thread.",
      { cause },
    );
  }
}

/**
 * {@linkcode parentLink} was called outside a worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NotInWorkerError, parentLink } from "./worker.ts";
 * assert.throws(() => parentLink(), NotInWorkerError);
 * ```
 */
export class NotInWorkerError extends ArrowpointError {
  /** Creates the error. */
  constructor() {
    super("ARROWPOINT_NOT_IN_WORKER", "parentLink() was called on the main thread; it is for modules started by startWorker().");
  }
}

/** The first message of every worker: its link exists. Never seen by callers. */
const READY = "arrowpoint.worker.ready";

interface DenoLike {
  readonly version: { readonly deno: string };
}
const deno = (globalThis as { Deno?: DenoLike }).Deno;

// node:worker_threads, under Node and under Deno (whose implementation runs TypeScript modules as they are
// and, unlike its Web Workers, lets an idle worker not keep the process alive); a browser-like host gets
// Web Workers.
type NodeWorkerThreads = typeof import("node:worker_threads");
let nodeThreads: NodeWorkerThreads | undefined;
let nodeOs: { availableParallelism?: () => number } | undefined;
if (typeof process !== "undefined" && process.versions?.node) {
  nodeThreads = await import("node:worker_threads");
  nodeOs = await import("node:os");
}

/**
 * A message as it crosses threads here: the message itself, except under Deno's node:worker_threads, which
 * walks every message it delivers with for…in, looking for MessagePorts to patch: on a typed array that
 * visits every element (20–40 ms of CPU per 250,000 on each side of a shared re-hash's messages, measured
 * December 2026). There the message travels inside a Map, which for…in does not enter; {@link fromWire}
 * takes it out. Messages sent through this module carry no MessagePorts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromWire, toWire } from "./worker.ts";
 * const m = { rows: Uint32Array.of(1, 2, 3) };
 * assert.deepEqual(fromWire(structuredClone(toWire(m))), m);
 * ```
 */
export function toWire(message: unknown): unknown {
  return deno && nodeThreads ? new Map([[WIRE, message]]) : message;
}

/**
 * The message that {@link toWire} wrapped, as received on the other side.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fromWire, toWire } from "./worker.ts";
 * assert.equal(fromWire(toWire("hi")), "hi");
 * ```
 */
export function fromWire(received: unknown): unknown {
  return deno && nodeThreads && received instanceof Map && received.has(WIRE) ? received.get(WIRE) : received;
}

const WIRE = "arrowpoint.worker.message";

/**
 * Whether this code runs inside a worker started by {@linkcode startWorker} (or any worker).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isWorkerThread } from "./worker.ts";
 * assert.equal(isWorkerThread(), false); // examples run on the main thread
 * ```
 */
export function isWorkerThread(): boolean {
  if (nodeThreads) return !nodeThreads.isMainThread;
  const scope = (globalThis as { WorkerGlobalScope?: new () => unknown }).WorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}

/**
 * How many threads can run at once here: the default for `workers` options.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { availableCores } from "./worker.ts";
 * assert.ok(availableCores() >= 1);
 * ```
 */
export function availableCores(): number {
  // Node 20 has no navigator; node:os's availableParallelism (Node ≥ 18.14, Deno) also honours CPU affinity.
  const n = nodeOs?.availableParallelism?.() ?? (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  return Number.isInteger(n) && n > 0 ? n : 1;
}

/**
 * The URL of a worker module that sits beside `base` (pass `import.meta.url`), with `base`'s own extension:
 * `.ts` when running the sources, `.js` in the compiled package.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { siblingModule } from "./worker.ts";
 * assert.equal(siblingModule("file:///p/runtime/job.ts", "_task_worker").href, "file:///p/runtime/_task_worker.ts");
 * assert.equal(siblingModule("file:///p/dist/runtime/job.js", "_task_worker").href, "file:///p/dist/runtime/_task_worker.js");
 * ```
 */
export function siblingModule(base: string | URL, stem: string): URL {
  const href = String(base);
  const ext = /\.[mc]?[jt]s$/.exec(new URL(href).pathname)?.[0] ?? ".js";
  return new URL(`./${stem}${ext}`, href);
}

/**
 * Starts `module` in a worker thread and resolves once the module has called {@linkcode parentLink}.
 *
 * Under Node, a TypeScript module gets tsx's loader (the sources run in a checkout); under Deno the worker
 * is a module Web Worker with the parent's permissions.
 *
 * @example Echo through a worker (a module beside this one that calls parentLink and echoes)
 * ```ts no-run
 * import assert from "node:assert/strict";
 * import { siblingModule, startWorker } from "./worker.ts";
 * const w = await startWorker(siblingModule(import.meta.url, "_test_worker"));
 * const reply = new Promise((resolve) => w.onMessage(resolve));
 * w.post({ echo: 42 });
 * assert.deepEqual(await reply, { echo: 42 });
 * await w.terminate();
 * ```
 */
export async function startWorker(module: URL, options: StartWorkerOptions = {}): Promise<WorkerThread> {
  const thread = nodeThreads ? startNodeWorker(nodeThreads, module, options) : startWebWorker(module, options);
  const ready = await Promise.race([
    thread.ready.then(() => true),
    thread.exited.then((exit) => exit.error ?? new Error("it ended before it called parentLink()")),
  ]);
  if (ready !== true) {
    await thread.terminate();
    throw new WorkerStartError(module.href, ready);
  }
  return thread;
}

interface Starting extends WorkerThread {
  readonly ready: Promise<void>;
}

/** Delivers messages to a handler set later, keeping the ones that arrive first. */
function inbox(): { deliver(message: unknown): void; onMessage(handler: (message: unknown) => void): void } {
  let handler: ((message: unknown) => void) | undefined;
  let early: unknown[] = [];
  return {
    deliver(message) {
      if (handler) handler(message);
      else early.push(message);
    },
    onMessage(h) {
      handler = h;
      const pending = early;
      early = [];
      for (const m of pending) h(m);
    },
  };
}

function startNodeWorker(threads: NodeWorkerThreads, module: URL, options: StartWorkerOptions): Starting {
  // Node 20 runs neither `--import` preloads nor hooks from register() in worker threads, so a TypeScript
  // module (the sources, in a checkout or under tsx) starts from a bootstrap that registers tsx first.
  const entry = !deno && module.pathname.endsWith(".ts")
    ? new URL(
      "data:text/javascript," +
        encodeURIComponent(
          `import { register } from ${JSON.stringify(import.meta.resolve("tsx/esm/api"))};\n` +
            `register();\nawait import(${JSON.stringify(module.href)});\n`,
        ),
    )
    : module;
  const worker = new threads.Worker(entry, { name: options.name }) as unknown as NodeWorker;
  const box = inbox();
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let failure: Error | undefined;
  worker.on("message", (wire: unknown) => {
    const m = fromWire(wire);
    if (m === READY) markReady();
    else box.deliver(m);
  });
  worker.on("error", (e: Error) => (failure = e));
  const exited = new Promise<WorkerExit>((resolve) => worker.once("exit", () => resolve(failure ? { error: failure } : {})));
  return {
    ready,
    exited,
    post: (message, transfer) => worker.postMessage(toWire(message), transfer ?? []),
    onMessage: box.onMessage,
    async terminate() {
      await worker.terminate();
      await exited;
    },
    unref: () => worker.unref(),
    ref: () => worker.ref(),
  };
}

/**
 * What this module uses of node:worker_threads' Worker. Spelled out because, in a Deno program whose npm
 * dependencies pull in @types/node, Deno's node types are displaced and Worker loses its EventEmitter methods.
 */
interface NodeWorker {
  on(event: "message", listener: (message: unknown) => void): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  once(event: "exit", listener: () => void): unknown;
  postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  terminate(): Promise<number>;
  unref(): void;
  ref(): void;
}

interface WebWorker {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  terminate(): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  onerror: ((e: { message: string; error?: unknown; filename?: string; lineno?: number; preventDefault(): void }) => void) | null;
}

function startWebWorker(module: URL, options: StartWorkerOptions): Starting {
  const Ctor = (globalThis as { Worker?: new (url: string, o: { type: "module"; name?: string }) => WebWorker }).Worker;
  if (!Ctor) throw new WorkerStartError(module.href, new Error("this runtime has no Worker"));
  const worker = new Ctor(module.href, { type: "module", name: options.name });
  const box = inbox();
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let markExited!: (exit: WorkerExit) => void;
  const exited = new Promise<WorkerExit>((resolve) => (markExited = resolve));
  worker.onmessage = (e) => (e.data === READY ? markReady() : box.deliver(e.data));
  worker.onerror = (e) => {
    // Unhandled, a worker's error would end the parent too.
    e.preventDefault();
    const error = e.error instanceof Error ? e.error : new Error(`${e.message}${e.filename ? ` (${e.filename}:${e.lineno})` : ""}`);
    worker.terminate();
    markExited({ error });
  };
  return {
    ready,
    exited,
    post: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage: box.onMessage,
    terminate() {
      worker.terminate();
      markExited({});
      return exited.then(() => undefined);
    },
    // A Web Worker cannot be unreferenced: it keeps its host alive until terminated.
    unref: () => {},
    ref: () => {},
  };
}

let link: WorkerLink | undefined;

/**
 * The worker's link to its parent. Call it at the top level of a worker module: the parent's
 * {@linkcode startWorker} waits for it, and messages that arrive before a handler is set are kept.
 *
 * @example A worker module that doubles numbers (see also the example of startWorker)
 * ```ts no-run
 * import { parentLink } from "./worker.ts";
 * const parent = parentLink();
 * parent.onMessage((n) => parent.post((n as number) * 2));
 * ```
 */
export function parentLink(): WorkerLink {
  if (link) return link;
  if (!isWorkerThread()) throw new NotInWorkerError();
  const box = inbox();
  if (nodeThreads) {
    const port = nodeThreads.parentPort!;
    port.on("message", (wire: unknown) => box.deliver(fromWire(wire)));
    link = { post: (message, transfer) => port.postMessage(toWire(message), transfer ?? []), onMessage: box.onMessage };
  } else {
    const scope = globalThis as unknown as { postMessage(m: unknown, t?: ArrayBuffer[]): void; onmessage: ((e: { data: unknown }) => void) | null };
    scope.onmessage = (e) => box.deliver(e.data);
    link = { post: (message, transfer) => scope.postMessage(message, transfer), onMessage: box.onMessage };
  }
  link.post(READY);
  return link;
}
