import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ScenarioUnavailable } from '../types.js';

/**
 * A throwaway database on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth,
 * as the tests use; `ERP_EDGE_BENCH_PG_*` override it) holding an ERP order-lines table.
 * The name is unique per run and the database is dropped by `drop()`.
 */
export const PG_SERVER = {
  host: process.env.ERP_EDGE_BENCH_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.ERP_EDGE_BENCH_PG_PORT ?? 5432),
  user: process.env.ERP_EDGE_BENCH_PG_USER ?? 'postgres',
  password: process.env.ERP_EDGE_BENCH_PG_PASSWORD ?? '',
};

export const ORDER_LINES_TABLE = 'order_lines';

export interface BenchPgDatabase {
  database: string;
  connection: typeof PG_SERVER & { database: string };
  /** A client of its own on the database (the caller ends it). */
  client(): Promise<pg.Client>;
  drop(): Promise<void>;
}

export async function createPgDatabase(): Promise<BenchPgDatabase> {
  const database = `erp_edge_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ ...PG_SERVER, database: 'postgres', connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (err) {
    throw new ScenarioUnavailable(`PostgreSQL at ${PG_SERVER.host}:${PG_SERVER.port} (user ${PG_SERVER.user}) does not answer: ${(err as Error).message}`);
  }
  try {
    await admin.query(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
  const connection = { ...PG_SERVER, database };
  return {
    database,
    connection,
    async client() {
      const c = new pg.Client(connection);
      await c.connect();
      return c;
    },
    async drop() {
      const c = new pg.Client({ ...PG_SERVER, database: 'postgres' });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Creates `order_lines` (as an ERP's order-lines table: bigint key, text, int, numeric(12,2),
 * timestamp(6)) and fills it with `rows` rows in one `INSERT … SELECT generate_series` (the same
 * shapes as bench/lib/order-lines-csv.ts: ~100 bytes of text a row), the key added after the
 * load, then `VACUUM (FREEZE, ANALYZE)`: hint bits and the visibility map are set before anyone
 * reads, so the first reader of the run does not pay for writing them.
 */
export async function fillOrderLines(db: BenchPgDatabase, rows: number): Promise<{ tableBytes: number }> {
  const c = await db.client();
  try {
    await c.query(`CREATE TABLE ${ORDER_LINES_TABLE} (
      id bigint NOT NULL,
      order_no text NOT NULL,
      sku text NOT NULL,
      qty int NOT NULL,
      price numeric(12,2) NOT NULL,
      warehouse text NOT NULL,
      updated_at timestamp(6) NOT NULL)`);
    await c.query(
      `INSERT INTO ${ORDER_LINES_TABLE}
       SELECT i,
              'SO-2026-' || lpad((4000000 + i / 8)::text, 10, '0'),
              'SKU-' || lpad(((i * 7919) % 2500000)::text, 7, '0') || '-' || (ARRAY['BLK','WHT','RED','BLU','GRN'])[i % 5 + 1] || '-' || (ARRAY['S','M','L','XL'])[i % 4 + 1],
              1 + (i * 31) % 200,
              ((i * 1237) % 1000000) / 100.0,
              'WH-' || (ARRAY['NORTH','SOUTH','EAST','WEST'])[i % 4 + 1] || '-DC' || lpad((i % 12)::text, 2, '0'),
              timestamp '2026-11-01 00:00:00' + i * interval '1 second' + (i % 1000) * interval '1 microsecond'
       FROM generate_series(1::bigint, $1::bigint) AS i`,
      [rows],
    );
    await c.query(`ALTER TABLE ${ORDER_LINES_TABLE} ADD PRIMARY KEY (id)`);
    await c.query(`VACUUM (FREEZE, ANALYZE) ${ORDER_LINES_TABLE}`);
    const r = await c.query<{ b: string }>(`SELECT pg_table_size('${ORDER_LINES_TABLE}') AS b`);
    return { tableBytes: Number(r.rows[0]!.b) };
  } finally {
    await c.end();
  }
}

/**
 * The reference: the same rows read by a plain streamed `SELECT * FROM order_lines` (no ORDER BY,
 * as an export would: a sequential scan) through a server-side cursor, `FETCH 10000` at a time in
 * one read-only transaction, rows parsed by node-postgres with its default type parsers (numeric
 * as a string, timestamp as a Date) and dropped. Returns rows read and seconds.
 */
export async function plainCursorRead(db: BenchPgDatabase, fetch = 10_000): Promise<{ rows: number; seconds: number }> {
  const c = await db.client();
  try {
    const t0 = performance.now();
    await c.query('BEGIN READ ONLY');
    await c.query(`DECLARE plain NO SCROLL CURSOR FOR SELECT * FROM ${ORDER_LINES_TABLE}`);
    let rows = 0;
    for (;;) {
      const r = await c.query(`FETCH ${fetch} FROM plain`);
      rows += r.rows.length;
      if (r.rows.length < fetch) break;
    }
    await c.query('COMMIT');
    return { rows, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await c.end();
  }
}

/** PIDs of the server processes serving `database` for `applicationName` (their CPU is sampled from /proc). */
export async function backendPids(db: BenchPgDatabase, applicationName: string): Promise<number[]> {
  const c = await db.client();
  try {
    const r = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2', [db.database, applicationName]);
    return r.rows.map((x) => x.pid);
  } finally {
    await c.end();
  }
}
