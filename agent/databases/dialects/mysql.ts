import mysql from 'mysql2/promise';
import { bindLast, withoutClosingSemicolon } from '../query-text.js';
import { pageRows, queryResult, tooManyRows, type QueryResult, quoteName, splitTableName, VERSION_ALIAS as V, type ConnectOptions, type IncrementalPage, type PageColumn, type QueryPage, type SnapshotPage, type SourceIdentity, type SqlSource, type TableInfo } from '../dialect.js';


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
    // As the pg dialect: DATETIME as its wall time (`2026-11-01T00:00:01.123456`), TIMESTAMP in
    // UTC (the session's zone) with a `Z`; microseconds kept, the agent's own zone never applied.
    typeCast: (field, next) => {
      if (field.type !== 'DATETIME' && field.type !== 'TIMESTAMP') return next();
      const s = field.string();
      if (s === null) return null;
      // DATETIME: the ERP server's wall time (pageRows carries it as UTC when its zone is configured).
      return field.type === 'TIMESTAMP' ? `${s.replace(' ', 'T')}Z` : s.replace(' ', 'T');
    },
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  pool.on('connection', (conn) => {
    conn.query("SET time_zone = '+00:00'");
  });
  await (await pool.getConnection()).release(); // fail fast on a wrong host, database or password
  return {
    driver: 'mysql',
    async readIncremental(page) {
      const { sql, params } = incrementalSql(page);
      const [rows, fields] = await pool.query({ sql, values: params });
      return pageRows(rows as Record<string, unknown>[], mysqlColumns(fields), { timeZone: opts.timeZone, except: page.key });
    },
    async readSnapshot(page) {
      const { sql, params } = snapshotSql(page);
      const [rows, fields] = await pool.query({ sql, values: params });
      return pageRows(rows as Record<string, unknown>[], mysqlColumns(fields), { timeZone: opts.timeZone, except: page.key });
    },
    async readQuery(page) {
      const { sql, params } = querySql(page);
      const [rows, fields] = await pool.query({ sql, values: params });
      return pageRows(rows as Record<string, unknown>[], mysqlColumns(fields), { timeZone: opts.timeZone, except: page.key });
    },
    async existingKeys(table, keyColumns, keys) {
      if (keys.length === 0) return new Set<number>();
      // As in pg.ts: the server says which tuples exist, comparing in the columns' own types.
      const cols = keyColumns.map((k) => `t.${quoteName(k, '`')}`).join(', ');
      const probes = keys.map((k, i) => `SELECT ${i} AS i FROM DUAL WHERE EXISTS (SELECT 1 FROM ${quoteName(table, '`')} t WHERE (${cols}) = (${k.map(() => '?').join(', ')}))`);
      const [rows] = await pool.query({ sql: probes.join(' UNION ALL '), values: keys.flat() });
      return new Set((rows as { i: number | string }[]).map((row) => Number(row.i)));
    },
    async maxVersion(table, versionColumn) {
      const [rows] = await pool.query(`SELECT DATE_FORMAT(max(${quoteName(versionColumn, '`')}), '${VERSION_FORMAT}') AS v FROM ${quoteName(table, '`')}`);
      return ((rows as { v: string | null }[])[0]?.v as string | null) ?? null;
    },
    identity: () => identity(pool),
    inspectTable: (table) => inspectTable(pool, table),
    runQuery: (sql, maxRows) => runQuery(pool, sql, maxRows, opts.timeZone),
    close: () => pool.end(),
  };
}

type Queryable = Pick<mysql.Pool, 'query'>;

/** What runQuery uses of mysql2's callback connection under a pooled promise connection: a streaming query. */
interface StreamingConnection {
  query(sql: string): {
    on(event: 'fields', listener: (fields: mysql.FieldPacket[]) => void): unknown;
    on(event: 'result', listener: (row: Record<string, unknown>) => void): unknown;
    on(event: 'error', listener: (err: Error) => void): unknown;
    on(event: 'end', listener: () => void): unknown;
  };
}

/** Rows converted (queryResult) at a time while a runQuery result streams in. */
const STREAM_PAGE = 5_000;

/**
 * SqlSource.runQuery: the statement streamed row by row (mysql2's query events: the promise API
 * buffers the whole result), so a result past `maxRows` is stopped at maxRows + 1 rows by
 * destroying its connection (the server would otherwise keep sending the rest).
 */
async function runQuery(pool: mysql.Pool, sql: string, maxRows: number, timeZone: string | undefined): Promise<QueryResult> {
  const conn = await pool.getConnection();
  const streaming = conn.connection as unknown as StreamingConnection;
  return new Promise<QueryResult>((resolve, reject) => {
    let columns: mysql.FieldPacket[] = [];
    let page: Record<string, unknown>[] = [];
    let result: QueryResult | undefined;
    let count = 0;
    let settled = false;
    const flush = () => {
      const converted = queryResult(page, mysqlColumns(columns), timeZone);
      page = [];
      if (result) for (const row of converted.rows) result.rows.push(row);
      else result = converted;
    };
    const q = streaming.query(withoutClosingSemicolon(sql));
    q.on('fields', (fields) => {
      columns = fields;
    });
    q.on('result', (row) => {
      if (settled) return;
      if (++count > maxRows) {
        settled = true;
        conn.destroy();
        reject(tooManyRows(maxRows));
        return;
      }
      page.push(row);
      if (page.length >= STREAM_PAGE) flush();
    });
    q.on('error', (err) => {
      if (settled) return;
      settled = true;
      conn.release();
      reject(err);
    });
    q.on('end', () => {
      if (settled) return;
      settled = true;
      conn.release();
      try {
        flush();
        resolve(result!);
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** MYSQL_TYPE_DATETIME on the wire (a column's columnType). */
const DATETIME_TYPE = 12;

/** A result's columns for the schema version: the wire type with its length and decimals. */
function mysqlColumns(fields: readonly mysql.FieldPacket[]): PageColumn[] {
  return fields.map((f) => ({ name: f.name, type: `${f.columnType ?? f.type}(${f.columnLength ?? ''},${f.decimals ?? ''})`, zoneless: f.columnType === DATETIME_TYPE }));
}

async function identity(db: Queryable): Promise<SourceIdentity> {
  const [rows] = await db.query(`SELECT CURRENT_USER() AS u, DATABASE() AS d, VERSION() AS v`);
  const row = (rows as { u: string; d: string | null; v: string }[])[0]!;
  const at = row.u.lastIndexOf('@');
  return { user: at < 0 ? row.u : row.u.slice(0, at), userHost: at < 0 ? undefined : row.u.slice(at + 1), database: row.d ?? '', server: `${/mariadb/i.test(row.v) ? 'MariaDB' : 'MySQL'} ${row.v}` };
}

/** Server errors the SELECT probe maps (errno). */
const ER_DBACCESS_DENIED = 1044;
const ER_BAD_DB = 1049;
const ER_TABLEACCESS_DENIED = 1142;
const ER_NO_SUCH_TABLE = 1146;

/**
 * information_schema lists only the tables the user holds some privilege on, so the SELECT the
 * capture needs is tried first (`LIMIT 0`: nothing is read) and its error says what is missing.
 * Denied and missing cannot be told apart without a privilege: `exists` is null then.
 */
async function inspectTable(db: Queryable, table: string): Promise<TableInfo> {
  const split = splitTableName(table);
  const [dbRows] = await db.query(`SELECT DATABASE() AS d`);
  const schema = split.schema ?? (dbRows as { d: string | null }[])[0]?.d ?? '';
  const name = split.name;
  let exists: boolean | null = true;
  let canSelect = true;
  let selectError: string | undefined;
  try {
    await db.query(`SELECT 1 FROM ${quoteName(table, '`')} LIMIT 0`);
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    selectError = (err as Error).message;
    canSelect = false;
    if (errno === ER_NO_SUCH_TABLE || errno === ER_BAD_DB) exists = false;
    else if (errno === ER_TABLEACCESS_DENIED || errno === ER_DBACCESS_DENIED) exists = null;
    else throw err;
  }
  // information_schema compares names without case; the table itself (lower_case_table_names=0) does not.
  const exact = <T extends { t: string }>(rows: T[]) => (rows.some((r) => r.t === name) ? rows.filter((r) => r.t === name) : exists ? rows : []);
  const [colRows] = await db.query(
    `SELECT TABLE_NAME AS t, COLUMN_NAME AS name, DATA_TYPE AS type, COLUMN_TYPE AS full_type, DATETIME_PRECISION AS \`precision\`, IS_NULLABLE AS nullable
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
    [schema, name],
  );
  const columns = exact(colRows as { t: string; name: string; type: string; full_type: string; precision: number | null; nullable: string }[]);
  if (exists === null && columns.length > 0) exists = true; // some other privilege shows it
  if (exists === false) {
    const [similar] = await db.query(
      `SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) AS t FROM information_schema.TABLES
        WHERE LOWER(TABLE_NAME) = LOWER(?) AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY TABLE_SCHEMA = ? DESC, 1 LIMIT 5`,
      [name, schema],
    );
    return { schema, name, exists, canSelect, selectError, columns: [], primaryKey: [], uniqueIndexes: [], indexes: [], similar: (similar as { t: string }[]).map((r) => r.t) };
  }
  const [idxRows] = await db.query(
    `SELECT TABLE_NAME AS t, INDEX_NAME AS idx, NON_UNIQUE AS non_unique, COALESCE(COLUMN_NAME, '(expression)') AS col
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX`,
    [schema, name],
  );
  const byIndex = new Map<string, { unique: boolean; columns: string[] }>();
  for (const r of exact(idxRows as { t: string; idx: string; non_unique: number | string; col: string }[])) {
    const i = byIndex.get(r.idx) ?? { unique: Number(r.non_unique) === 0, columns: [] };
    i.columns.push(r.col);
    byIndex.set(r.idx, i);
  }
  return {
    schema,
    name,
    exists,
    canSelect,
    selectError,
    columns: columns.map((c) => ({
      name: c.name,
      type: c.type.toLowerCase(),
      fullType: c.full_type,
      precision: c.precision === null ? undefined : Number(c.precision),
      nullable: c.nullable === 'YES',
    })),
    primaryKey: byIndex.get('PRIMARY')?.columns ?? [],
    uniqueIndexes: [...byIndex].filter(([n, i]) => i.unique && n !== 'PRIMARY').map(([, i]) => i.columns),
    indexes: [...byIndex.values()].map((i) => i.columns),
  };
}

const VERSION_FORMAT = '%Y-%m-%dT%H:%i:%s.%f';

/** Keyset page: `(key) > (after)` in key order. */
export function snapshotSql(page: SnapshotPage): { sql: string; params: unknown[] } {
  const keys = page.key.map((k) => `t.${quoteName(k, '`')}`);
  const params: unknown[] = [...(page.after ?? []), page.limit];
  const where = page.after ? ` WHERE (${keys.join(', ')}) > (${page.after.map(() => '?').join(', ')})` : '';
  const version = page.versionColumn ? `DATE_FORMAT(t.${quoteName(page.versionColumn, '`')}, '${VERSION_FORMAT}')` : 'NULL';
  const sql = `SELECT t.*, ${version} AS ${V} FROM ${quoteName(page.table, '`')} t${where} ORDER BY ${keys.join(', ')} LIMIT ?`;
  return { sql, params };
}

/** A `mode: query` page: the statement as a derived table, each `:last` a `?` bound to the same value, the keyset condition after it. */
export function querySql(page: QueryPage): { sql: string; params: unknown[] } {
  const bound = bindLast(page.sql, () => '?');
  const params: unknown[] = Array.from({ length: bound.count }, () => page.last);
  const order = [page.versionColumn, ...page.key].map((c) => `q.${quoteName(c, '`')}`);
  let where = '';
  if (page.after) {
    where = ` WHERE (${order.join(', ')}) > (${order.map(() => '?').join(', ')})`;
    params.push(page.after.version, ...page.after.key);
  }
  params.push(page.limit);
  return { sql: `SELECT q.*, q.${quoteName(page.versionColumn, '`')} AS ${V} FROM (${bound.sql}) q${where} ORDER BY ${order.join(', ')} LIMIT ?`, params };
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
    // The redundant `v >=` lets MariaDB start the index range there: it does not for a row comparison
    // alone, and each page would scan from the first (quadratic over a backlog).
    where.push(`${v} >= CAST(? AS DATETIME(6))`, `(${[v, ...keys].join(', ')}) > (CAST(? AS DATETIME(6)), ${page.after.key.map(() => '?').join(', ')})`);
    params.push(page.after.version, page.after.version, ...page.after.key);
  }
  const sql =
    `SELECT t.*, DATE_FORMAT(${v}, '${VERSION_FORMAT}') AS ${V} FROM ${quoteName(page.table, '`')} t` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${[v, ...keys].join(', ')} LIMIT ?`;
  params.push(page.limit);
  return { sql, params };
}

