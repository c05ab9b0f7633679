/**
 * A change-data-capture source over PostgreSQL logical replication (the `pgoutput` plugin, a publication
 * and a replication slot). Its position — the commit LSN of the transaction of the last record emitted
 * and how many of its records were emitted — is operator state; the slot's confirmed flush LSN moves only
 * when a checkpoint that holds a position completes, so a restore replays from that checkpoint and
 * nothing is lost or seen twice downstream.
 *
 * @module
 */
import type { Client } from "pg";
import type { Source, SplitReader } from "../sources.ts";
import type { PostgresConnection } from "./postgres_connection.ts";
import { clientConfig, connect, delay, end, formatLsn, parseLsn, quoteName, sqlState } from "./_postgres.ts";
import { PostgresConfigError, PostgresConnectionLostError, PostgresPublicationError, PostgresRestoreError, PostgresSlotInUseError } from "./postgres_errors.ts";

/** A row as the server gave it: column name to value (parsed by pg's type parsers: int8 and numeric are strings). */
export type PostgresRow = Record<string, unknown>;

/**
 * One change of a published table.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { CdcRecord } from "./postgres_cdc.ts";
 * const r: CdcRecord = { op: "update", table: "public.orders", key: { id: 7 }, before: { id: 7 }, after: { id: 7, amount: 30 }, lsn: "0/1A2B3C", commitLsn: "0/1A2C00", commitTime: 1764580000000 };
 * assert.equal(r.op, "update");
 * assert.equal(r.after?.amount, 30);
 * ```
 */
export interface CdcRecord<Row extends PostgresRow = PostgresRow> {
  /** What happened. Rows of the initial snapshot are inserts with `snapshot: true`. */
  readonly op: "insert" | "update" | "delete";
  /** `schema.table`. */
  readonly table: string;
  /** The replica-identity (primary key) columns of the row. */
  readonly key: PostgresRow;
  /** The old row of an update or delete: the key columns, or every column with `REPLICA IDENTITY FULL`. */
  readonly before?: PostgresRow;
  /** The new row; null for a delete. */
  readonly after: Row | null;
  /** The WAL position of the change. */
  readonly lsn: string;
  /** The commit LSN of its transaction. */
  readonly commitLsn: string;
  /** Commit time of its transaction, ms since the epoch. */
  readonly commitTime: number;
  /** True for a row of the initial snapshot. */
  readonly snapshot?: true;
}

/**
 * Options of {@link postgresCdcSource}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PostgresCdcOptions } from "./postgres_cdc.ts";
 * const options: PostgresCdcOptions = { connection: "postgres://postgres@127.0.0.1:5432/shop", publication: "orders_pub", slot: "orders_slot", snapshot: true };
 * assert.equal(options.slot, "orders_slot");
 * ```
 */
export interface PostgresCdcOptions {
  /** The server (the user needs the REPLICATION attribute). */
  connection: PostgresConnection;
  /** The publication whose tables are read (`CREATE PUBLICATION … FOR TABLE …`): it must exist. */
  publication: string;
  /** The logical replication slot (lower-case letters, digits, `_`), created when missing. */
  slot: string;
  /**
   * When this source creates the slot, first emit every existing row of the published tables as an
   * insert, read in the snapshot the slot was created at (default false). A checkpoint taken before the
   * snapshot is fully emitted cannot be restored from (the server's snapshot ends with the reader).
   */
  snapshot?: boolean;
  /** Changes held in memory before the stream is paused (default 10,000). */
  maxBuffered?: number;
  /** Reconnections tried after the connection is lost before the job fails (default 5). */
  retries?: number;
  /** First backoff between reconnections, doubled each time (default 200 ms). */
  retryDelayMs?: number;
  /** Name (default `postgres-cdc`). */
  name?: string;
}

/** Where a reader is: the commit LSN of the last record's transaction, records of it emitted, and what may be acknowledged. */
interface CdcPosition {
  /** Commit LSN of the transaction of the last record emitted. */
  lsn: string;
  /** Records of that transaction emitted. */
  seq: number;
  /** Whether all of that transaction was emitted. */
  complete: boolean;
  /** The slot may confirm up to here (end LSN of the last transaction emitted entirely). */
  confirm: string;
  /** Set while the initial snapshot is emitted: table index and rows emitted of it. */
  snapshot?: { table: number; rows: number };
}

type Item = { kind: "record"; final: bigint; record: CdcRecord } | { kind: "commit"; final: bigint; end: bigint };

const NAME = /^[a-z0-9_]{1,63}$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * A PostgreSQL change-data-capture source: inserts, updates and deletes of the tables of a publication,
 * in commit order, from a logical replication slot (`pgoutput`), as {@link CdcRecord}s. One split (one
 * slot): run it at parallelism 1 and key the stream for the operators after it.
 *
 * Exactly once: the position is checkpointed; the slot's confirmed flush LSN is advanced only when a
 * checkpoint completes (so the server keeps the WAL a restore needs); a restored reader starts at the
 * slot and skips what the checkpoint already covered. A lost connection is retried with backoff from the
 * same position, then fails the job. Needs `wal_level = logical` and a free slot (`max_replication_slots`).
 * `TRUNCATE` is not emitted.
 *
 * @example
 * ```ts ignore
 * import { Job } from "../job.ts";
 * import { postgresCdcSource } from "./postgres_cdc.ts";
 * const job = new Job("orders", { checkpoints: { storage: "./ckpt", intervalMs: 1000 }, restore: { from: "latest" } });
 * job.fromSource(postgresCdcSource({ connection: "postgres://postgres@127.0.0.1/shop", publication: "orders_pub", slot: "orders_slot" }), { uid: "orders" })
 *   .process({ processElement(r, ctx) { console.log(r.op, r.table, r.key); } });
 * ```
 */
export function postgresCdcSource<Row extends PostgresRow = PostgresRow>(options: PostgresCdcOptions): Source<CdcRecord<Row>> {
  if (!NAME.test(options.slot)) throw new TypeError(`Cannot create a CDC source as slot must be 1..63 lower-case letters, digits or _: current value is ${JSON.stringify(options.slot)}`);
  if (!IDENT.test(options.publication)) throw new TypeError(`Cannot create a CDC source as publication must be a plain identifier: current value is ${JSON.stringify(options.publication)}`);
  const maxBuffered = options.maxBuffered ?? 10_000;
  if (!Number.isInteger(maxBuffered) || maxBuffered < 1) throw new RangeError(`Cannot create a CDC source as maxBuffered must be a positive integer: current value is ${maxBuffered}`);
  return {
    name: options.name ?? "postgres-cdc",
    splits: () => [{ id: options.slot, slot: options.slot }],
    reader: (_split, position) => openReader(options, maxBuffered, position as CdcPosition | undefined) as Promise<SplitReader<CdcRecord<Row>>>,
  };
}

interface SlotRow {
  active: boolean;
  active_pid: number | null;
  confirmed_flush_lsn: string | null;
  plugin: string | null;
}

async function checkServer(client: Client, options: PostgresCdcOptions): Promise<SlotRow | undefined> {
  const wal = (await client.query<{ wal_level: string }>("SHOW wal_level")).rows[0].wal_level;
  if (wal !== "logical") {
    throw new PostgresConfigError(
      "wal_level",
      `Cannot read changes from replication slot ${JSON.stringify(options.slot)} as the server's wal_level is ${wal}: ` +
        "set wal_level = logical (postgresql.conf or ALTER SYSTEM SET wal_level = logical) and restart the server",
    );
  }
  const pub = await client.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [options.publication]);
  if (pub.rowCount === 0) {
    throw new PostgresPublicationError(
      options.publication,
      `Cannot read changes as publication ${JSON.stringify(options.publication)} does not exist in this database: ` +
        `create it with CREATE PUBLICATION ${options.publication} FOR TABLE <tables>, or name an existing one`,
    );
  }
  const slot = await client.query<SlotRow>(
    "SELECT active, active_pid, confirmed_flush_lsn::text, plugin FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
    [options.slot],
  );
  return slot.rows[0];
}

function slotInUse(slot: string, pid: number | null | undefined, cause?: unknown): PostgresSlotInUseError {
  return new PostgresSlotInUseError(
    slot,
    `Cannot read changes from replication slot ${JSON.stringify(slot)} as it is in use${pid ? ` by server process ${pid}` : ""}: ` +
      "stop the other reader (another job, or an earlier run still connected), or give this source its own slot",
    { cause },
  );
}

async function openReader(options: PostgresCdcOptions, maxBuffered: number, restored: CdcPosition | undefined): Promise<SplitReader<CdcRecord>> {
  const control = await connect(options.connection);
  let snapshotRead: SnapshotReader | undefined;
  let start: CdcPosition;
  try {
    let slot = await checkServer(control, options);
    // A reader that just stopped (a job restoring in the same process, a crashed one whose connection the
    // server is closing) may hold the slot for a moment: retry before calling it in use.
    for (let i = 0, retries = options.retries ?? 5; slot?.active && i < retries; i++) {
      await delay((options.retryDelayMs ?? 200) * 2 ** i);
      slot = await checkServer(control, options);
    }
    if (restored?.snapshot) {
      throw new PostgresRestoreError(
        `Cannot resume replication slot ${JSON.stringify(options.slot)} as the snapshot being restored was taken during its initial table snapshot, ` +
          "which the server no longer holds: start the job without restoring, after dropping the slot (SELECT pg_drop_replication_slot(...)) and the sink's output",
      );
    }
    if (slot === undefined) {
      if (restored) {
        throw new PostgresRestoreError(
          `Cannot resume at ${restored.confirm} as replication slot ${JSON.stringify(options.slot)} does not exist any more: the changes after the restored checkpoint are gone; ` +
            "start the job without restoring (and with snapshot: true to read the tables again)",
        );
      }
      if (options.snapshot) {
        snapshotRead = await SnapshotReader.create(options);
        start = { lsn: snapshotRead.consistentPoint, seq: 0, complete: true, confirm: snapshotRead.consistentPoint, snapshot: { table: 0, rows: 0 } };
      } else {
        const created = await control.query<{ lsn: string }>("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", [options.slot]);
        const at = created.rows[0].lsn;
        start = { lsn: at, seq: 0, complete: true, confirm: at };
      }
    } else {
      if (slot.plugin !== "pgoutput") throw new TypeError(`Cannot read replication slot ${JSON.stringify(options.slot)} as it uses the ${slot.plugin} plugin: a CDC source needs a pgoutput slot`);
      if (slot.active) throw slotInUse(options.slot, slot.active_pid);
      const flushed = slot.confirmed_flush_lsn ?? "0/0";
      if (restored && parseLsn(flushed) > parseLsn(restored.confirm)) {
        throw new PostgresRestoreError(
          `Cannot resume replication slot ${JSON.stringify(options.slot)} at ${restored.confirm} as the slot has already confirmed up to ${flushed}: ` +
            "the snapshot restored is older than the last completed checkpoint of this slot; restore the latest checkpoint",
        );
      }
      start = restored ?? { lsn: flushed, seq: 0, complete: true, confirm: flushed };
    }
  } catch (e) {
    await snapshotRead?.close();
    await end(control);
    throw e;
  }
  await end(control);
  return new CdcReader(options, maxBuffered, start, snapshotRead);
}

/** Reads the published tables in the snapshot a slot was created at (the slot's connection must stay idle meanwhile). */
class SnapshotReader {
  private table = 0;
  private rows = 0;
  private open = false;
  private constructor(
    private readonly replication: Client,
    private readonly client: Client,
    readonly consistentPoint: string,
    private readonly tables: { name: string; key: string[] }[],
    private readonly commitTime: number,
  ) {}

  static async create(options: PostgresCdcOptions): Promise<SnapshotReader> {
    const replication = await connect(options.connection, { replication: "database" } as object);
    const client = await connect(options.connection);
    try {
      const created = await replication.query<{ consistent_point: string; snapshot_name: string }>(`CREATE_REPLICATION_SLOT ${options.slot} LOGICAL pgoutput (SNAPSHOT 'export')`);
      const { consistent_point, snapshot_name } = created.rows[0];
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      await client.query(`SET TRANSACTION SNAPSHOT '${snapshot_name.replace(/'/g, "''")}'`);
      const tables = await client.query<{ name: string; key: string[] | null }>(
        `SELECT format('%s.%s', t.schemaname, t.tablename) AS name,
                (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = format('%I.%I', t.schemaname, t.tablename)::regclass AND i.indisprimary) AS key
           FROM pg_publication_tables t WHERE t.pubname = $1 ORDER BY 1`,
        [options.publication],
      );
      const now = Number((await client.query<{ ms: string }>("SELECT (extract(epoch FROM now()) * 1000)::bigint::text AS ms")).rows[0].ms);
      return new SnapshotReader(replication, client, consistent_point, tables.rows.map((r) => ({ name: r.name, key: r.key ?? [] })), now);
    } catch (e) {
      await end(client);
      await end(replication);
      throw e;
    }
  }

  private ahead: { records: CdcRecord[]; table: number; rowsBefore: number } | undefined;
  /** Whether every row was returned. */
  done = false;

  /** Fetches the next chunk ahead; true when there is none. */
  async peek(max: number): Promise<boolean> {
    this.ahead ??= await this.fetch(max);
    if (this.ahead.records.length === 0) this.done = true;
    return this.done;
  }

  /** Up to `max` rows as inserts; an empty array at the end. */
  async next(max: number): Promise<{ records: CdcRecord[]; table: number; rowsBefore: number }> {
    const a = this.ahead;
    this.ahead = undefined;
    const r = a ?? (await this.fetch(max));
    if (r.records.length === 0) this.done = true;
    return r;
  }

  private async fetch(max: number): Promise<{ records: CdcRecord[]; table: number; rowsBefore: number }> {
    for (;;) {
      if (this.table >= this.tables.length) return { records: [], table: this.table, rowsBefore: 0 };
      const t = this.tables[this.table];
      if (!this.open) {
        await this.client.query(`DECLARE arrowpoint_snapshot NO SCROLL CURSOR FOR SELECT * FROM ${quoteName(t.name)}`);
        this.open = true;
      }
      const res = await this.client.query<PostgresRow>(`FETCH ${max} FROM arrowpoint_snapshot`);
      if (res.rows.length === 0) {
        await this.client.query("CLOSE arrowpoint_snapshot");
        this.open = false;
        this.table++;
        this.rows = 0;
        continue;
      }
      const rowsBefore = this.rows;
      this.rows += res.rows.length;
      const records = res.rows.map((row): CdcRecord => {
        const key: PostgresRow = {};
        for (const k of t.key) key[k] = row[k];
        return { op: "insert", table: t.name, key, after: row, lsn: this.consistentPoint, commitLsn: this.consistentPoint, commitTime: this.commitTime, snapshot: true };
      });
      return { records, table: this.table, rowsBefore };
    }
  }

  async close(): Promise<void> {
    await end(this.client);
    await end(this.replication);
  }
}

type Service = import("pg-logical-replication").LogicalReplicationService;
type ReplicationModule = typeof import("pg-logical-replication");
let replicationModule: Promise<ReplicationModule> | undefined;
function loadReplication(): Promise<ReplicationModule> {
  replicationModule ??= import("pg-logical-replication").then((m) => ((m as unknown as { default?: ReplicationModule }).default ?? m) as ReplicationModule);
  return replicationModule;
}

/** Streams the slot into a bounded buffer; `read` drains it and moves the position. */
class CdcReader implements SplitReader<CdcRecord> {
  private pos: CdcPosition;
  /** The position the current stream skips up to (what was emitted when it started). */
  private resume: { final: bigint; seq: number; complete: boolean };
  private buffer: Item[] = [];
  private head = 0;
  private failure: unknown;
  private closed = false;
  private service: Service | undefined;
  private confirmed: bigint;
  private txn: { final: bigint; commitLsn: string; commitTime: number; seen: number } | undefined;
  private dataWaiter: (() => void) | undefined;
  private spaceWaiters: (() => void)[] = [];
  private failures = 0;
  private generation = 0;

  constructor(private readonly options: PostgresCdcOptions, private readonly maxBuffered: number, start: CdcPosition, private snapshot: SnapshotReader | undefined) {
    this.pos = { ...start };
    this.resume = { final: parseLsn(start.lsn), seq: start.seq, complete: start.complete };
    this.confirmed = parseLsn(start.confirm);
    if (!snapshot) this.stream();
  }

  position(): CdcPosition {
    return { ...this.pos, snapshot: this.pos.snapshot ? { ...this.pos.snapshot } : undefined };
  }

  read(out: CdcRecord[], max: number): number | Promise<number> {
    if (this.failure !== undefined) throw this.failure;
    if (this.snapshot) {
      // Rows fetched while a read was pending move to `out` (and the position) only here, synchronously:
      // a barrier emitted meanwhile must not see a position ahead of what was emitted.
      const staged = this.staged;
      if (staged.length > 0) {
        const c = Math.min(max, staged.length);
        for (let i = 0; i < c; i++) out.push(staged[i]);
        this.staged = staged.slice(c);
        const at = this.pos.snapshot!;
        this.pos.snapshot = at.table === this.stagedTable ? { table: at.table, rows: at.rows + c } : { table: this.stagedTable, rows: c };
        // Past the last snapshot row the position is the slot's consistent point: restorable from here on.
        if (this.staged.length === 0 && this.snapshotDone) delete this.pos.snapshot;
        return c;
      }
      if (!this.snapshotDone) return this.fetchSnapshot(max);
      this.snapshot = undefined;
      delete this.pos.snapshot;
      this.stream();
    }
    if (this.head >= this.buffer.length) {
      return new Promise<number>((resolve) => {
        this.dataWaiter = () => resolve(0);
      }).then((n) => {
        if (this.failure !== undefined) throw this.failure;
        return n;
      });
    }
    let c = 0;
    const buf = this.buffer;
    const pos = this.pos;
    while (c < max && this.head < buf.length) {
      const item = buf[this.head++];
      const lsn = formatLsn(item.final);
      if (item.kind === "commit") {
        if (pos.lsn !== lsn) pos.seq = 0;
        pos.lsn = lsn;
        pos.complete = true;
        pos.confirm = formatLsn(item.end);
        continue;
      }
      if (pos.lsn !== lsn || pos.complete) {
        pos.lsn = lsn;
        pos.seq = 0;
        pos.complete = false;
      }
      pos.seq++;
      out.push(item.record);
      c++;
    }
    if (this.head >= buf.length) {
      this.buffer = [];
      this.head = 0;
    } else if (this.head > 4096) {
      this.buffer = buf.slice(this.head);
      this.head = 0;
    }
    this.wakeSpace();
    return c;
  }

  private async fetchSnapshot(max: number): Promise<number> {
    const snap = this.snapshot!;
    const { records, table } = await snap.next(max);
    // Read one chunk ahead, so the last rows are known to be the last when they are emitted.
    if (snap.done || (await snap.peek(max))) {
      // Streaming starts at the slot's consistent point once the snapshot's connections are gone.
      await snap.close();
      this.snapshotDone = true;
      if (records.length === 0) delete this.pos.snapshot;
    }
    this.staged = records;
    this.stagedTable = table;
    return 0;
  }

  private staged: CdcRecord[] = [];
  private stagedTable = 0;
  private snapshotDone = false;

  async notifyCheckpointComplete(position: unknown): Promise<void> {
    const p = position as CdcPosition;
    if (p.snapshot) return;
    const lsn = parseLsn(p.confirm);
    if (lsn <= this.confirmed) return;
    this.confirmed = lsn;
    await this.acknowledge();
  }

  /** Tells the server what it may discard: only what completed checkpoints cover. */
  private async acknowledge(): Promise<void> {
    const s = this.service;
    // pg-logical-replication reports the LSN given plus one as written, flushed and applied.
    if (s && this.confirmed > 0n) await s.acknowledge(formatLsn(this.confirmed - 1n)).catch(() => false);
  }

  private wakeData(): void {
    const w = this.dataWaiter;
    this.dataWaiter = undefined;
    w?.();
  }

  private wakeSpace(): void {
    if (this.buffer.length - this.head >= this.maxBuffered) return;
    const ws = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of ws) w();
  }

  private push(item: Item): Promise<void> | undefined {
    this.buffer.push(item);
    this.wakeData();
    if (this.buffer.length - this.head < this.maxBuffered) return undefined;
    return new Promise((r) => this.spaceWaiters.push(r));
  }

  private stream(): void {
    const gen = ++this.generation;
    void this.runStream(gen);
  }

  private async runStream(gen: number): Promise<void> {
    const { LogicalReplicationService, PgoutputPlugin } = await loadReplication();
    const service = new LogicalReplicationService(clientConfig(this.options.connection), { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } });
    this.service = service;
    let started = false;
    service.on("start", () => {
      started = true;
      void this.acknowledge();
    });
    service.on("heartbeat", (_lsn: string, _time: number, respond: boolean) => {
      if (respond) void this.acknowledge();
    });
    service.on("error", () => {}); // failures end subscribe(), handled below
    service.on("data", (lsn: string, msg: Message) => (gen === this.generation ? this.onMessage(lsn, msg) : undefined));
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.options.publication] });
    let error: unknown;
    try {
      await service.subscribe(plugin, this.options.slot, formatLsn(this.confirmed));
    } catch (e) {
      error = e;
    }
    if (this.closed || gen !== this.generation) return;
    await service.destroy().catch(() => {});
    if (sqlState(error) === "55006" && !started && this.failures === 0 && !this.everStarted) {
      this.fail(slotInUse(this.options.slot, undefined, error));
      return;
    }
    if (started) {
      this.everStarted = true;
      this.failures = 0;
    }
    const retries = this.options.retries ?? 5;
    if (this.failures >= retries) {
      this.fail(
        new PostgresConnectionLostError(
          `Cannot read replication slot ${JSON.stringify(this.options.slot)} as the connection was lost and ${retries} reconnection${retries === 1 ? "" : "s"} failed` +
            `${error instanceof Error ? ` (last: ${error.message})` : ""}: check the server and the network; the job fails and restores from its last checkpoint`,
          { cause: error },
        ),
      );
      return;
    }
    const backoff = (this.options.retryDelayMs ?? 200) * 2 ** this.failures;
    this.failures++;
    await delay(backoff);
    if (this.closed) return;
    // Replay from the slot, skipping what was already emitted; what was buffered is received again.
    this.buffer = [];
    this.head = 0;
    this.txn = undefined;
    this.resume = { final: parseLsn(this.pos.lsn), seq: this.pos.seq, complete: this.pos.complete };
    this.wakeSpace();
    const waiting = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of waiting) w();
    this.stream();
  }

  private everStarted = false;

  private fail(e: unknown): void {
    this.failure = e;
    this.wakeData();
  }

  private onMessage(lsn: string, msg: Message): Promise<void> | undefined {
    switch (msg.tag) {
      case "begin": {
        const final = parseLsn(msg.commitLsn ?? "0/0");
        this.txn = { final, commitLsn: formatLsn(final), commitTime: Number(BigInt(msg.commitTime as bigint) / 1000n), seen: 0 };
        return undefined;
      }
      case "commit": {
        const t = this.txn;
        this.txn = undefined;
        if (!t || this.skipped(t.final, Infinity)) return undefined;
        return this.push({ kind: "commit", final: t.final, end: parseLsn(msg.commitEndLsn ?? msg.commitLsn ?? "0/0") });
      }
      case "insert":
      case "update":
      case "delete": {
        const t = this.txn;
        if (!t) return undefined;
        t.seen++;
        if (this.skipped(t.final, t.seen)) return undefined;
        const rel = msg.relation;
        const table = `${rel.schema}.${rel.name}`;
        const keyCols = rel.keyColumns;
        let record: CdcRecord;
        if (msg.tag === "insert") {
          const after = { ...msg.new };
          record = { op: "insert", table, key: pick(after, keyCols), after, lsn, commitLsn: t.commitLsn, commitTime: t.commitTime };
        } else if (msg.tag === "update") {
          const old = msg.old ?? msg.key;
          const after = { ...msg.new };
          record = { op: "update", table, key: pick(after, keyCols), ...(old ? { before: { ...old } } : {}), after, lsn, commitLsn: t.commitLsn, commitTime: t.commitTime };
        } else {
          const before: PostgresRow = { ...(msg.old ?? msg.key ?? {}) };
          record = { op: "delete", table, key: pick(before, keyCols), before, after: null, lsn, commitLsn: t.commitLsn, commitTime: t.commitTime };
        }
        return this.push({ kind: "record", final: t.final, record });
      }
      default:
        return undefined;
    }
  }

  /** Whether the `seen`-th change of the transaction committed at `final` was emitted before the stream started. */
  private skipped(final: bigint, seen: number): boolean {
    const r = this.resume;
    if (final < r.final) return true;
    if (final > r.final) return false;
    return r.complete || seen <= r.seq;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.generation++;
    const ws = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of ws) w();
    await this.snapshot?.close();
    await this.service?.destroy().catch(() => {});
  }
}

type Message = import("pg-logical-replication").Pgoutput.Message;

function pick(row: PostgresRow, cols: readonly string[]): PostgresRow {
  const key: PostgresRow = {};
  for (const c of cols) key[c] = row[c];
  return key;
}
