/**
 * Throwaway databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust) and
 * MariaDB (127.0.0.1:3306, root, no password): each test gets a database with a unique name,
 * dropped after it. Under CI=true a server that does not answer fails the test (never a skip).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import mysql from 'mysql2/promise';

export interface TestDatabase {
  driver: 'pg' | 'mysql';
  database: string;
  connection: { host: string; port: number; database: string; user: string; password: string };
  /** Runs statements on a fresh connection of its own (autocommit). */
  exec(sql: string, params?: unknown[]): Promise<void>;
  /** A connection held open, for transactions the test controls. */
  session(): Promise<{ exec(sql: string, params?: unknown[]): Promise<void>; close(): Promise<void> }>;
  drop(): Promise<void>;
}

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', password: '' };
const MY = { host: '127.0.0.1', port: 3306, user: 'root', password: '' };

export async function createTestDatabase(driver: 'pg' | 'mysql'): Promise<TestDatabase> {
  const database = `erp_edge_t_${randomBytes(6).toString('hex')}`;
  return driver === 'pg' ? pgDatabase(database) : mysqlDatabase(database);
}

async function pgDatabase(database: string): Promise<TestDatabase> {
  const admin = new pg.Client({ ...PG, database: 'postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const session = async () => {
    const c = new pg.Client({ ...PG, database });
    await c.connect();
    return { exec: async (sql: string, params: unknown[] = []) => void (await c.query(sql, params)), close: () => c.end() };
  };
  return {
    driver: 'pg',
    database,
    connection: { ...PG, database },
    async exec(sql, params) {
      const s = await session();
      try {
        await s.exec(sql, params);
      } finally {
        await s.close();
      }
    },
    session,
    async drop() {
      const c = new pg.Client({ ...PG, database: 'postgres' });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await c.end();
    },
  };
}

async function mysqlDatabase(database: string): Promise<TestDatabase> {
  const admin = await mysql.createConnection(MY);
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  const session = async () => {
    const c = await mysql.createConnection({ ...MY, database });
    return { exec: async (sql: string, params: unknown[] = []) => void (await c.query(sql, params)), close: () => c.end() };
  };
  return {
    driver: 'mysql',
    database,
    connection: { ...MY, database },
    async exec(sql, params) {
      const s = await session();
      try {
        await s.exec(sql, params);
      } finally {
        await s.close();
      }
    },
    session,
    async drop() {
      const c = await mysql.createConnection(MY);
      await c.query(`DROP DATABASE IF EXISTS ${database}`);
      await c.end();
    },
  };
}
