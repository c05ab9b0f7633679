// Private: writing a new savepoint: chunks under canonical relative paths, the manifest last and only if
// absent, and on failure a best-effort removal of the chunks written so far (the previous snapshot is
// never touched: tools only ever write into a folder that has no manifest).
import { openStorage } from "../backends/open.ts";
import type { Storage } from "../backends/storage.ts";
import { type EncodedChunk, encodeChunk } from "../format/encode_chunk.ts";
import { type KeyGroupRange, keyGroupRangeFor } from "../format/key_group.ts";
import type { ChunkCompression, ChunkRef, Manifest, OperatorSnapshot, StateSnapshot } from "../format/manifest.ts";
import type { StateLayout } from "../format/state_layout.ts";
import { checkDestination } from "../snapshot/destination.ts";
import { manifestPath, savepointChunkPath, timedSavepointId } from "../snapshot/layout.ts";
import type { Snapshot } from "../snapshot/read.ts";
import { buildManifest, commitManifest, type ManifestHeader, syncChunks, writeChunk } from "../snapshot/write.ts";
import { checkShard, receiptPath, shardFingerprint, type ShardReceipt, type ShardSpec, shardWindows, writeReceipt } from "../snapshot/shards.ts";
import type { Progress } from "./progress.ts";
import { type RangeBatch, RowBuffer, type Rows } from "../snapshot/rows.ts";

/** Rows per chunk written from JS rows, unless `maxChunkRows` says otherwise. */
export const DEFAULT_MAX_CHUNK_ROWS = 65_536;

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The layout part of a state descriptor. */
export function layoutOf(st: StateLayout): StateLayout {
  return {
    kind: st.kind,
    ...(st.keyType !== undefined ? { keyType: st.keyType } : {}),
    ...(st.userKeyType !== undefined ? { userKeyType: st.userKeyType } : {}),
    ...(st.namespaced ? { namespaced: true } : {}),
    value: st.value,
  };
}

/** A state descriptor for a manifest, without undefined properties (the schema is closed). */
export function stateEntry(src: StateSnapshot, over: Partial<StateSnapshot> & { chunks: ChunkRef[] }): StateSnapshot {
  const s = { ...src, ...over };
  const out: StateSnapshot = {
    name: s.name,
    kind: s.kind,
    keyed: s.keyed,
    ...(s.keyType !== undefined ? { keyType: s.keyType } : {}),
    ...(s.userKeyType !== undefined ? { userKeyType: s.userKeyType } : {}),
    ...(s.namespaced ? { namespaced: true } : {}),
    value: s.value,
    schemaVersion: s.schemaVersion,
    chunks: s.chunks,
  };
  if (s.redistribution !== undefined) out.redistribution = s.redistribution;
  if (s.ttlMs !== undefined) out.ttlMs = s.ttlMs;
  return out;
}

/** The id of a new savepoint: the given one, else the destination's last path segment, else `sp-<time>`. */
export function savepointId(dstUri: string, id?: string): string {
  if (id !== undefined) {
    if (!ID.test(id)) throw new RangeError(`Cannot name the savepoint as its id must match ${ID.source}: current value is ${JSON.stringify(id)}`);
    return id;
  }
  const last = dstUri.replace(/\/+$/, "").split(/[/:]/).pop() ?? "";
  return ID.test(last) ? last : timedSavepointId(new Date());
}

/** Options every writing tool shares. */
export interface WriteOptions {
  /** The new savepoint's id (default: the destination folder's name). */
  id?: string;
  /** Compression of the chunks written (default `"none"`). */
  compression?: ChunkCompression;
  /** Largest number of rows of one chunk written from rows (default 65,536); split at key-group boundaries. */
  maxChunkRows?: number;
  /** Rows read per batch (default 16,384). */
  batchRows?: number;
  /** Called as work progresses. */
  onProgress?: (p: Progress) => void;
  /** Cancels the run between batches; nothing is committed. */
  signal?: AbortSignal;
  /**
   * Run only shard `index` of `count` (split by destination key-group range, see docs/scale-out.md): write
   * its chunks and a receipt under the destination, commit nothing; `commitShards` commits once every
   * shard is done.
   */
  shard?: ShardSpec;
  /**
   * Run as this many shards on this many threads of this process (this one and worker threads), then
   * commit (the same savepoint as one run). Default 1 (this thread). `"auto"`: more threads only where
   * they were measured to win (docs/scale-out.md: not for a re-hash nor a small source), and this thread
   * for what cannot cross threads (memory: URIs, opened snapshots or storages, functions among the arguments).
   */
  workers?: number | "auto";
}

/** Options that change how a run goes, not what it writes: left out of the plan fingerprint. */
const RUN_ONLY = new Set(["onProgress", "signal", "shard", "tempUri", "workers", "dryRun", "migrationsModule"]);

/** Encodes rows of a state; schema violations name the state as `uid/state` and the row's key. */
function encodeFor(uid: string, state: string, layout: StateLayout, rows: Rows, compression: ChunkCompression): EncodedChunk {
  return encodeChunk(layout, rows, { compression, state: `${uid}/${state}` });
}

/** Writes the chunks of one new savepoint, then its manifest. */
export class SavepointWriter {
  readonly storage: Storage;
  readonly id: string;
  readonly #owned: boolean;
  readonly #written: string[] = [];
  readonly #inflight = new Set<Promise<ChunkRef>>();
  readonly #syncing: Promise<void>[] = [];
  readonly #opts: WriteOptions;
  readonly #started = Date.now();
  rows = 0;
  bytes = 0;
  chunks = 0;
  totalRows?: number;
  phase = "write";
  /** A shard run's plan fingerprint. */
  readonly fingerprint?: string;
  /** A shard run's receipt, once written by {@link SavepointWriter.commit}. */
  receipt?: ShardReceipt;

  private constructor(storage: Storage, owned: boolean, id: string, opts: WriteOptions, fingerprint?: string) {
    this.storage = storage;
    this.#owned = owned;
    this.id = id;
    this.#opts = opts;
    this.fingerprint = fingerprint;
  }

  /**
   * Opens the destination, refusing one that already holds a snapshot or is the source itself. A shard
   * run (`opts.shard`) needs `plan` (the tool and the arguments that are not in `opts`) for its
   * fingerprint, and removes its own receipt of an earlier attempt before writing anything.
   */
  static async open(dst: string | Storage, src: Snapshot | undefined, opts: WriteOptions, plan?: { tool: string; maxParallelism: number; args?: unknown }): Promise<SavepointWriter> {
    const storage = typeof dst === "string" ? await openStorage(dst) : dst;
    const owned = typeof dst === "string";
    let fingerprint: string | undefined;
    try {
      await checkDestination(src, storage);
      if (opts.shard) {
        if (!src || !plan) throw new TypeError("Cannot run a shard as the writer was opened without its source and plan");
        checkShard(opts.shard, plan.maxParallelism);
        const args = Object.fromEntries(Object.entries(opts).filter(([k, v]) => !RUN_ONLY.has(k) && v !== undefined));
        fingerprint = shardFingerprint(plan.tool, src.manifest, { ...args, plan: plan.args ?? null }, opts.shard.count);
        await storage.delete([receiptPath(fingerprint, opts.shard)]);
      }
    } catch (e) {
      if (owned) await storage.close();
      throw e;
    }
    return new SavepointWriter(storage, owned, savepointId(storage.uri, opts.id), opts, fingerprint);
  }

  /** Reports progress. */
  progress(extra: Partial<Progress> = {}): void {
    this.#opts.onProgress?.({ phase: this.phase, rows: this.rows, bytes: this.bytes, totalRows: this.totalRows, elapsedMs: Date.now() - this.#started, ...extra });
  }

  /** Writes encoded chunk bytes under `path` and returns the manifest entry. */
  async put(path: string, chunk: EncodedChunk, range: KeyGroupRange | undefined, subtask?: number): Promise<ChunkRef> {
    this.#opts.signal?.throwIfAborted();
    this.#written.push(path);
    // Durable at the commit (docs/reliability.md): each chunk's bytes are synced as soon as it is written,
    // beside the work on the next ones; the commit waits for them, then syncs the folders once.
    const writing = writeChunk(this.storage, path, chunk, { type: "base", order: 0, subtask, keyGroupRange: range, deferSync: true }).then((ref) => {
      const syncing = syncChunks(this.storage, [path], "bytes");
      syncing.catch(() => {}); // awaited by commit(), or moot after abort()
      this.#syncing.push(syncing);
      return ref;
    });
    this.#inflight.add(writing);
    const length = chunk.bytes.length;
    let ref: ChunkRef;
    try {
      ref = await writing;
    } finally {
      this.#inflight.delete(writing);
      // Written (or failed): nothing reads the bytes any more, a scratch buffer can serve the next chunk.
      chunk.release?.();
    }
    this.chunks++;
    this.bytes += length;
    return ref;
  }

  /** Encodes and writes the rows of a keyed state's key-group range. */
  async writeKeyed(uid: string, state: string, layout: StateLayout, range: KeyGroupRange, rows: Rows): Promise<ChunkRef> {
    const chunk = encodeFor(uid, state, layout, rows, this.#opts.compression ?? "none");
    const ref = await this.put(savepointChunkPath(uid, state, range), chunk, range);
    this.rows += rows.length;
    this.progress();
    return ref;
  }

  /** Encodes and writes one subtask's list of an operator state. */
  async writeOperator(uid: string, state: string, layout: StateLayout, subtask: number, values: unknown[]): Promise<ChunkRef> {
    const chunk = encodeFor(uid, state, layout, { length: values.length, values }, this.#opts.compression ?? "none");
    const ref = await this.put(savepointChunkPath(uid, state, subtask), chunk, undefined, subtask);
    this.rows += values.length;
    this.progress();
    return ref;
  }

  /** Writes already-encoded, verified chunk bytes (a verbatim copy or an Arrow-level slice). */
  async writeEncoded(uid: string, state: string, range: KeyGroupRange, chunk: EncodedChunk): Promise<ChunkRef> {
    const ref = await this.put(savepointChunkPath(uid, state, range), chunk, range);
    this.rows += chunk.rows;
    this.progress();
    return ref;
  }

  /**
   * A writer for one keyed state: feed it batches in ascending key-group order (each window begun and
   * ended), it writes one chunk per window, split at batch boundaries once `maxChunkRows` is reached.
   */
  keyed(uid: string, state: string, layout: StateLayout): KeyedStateWriter {
    return new KeyedStateWriter(this, uid, state, layout, this.#opts.maxChunkRows ?? DEFAULT_MAX_CHUNK_ROWS);
  }

  /**
   * Validates and commits the manifest: the savepoint exists from here on. A shard run writes its receipt
   * instead and returns the manifest of its part (not written).
   */
  async commit(source: Manifest, operators: OperatorSnapshot[], over: { maxParallelism?: number; metadata?: Record<string, string> } = {}): Promise<Manifest> {
    this.#opts.signal?.throwIfAborted();
    const header: ManifestHeader = {
      kind: "savepoint",
      id: this.id,
      checkpointId: source.checkpointId,
      job: source.job,
      maxParallelism: over.maxParallelism ?? source.maxParallelism,
      hash: source.hash,
      metadata: { ...(source.metadata ?? {}), ...(over.metadata ?? {}) },
    };
    const manifest = buildManifest(header, operators);
    // The chunks' names (each folder once, whatever number of chunks it holds) are synced beside their
    // bytes: the two are independent, and only the receipt or manifest below, which may name only durable
    // chunks, has to wait for both. A shard writes one or two chunks, so it would otherwise wait for the
    // last chunk's bytes and then for its folder, one after the other.
    const names = syncChunks(this.storage, this.#written, "names");
    names.catch(() => {}); // awaited just below
    try {
      await Promise.all(this.#syncing);
    } finally {
      await names;
    }
    this.#opts.signal?.throwIfAborted();
    const shard = this.#opts.shard;
    if (shard) {
      const receipt: ShardReceipt = {
        format: "arrowpoint-shard-receipt",
        version: 1,
        fingerprint: this.fingerprint!,
        shard: { index: shard.index, count: shard.count },
        keyGroups: keyGroupRangeFor(shard.index, shard.count, header.maxParallelism),
        header,
        operators: operators.map((op) => {
          const { first, windows } = shardWindows(op.parallelism, header.maxParallelism, shard);
          const range = windows.length ? { start: windows[0].start, end: windows[windows.length - 1].end } : undefined;
          return { ...op, subtasks: { first, end: first + windows.length }, ...(range ? { keyGroupRange: range } : {}) };
        }),
        rows: this.rows,
        bytes: this.bytes,
        chunks: this.chunks,
      };
      await writeReceipt(this.storage, receipt);
      this.receipt = receipt;
    } else await commitManifest(this.storage, "", manifest);
    this.#written.length = 0;
    return manifest;
  }

  /** Removes the chunks written so far (best effort) after a failure; the manifest was never written. */
  async abort(): Promise<void> {
    // A write still in flight (keyed writers keep one) would land after the delete: let it settle first.
    await Promise.allSettled([...this.#inflight, ...this.#syncing]);
    const paths = this.#written.splice(0);
    if (paths.length) await this.storage.delete(paths).catch(() => {});
  }

  /** Closes the destination storage if this writer opened it. */
  async close(): Promise<void> {
    if (this.#owned) await this.storage.close();
  }
}

/** Writes one keyed state's chunks from batches; see {@link SavepointWriter.keyed}. */
export class KeyedStateWriter {
  readonly refs: ChunkRef[] = [];
  #buf: RowBuffer;
  #window: KeyGroupRange | undefined;
  #from = 0;
  #to = -1;
  #pending: Promise<void> = Promise.resolve();

  constructor(readonly sink: SavepointWriter, readonly uid: string, readonly state: string, readonly layout: StateLayout, readonly maxChunkRows: number) {
    this.#buf = new RowBuffer(layout.namespaced === true, layout.kind === "map");
  }

  /** Starts a window (a target subtask range). */
  begin(range: KeyGroupRange): void {
    this.#window = range;
    this.#from = range.start;
    this.#to = range.start - 1;
  }

  /** Adds a batch (ascending, inside the current window). */
  async add(batch: Pick<RangeBatch, "range" | "rows">): Promise<void> {
    this.#buf.append(batch.rows);
    this.#to = batch.range.end;
    if (this.#buf.length >= this.maxChunkRows && this.#to < this.#window!.end) await this.#flush(this.#to);
  }

  /** Adds an already-encoded chunk for a sub-range of the window (flushing buffered rows before it). */
  async addEncoded(range: KeyGroupRange, chunk: EncodedChunk): Promise<void> {
    if (range.start > this.#from) await this.#flush(range.start - 1);
    await this.#queue(() => this.sink.writeEncoded(this.uid, this.state, range, chunk));
    this.#from = range.end + 1;
    this.#to = range.end;
  }

  /**
   * Starts a chunk write once the previous one has finished: the caller builds the next chunk while this
   * one goes to storage (at most one encoded chunk waits, so memory stays bounded by two chunks).
   */
  async #queue(write: () => Promise<ChunkRef>): Promise<void> {
    await this.#pending;
    const at = this.refs.length;
    this.refs.length = at + 1;
    const p = write().then((ref) => {
      this.refs[at] = ref;
    });
    p.catch(() => {}); // reported by the next #queue or finish(), which await it
    this.#pending = p;
  }

  /** Waits for the last chunk write and returns every chunk written, in order. */
  async finish(): Promise<ChunkRef[]> {
    await this.#pending;
    return this.refs;
  }

  /** Ends the window: writes what is buffered (an empty chunk when the window had no rows at all). */
  async end(): Promise<void> {
    const w = this.#window!;
    if (this.#from <= w.end) await this.#flush(w.end);
    this.#window = undefined;
  }

  async #flush(to: number): Promise<void> {
    const range = { start: this.#from, end: to };
    const rows = this.#buf.take();
    await this.#queue(() => this.sink.writeKeyed(this.uid, this.state, this.layout, range, rows));
    this.#from = to + 1;
  }
}
