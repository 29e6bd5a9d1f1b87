import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';
import { topicLevel } from '../../../common/wire-v1.js';
import { queryProblem } from '../../databases/query-text.js';
import { connectionIssues, connectionSchema, ianaZone, sqlDriver } from '../../databases/connection-schema.js';

/**
 * sql collector config. No driver imports here: `validate` loads schemas only.
 *
 * This release captures with `mode: incremental` (after an initial snapshot) and `mode: query` on
 * PostgreSQL and MySQL/MariaDB, logical decoding (`logical:`, a replication slot with pgoutput) on
 * PostgreSQL, and `mode: change_tracking | rowversion | cdc` on SQL Server (`driver: mssql`).
 * (mssql-statements.ts is pure: importing it loads no driver.)
 */
const identifier = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z_][A-Za-z0-9_$ ]*(\.[A-Za-z_][A-Za-z0-9_$ ]*)?$/, 'a table or column name: letters, digits, _, $ or spaces, optionally schema-qualified (schema.table)');

const tableSchema = z.strictObject({
  /** Optionally schema-qualified: `public.orders`, `erp.order_lines`. */
  table: identifier,
  /** Primary key columns: the record key and the tie-breaker after the version column. */
  key: z.array(identifier).min(1),
  mode: z.literal('incremental'),
  /**
   * A timestamp column set on every insert and update (e.g. `updated_at`). Rows are read in its
   * order, then the key's.
   */
  version_column: identifier,
  /**
   * Rows whose version is within this much of the highest version read are read again on each
   * poll, measured on the database's values: a transaction that took its timestamp before another
   * committed, and committed after a poll, is still seen. A row read again unchanged is not emitted
   * again (the version captured per key is kept in the outbox). 0 turns it off (late commits can
   * then be missed).
   */
  lookback: durationMs.default(60_000),
  /**
   * First start: `snapshot` loads every row (op `snapshot`, in key order, resumable after a crash,
   * between a `snapshot_start` and a `snapshot_end` record), then hands over to the changes with
   * neither a gap nor a duplicate; `none` captures only changes from now on.
   */
  initial: z.enum(['snapshot', 'none']).default('snapshot'),
  /**
   * How often deletes are looked for (incremental capture cannot see them): every key captured is
   * checked against the table in chunks, and a key without a row becomes a `delete` record. 0: never.
   */
  reconcile_interval: durationMs.default(3_600_000),
  /** Defaults to the collector's poll_interval. */
  poll_interval: durationMs.optional(),
  /** Stream for this table's records; default: the collector's stream. */
  stream: topicLevel.optional(),
});

/** What every SQL Server table entry has (driver: mssql). */
const mssqlTableFields = {
  /** `dbo.OrderLines` or `OrderLines` (the login's default schema). */
  table: identifier,
  /** Record key columns; default: the table's primary key, read from the database's metadata. */
  key: z.array(identifier).min(1).optional(),
  /**
   * First start (and after a gap): `snapshot` loads every row in key order (resumable, between
   * `snapshot_start` and `snapshot_end` records), then hands over to the change mode; `none`
   * captures only changes from now on.
   */
  initial: z.enum(['snapshot', 'none']).default('snapshot'),
  /** Defaults to the collector's poll_interval. */
  poll_interval: durationMs.optional(),
  /** Stream for this table's records; default: the collector's stream. */
  stream: topicLevel.optional(),
  /**
   * The zone of the ERP server's clock: datetime, datetime2 and smalldatetime carry no zone, the
   * wire carries UTC. Default: the collector's time_zone, else UTC.
   */
  time_zone: ianaZone.optional(),
};

/** SQL Server Change Tracking: CHANGETABLE(CHANGES …) joined back to the table, under snapshot isolation. */
const changeTrackingTableSchema = z.strictObject({ ...mssqlTableFields, mode: z.literal('change_tracking') });

/** SQL Server rowversion column: rows with `rv >= checkpoint AND rv < MIN_ACTIVE_ROWVERSION()`; deletes by reconciliation. */
const rowversionTableSchema = z.strictObject({
  ...mssqlTableFields,
  mode: z.literal('rowversion'),
  /** The table's rowversion (timestamp) column. */
  rowversion_column: identifier,
  /**
   * How often deletes are looked for (a rowversion cannot show them): every key captured is
   * checked against the table in chunks, and a key without a row becomes a `delete` record. 0: never.
   */
  reconcile_interval: durationMs.default(3_600_000),
});

/** SQL Server CDC (enabled by the DBA): cdc.fn_cdc_get_all_changes_<capture_instance>. */
const cdcTableSchema = z.strictObject({
  ...mssqlTableFields,
  mode: z.literal('cdc'),
  /** Default `<schema>_<table>` (dbo when the table is not qualified), as sys.sp_cdc_enable_table names it (see captureInstanceOf). */
  capture_instance: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,99}$/, 'a capture instance name: letters, digits, _ or $, at most 100')
    .optional(),
});

const MSSQL_MODES = ['change_tracking', 'rowversion', 'cdc'] as const;


/**
 * `mode: query`: a custom SELECT (a view, a join, a set-returning function) read after `:last`, which
 * is bound to the highest `version_column` value the previous poll captured (query.ts).
 */
const querySchema = z.strictObject({
  mode: z.literal('query'),
  /** Names the statement's records (their `table`), its checkpoint and its stats. */
  name: identifier,
  /** One SELECT (or WITH … SELECT) using `:last`; read page by page as a derived table. */
  query: z.string().min(1).superRefine((sql, ctx) => {
    const problem = queryProblem(sql);
    if (problem) ctx.addIssue({ code: 'custom', message: `the query ${problem}` });
  }),
  /** Columns of the result that identify a row (the record key, and the tie-breaker after the version). */
  key: z.array(identifier).min(1),
  /** A column of the result that grows with every change (a timestamp, a row version, an id); `:last` is its highest value read. */
  version_column: identifier,
  /** What `:last` is bound to before the first row was captured: e.g. `1970-01-01` for a timestamp, 0 for an id. */
  start: z.union([z.string(), z.number()]),
  poll_interval: durationMs.optional(),
  stream: topicLevel.optional(),
});

const anyTableSchema = z.discriminatedUnion('mode', [tableSchema, querySchema, changeTrackingTableSchema, rowversionTableSchema, cdcTableSchema], {
  error: (issue) => (issue.code === 'invalid_union' ? `mode must be incremental or query (driver pg or mysql), or ${MSSQL_MODES.join(', ')} (driver mssql)` : undefined),
});

/**
 * A table captured from the collector's logical replication slot (PostgreSQL, wal_level=logical):
 * every insert, update, delete and truncate, in commit order, after an initial snapshot (`initial`).
 * Listed under `logical.tables` (not `tables`, whose entries are polled).
 */
const logicalTableSchema = z.strictObject({
  table: identifier,
  mode: z.literal('logical').default('logical'),
  /**
   * `snapshot`: the rows already in the table are loaded (op `snapshot`, between `snapshot_start` and
   * `snapshot_end`) when capture begins (first start, a table added later, a new slot after a gap),
   * then its changes follow from the slot; `none`: changes only.
   */
  initial: z.enum(['snapshot', 'none']).default('snapshot'),
  /** Record key columns; default: the table's replica identity key (its primary key by default). */
  key: z.array(identifier).min(1).optional(),
  /** Stream for this table's records; default: the collector's stream. */
  stream: topicLevel.optional(),
});

/** Replication slot / publication names: PostgreSQL allows lower-case letters, digits and _ in slot names. */
const slotName = z.string().regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _, at most 63');

const sqlObject = z.strictObject({
  type: z.literal('sql'),
  name: topicLevel,
  stream: topicLevel.optional(),
  driver: sqlDriver,
  connection: connectionSchema,
  poll_interval: durationMs.default(5_000),
  /** Rows per query page (and per outbox transaction). */
  batch_size: z.number().int().min(1).max(100_000).default(1_000),
  /** Back-off after a database error: doubling from `initial` up to `max`. */
  retry: z.strictObject({ initial: durationMs.default(1_000), max: durationMs.default(300_000) }).default({ initial: 1_000, max: 300_000 }),
  /**
   * IANA zone of the ERP server's clock (e.g. `Europe/Berlin`): zone-less date-times (PostgreSQL
   * `timestamp`, MySQL `DATETIME`, SQL Server `datetime`/`datetime2`/`smalldatetime`) are read in it
   * and carried as UTC. Unset: PostgreSQL and MySQL carry them as the wall time written (no zone),
   * SQL Server as UTC. A SQL Server table may set its own.
   */
  time_zone: ianaZone.optional(),
  /**
   * Tables and statements captured by polling: `mode: incremental` and `query` (pg, mysql);
   * `change_tracking`, `rowversion` or `cdc` (mssql).
   */
  tables: z.array(anyTableSchema).default([]),
  /** PostgreSQL logical decoding: one slot and one publication for the collector, polled every poll_interval. */
  logical: z
    .strictObject({
      /** Default `erp_edge_<collector name>` (see logicalNames). */
      slot: slotName.optional(),
      /** Default `erp_edge_<collector name>`. */
      publication: slotName.optional(),
      tables: z.array(logicalTableSchema).min(1),
    })
    .optional(),
});

export const sqlSchema = sqlObject.superRefine((cfg, ctx) => {
  if (cfg.tables.length === 0 && !cfg.logical) ctx.addIssue({ code: 'custom', path: ['tables'], message: 'no table to capture: list at least one under tables (mode: incremental or query) or logical.tables' });
  if (cfg.logical && cfg.driver !== 'pg') ctx.addIssue({ code: 'custom', path: ['logical'], message: `logical capture needs driver: pg (PostgreSQL logical decoding); driver ${cfg.driver} supports tables with mode: incremental or query` });
  const labels = new Set<string>();
  cfg.tables.forEach((t, i) => {
    const label = t.mode === 'query' ? t.name : t.table;
    if (labels.has(label)) ctx.addIssue({ code: 'custom', path: ['tables', i], message: `${label} is listed twice (each table or query name once: it names the checkpoint)` });
    labels.add(label);
  });
  cfg.tables.forEach((t, i) => {
    const mssqlMode = (MSSQL_MODES as readonly string[]).includes(t.mode);
    if (cfg.driver === 'mssql' && !mssqlMode) ctx.addIssue({ code: 'custom', path: ['tables', i, 'mode'], message: `mode ${t.mode} is not available with driver: mssql; SQL Server tables use mode: ${MSSQL_MODES.join(', ')}` });
    if (cfg.driver !== 'mssql' && mssqlMode) ctx.addIssue({ code: 'custom', path: ['tables', i, 'mode'], message: `mode ${t.mode} needs driver: mssql (SQL Server); driver ${cfg.driver} supports mode: incremental or query` });
  });
  connectionIssues(cfg.driver, cfg.connection, ctx, ['connection']);
  const seen = new Set<string>();
  for (const t of cfg.logical?.tables ?? []) {
    if (seen.has(t.table)) ctx.addIssue({ code: 'custom', path: ['logical', 'tables'], message: `table ${t.table} is listed twice` });
    seen.add(t.table);
  }
});

export type SqlConfig = z.output<typeof sqlSchema>;
type AnyTableConfig = SqlConfig['tables'][number];
/** A table captured by polling (`mode: incremental`). */
export type TableConfig = Extract<AnyTableConfig, { mode: 'incremental' }>;
/** A custom statement captured by polling (`mode: query`). */
export type QueryConfig = Extract<AnyTableConfig, { mode: 'query' }>;
/** A SQL Server table (driver: mssql). */
export type MssqlTableConfig = Extract<AnyTableConfig, { mode: (typeof MSSQL_MODES)[number] }>;

/** The SQL Server tables (driver: mssql). */
export function mssqlTables(cfg: Pick<SqlConfig, 'tables'>): MssqlTableConfig[] {
  return cfg.tables.filter((t): t is MssqlTableConfig => (MSSQL_MODES as readonly string[]).includes(t.mode));
}

/** The capture instance a cdc table reads: configured, else `<schema>_<table>` (schema dbo when unqualified). */
export function captureInstanceOf(t: Extract<MssqlTableConfig, { mode: 'cdc' }>): string {
  if (t.capture_instance) return t.capture_instance;
  const dot = t.table.indexOf('.');
  return dot < 0 ? `dbo_${t.table}` : `${t.table.slice(0, dot)}_${t.table.slice(dot + 1)}`;
}
export type LogicalTableConfig = NonNullable<SqlConfig['logical']>['tables'][number];

/** The entries of `tables` captured with `mode: incremental`. */
export function incrementalTables(cfg: Pick<SqlConfig, 'tables'>): TableConfig[] {
  return cfg.tables.filter((t): t is TableConfig => t.mode === 'incremental');
}

/** The slot and publication names: configured, or `erp_edge_<collector name>` made a valid slot name. */
export function logicalNames(cfg: Pick<SqlConfig, 'name' | 'logical'>): { slot: string; publication: string } {
  const base = `erp_edge_${cfg.name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
  return { slot: cfg.logical?.slot ?? base, publication: cfg.logical?.publication ?? base };
}

/** A logical table as the capture names it: schema-qualified, an unqualified name meaning `public.<name>`. */
export function logicalTableName(table: string): string {
  const dot = table.indexOf('.');
  return dot < 0 ? `public.${table}` : table;
}
