import pg from 'pg';
import { quoteName, sourceRow, VERSION_ALIAS as V, type ConnectOptions, type IncrementalPage, type SnapshotPage, type SqlSource } from '../dialect.js';


/**
 * PostgreSQL. The session runs in UTC so `timestamptz` versions read the same on every connection;
 * `timestamp` (no zone) is taken as written. Numerics come back as strings (the driver's default).
 */
export async function connect(opts: ConnectOptions): Promise<SqlSource> {
  const pool = new pg.Pool({
    host: opts.host,
    port: opts.port ?? 5432,
    database: opts.database,
    user: opts.user,
    password: opts.password,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    options: '-c TimeZone=UTC -c default_transaction_read_only=on',
    application_name: 'erp-edge',
  });
  // An idle client's error (the server went away) would otherwise be an uncaught 'error' event.
  pool.on('error', () => undefined);
  const client = await pool.connect(); // fail fast on a wrong host, database or password
  client.release();
  return {
    async readIncremental(page) {
      const { sql, params } = incrementalSql(page);
      const r = await pool.query({ text: sql, values: params });
      return r.rows.map(sourceRow);
    },
    async readSnapshot(page) {
      const { sql, params } = snapshotSql(page);
      const r = await pool.query({ text: sql, values: params });
      return r.rows.map(sourceRow);
    },
    async maxVersion(table, versionColumn) {
      const v = quoteName(versionColumn, '"');
      const r = await pool.query(`SELECT to_char(max(${v}), '${VERSION_FORMAT}') AS v FROM ${quoteName(table, '"')}`);
      return (r.rows[0]?.v as string | null) ?? null;
    },
    close: () => pool.end(),
  };
}

const VERSION_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US';

/** Keyset page: `(key) > (after)` in key order. */
export function snapshotSql(page: SnapshotPage): { sql: string; params: unknown[] } {
  const keys = page.key.map((k) => `t.${quoteName(k, '"')}`);
  const params: unknown[] = [];
  const p = (value: unknown) => `$${params.push(value)}`;
  const where = page.after ? ` WHERE (${keys.join(', ')}) > (${page.after.map((k) => p(k)).join(', ')})` : '';
  const sql = `SELECT t.*, to_char(t.${quoteName(page.versionColumn, '"')}, '${VERSION_FORMAT}') AS ${V} FROM ${quoteName(page.table, '"')} t${where} ORDER BY ${keys.join(', ')} LIMIT ${p(page.limit)}`;
  return { sql, params };
}

/** The page query: `(version, key) > after` for the next page, `version >= from - look-back` for the first. */
export function incrementalSql(page: IncrementalPage): { sql: string; params: unknown[] } {
  const v = `t.${quoteName(page.versionColumn, '"')}`;
  const keys = page.key.map((k) => `t.${quoteName(k, '"')}`);
  const params: unknown[] = [];
  const p = (value: unknown) => `$${params.push(value)}`;
  const where: string[] = [];
  if (page.from !== null) where.push(`${v} >= ${p(page.from)}::timestamp - ${p(page.lookbackMs)} * interval '1 millisecond'`);
  if (page.after) where.push(`(${[v, ...keys].join(', ')}) > (${p(page.after.version)}::timestamp, ${page.after.key.map((k) => p(k)).join(', ')})`);
  const sql =
    `SELECT t.*, to_char(${v}, '${VERSION_FORMAT}') AS ${V} FROM ${quoteName(page.table, '"')} t` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${[v, ...keys].join(', ')} LIMIT ${p(page.limit)}`;
  return { sql, params };
}

