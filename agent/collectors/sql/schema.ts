import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';
import { topicLevel } from '../../../common/wire-v1.js';

/**
 * sql collector config. No driver imports here: `validate` loads schemas only.
 *
 * This release captures with `mode: incremental` (after an initial snapshot) on PostgreSQL and
 * MySQL/MariaDB; the other modes of issue #8 (change_tracking, rowversion, cdc, logical, query) are
 * not accepted yet.
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

export const sqlSchema = z.strictObject({
  type: z.literal('sql'),
  name: topicLevel,
  stream: topicLevel.optional(),
  driver: z.enum(['pg', 'mysql']),
  connection: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(1).max(65_535).optional(),
    database: z.string().min(1),
    user: z.string().min(1),
    /** Use `${VAR}`: the password is never written to the config file or a log. */
    password: z.string().default(''),
    /** Pooled connections per collector. */
    pool_size: z.number().int().min(1).max(20).default(2),
    connect_timeout: durationMs.default(10_000),
  }),
  poll_interval: durationMs.default(5_000),
  /** Rows per query page (and per outbox transaction). */
  batch_size: z.number().int().min(1).max(100_000).default(1_000),
  /** Back-off after a database error: doubling from `initial` up to `max`. */
  retry: z.strictObject({ initial: durationMs.default(1_000), max: durationMs.default(300_000) }).default({ initial: 1_000, max: 300_000 }),
  tables: z.array(tableSchema).min(1),
});

export type SqlConfig = z.output<typeof sqlSchema>;
export type TableConfig = SqlConfig['tables'][number];
