import pg from 'pg';
import type { CaptureInput, Writer } from '../../host/writer.js';
import { quoteName, splitTableName, wireValue } from '../../databases/dialect.js';
import { pageRows, type SourceRow } from '../../databases/dialect.js';
import { pgColumns, snapshotSql, TIMESTAMP_OID, typeParser } from '../../databases/dialects/pg.js';
import { zonedMicros } from '../../databases/time-zone.js';
import { parseLsn, parseMessage, type PgOutputMessage, type RelationMessage, type TupleData } from '../../databases/dialects/pgoutput.js';
import { recordId, recordKey, rowRecord } from './record.js';
import { snapshotMarker } from './snapshot.js';
import { noteSchema, schemaVersion, type SchemaChangeListener } from '../../databases/schema-version.js';
import { logicalNames, logicalTableName, type LogicalTableConfig, type SqlConfig } from './schema.js';

/**
 * PostgreSQL logical decoding (`logical:` in the sql collector's config): the collector's
 * replication slot (plugin pgoutput) is polled with the SQL interface,
 * `pg_logical_slot_peek_binary_changes`, which returns whole transactions in commit order. Their
 * changes become records (insert / update / delete / truncate, version `<commit LSN>:<n>`, n the
 * change's place in its transaction), appended with the checkpoint in one outbox transaction per
 * page; only then is the slot advanced (`pg_replication_slot_advance`). A crash between the two
 * replays the transactions on the next peek, and the checkpoint skips what is already in the
 * outbox: nothing twice, nothing lost.
 *
 * The checkpoint names the end LSN of the last transaction wholly in the outbox and, when a
 * transaction bigger than batch_size spans several appends, how many of its changes are in
 * (`partial`). Each append's checkpoint is exactly the position after its last record.
 *
 * Statements that write (CREATE PUBLICATION, creating, advancing and dropping the slot) cannot run
 * on the dialect's pool (it sets default_transaction_read_only=on): the capture has its own
 * connection, in UTC so that timestamptz values read as on the pool. The user needs the
 * REPLICATION attribute (or superuser), and to create the publication, ownership of the tables
 * (or an existing publication named in the config).
 *
 * A whole transaction is held in memory while it is peeked (the SQL interface returns complete
 * transactions); the slot holds WAL on the server for as long as the agent does not advance it.
 * Rows already in a table when its capture begins (first start, a table configured later, a new slot
 * after a gap) are loaded first (`initial: snapshot`, see LogicalSnapshot), keyset page by page on
 * this connection, before the slot is read.
 */

export const LOGICAL_CHECKPOINT = 'logical';

export interface LogicalCheckpoint {
  /** End LSN of the last transaction wholly appended; null: none yet. */
  lsn: string | null;
  /** A transaction appended in part: its end LSN and how many of its changes are in the outbox. */
  partial?: { end: string; done: number } | undefined;
  /** Schema version last captured per table (`schema.table`), as schema-version.ts; absent in 0.3.0's checkpoints. */
  schemas?: Record<string, string> | undefined;
  /** The tables capture has begun for (`schema.table`): a table configured later is snapshotted. Absent in 0.3.0's checkpoints. */
  tables?: string[] | undefined;
  /** Tables whose rows are being loaded, with their progress; the slot is not read until none is left. */
  snapshots?: Record<string, LogicalSnapshot> | undefined;
  /**
   * Per snapshotted table, the highest xmax (xid8, decimal) of its snapshot pages: a transaction
   * with an id at or above it was seen by no page, so only changes below it are looked up.
   */
  handover?: Record<string, string> | undefined;
}

/**
 * A table's snapshot under way. Its rows are read after the table was in the publication and the slot
 * existed, each page in a REPEATABLE READ transaction whose snapshot (pg_current_snapshot) is kept
 * with every key it read (in the key store, version `s:<xmin>:<xmax>:<xip>`). The slot then delivers
 * every change committed since it began: a change by a transaction that page's snapshot saw is
 * already in the row the snapshot emitted and is skipped; any other is emitted after it. Hand-over
 * without a gap and without a duplicate, while each page stays a short transaction (a crash resumes
 * after the last committed page).
 */
export interface LogicalSnapshot {
  /** The key of the last row appended; null before the first page. */
  after: unknown[] | null;
  rows: number;
  startedAt: number;
  /** WAL position when the snapshot began: its records' version is `<at>:snapshot`. */
  at: string;
}

export interface LogicalCaptureOptions {
  cfg: Pick<SqlConfig, 'name' | 'connection' | 'logical' | 'batch_size' | 'stream' | 'time_zone'>;
  writer: Writer;
  /** Told when a table's changes come with another schema version than the last captured (their records are flagged). */
  onSchemaChange?: SchemaChangeListener | undefined;
  /** Test seam: replaces the slot advance (e.g. to fail as a crash right after the append would). */
  advance?: ((slot: string, lsn: string) => Promise<void>) | undefined;
}

interface Txn {
  /** The top-level transaction id (32 bits, as pgoutput's Begin carries it). */
  xid: number;
  finalLsn: string;
  endLsn: string;
  commitTime: bigint;
  /** Each change with the relation it was decoded with (DDL later in the same peek must not re-type it). */
  changes: { msg: PgOutputMessage; rel: RelationMessage | undefined }[];
}

/** µs since 2000-01-01 (PostgreSQL's epoch) as ISO-8601 UTC. */
function pgTime(us: bigint): string {
  return new Date(946_684_800_000 + Number(us / 1000n)).toISOString();
}

export class LogicalCapture {
  readonly slot: string;
  readonly publication: string;
  private client: pg.Client | undefined;
  private ready = false;
  private readonly relations = new Map<number, RelationMessage>();
  /** `schema.table` → the columns pgoutput sends (generated ones left out), read at setup: what the snapshot selects. */
  private readonly snapshotColumns = new Map<string, string[]>();
  /** Domain type id → its base type's (a chain followed to the end), read at setup. */
  private domainBase = new Map<number, number>();
  /** `schema.table` → primary key columns, read at setup. */
  private readonly primaryKeys = new Map<string, string[]>();
  private readonly tables: LogicalTableConfig[];
  private readonly cfg: LogicalCaptureOptions['cfg'];
  private readonly writer: Writer;
  private readonly advanceHook: LogicalCaptureOptions['advance'];
  private readonly onSchemaChange: LogicalCaptureOptions['onSchemaChange'];
  /** Schema versions as of the records built so far (committed with them in the checkpoint). */
  private schemas: Record<string, string> = {};
  /** The collector's time_zone: zone-less timestamps other than the key are carried as UTC (as by the dialect). */
  private readonly timeZone: string | undefined;
  /** As the checkpoint's `handover`, loaded for each emit. */
  private handover: Record<string, string> = {};
  /** The server's next xid (xid8) as of the last peek: decoded xids are placed below it. */
  private nextXid = 0n;

  constructor(opts: LogicalCaptureOptions) {
    this.cfg = opts.cfg;
    this.writer = opts.writer;
    this.advanceHook = opts.advance;
    this.onSchemaChange = opts.onSchemaChange;
    this.timeZone = opts.cfg.time_zone;
    this.tables = opts.cfg.logical?.tables ?? [];
    ({ slot: this.slot, publication: this.publication } = logicalNames(opts.cfg));
  }

  private get stream(): string {
    return this.cfg.stream ?? this.cfg.name;
  }

  private async db(): Promise<pg.Client> {
    if (this.client) return this.client;
    const c = this.cfg.connection;
    const client = new pg.Client({
      host: c.host,
      port: c.port ?? 5432,
      database: c.database,
      user: c.user,
      password: c.password,
      connectionTimeoutMillis: c.connect_timeout,
      options: '-c TimeZone=UTC',
      application_name: 'erp-edge-logical',
      // The snapshot reads rows on this connection: typed as the dialect's pool types them.
      types: { getTypeParser: typeParser },
    });
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
    });
    client.on('end', () => {
      if (this.client === client) this.client = undefined;
    });
    await client.connect();
    this.client = client;
    return client;
  }

  /**
   * The publication and the slot, created when missing. A slot that disappeared while the outbox
   * holds a checkpoint, or that the server invalidated (wal_status `lost`, e.g. past
   * max_slot_wal_keep_size), is a `gap` record naming the slot, committed with a new checkpoint at
   * the new slot's start and a snapshot of every `initial: snapshot` table to load again: changes
   * between the two slots are lost to decoding, the rows they left are not.
   */
  async setup(): Promise<void> {
    const db = await this.db();
    const pub = await db.query('SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1', [this.publication]);
    if (pub.rowCount === 0) await db.query(`CREATE PUBLICATION ${quoteName(this.publication, '"')} FOR TABLE ${this.tables.map((t) => quoteName(t.table, '"')).join(', ')}`);
    else {
      // A table added to the config later is added to the publication (else its changes never come).
      const published = await db.query<{ schemaname: string; tablename: string }>('SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1', [this.publication]);
      const missing = this.tables.filter((t) => {
        const { schema, name } = splitTableName(t.table);
        return !published.rows.some((r) => r.tablename === name && r.schemaname === (schema ?? 'public'));
      });
      if (missing.length > 0) await db.query(`ALTER PUBLICATION ${quoteName(this.publication, '"')} ADD TABLE ${missing.map((t) => quoteName(t.table, '"')).join(', ')}`);
    }
    for (const t of this.tables) {
      const { schema, name } = splitTableName(t.table);
      const pk = await db.query<{ col: string }>(
        `SELECT a.attname AS col FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
         WHERE i.indisprimary AND n.nspname = $1 AND c.relname = $2 ORDER BY array_position(i.indkey::int2[], a.attnum)`,
        [schema ?? 'public', name],
      );
      if (pk.rows.length > 0) this.primaryKeys.set(`${schema ?? 'public'}.${name}`, pk.rows.map((r) => r.col));
      // pgoutput (before PostgreSQL 18's publish_generated_columns) leaves generated columns out: so does the snapshot.
      const cols = await db.query<{ name: string }>(
        `SELECT a.attname AS name FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum`,
        [quoteName(`${schema ?? 'public'}.${name}`, '"')],
      );
      this.snapshotColumns.set(`${schema ?? 'public'}.${name}`, cols.rows.map((r) => r.name));
    }
    // A domain's values come decoded under the domain's type id; a SELECT reports its base type.
    const domains = await db.query<{ oid: number; base: number }>(`SELECT oid::int AS oid, typbasetype::int AS base FROM pg_catalog.pg_type WHERE typtype = 'd'`);
    this.domainBase = new Map(domains.rows.map((r) => [r.oid, r.base]));
    const slot = await db.query<{ wal_status: string | null; plugin: string | null }>('SELECT wal_status, plugin FROM pg_catalog.pg_replication_slots WHERE slot_name = $1', [this.slot]);
    const cp = this.writer.getCheckpoint<LogicalCheckpoint>(LOGICAL_CHECKPOINT);
    const row = slot.rows[0];
    if (row && row.plugin !== 'pgoutput') throw new Error(`replication slot ${this.slot} exists with plugin ${row.plugin ?? '(physical)'}, not pgoutput: drop it or name another slot (logical.slot)`);
    let reason: 'missing' | 'lost' | undefined;
    if (!row && cp) reason = 'missing';
    if (row?.wal_status === 'lost') {
      reason = 'lost';
      await db.query('SELECT pg_drop_replication_slot($1)', [this.slot]);
    }
    let start: string | undefined;
    if (!row || reason) start = (await db.query<{ lsn: string }>(`SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [this.slot])).rows[0]!.lsn;
    const configured = this.tables.map((t) => logicalTableName(t.table));
    // First start, or a new slot after a gap: every table is loaded; else the tables configured since.
    const begun = reason || !cp ? [] : (cp.tables ?? configured);
    const load = this.tables.filter((t) => t.initial === 'snapshot' && !begun.includes(logicalTableName(t.table))).map((t) => logicalTableName(t.table));
    if (!start && load.length === 0 && cp?.tables) {
      this.ready = true;
      return;
    }
    const at = start ?? (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
    const startedAt = Date.now();
    const records: CaptureInput[] = [];
    if (reason) records.push(this.gapRecord(reason, cp?.lsn ?? null, at, load));
    const snapshots: Record<string, LogicalSnapshot> = { ...(reason ? {} : cp?.snapshots) };
    for (const table of load) snapshots[table] = { after: null, rows: 0, startedAt, at };
    // A new slot starts its own LSN sequence (after a restore or on a rebuilt server it may be lower
    // than the old checkpoint): the old position must not make its transactions look done.
    const position = start ? { lsn: null } : { lsn: cp?.lsn ?? null, partial: cp?.partial };
    // A new slot (after a gap) starts new transactions: the old hand-over bounds no longer apply.
    const handover = start ? undefined : cp?.handover;
    await this.writer.append(records, { key: LOGICAL_CHECKPOINT, value: { ...position, schemas: cp?.schemas, tables: configured, snapshots, handover } satisfies LogicalCheckpoint }, { stream: this.stream });
    this.ready = true;
  }

  private gapRecord(reason: 'missing' | 'lost', previous: string | null, at: string, resnapshot: string[]): CaptureInput {
    return {
      id: `${this.writer.source}/slot/${this.slot}/gap/${at}`,
      key: `slot/${this.slot}/gap`,
      data: {
        op: 'gap',
        slot: this.slot,
        reason: reason === 'lost' ? 'replication slot invalidated by the server (wal_status lost): WAL it needed was removed' : 'replication slot no longer exists',
        previous_lsn: previous,
        new_lsn: at,
        detected_at: new Date().toISOString(),
        // Changes between the two slots are lost to decoding; these tables are loaded again (a
        // consumer drops the keys a snapshot_start … snapshot_end pair does not contain).
        resnapshot: resnapshot.length > 0,
        resnapshot_tables: resnapshot,
        tables: this.tables.map((t) => t.table),
      },
    };
  }

  /** Loads the tables waiting for a snapshot, page by page, each page committed with its progress. */
  private async loadSnapshots(signal: AbortSignal): Promise<number> {
    const db = await this.db();
    let emitted = 0;
    for (;;) {
      const cp = this.writer.getCheckpoint<LogicalCheckpoint>(LOGICAL_CHECKPOINT);
      const [table, progress] = Object.entries(cp?.snapshots ?? {})[0] ?? [];
      if (!cp || !table || !progress) return emitted;
      signal.throwIfAborted();
      const t = this.tables.find((x) => logicalTableName(x.table) === table);
      const snapshots = { ...cp.snapshots };
      const records: CaptureInput[] = [];
      if (!t) delete snapshots[table]; // no longer configured
      else {
        const keyCols = t.key ?? this.primaryKeys.get(table);
        if (!keyCols) throw new Error(`logical table ${table} has no primary key to page its snapshot by: set key: for it under logical.tables, or initial: none`);
        const { snapshot, rows } = await this.readPage(db, table, keyCols, progress.after);
        const schemas = { ...cp.schemas };
        const changed = rows[0] ? noteSchema(table, schemas[table], rows[0].schema, this.onSchemaChange) : false;
        if (rows[0]) schemas[table] = rows[0].schema;
        // The start marker goes with the first page, on the table's stream.
        if (progress.after === null && progress.rows === 0) records.push(snapshotMarker(this.writer.source, table, 'snapshot_start', progress.startedAt));
        const seenBy = `s:${snapshot}`;
        const captured: [string, string, string][] = [];
        for (const row of rows) {
          const keyValues = keyCols.map((k) => row.values[k]);
          records.push(rowRecord(this.writer.source, table, keyCols, keyValues, { ...row, version: `${progress.at}:snapshot` }, 'snapshot', changed));
          captured.push([recordKey(keyValues), seenBy, JSON.stringify(keyValues)]);
        }
        const xmax = parseSnapshot(snapshot).xmax;
        const handover = { ...cp.handover, [table]: String(maxBig(xmax, BigInt(cp.handover?.[table] ?? 0))) };
        const counted = progress.rows + rows.length;
        if (rows.length < this.cfg.batch_size) {
          delete snapshots[table];
          records.push(snapshotMarker(this.writer.source, table, 'snapshot_end', progress.startedAt, counted));
        } else snapshots[table] = { ...progress, after: keyCols.map((k) => rows.at(-1)!.values[k]), rows: counted };
        await this.writer.append(records, { key: LOGICAL_CHECKPOINT, value: { ...cp, schemas, snapshots, handover } }, { stream: t.stream ?? this.stream, keyVersions: { scope: table, set: captured } });
        emitted += records.length;
        continue;
      }
      await this.writer.append(records, { key: LOGICAL_CHECKPOINT, value: { ...cp, snapshots } }, { stream: this.stream });
    }
  }

  /** One keyset page and the snapshot it was read with (`xmin:xmax:xip,…`), in one short REPEATABLE READ transaction. */
  private async readPage(db: pg.Client, table: string, keyCols: string[], after: unknown[] | null): Promise<{ snapshot: string; rows: SourceRow[] }> {
    const { sql, params } = snapshotSql({ table, key: keyCols, columns: this.snapshotColumns.get(table), after: after ?? undefined, limit: this.cfg.batch_size });
    await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      const snap = await db.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s');
      const r = await db.query({ text: sql, values: params });
      await db.query('COMMIT');
      return { snapshot: snap.rows[0]!.s, rows: pageRows(r.rows, pgColumns(r.fields), { timeZone: this.timeZone, except: keyCols }) };
    } catch (err) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** Whether the snapshot page that read this key saw transaction `xid` commit: its change is in the snapshot record already. */
  private seenBySnapshot(table: string, xid: number, keyValues: readonly unknown[]): boolean {
    const bound = this.handover[table];
    if (bound === undefined) return false;
    const full = this.fullXid(xid);
    if (full >= BigInt(bound)) return false;
    const key = recordKey(keyValues);
    const seen = this.writer.keyVersions(table, [key]).get(key);
    return seen !== undefined && seen.startsWith('s:') && visible(full, parseSnapshot(seen.slice(2)));
  }

  /** Loads any table waiting for a snapshot, then reads the slot until it holds no more committed transaction; returns the records appended. */
  async poll(signal: AbortSignal): Promise<number> {
    if (!this.ready) await this.setup();
    let emitted = await this.loadSnapshots(signal);
    const db = await this.db();
    for (;;) {
      signal.throwIfAborted();
      // Every transaction the peek returns committed before this: their xids are below it (and within 2^31).
      this.nextXid = BigInt((await db.query<{ x: string }>('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x')).rows[0]!.x);
      const r = await db.query<{ lsn: string; data: Buffer }>({
        text: `SELECT lsn::text AS lsn, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)`,
        values: [this.slot, this.cfg.batch_size, this.publication],
      });
      const txns = this.transactions(r.rows.map((row) => row.data));
      if (txns.length === 0) return emitted;
      const e = await this.emit(txns);
      emitted += e.emitted;
      if (e.last) await (this.advanceHook ? this.advanceHook(this.slot, e.last) : this.advance(e.last));
      if (e.last !== txns.at(-1)!.endLsn) return emitted + (await this.poll(signal)); // a table to load again first
      if (r.rows.length < this.cfg.batch_size) return emitted;
    }
  }

  /** Bytes of WAL the slot holds back (pg_current_wal_lsn() - confirmed_flush_lsn); undefined without a slot. */
  async lagBytes(): Promise<number | undefined> {
    const db = await this.db();
    const r = await db.query<{ lag: string | null }>('SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8::text AS lag FROM pg_catalog.pg_replication_slots WHERE slot_name = $1', [this.slot]);
    const lag = r.rows[0]?.lag;
    return lag == null ? undefined : Number(lag);
  }

  /** Ends the connection; the next poll connects again and checks the slot again (setup). */
  async close(): Promise<void> {
    this.ready = false;
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  private async advance(lsn: string): Promise<void> {
    const db = await this.db();
    await db.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [this.slot, lsn]);
  }

  /** Whole transactions (up to the last Commit); relations go into the cache as they come. */
  private transactions(messages: Buffer[]): Txn[] {
    const out: Txn[] = [];
    let open: Txn | undefined;
    for (const buf of messages) {
      const m = parseMessage(buf, this.relations);
      switch (m.tag) {
        case 'relation':
          this.relations.set(m.oid, m);
          break;
        case 'begin':
          open = { xid: m.xid, finalLsn: m.finalLsn, endLsn: '', commitTime: m.commitTime, changes: [] };
          break;
        case 'commit':
          if (open) {
            open.endLsn = m.endLsn;
            out.push(open);
          }
          open = undefined;
          break;
        case 'insert':
        case 'update':
        case 'delete':
        case 'truncate':
          open?.changes.push({ msg: m, rel: 'relation' in m ? this.relations.get(m.relation) : undefined });
          break;
        default: // type, origin
      }
    }
    return out;
  }

  /**
   * Appends the transactions' changes with exact checkpoints. A TRUNCATE of a table still in its
   * hand-over (a transaction some snapshot page may have seen, and another not) is sent, and the
   * table loaded again from a new snapshot: emit stops after that transaction so the next poll
   * loads it before decoding on. Returns the records appended and the end LSN of the last
   * transaction it went through (the slot is advanced to it).
   */
  private async emit(txns: Txn[]): Promise<{ emitted: number; last: string | undefined }> {
    const cp = this.writer.getCheckpoint<LogicalCheckpoint>(LOGICAL_CHECKPOINT) ?? { lsn: null };
    const doneLsn = cp.lsn === null ? -1n : parseLsn(cp.lsn);
    this.schemas = { ...cp.schemas };
    this.handover = { ...cp.handover };
    let pos: LogicalCheckpoint = cp;
    let moved = false;
    let buffer: CaptureInput[] = [];
    let bufferStream = this.stream;
    let emitted = 0;
    // The schema versions committed with a page are those of its own records, not of the change being split.
    const flush = async (schemas: Record<string, string> = this.schemas) => {
      await this.writer.append(buffer, { key: LOGICAL_CHECKPOINT, value: { ...pos, schemas: { ...schemas }, tables: cp.tables, handover: cp.handover, snapshots: pos.snapshots } }, { stream: bufferStream });
      emitted += buffer.length;
      buffer = [];
      moved = false;
    };
    let last: string | undefined;
    for (const txn of txns) {
      last = txn.endLsn;
      if (parseLsn(txn.endLsn) <= doneLsn) continue; // in the outbox before a crash: the slot was not advanced
      const skip = cp.partial && cp.partial.end === txn.endLsn ? cp.partial.done : 0;
      const reload = new Set<string>();
      let n = 0;
      for (const change of txn.changes) {
        n++;
        if (n <= skip) continue;
        for (const table of this.truncatedInHandover(change.msg, txn)) reload.add(table);
        const schemasBefore = { ...this.schemas };
        for (const rec of this.records(change.msg, change.rel, txn, n)) {
          if (buffer.length > 0 && (rec.stream !== bufferStream || buffer.length >= this.cfg.batch_size)) await flush(schemasBefore);
          bufferStream = rec.stream;
          buffer.push(rec.record);
        }
        pos = { lsn: pos.lsn, partial: { end: txn.endLsn, done: n } };
        moved = true;
      }
      pos = { lsn: txn.endLsn };
      moved = true;
      if (reload.size > 0) {
        const startedAt = Date.now();
        pos = { ...pos, snapshots: Object.fromEntries([...reload].map((t) => [t, { after: null, rows: 0, startedAt, at: txn.endLsn }])) };
        break;
      }
    }
    if (buffer.length > 0 || moved) await flush();
    return { emitted, last };
  }

  /** The tables a TRUNCATE empties while their hand-over may still skip its transaction's neighbours. */
  private truncatedInHandover(msg: PgOutputMessage, txn: Txn): string[] {
    if (msg.tag !== 'truncate') return [];
    return msg.relations.flatMap((oid) => {
      const rel = this.relations.get(oid);
      const table = rel && `${rel.schema}.${rel.name}`;
      const bound = table ? this.handover[table] : undefined;
      return table && bound !== undefined && this.fullXid(txn.xid) < BigInt(bound) ? [table] : [];
    });
  }

  /** A decoded transaction's 32-bit xid as its xid8: placed below the server's next xid, read before the peek. */
  private fullXid(xid: number): bigint {
    return fullXid(xid, this.nextXid);
  }

  private tableOf(rel: RelationMessage): LogicalTableConfig | undefined {
    return this.tables.find((t) => {
      const { schema, name } = splitTableName(t.table);
      return name === rel.name && (schema ?? 'public') === rel.schema;
    });
  }

  private records(change: PgOutputMessage, decodedWith: RelationMessage | undefined, txn: Txn, n: number): { stream: string; record: CaptureInput }[] {
    const version = `${txn.finalLsn}:${n}`;
    const committedAt = pgTime(txn.commitTime);
    if (change.tag === 'truncate') {
      return change.relations.flatMap((oid) => {
        const rel = this.relations.get(oid);
        const t = rel && this.tableOf(rel);
        if (!rel || !t) return [];
        const table = `${rel.schema}.${rel.name}`;
        return [{ stream: t.stream ?? this.stream, record: { id: recordId(this.writer.source, table, [], version), key: `${table}/truncate`, data: { op: 'truncate', table, version, committed_at: committedAt } } }];
      });
    }
    if (change.tag !== 'insert' && change.tag !== 'update' && change.tag !== 'delete') return [];
    const rel = decodedWith ?? this.relations.get(change.relation)!;
    const t = this.tableOf(rel);
    if (!t) return [];
    const table = `${rel.schema}.${rel.name}`;
    // The configured key, else the primary key (REPLICA IDENTITY FULL flags every column as key), else the identity's columns.
    const keyCols = t.key ?? this.primaryKeys.get(table) ?? (rel.columns.some((c) => c.isKey) ? rel.columns.filter((c) => c.isKey).map((c) => c.name) : rel.columns.map((c) => c.name));
    const tuple: TupleData = change.tag === 'delete' ? change.oldTuple : change.newTuple;
    let values = typed(rel, tuple, this.baseType);
    if (change.tag === 'delete' && change.oldKind === 'K') values = Object.fromEntries(keyCols.map((k) => [k, values[k]]));
    const keyValues = keyCols.map((k) => values[k]);
    const old = change.tag === 'update' && change.oldTuple ? typed(rel, change.oldTuple, this.baseType) : undefined;
    const oldKey = old && keyCols.map((k) => old[k]);
    const moved = oldKey !== undefined && recordKey(oldKey) !== recordKey(keyValues);
    // A hand-over skips what the page that read a key saw: for a moved row, each key on its own.
    const seenNew = this.seenBySnapshot(table, txn.xid, keyValues);
    const seenOld = moved && this.seenBySnapshot(table, txn.xid, oldKey);
    if (seenNew && (!moved || seenOld)) return [];
    values = this.zoned(rel, values, keyCols);
    const schema = this.schemaOf(table, rel);
    const stream = t.stream ?? this.stream;
    const out: { stream: string; record: CaptureInput }[] = [];
    const data: Record<string, unknown> = { op: change.tag, table, key: Object.fromEntries(keyCols.map((k, i) => [k, keyValues[i]])), version, committed_at: committedAt, schema_version: schema.version, ...(schema.changed ? { schema_changed: true } : {}), values };
    if (tuple.unchanged.length > 0) data.unchanged_toast = tuple.unchanged; // not sent by the server: absent from values, not null
    if (oldKey) {
      data.old_key = Object.fromEntries(keyCols.map((k, i) => [k, oldKey[i]]));
      // The key changed: the row under its old key is gone, as a delete says to a consumer keyed by it.
      if (moved && !seenOld) {
        const deleted = { op: 'delete', table, key: data.old_key, version, committed_at: committedAt, schema_version: schema.version, values: data.old_key, moved_to: data.key };
        out.push({ stream, record: { id: recordId(this.writer.source, table, oldKey, version), key: `${table}/${recordKey(oldKey)}`, data: deleted } });
      }
      if (seenNew) return out;
    }
    out.push({ stream, record: { id: recordId(this.writer.source, table, keyValues, version), key: `${table}/${recordKey(keyValues)}`, data } });
    return out;
  }

  /** A type id as a SELECT reports it: a domain's base type (followed through domains over domains). */
  private readonly baseType = (oid: number): number => {
    let t = oid;
    for (let hops = 0; hops < 16 && this.domainBase.has(t); hops++) t = this.domainBase.get(t)!;
    return t;
  };

  /** Zone-less timestamps other than the key in the collector's time_zone, as UTC (dialect.ts pageRows does the same for a SELECT). */
  private zoned(rel: RelationMessage, values: Record<string, unknown>, keyCols: readonly string[]): Record<string, unknown> {
    const tz = this.timeZone;
    if (!tz) return values;
    const out = { ...values };
    for (const c of rel.columns) if (this.baseType(c.typeOid) === TIMESTAMP_OID && !keyCols.includes(c.name) && typeof out[c.name] === 'string') out[c.name] = zonedMicros(out[c.name] as string, tz);
    return out;
  }

  /** The relation's schema version (as dialects/pg.ts computes it for a SELECT), and whether it differs from the one last captured. */
  private schemaOf(table: string, rel: RelationMessage): { version: string; changed: boolean } {
    const version = schemaVersion(rel.columns.map((c) => `${c.name}:${this.baseType(c.typeOid)}(${c.typmod})`));
    const previous = this.schemas[table];
    this.schemas[table] = version;
    return { version, changed: noteSchema(table, previous, version, this.onSchemaChange) };
  }
}

/** Text values as dialects/pg.ts types them (numbers, numerics as strings, times as text, bytes base64). */
function typed(rel: RelationMessage, tuple: TupleData, baseType: (oid: number) => number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const col of rel.columns) {
    if (!(col.name in tuple.values)) continue;
    const v = tuple.values[col.name];
    out[col.name] = v === null || v === undefined ? null : wireValue(typeParser(baseType(col.typeOid), 'text')(v));
  }
  return out;
}

/** `xmin:xmax:xip1,xip2` (pg_current_snapshot's text) as xid8 values. */
export function parseSnapshot(text: string): { xmin: bigint; xmax: bigint; xip: bigint[] } {
  const [xmin, xmax, xip] = text.split(':');
  return { xmin: BigInt(xmin!), xmax: BigInt(xmax!), xip: xip ? xip.split(',').map((x) => BigInt(x)) : [] };
}

/** Whether a snapshot sees transaction `xid` (xid8) as committed: before xmin, or before xmax and not in progress. */
export function visible(xid: bigint, snap: { xmin: bigint; xmax: bigint; xip: bigint[] }): boolean {
  if (xid < snap.xmin) return true;
  if (xid >= snap.xmax) return false;
  return !snap.xip.includes(xid);
}

/** A 32-bit xid (pgoutput's Begin) as the xid8 nearest `ref` (an xid8 of the same era): the epoch it belongs to. */
export function fullXid(xid: number, ref: bigint): bigint {
  const WRAP = 1n << 32n;
  let full = (ref / WRAP) * WRAP + BigInt(xid >>> 0);
  if (full > ref + WRAP / 2n) full -= WRAP;
  else if (full < ref - WRAP / 2n) full += WRAP;
  return full;
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
