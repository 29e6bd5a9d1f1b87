import { ErpEdgeError } from '../../common/errors.js';
import { schemaVersion } from './schema-version.js';
import { zonedMicros } from './time-zone.js';

/**
 * What the capture engine needs from a database driver. One small module per driver implements
 * it (dialects/pg.ts, dialects/mysql.ts); the engine never sees a driver's API.
 */

/** A row as the engine sees it: column → value, plus the version as fixed-width text. */
export interface SourceRow {
  values: Record<string, unknown>;
  /** The version column as `YYYY-MM-DDTHH:MM:SS.ffffff` (lexical order is time order). */
  version: string;
  /** Schema version of the result the row came in (schema-version.ts): the same for every row of a page. */
  schema: string;
  /**
   * The version as the driver typed it, never converted to another zone (a query's version column
   * may be a zone-less timestamp shown as UTC in `values`): what the next page and `:last` bind.
   */
  versionValue?: unknown;
}

/** One page of an incremental read: rows with a version at or after `from` (minus the look-back). */
export interface IncrementalPage {
  table: string;
  key: readonly string[];
  versionColumn: string;
  /** Lower bound (inclusive), as SourceRow.version; null: from the start. */
  from: string | null;
  lookbackMs: number;
  /** Keyset position after the last row of the previous page. */
  after?: { version: string; key: readonly unknown[] } | undefined;
  limit: number;
}

/** One page of a snapshot: rows after `after` in key order. */
export interface SnapshotPage {
  table: string;
  key: readonly string[];
  /** Without one (logical decoding's snapshot), SourceRow.version is empty: the caller names the version. */
  versionColumn?: string | undefined;
  /** The columns to read, in order; default every column (`t.*`). */
  columns?: readonly string[] | undefined;
  /** The key of the last row of the previous page; undefined for the first page. */
  after?: readonly unknown[] | undefined;
  limit: number;
}

/**
 * One page of a `mode: query` statement: the statement (with `:last`) as a derived table, rows after
 * `after` in (version column, key) order. The version is the column's value as the driver types it.
 */
export interface QueryPage {
  sql: string;
  /** What `:last` is bound to. */
  last: unknown;
  key: readonly string[];
  versionColumn: string;
  after?: { version: unknown; key: readonly unknown[] } | undefined;
  limit: number;
}

export interface SqlSource {
  /** Which dialect this is, where the engine must tell them apart (e.g. what a type name means). */
  readonly driver?: 'pg' | 'mysql';
  /** Rows of one page in (version, key) order. */
  readIncremental(page: IncrementalPage): Promise<SourceRow[]>;
  /** Rows of one page in key order (keyset pagination: constant cost per page, resumable). */
  readSnapshot(page: SnapshotPage): Promise<SourceRow[]>;
  /** Rows of one page of a custom statement (mode: query). */
  readQuery(page: QueryPage): Promise<SourceRow[]>;
  /** The highest version in the table now (as SourceRow.version), null when it is empty. */
  maxVersion(table: string, versionColumn: string): Promise<string | null>;
  /** Which of these keys (values per key column, as captured) have a row in the table now: their indexes. */
  existingKeys(table: string, keyColumns: readonly string[], keys: readonly (readonly unknown[])[]): Promise<Set<number>>;
  /** Ends the pool. */
  close(): Promise<void>;
  /**
   * For `edge-agent sql test` (the pg and mysql dialects have both; optional so that sources that
   * only capture, such as test wrappers, need not). Who the connection is: the GRANTs name it.
   */
  identity?(): Promise<SourceIdentity>;
  /** `table` as configured (optionally schema-qualified); a missing table is a result, not an error. */
  inspectTable?(table: string): Promise<TableInfo>;
  /** PostgreSQL: the server settings, role attributes, slot, publication and tables logical decoding needs. */
  inspectLogical?(req: LogicalRequest): Promise<LogicalInfo>;
  /**
   * Runs one SELECT (a scheduled snapshot) and returns its whole result, rows in the statement's
   * order. Past `maxRows` it reads no further and throws tooManyRows (ERP_QUERY_TOO_MANY_ROWS):
   * the caller holds the result whole, so the bound is its memory. The pg and mysql dialects
   * have it (optional, as identity: sources that only capture need not).
   */
  runQuery?(sql: string, maxRows: number): Promise<QueryResult>;
}

/** A statement's whole result (SqlSource.runQuery). */
export interface QueryResult {
  /** Column names in the result's order. */
  columns: string[];
  /** Schema version of the result's columns (schema-version.ts), as pageRows computes it. */
  schema: string;
  /** Values as the wire carries them (wireValue; zone-less date-times per ConnectOptions.timeZone). */
  rows: Record<string, unknown>[];
}

/** The error of a statement whose result has more than `maxRows` rows. */
export function tooManyRows(maxRows: number): ErpEdgeError {
  return new ErpEdgeError('ERP_QUERY_TOO_MANY_ROWS', `the query returned more than max_rows (${maxRows}) rows: nothing of this run was emitted; raise max_rows or narrow the query`, { maxRows });
}

/** A page read's rows as a QueryResult (the columns come from the driver, so an empty result still names them). */
export function queryResult(rows: readonly Record<string, unknown>[], columns: readonly PageColumn[], timeZone: string | undefined): QueryResult {
  const source = pageRows(rows, columns, { timeZone, except: [] });
  const schema = source[0]?.schema ?? schemaVersion(columns.map((c) => `${c.name}:${c.type}`));
  return { columns: columns.map((c) => c.name), schema, rows: source.map((r) => r.values) };
}

export interface ConnectOptions {
  host: string;
  port?: number | undefined;
  database: string;
  user: string;
  password: string;
  poolSize: number;
  connectTimeoutMs: number;
  /** IANA zone of the ERP server's clock: zone-less date-times are read in it and carried as UTC; unset: as the wall time. */
  timeZone?: string | undefined;
}

export interface DialectModule {
  connect(opts: ConnectOptions): Promise<SqlSource>;
}

/** A `schema.table` or `column` name quoted with `q` around each part, `q` doubled inside. */
export function quoteName(name: string, q: '"' | '`'): string {
  return name
    .split('.')
    .map((part) => q + part.replaceAll(q, q + q) + q)
    .join('.');
}

/** Values as the wire carries them: exact decimals stay strings, bytes base64, big integers strings. */
export function wireValue(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** Column alias the dialects give the version as fixed-width text. */
export const VERSION_ALIAS = '__erp_version';

/** A driver's row (with the version alias) as the engine's SourceRow; `schema` as pageSchema made it. */
export function sourceRow(row: Record<string, unknown>, schema: string): SourceRow {
  const values: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(row)) if (k !== VERSION_ALIAS) values[k] = wireValue(val);
  return { values, version: String(row[VERSION_ALIAS] ?? ''), schema, versionValue: wireValue(row[VERSION_ALIAS]) };
}

/** A result column as pageRows sees it: its type for the schema version; `zoneless`: a date-time without a zone. */
export interface PageColumn {
  name: string;
  type: string;
  zoneless?: boolean | undefined;
}

/**
 * The ERP server's zone (ConnectOptions.timeZone) for a page's zone-less date-times, and the columns
 * to leave as written: the key (it pages the reads and is matched back against the table as stored).
 */
export interface PageZone {
  timeZone: string | undefined;
  except: readonly string[];
}

/**
 * A page's rows as SourceRows, with the schema version of its columns (`name:type…` each, the
 * version alias left out); with a zone, zone-less date-times other than the key carried as UTC.
 */
export function pageRows(rows: readonly Record<string, unknown>[], columns: readonly PageColumn[], zone?: PageZone): SourceRow[] {
  const schema = schemaVersion(columns.filter((c) => c.name !== VERSION_ALIAS).map((c) => `${c.name}:${c.type}`));
  const tz = zone?.timeZone;
  const zoned = tz ? columns.filter((c) => c.zoneless && c.name !== VERSION_ALIAS && !zone.except.includes(c.name)).map((c) => c.name) : [];
  return rows.map((row) => {
    const r = sourceRow(row, schema);
    for (const col of zoned) {
      const v = r.values[col];
      if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) r.values[col] = zonedMicros(v, tz!);
    }
    return r;
  });
}

/** A column as `edge-agent sql test` sees it. */
export interface ColumnInfo {
  name: string;
  /** The base type, lower case: `timestamp`, `timestamptz`, `int4` (PostgreSQL); `datetime`, `int` (MySQL). */
  type: string;
  /** The type as the DDL would write it: `timestamp(0) without time zone`, `datetime(6)`. */
  fullType: string;
  /** Fractional-second digits of a time type (PostgreSQL's default is 6); undefined for other types. */
  precision?: number | undefined;
  nullable: boolean;
}

/** What `edge-agent sql test` needs to know about one configured table (SqlSource.inspectTable). */
export interface TableInfo {
  /** The schema (PostgreSQL) or database (MySQL) the name resolves to: the one given, else the default. */
  schema: string;
  /** The table's own name (without the schema). */
  name: string;
  /** null: cannot tell (MySQL hides the tables a user has no privilege on). */
  exists: boolean | null;
  /** The user holds SELECT on the table itself (on PostgreSQL reading it also takes schemaUsage). */
  canSelect: boolean;
  /** PostgreSQL: whether the user has USAGE on the schema (without it no table in it can be read). */
  schemaUsage?: boolean | undefined;
  /** Why SELECT failed, as the server said (MySQL's probe). */
  selectError?: string | undefined;
  columns: ColumnInfo[];
  primaryKey: string[];
  /** Unique indexes and constraints other than the primary key, columns in index order. */
  uniqueIndexes: string[][];
  /** Every index (primary and unique included), columns in index order. */
  indexes: string[][];
  /** When the table is not found: tables of that name in other schemas or with other letter case (`schema.table`). */
  similar?: string[] | undefined;
}

/** Who the connection is (the GRANT statements name this user). */
export interface SourceIdentity {
  /** PostgreSQL: the role; MySQL: the account's user part. */
  user: string;
  /** MySQL: the account's host part (`%`, `localhost`); undefined on PostgreSQL. */
  userHost?: string | undefined;
  database: string;
  /** The server's version string. */
  server: string;
}

/** A `schema.table` name split; no schema: undefined. */
export function splitTableName(table: string): { schema: string | undefined; name: string } {
  const dot = table.indexOf('.');
  return dot < 0 ? { schema: undefined, name: table } : { schema: table.slice(0, dot), name: table.slice(dot + 1) };
}

/** What `edge-agent sql test` asks about the `logical:` block (SqlSource.inspectLogical, PostgreSQL). */
export interface LogicalRequest {
  slot: string;
  publication: string;
  /** The tables as the capture names them: schema-qualified (an unqualified name means `public.<name>`). */
  tables: readonly string[];
}

/** A `logical:` table: what inspectTable says, plus what logical decoding needs of it. */
export interface LogicalTableInfo extends TableInfo {
  /** pg_class.relreplident: `d` default (the primary key), `n` nothing, `f` full, `i` an index; undefined when not found. */
  replicaIdentity?: 'd' | 'n' | 'f' | 'i' | undefined;
  /** The user owns the table (or is a member of its owner role): it may add it to a publication. */
  isOwner?: boolean | undefined;
  /** The table's owner role. */
  owner?: string | undefined;
}

/** What `edge-agent sql test` needs to know about PostgreSQL logical decoding for one collector. */
export interface LogicalInfo {
  walLevel: string;
  maxReplicationSlots: number;
  /** Replication slots that exist on the server (every database, logical and physical). */
  slotsInUse: number;
  /** current_setting('max_slot_wal_keep_size'): `-1` (unlimited) or a size such as `10GB`. */
  maxSlotWalKeepSize: string;
  superuser: boolean;
  /** The role has the REPLICATION attribute. */
  replication: boolean;
  /** CREATE on the current database (CREATE PUBLICATION needs it). */
  canCreateInDatabase: boolean;
  database: string;
  /** The configured slot, null when it does not exist. */
  slot: {
    /** null for a physical slot. */
    plugin: string | null;
    slotType: string;
    /** The database a logical slot belongs to. */
    database: string | null;
    /** reserved, extended, unreserved, lost; null when the server does not say. */
    walStatus: string | null;
    /** pg_current_wal_lsn() - confirmed_flush_lsn; null when unknown. */
    lagBytes: number | null;
    active: boolean;
  } | null;
  /** The configured publication, null when it does not exist. */
  publication: {
    owner: string;
    /** The user owns it (or is a member of its owner): it may ALTER it. */
    isOwner: boolean;
    allTables: boolean;
    insert: boolean;
    update: boolean;
    delete: boolean;
    truncate: boolean;
    /** Tables it publishes, `schema.table`. */
    tables: string[];
  } | null;
  tables: LogicalTableInfo[];
}
