import pg from 'pg';
import { quoteName, sourceRow, VERSION_ALIAS as V, type ConnectOptions, type IncrementalPage, type SqlSource } from '../dialect.js';


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
    close: () => pool.end(),
  };
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
    `SELECT t.*, to_char(${v}, 'YYYY-MM-DD"T"HH24:MI:SS.US') AS ${V} FROM ${quoteName(page.table, '"')} t` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${[v, ...keys].join(', ')} LIMIT ${p(page.limit)}`;
  return { sql, params };
}

