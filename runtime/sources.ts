/**
 * Sources with replayable positions. A source is a fixed set of splits (independent of parallelism);
 * each subtask reads the splits dealt to it, and the position of every split is operator state
 * (`split` redistribution), so a restored job — at any parallelism — resumes every split exactly where
 * the snapshot left it.
 *
 * The positions are the operator list state `positions` of the source's uid, one msgpack item per split:
 * `{ id, split, position, done }` (`position`: what `SplitReader.position()` returned at the barrier,
 * null for a split never opened, which a restore passes to `reader` as `undefined`; `done`: `read()`
 * returned -1).
 *
 * **Finished splits stay finished after a restore**, as in Flink: a restored source resumes the splits
 * of the snapshot from their positions and never reopens a split stored as done, even if its data grew.
 * To read more: a **new split** (an id `splits()` lists and the snapshot does not hold is read from its
 * beginning, dealt over the subtasks in list order), or a **new source uid** (a second source unioned
 * with the first; or the same source under a new uid with `allowNonRestoredState`, which reads every
 * split from its start again). docs/connectors.md shows both, and how to write a source.
 *
 * @module
 */
import type { Storage } from "../backends/storage.ts";
import { openStorage } from "../backends/open.ts";
import { murmurHash } from "../format/key_group.ts";

/**
 * One split of a source: an id plus whatever the source needs (msgpack-serialisable).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { SourceSplit } from "./sources.ts";
 * const split: SourceSplit = { id: "part-3", path: "events/part-3.ndjson" };
 * assert.equal(split.id, "part-3");
 * ```
 */
export interface SourceSplit {
  /** Unique within the source. */
  readonly id: string;
  /** Source-specific fields. */
  readonly [field: string]: unknown;
}

/**
 * Reads one split. `read` fills `out` with up to `max` records and returns how many it added, or -1 when
 * the split is finished; it may return a promise (I/O, throttling, waiting for data). While such a
 * promise is pending the reader must not touch `out` and `position()` must not move: the source emits
 * checkpoint barriers meanwhile. `position()` is where a restored reader resumes: just after the last
 * record returned.
 *
 * @example
 * ```ts
 * import type { SplitReader } from "./sources.ts";
 * function countdown(from: number): SplitReader<number> {
 *   let n = from;
 *   return {
 *     read(out, max) { if (n <= 0) return -1; let c = 0; while (n > 0 && c < max) { out.push(n--); c++; } return c; },
 *     position: () => n,
 *   };
 * }
 * ```
 */
export interface SplitReader<T> {
  /** Appends up to `max` records to `out`; the count added, or -1 at the end of the split. */
  read(out: T[], max: number): number | Promise<number>;
  /** The resume position after the records returned so far (msgpack-serialisable). */
  position(): unknown;
  /** Releases resources. */
  close?(): void | Promise<void>;
  /**
   * Called once a checkpoint (or a stop-with-savepoint) that recorded `position` for this split is
   * complete, so a reader can acknowledge it upstream (a replication slot, a consumer offset): until then
   * a restore may still need what precedes it.
   */
  notifyCheckpointComplete?(position: unknown): void | Promise<void>;
}

/**
 * A source of records: its splits, and a reader per split from a position (`undefined` = the start).
 * Split ids must be stable: a restore resumes the snapshot's splits by id (a split finished there stays
 * finished) and reads the splits `splits()` adds from their beginning (see the module docs).
 *
 * @example A source of the numbers 0..n-1 in one split
 * ```ts
 * import type { Source, SplitReader } from "./sources.ts";
 * function range(n: number): Source<number> {
 *   return {
 *     name: "range",
 *     splits: () => [{ id: "0" }],
 *     reader(_split, position): SplitReader<number> {
 *       let i = (position as number | undefined) ?? 0;
 *       return {
 *         read(out, max) { if (i >= n) return -1; const end = Math.min(n, i + max); const c = end - i; while (i < end) out.push(i++); return c; },
 *         position: () => i,
 *       };
 *     },
 *   };
 * }
 * ```
 */
export interface Source<T> {
  /** A name (the default operator uid). */
  readonly name: string;
  /** The splits; the same list on every call. */
  splits(): readonly SourceSplit[] | Promise<readonly SourceSplit[]>;
  /** A reader of a split from a position (`undefined`: the beginning). */
  reader(split: SourceSplit, position: unknown): SplitReader<T> | Promise<SplitReader<T>>;
  /** Releases shared resources after the job. */
  close?(): void | Promise<void>;
}

function splitCount(n: number | undefined, what: string): number {
  const v = n ?? 1;
  if (!Number.isInteger(v) || v < 1 || v > 32768) throw new RangeError(`Cannot create ${what} as splits must be an integer in 1..32768: current value is ${v}`);
  return v;
}

/**
 * A source over an in-memory array, cut into `splits` contiguous slices (default 1). Position: index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arraySource } from "./sources.ts";
 * const src = arraySource([{ user: "a", n: 1 }, { user: "b", n: 2 }], { splits: 2 });
 * assert.equal((await src.splits()).length, 2);
 * ```
 */
export function arraySource<T>(items: readonly T[], options: { splits?: number; name?: string } = {}): Source<T> {
  const n = splitCount(options.splits, "an array source");
  const per = Math.ceil(items.length / n);
  const splits: SourceSplit[] = Array.from({ length: n }, (_, i) => ({ id: String(i), start: Math.min(i * per, items.length), end: Math.min((i + 1) * per, items.length) }));
  return {
    name: options.name ?? "array",
    splits: () => splits,
    reader(split, position) {
      const end = split.end as number;
      let i = typeof position === "number" ? position : (split.start as number);
      return {
        read(out, max) {
          if (i >= end) return -1;
          const stop = Math.min(end, i + max);
          const count = stop - i;
          while (i < stop) out.push(items[i++]);
          return count;
        },
        position: () => i,
      };
    },
  };
}

/**
 * A small deterministic random generator (mulberry32), reseeded per record by the generator source so
 * record i is the same whatever was read before it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "./sources.ts";
 * const a = new Rng().seed(7), b = new Rng().seed(7);
 * assert.equal(a.int(100) === b.int(100), true);
 * ```
 */
export class Rng {
  private s = 0;
  /** Reseeds. */
  seed(seed: number): this {
    this.s = seed | 0;
    return this;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * Options of {@link generatorSource}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { GeneratorOptions } from "./sources.ts";
 * const options: GeneratorOptions<{ user: string }> = { count: 1_000, splits: 2, seed: 7, make: (i, rng, split) => ({ user: `u${rng.int(10) * 2 + split}` }) };
 * assert.equal(options.count, 1000);
 * ```
 */
export interface GeneratorOptions<T> {
  /** Total number of records (Infinity: unbounded). */
  count: number;
  /** Makes record `index` (0-based, global) from a generator seeded for that record; `split` is `index % splits`. */
  make: (index: number, rng: Rng, split: number) => T;
  /** Number of splits (default 1): split s yields the records s, s + splits, s + 2·splits, … */
  splits?: number;
  /** Seed (default 0). */
  seed?: number;
  /** Records per second per split (default unlimited). */
  ratePerSecond?: number;
  /** Name (default `generator`). */
  name?: string;
}

/**
 * A deterministic generated source for tests and benchmarks: record i depends only on (seed, i), so any
 * position can be replayed. Position: records already emitted by the split.
 *
 * To keep the order of each key's records independent of parallelism, derive keys so that every key
 * belongs to one split (e.g. `key = rng.int(k) * splits + split`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generatorSource } from "./sources.ts";
 * const events = generatorSource({ count: 1000, splits: 4, seed: 7, make: (i, rng, split) => ({ user: `u${rng.int(50) * 4 + split}`, amount: rng.int(100) }) });
 * assert.equal(events.name, "generator");
 * ```
 */
export function generatorSource<T>(options: GeneratorOptions<T>): Source<T> {
  const splits = splitCount(options.splits, "a generator source");
  const count = options.count;
  if (!(count >= 0)) throw new RangeError(`Cannot create a generator source as count must be ≥ 0: current value is ${count}`);
  const seed = options.seed ?? 0;
  const make = options.make;
  const rate = options.ratePerSecond;
  return {
    name: options.name ?? "generator",
    splits: () => Array.from({ length: splits }, (_, i) => ({ id: String(i), index: i })),
    reader(split, position) {
      const s = split.index as number;
      let k = typeof position === "number" ? position : 0;
      const total = count === Infinity ? Infinity : Math.floor((count - s + splits - 1) / splits);
      const rng = new Rng();
      const seedBase = murmurHash(seed | 0);
      const started = Date.now();
      const startK = k;
      const produce = (out: T[], max: number): number => {
        if (k >= total) return -1;
        const stop = Math.min(total, k + max);
        const c = stop - k;
        for (; k < stop; k++) {
          const i = s + k * splits;
          out.push(make(i, rng.seed(seedBase ^ murmurHash(i | 0) ^ Math.floor(i / 4294967296)), s));
        }
        return c;
      };
      return {
        read(out, max) {
          if (rate === undefined) return produce(out, max);
          const allowed = Math.floor(((Date.now() - started) / 1000) * rate) - (k - startK);
          if (allowed > 0) return produce(out, Math.min(max, allowed));
          if (k >= total) return -1;
          return new Promise<number>((resolve) => setTimeout(() => resolve(0), Math.max(1, Math.ceil(1000 / rate))));
        },
        position: () => k,
      };
    },
  };
}

/**
 * Options of {@link ndjsonSource}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { NdjsonSourceOptions } from "./sources.ts";
 * const options: NdjsonSourceOptions<{ user: string }> = { storage: "./input", paths: ["day-1.ndjson", "day-2.ndjson"] };
 * assert.equal(options.paths.length, 2);
 * ```
 */
export interface NdjsonSourceOptions<T> {
  /** Where the files are: a Storage or a URI/path opened on first read. */
  storage: Storage | string;
  /** The files, relative to the storage root; one split each. */
  paths: readonly string[];
  /** Turns a line into a record (default `JSON.parse`). */
  parse?: (line: string) => T;
  /** Bytes fetched per read (default 1 MiB). */
  readSize?: number;
  /** Name (default `ndjson`). */
  name?: string;
}

const NL = 10;

/**
 * A source of newline-delimited JSON files, one split per file, read through a Storage in ranged reads.
 * Position: the byte offset of the next unread line. Empty lines are skipped; a last line without a
 * newline is read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStorage } from "../backends/open.ts";
 * import { ndjsonSource } from "./sources.ts";
 * const storage = await openStorage("memory:ndjson-example");
 * await storage.put("in/a.ndjson", new TextEncoder().encode('{"user":"a"}\n{"user":"b"}\n'));
 * const src = ndjsonSource<{ user: string }>({ storage, paths: ["in/a.ndjson"] });
 * assert.equal((await src.splits()).length, 1);
 * ```
 */
export function ndjsonSource<T>(options: NdjsonSourceOptions<T>): Source<T> {
  const parse = options.parse ?? ((line: string) => JSON.parse(line) as T);
  const readSize = options.readSize ?? 1 << 20;
  let storage: Storage | undefined = typeof options.storage === "string" ? undefined : options.storage;
  let opening: Promise<Storage> | undefined;
  const owned = typeof options.storage === "string";
  const getStorage = (): Promise<Storage> | Storage => {
    if (storage) return storage;
    opening ??= openStorage(options.storage as string).then((s) => (storage = s));
    return opening;
  };
  const decoder = new TextDecoder();
  return {
    name: options.name ?? "ndjson",
    splits: () => options.paths.map((path, i) => ({ id: String(i), path })),
    async reader(split, position) {
      const st = await getStorage();
      const path = split.path as string;
      let offset = typeof position === "number" ? position : 0; // first unconsumed byte
      let buf = new Uint8Array(0);
      let pos = 0; // index in buf of `offset`
      let eof = false;
      const take = (out: T[], max: number): number => {
        let c = 0;
        while (c < max) {
          let nl = buf.indexOf(NL, pos);
          if (nl < 0) {
            if (!eof || pos >= buf.length) break;
            nl = buf.length; // last line without newline
          }
          const line = decoder.decode(buf.subarray(pos, nl));
          const consumed = Math.min(nl + 1, buf.length) - pos;
          if (line.trim() !== "") {
            let rec: T;
            try {
              rec = parse(line);
            } catch (e) {
              throw new SyntaxError(`Cannot parse the NDJSON line at byte ${offset} of ${st.uri}/${path}: ${(e as Error).message}`, { cause: e });
            }
            out.push(rec);
            c++;
          }
          offset += consumed;
          pos += consumed;
        }
        return c;
      };
      const fill = async (): Promise<void> => {
        const rest = buf.subarray(pos);
        const chunk = await st.getRange(path, offset + rest.length, readSize);
        if (chunk.length < readSize) eof = true;
        const next = new Uint8Array(rest.length + chunk.length);
        next.set(rest, 0);
        next.set(chunk, rest.length);
        buf = next;
        pos = 0;
      };
      return {
        read(out, max) {
          const c = take(out, max);
          if (c > 0) return c;
          if (eof) return pos >= buf.length ? -1 : 0;
          return fill().then(() => take(out, max));
        },
        position: () => offset,
      };
    },
    async close() {
      if (owned && storage) await storage.close();
    },
  };
}
