import pg from 'pg';
import { bindLast, withoutClosingSemicolon } from '../query-text.js';
import { pageRows, queryResult, tooManyRows, type QueryResult, quoteName, splitTableName, VERSION_ALIAS as V, type ColumnInfo, type ConnectOptions, type IncrementalPage, type LogicalInfo, type LogicalRequest, type LogicalTableInfo, type PageColumn, type QueryPage, type SnapshotPage, type SourceIdentity, type SqlSource, type TableInfo } from '../dialect.js';


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
    types: { getTypeParser: typeParser },
  });
  // An idle client's error (the server went away) would otherwise be an uncaught 'error' event.
  pool.on('error', () => undefined);
  const client = await pool.connect(); // fail fast on a wrong host, database or password
  client.release();
  return {
    driver: 'pg',
    async readIncremental(page) {
      const { sql, params } = incrementalSql(page);
      const r = await pool.query({ text: sql, values: params });
      return pageRows(r.rows, pgColumns(r.fields), { timeZone: opts.timeZone, except: page.key });
    },
    async readSnapshot(page) {
      const { sql, params } = snapshotSql(page);
      const r = await pool.query({ text: sql, values: params });
      return pageRows(r.rows, pgColumns(r.fields), { timeZone: opts.timeZone, except: page.key });
    },
    async readQuery(page) {
      const { sql, params } = querySql(page);
      const r = await pool.query({ text: sql, values: params });
      return pageRows(r.rows, pgColumns(r.fields), { timeZone: opts.timeZone, except: page.key });
    },
    async existingKeys(table, keyColumns, keys) {
      if (keys.length === 0) return new Set<number>();
      // The server says which tuples exist (by their position), comparing in the columns' own types:
      // comparing its text output with ours would call a timestamp key written another way gone.
      const cols = keyColumns.map((k) => `t.${quoteName(k, '"')}`).join(', ');
      const params: unknown[] = [];
      const probes = keys.map((k, i) => `SELECT ${i} AS i WHERE EXISTS (SELECT 1 FROM ${quoteName(table, '"')} t WHERE (${cols}) = (${k.map((v) => `$${params.push(v)}`).join(', ')}))`);
      const r = await pool.query({ text: probes.join(' UNION ALL '), values: params });
      return new Set(r.rows.map((row: { i: number }) => Number(row.i)));
    },
    async maxVersion(table, versionColumn) {
      const v = quoteName(versionColumn, '"');
      const r = await pool.query(`SELECT to_char(max(${v}), '${VERSION_FORMAT}') AS v FROM ${quoteName(table, '"')}`);
      return (r.rows[0]?.v as string | null) ?? null;
    },
    identity: () => identity(pool),
    inspectTable: (table) => inspectTable(pool, table),
    inspectLogical: (req) => inspectLogical(pool, req),
    runQuery: (sql, maxRows) => runQuery(pool, sql, maxRows, opts.timeZone),
    close: () => pool.end(),
  };
}

type Queryable = Pick<pg.Pool, 'query'>;

/** Rows a runQuery cursor fetches per round trip. */
const FETCH_ROWS = 5_000;

/**
 * SqlSource.runQuery: the statement through a cursor in a (read-only, as every session here)
 * transaction, fetched page by page, so a result past `maxRows` is stopped after maxRows + 1
 * rows instead of being read whole into memory (pg's plain query buffers every row).
 */
async function runQuery(pool: pg.Pool, sql: string, maxRows: number, timeZone: string | undefined): Promise<QueryResult> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    await client.query(`DECLARE erp_edge_run NO SCROLL CURSOR FOR ${withoutClosingSemicolon(sql)}`);
    let result: QueryResult | undefined;
    for (;;) {
      const want = Math.min(FETCH_ROWS, maxRows + 1 - (result?.rows.length ?? 0));
      const r = await client.query(`FETCH ${want} FROM erp_edge_run`);
      const page = queryResult(r.rows, pgColumns(r.fields), timeZone);
      if (result) for (const row of page.rows) result.rows.push(row);
      else result = page;
      if (result.rows.length > maxRows) throw tooManyRows(maxRows);
      if (r.rows.length < want) break;
    }
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A connection that cannot even roll back is not given back to the pool.
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * A result's columns for the schema version: the type OID with its modifier (numeric(12,2),
 * varchar(40)), as logical.ts reads them from pgoutput's relation messages, so a table's snapshot and
 * its decoded changes carry the same version.
 */
export function pgColumns(fields: readonly pg.FieldDef[]): PageColumn[] {
  return fields.map((f) => ({ name: f.name, type: `${f.dataTypeID}(${f.dataTypeModifier})`, zoneless: f.dataTypeID === TIMESTAMP_OID }));
}

async function identity(db: Queryable): Promise<SourceIdentity> {
  const r = await db.query<{ u: string; d: string; v: string }>(`SELECT current_user AS u, current_database() AS d, 'PostgreSQL ' || current_setting('server_version') AS v`);
  const row = r.rows[0]!;
  return { user: row.u, database: row.d, server: row.v };
}

/** Relations a SELECT can read: tables, partitioned tables, views, materialized views, foreign tables. */
const READABLE = `c.relkind IN ('r', 'p', 'v', 'm', 'f')`;

/**
 * The catalogs, not information_schema: information_schema hides what the user may not read, and
 * a table the user cannot read is exactly what must be reported. An unqualified name resolves as
 * the capture's queries resolve it (the search_path), then in `public`.
 */
async function inspectTable(db: Queryable, table: string): Promise<TableInfo> {
  const { schema, name } = splitTableName(table);
  const found = await db.query<{ oid: string; schema: string; usage: boolean; can_select: boolean; first_schema: string }>(
    `WITH s AS (SELECT CASE WHEN $2::text IS NULL THEN current_schemas(false) || 'public'::name ELSE ARRAY[$2::name] END AS path)
     SELECT c.oid::int8::text AS oid, n.nspname AS schema, has_schema_privilege(n.oid, 'USAGE') AS usage,
            has_table_privilege(c.oid, 'SELECT') AS can_select, s.path[1] AS first_schema
       FROM s LEFT JOIN (pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND ${READABLE})
         ON c.relname = $1 AND n.nspname = ANY (s.path)
      ORDER BY array_position(s.path, n.nspname) LIMIT 1`,
    [name, schema ?? null],
  );
  const hit = found.rows[0];
  if (!hit?.oid) {
    const similar = await db.query<{ t: string }>(
      `SELECT n.nspname || '.' || c.relname AS t FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE ${READABLE} AND lower(c.relname) = lower($1) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        ORDER BY n.nspname = $2 DESC, 1 LIMIT 5`,
      [name, schema ?? hit?.first_schema ?? 'public'],
    );
    const similarNames = similar.rows.map((r) => r.t);
    return { schema: schema ?? hit?.first_schema ?? 'public', name, exists: false, canSelect: false, columns: [], primaryKey: [], uniqueIndexes: [], indexes: [], similar: similarNames };
  }
  const columns = await db.query<{ name: string; type: string; full_type: string; typmod: number; nullable: boolean }>(
    `SELECT a.attname AS name, t.typname AS type, format_type(a.atttypid, a.atttypmod) AS full_type, a.atttypmod AS typmod, NOT a.attnotnull AS nullable
       FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [hit.oid],
  );
  // Key columns only (not INCLUDE ones); partial indexes neither make a key unique nor serve every poll.
  const indexes = await db.query<{ is_primary: boolean; is_unique: boolean; columns: string[] }>(
    `SELECT i.indisprimary AS is_primary, i.indisunique AS is_unique,
            array(SELECT coalesce(a.attname::text, '(expression)') FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) AS columns
       FROM pg_catalog.pg_index i
      WHERE i.indrelid = $1::int8::oid AND i.indisvalid AND i.indpred IS NULL
      ORDER BY i.indisprimary DESC, i.indexrelid`,
    [hit.oid],
  );
  return {
    schema: hit.schema,
    name,
    exists: true,
    canSelect: hit.can_select,
    schemaUsage: hit.usage,
    columns: columns.rows.map(
      (c): ColumnInfo => ({
        name: c.name,
        type: c.type,
        fullType: c.full_type,
        // typmod -1: no precision written, which for timestamps means microseconds.
        precision: TIME_TYPES.has(c.type) ? (c.typmod < 0 ? 6 : c.typmod) : undefined,
        nullable: c.nullable,
      }),
    ),
    primaryKey: indexes.rows.find((i) => i.is_primary)?.columns ?? [],
    uniqueIndexes: indexes.rows.filter((i) => i.is_unique && !i.is_primary).map((i) => i.columns),
    indexes: indexes.rows.map((i) => i.columns),
  };
}

const TIME_TYPES = new Set(['timestamp', 'timestamptz', 'time', 'timetz']);

const VERSION_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.US';

/** Keyset page: `(key) > (after)` in key order. */
export function snapshotSql(page: SnapshotPage): { sql: string; params: unknown[] } {
  const keys = page.key.map((k) => `t.${quoteName(k, '"')}`);
  const params: unknown[] = [];
  const p = (value: unknown) => `$${params.push(value)}`;
  const where = page.after ? ` WHERE (${keys.join(', ')}) > (${page.after.map((k) => p(k)).join(', ')})` : '';
  const version = page.versionColumn ? `to_char(t.${quoteName(page.versionColumn, '"')}, '${VERSION_FORMAT}')` : 'NULL';
  const list = page.columns ? page.columns.map((c) => `t.${quoteName(c, '"')}`).join(', ') : 't.*';
  const sql = `SELECT ${list}, ${version} AS ${V} FROM ${quoteName(page.table, '"')} t${where} ORDER BY ${keys.join(', ')} LIMIT ${p(page.limit)}`;
  return { sql, params };
}

/**
 * Dates and times as text, never through a JS Date: node-postgres reads `timestamp` (no zone) as
 * the agent machine's local time, shifting it by the agent's zone, and a Date drops microseconds.
 * `timestamp` stays the wall time as written (`2026-11-01T00:00:01.123456`); `timestamptz` is UTC
 * (the session's zone) with a `Z`; `date`, `time` and `timetz` as PostgreSQL writes them.
 */
/** `timestamp` (without time zone). */
export const TIMESTAMP_OID = 1114;

const TEXT_TYPES: Record<number, (s: string) => string> = {
  [TIMESTAMP_OID]: (s) => isoMicros(s, ''),
  1184: (s) => isoMicros(s.replace(/\+00$/, ''), 'Z'),
  1082: (s) => s,
  1083: (s) => s,
  1266: (s) => s,
};

/**
 * `2026-01-01 00:00:01.4541` → `2026-01-01T00:00:01.454100` (+ `suffix`): PostgreSQL trims
 * trailing zeros from the fraction; six digits always, as the version and the MySQL dialect write
 * them. Anything else (infinity, BC dates) is left as PostgreSQL wrote it.
 */
function isoMicros(s: string, suffix: string): string {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?$/.exec(s);
  return m ? `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}${suffix}` : s;
}

export function typeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  const text = TEXT_TYPES[oid];
  if (text && format !== 'binary') return text;
  return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text');
}

/**
 * A `mode: query` page: the statement as a derived table, every `:last` one parameter ($1, whose
 * type PostgreSQL takes from where it is used), the keyset condition after it.
 */
export function querySql(page: QueryPage): { sql: string; params: unknown[] } {
  const params: unknown[] = [page.last];
  const p = (value: unknown) => `$${params.push(value)}`;
  const inner = bindLast(page.sql, () => '$1').sql;
  const order = [page.versionColumn, ...page.key].map((c) => `q.${quoteName(c, '"')}`);
  const where = page.after ? ` WHERE (${order.join(', ')}) > (${[page.after.version, ...page.after.key].map((v) => p(v)).join(', ')})` : '';
  const sql = `SELECT q.*, q.${quoteName(page.versionColumn, '"')} AS ${V} FROM (${inner}) q${where} ORDER BY ${order.join(', ')} LIMIT ${p(page.limit)}`;
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


/**
 * `edge-agent sql test` for the `logical:` block: server settings, the role's attributes, the slot,
 * the publication, and per table what inspectTable says plus its replica identity and owner. Reads
 * catalogs and settings only (the pool is read-only).
 */
async function inspectLogical(db: Queryable, req: LogicalRequest): Promise<LogicalInfo> {
  const s = await db.query<{ wal_level: string; max_slots: string; in_use: string; keep: string; superuser: boolean; replication: boolean; can_create: boolean; database: string }>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots') AS max_slots,
            (SELECT count(*) FROM pg_catalog.pg_replication_slots)::text AS in_use,
            current_setting('max_slot_wal_keep_size') AS keep,
            r.rolsuper AS superuser, r.rolreplication AS replication,
            has_database_privilege(current_database(), 'CREATE') AS can_create, current_database() AS database
       FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
  );
  const settings = s.rows[0]!;
  const slot = await db.query<{ plugin: string | null; slot_type: string; database: string | null; wal_status: string | null; lag: string | null; active: boolean }>(
    `SELECT plugin, slot_type, database, wal_status, active,
            CASE WHEN confirmed_flush_lsn IS NOT NULL AND NOT pg_is_in_recovery() THEN (pg_current_wal_lsn() - confirmed_flush_lsn)::int8::text END AS lag
       FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`,
    [req.slot],
  );
  const pub = await db.query<{ owner: string; is_owner: boolean; all_tables: boolean; ins: boolean; upd: boolean; del: boolean; trunc: boolean; tables: string[] }>(
    `SELECT pg_get_userbyid(p.pubowner) AS owner, pg_has_role(p.pubowner, 'USAGE') AS is_owner, p.puballtables AS all_tables,
            p.pubinsert AS ins, p.pubupdate AS upd, p.pubdelete AS del, p.pubtruncate AS trunc,
            array(SELECT t.schemaname || '.' || t.tablename FROM pg_catalog.pg_publication_tables t WHERE t.pubname = p.pubname ORDER BY 1) AS tables
       FROM pg_catalog.pg_publication p WHERE p.pubname = $1`,
    [req.publication],
  );
  const tables: LogicalTableInfo[] = [];
  for (const table of req.tables) {
    const info = await inspectTable(db, table);
    if (!info.exists) {
      tables.push(info);
      continue;
    }
    const rel = await db.query<{ ident: 'd' | 'n' | 'f' | 'i'; is_owner: boolean; owner: string }>(
      `SELECT c.relreplident AS ident, pg_has_role(c.relowner, 'USAGE') AS is_owner, pg_get_userbyid(c.relowner) AS owner
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND ${READABLE}`,
      [info.schema, info.name],
    );
    const r = rel.rows[0];
    tables.push({ ...info, replicaIdentity: r?.ident, isOwner: r?.is_owner, owner: r?.owner });
  }
  const sl = slot.rows[0];
  const p = pub.rows[0];
  return {
    walLevel: settings.wal_level,
    maxReplicationSlots: Number(settings.max_slots),
    slotsInUse: Number(settings.in_use),
    maxSlotWalKeepSize: settings.keep,
    superuser: settings.superuser,
    replication: settings.replication,
    canCreateInDatabase: settings.can_create,
    database: settings.database,
    slot: sl ? { plugin: sl.plugin, slotType: sl.slot_type, database: sl.database, walStatus: sl.wal_status, lagBytes: sl.lag === null ? null : Number(sl.lag), active: sl.active } : null,
    publication: p ? { owner: p.owner, isOwner: p.is_owner, allTables: p.all_tables, insert: p.ins, update: p.upd, delete: p.del, truncate: p.trunc, tables: p.tables } : null,
    tables,
  };
}
