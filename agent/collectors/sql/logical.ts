import pg from 'pg';
import type { CaptureInput, Writer } from '../../host/writer.js';
import { quoteName, splitTableName, wireValue } from './dialect.js';
import { typeParser } from './dialects/pg.js';
import { parseLsn, parseMessage, type PgOutputMessage, type RelationMessage, type TupleData } from './dialects/pgoutput.js';
import { recordId, recordKey } from './record.js';
import { noteSchema, schemaVersion, type SchemaChangeListener } from './schema-version.js';
import { logicalNames, type LogicalTableConfig, type SqlConfig } from './schema.js';

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
 * Capture starts at the slot's creation: there is no initial snapshot of the rows already there.
 */

export const LOGICAL_CHECKPOINT = 'logical';

export interface LogicalCheckpoint {
  /** End LSN of the last transaction wholly appended; null: none yet. */
  lsn: string | null;
  /** A transaction appended in part: its end LSN and how many of its changes are in the outbox. */
  partial?: { end: string; done: number } | undefined;
  /** Schema version last captured per table (`schema.table`), as schema-version.ts; absent in 0.3.0's checkpoints. */
  schemas?: Record<string, string> | undefined;
}

export interface LogicalCaptureOptions {
  cfg: Pick<SqlConfig, 'name' | 'connection' | 'logical' | 'batch_size' | 'stream'>;
  writer: Writer;
  /** Told when a table's changes come with another schema version than the last captured (their records are flagged). */
  onSchemaChange?: SchemaChangeListener | undefined;
  /** Test seam: replaces the slot advance (e.g. to fail as a crash right after the append would). */
  advance?: ((slot: string, lsn: string) => Promise<void>) | undefined;
}

interface Txn {
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
  /** `schema.table` → primary key columns, read at setup. */
  private readonly primaryKeys = new Map<string, string[]>();
  private readonly tables: LogicalTableConfig[];
  private readonly cfg: LogicalCaptureOptions['cfg'];
  private readonly writer: Writer;
  private readonly advanceHook: LogicalCaptureOptions['advance'];
  private readonly onSchemaChange: LogicalCaptureOptions['onSchemaChange'];
  /** Schema versions as of the records built so far (committed with them in the checkpoint). */
  private schemas: Record<string, string> = {};

  constructor(opts: LogicalCaptureOptions) {
    this.cfg = opts.cfg;
    this.writer = opts.writer;
    this.advanceHook = opts.advance;
    this.onSchemaChange = opts.onSchemaChange;
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
   * the new slot's start. Changes between the two are lost to this mode: no re-snapshot is taken
   * (not built yet); the gap record says so.
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
    }
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
    if (!row || reason) {
      const created = await db.query<{ lsn: string }>(`SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [this.slot]);
      const start = created.rows[0]!.lsn;
      const records: CaptureInput[] = [];
      if (reason) {
        const at = new Date().toISOString();
        records.push({
          id: `${this.writer.source}/slot/${this.slot}/gap/${start}`,
          key: `slot/${this.slot}/gap`,
          data: { op: 'gap', slot: this.slot, reason: reason === 'lost' ? 'replication slot invalidated by the server (wal_status lost): WAL it needed was removed' : 'replication slot no longer exists', previous_lsn: cp?.lsn ?? null, new_lsn: start, detected_at: at, resnapshot: false, tables: this.tables.map((t) => t.table) },
        });
      }
      // A new slot starts its own LSN sequence (after a restore or on a rebuilt server it may be lower
      // than the old checkpoint): the old position must not make its transactions look done.
      await this.writer.append(records, { key: LOGICAL_CHECKPOINT, value: { lsn: null } satisfies LogicalCheckpoint }, { stream: this.stream });
    }
    this.ready = true;
  }

  /** Reads the slot until it holds no more committed transaction; returns the records appended. */
  async poll(signal: AbortSignal): Promise<number> {
    if (!this.ready) await this.setup();
    const db = await this.db();
    let emitted = 0;
    for (;;) {
      signal.throwIfAborted();
      const r = await db.query<{ lsn: string; data: Buffer }>({
        text: `SELECT lsn::text AS lsn, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)`,
        values: [this.slot, this.cfg.batch_size, this.publication],
      });
      const txns = this.transactions(r.rows.map((row) => row.data));
      if (txns.length === 0) return emitted;
      emitted += await this.emit(txns);
      const last = txns.at(-1)!.endLsn;
      await (this.advanceHook ? this.advanceHook(this.slot, last) : this.advance(last));
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
          open = { finalLsn: m.finalLsn, endLsn: '', commitTime: m.commitTime, changes: [] };
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

  private async emit(txns: Txn[]): Promise<number> {
    const cp = this.writer.getCheckpoint<LogicalCheckpoint>(LOGICAL_CHECKPOINT) ?? { lsn: null };
    const doneLsn = cp.lsn === null ? -1n : parseLsn(cp.lsn);
    this.schemas = { ...cp.schemas };
    let pos: LogicalCheckpoint = cp;
    let moved = false;
    let buffer: CaptureInput[] = [];
    let bufferStream = this.stream;
    let emitted = 0;
    // The schema versions committed with a page are those of its own records, not of the change being split.
    const flush = async (schemas: Record<string, string> = this.schemas) => {
      await this.writer.append(buffer, { key: LOGICAL_CHECKPOINT, value: { ...pos, schemas: { ...schemas } } }, { stream: bufferStream });
      emitted += buffer.length;
      buffer = [];
      moved = false;
    };
    for (const txn of txns) {
      if (parseLsn(txn.endLsn) <= doneLsn) continue; // in the outbox before a crash: the slot was not advanced
      const skip = cp.partial && cp.partial.end === txn.endLsn ? cp.partial.done : 0;
      let n = 0;
      for (const change of txn.changes) {
        n++;
        if (n <= skip) continue;
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
    }
    if (buffer.length > 0 || moved) await flush();
    return emitted;
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
    let values = typed(rel, tuple);
    if (change.tag === 'delete' && change.oldKind === 'K') values = Object.fromEntries(keyCols.map((k) => [k, values[k]]));
    const keyValues = keyCols.map((k) => values[k]);
    const schema = this.schemaOf(table, rel);
    const stream = t.stream ?? this.stream;
    const out: { stream: string; record: CaptureInput }[] = [];
    const data: Record<string, unknown> = { op: change.tag, table, key: Object.fromEntries(keyCols.map((k, i) => [k, keyValues[i]])), version, committed_at: committedAt, schema_version: schema.version, ...(schema.changed ? { schema_changed: true } : {}), values };
    if (tuple.unchanged.length > 0) data.unchanged_toast = tuple.unchanged; // not sent by the server: absent from values, not null
    if (change.tag === 'update' && change.oldTuple) {
      const old = typed(rel, change.oldTuple);
      const oldKey = keyCols.map((k) => old[k]);
      data.old_key = Object.fromEntries(keyCols.map((k, i) => [k, oldKey[i]]));
      // The key changed: the row under its old key is gone, as a delete says to a consumer keyed by it.
      if (recordKey(oldKey) !== recordKey(keyValues)) {
        const deleted = { op: 'delete', table, key: data.old_key, version, committed_at: committedAt, schema_version: schema.version, values: data.old_key, moved_to: data.key };
        out.push({ stream, record: { id: recordId(this.writer.source, table, oldKey, version), key: `${table}/${recordKey(oldKey)}`, data: deleted } });
      }
    }
    out.push({ stream, record: { id: recordId(this.writer.source, table, keyValues, version), key: `${table}/${recordKey(keyValues)}`, data } });
    return out;
  }

  /** The relation's schema version (as dialects/pg.ts computes it for a SELECT), and whether it differs from the one last captured. */
  private schemaOf(table: string, rel: RelationMessage): { version: string; changed: boolean } {
    const version = schemaVersion(rel.columns.map((c) => `${c.name}:${c.typeOid}(${c.typmod})`));
    const previous = this.schemas[table];
    this.schemas[table] = version;
    return { version, changed: noteSchema(table, previous, version, this.onSchemaChange) };
  }
}

/** Text values as dialects/pg.ts types them (numbers, numerics as strings, times as text, bytes base64). */
function typed(rel: RelationMessage, tuple: TupleData): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const col of rel.columns) {
    if (!(col.name in tuple.values)) continue;
    const v = tuple.values[col.name];
    out[col.name] = v === null || v === undefined ? null : wireValue(typeParser(col.typeOid, 'text')(v));
  }
  return out;
}
