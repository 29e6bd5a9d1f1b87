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

interface Session {
  exec(sql: string, params?: unknown[]): Promise<void>;
  close(): Promise<void>;
}

/** How to reach each server: its admin settings, a session on a database, and how it drops one. */
const SERVERS = {
  pg: {
    admin: { host: '127.0.0.1', port: 5432, user: 'postgres', password: '' },
    adminDatabase: 'postgres' as string | undefined,
    dropSql: (db: string) => `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`,
    async open(database: string | undefined): Promise<Session> {
      const c = new pg.Client({ ...this.admin, database });
      await c.connect();
      return { exec: async (sql, params = []) => void (await c.query(sql, params)), close: () => c.end() };
    },
  },
  mysql: {
    admin: { host: '127.0.0.1', port: 3306, user: 'root', password: '' },
    adminDatabase: undefined as string | undefined,
    dropSql: (db: string) => `DROP DATABASE IF EXISTS ${db}`,
    async open(database: string | undefined): Promise<Session> {
      const c = await mysql.createConnection({ ...this.admin, database });
      return { exec: async (sql, params = []) => void (await c.query(sql, params)), close: () => c.end() };
    },
  },
};

/** Runs statements on a session of its own, closed after. */
async function once(open: () => Promise<Session>, ...sql: string[]): Promise<void> {
  const s = await open();
  try {
    for (const q of sql) await s.exec(q);
  } finally {
    await s.close();
  }
}

export async function createTestDatabase(driver: 'pg' | 'mysql'): Promise<TestDatabase> {
  const database = `erp_edge_t_${randomBytes(6).toString('hex')}`;
  const server = SERVERS[driver];
  const admin = () => server.open(server.adminDatabase);
  await once(admin, `CREATE DATABASE ${database}`);
  const session = () => server.open(database);
  return {
    driver,
    database,
    connection: { ...server.admin, database },
    async exec(sql, params) {
      const s = await session();
      try {
        await s.exec(sql, params);
      } finally {
        await s.close();
      }
    },
    session,
    drop: () => once(admin, server.dropSql(database)),
  };
}
