import mysql from 'mysql2/promise';
import { quoteName, sourceRow, VERSION_ALIAS as V, type ConnectOptions, type IncrementalPage, type SnapshotPage, type SqlSource } from '../dialect.js';


/**
 * MySQL and MariaDB. The session runs in UTC (`TIMESTAMP` columns read the same on every
 * connection); `DATETIME` values come back as written (dateStrings), decimals as strings.
 */
export async function connect(opts: ConnectOptions): Promise<SqlSource> {
  const pool = mysql.createPool({
    host: opts.host,
    port: opts.port ?? 3306,
    database: opts.database,
    user: opts.user,
    password: opts.password,
    connectionLimit: opts.poolSize,
    connectTimeout: opts.connectTimeoutMs,
    timezone: 'Z',
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  pool.on('connection', (conn) => {
    conn.query("SET time_zone = '+00:00'");
  });
  await (await pool.getConnection()).release(); // fail fast on a wrong host, database or password
  return {
    async readIncremental(page) {
      const { sql, params } = incrementalSql(page);
      const [rows] = await pool.query({ sql, values: params });
      return (rows as Record<string, unknown>[]).map(sourceRow);
    },
    async readSnapshot(page) {
      const { sql, params } = snapshotSql(page);
      const [rows] = await pool.query({ sql, values: params });
      return (rows as Record<string, unknown>[]).map(sourceRow);
    },
    async maxVersion(table, versionColumn) {
      const [rows] = await pool.query(`SELECT DATE_FORMAT(max(${quoteName(versionColumn, '`')}), '${VERSION_FORMAT}') AS v FROM ${quoteName(table, '`')}`);
      return ((rows as { v: string | null }[])[0]?.v as string | null) ?? null;
    },
    close: () => pool.end(),
  };
}

const VERSION_FORMAT = '%Y-%m-%dT%H:%i:%s.%f';

/** Keyset page: `(key) > (after)` in key order. */
export function snapshotSql(page: SnapshotPage): { sql: string; params: unknown[] } {
  const keys = page.key.map((k) => `t.${quoteName(k, '`')}`);
  const params: unknown[] = [...(page.after ?? []), page.limit];
  const where = page.after ? ` WHERE (${keys.join(', ')}) > (${page.after.map(() => '?').join(', ')})` : '';
  const sql = `SELECT t.*, DATE_FORMAT(t.${quoteName(page.versionColumn, '`')}, '${VERSION_FORMAT}') AS ${V} FROM ${quoteName(page.table, '`')} t${where} ORDER BY ${keys.join(', ')} LIMIT ?`;
  return { sql, params };
}

export function incrementalSql(page: IncrementalPage): { sql: string; params: unknown[] } {
  const v = `t.${quoteName(page.versionColumn, '`')}`;
  const keys = page.key.map((k) => `t.${quoteName(k, '`')}`);
  const params: unknown[] = [];
  const where: string[] = [];
  if (page.from !== null) {
    where.push(`${v} >= CAST(? AS DATETIME(6)) - INTERVAL ? MICROSECOND`);
    params.push(page.from, page.lookbackMs * 1000);
  }
  if (page.after) {
    where.push(`(${[v, ...keys].join(', ')}) > (CAST(? AS DATETIME(6)), ${page.after.key.map(() => '?').join(', ')})`);
    params.push(page.after.version, ...page.after.key);
  }
  const sql =
    `SELECT t.*, DATE_FORMAT(${v}, '${VERSION_FORMAT}') AS ${V} FROM ${quoteName(page.table, '`')} t` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${[v, ...keys].join(', ')} LIMIT ?`;
  params.push(page.limit);
  return { sql, params };
}

