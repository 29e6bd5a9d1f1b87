/**
 * The relay's two stores behind one factory each, so one store test suite runs against both
 * (`describe.each(storeFactories())`): SQLite in a temp folder; PostgreSQL in a throwaway database
 * on 127.0.0.1:5432 (user postgres, see sql-databases.ts), created on first use, dropped by
 * `dispose()` — a server that does not answer fails the test, never a skip.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../common/logger.js';
import { PostgresRelayStore } from '../../cloud-relay/store/postgres-store.js';
import { SqliteRelayStore } from '../../cloud-relay/store/sqlite-store.js';
import type { RelayStore } from '../../cloud-relay/store/store.js';
import { createTestDatabase, type TestDatabase } from './sql-databases.js';
import { makeTempDir } from './tmp.js';

export interface StoreOpenOptions {
  dedupeWindowMs: number;
  log: Logger;
  clock?: () => number;
}

export interface StoreFactory {
  name: 'sqlite' | 'postgres';
  /** A new empty place for a store (a file path, a schema): stores opened on one place share what they hold. */
  place(): Promise<string>;
  open(place: string, o: StoreOpenOptions): Promise<RelayStore>;
  /** Removes every place (call after the stores are closed). */
  dispose(): Promise<void>;
}

export function sqliteStoreFactory(): StoreFactory {
  const dirs: ReturnType<typeof makeTempDir>[] = [];
  return {
    name: 'sqlite',
    async place() {
      const tmp = makeTempDir('erp-edge-relay-store-');
      dirs.push(tmp);
      // A nested folder the store must create itself.
      return join(tmp.dir, 'var', 'relay', 'relay.db');
    },
    async open(path, o) {
      return new SqliteRelayStore({ path, dedupeWindowMs: o.dedupeWindowMs, log: o.log, ...(o.clock ? { clock: o.clock } : {}) });
    },
    async dispose() {
      for (const d of dirs.splice(0)) d.cleanup();
    },
  };
}

export function postgresStoreFactory(): StoreFactory & { database(): Promise<TestDatabase> } {
  let db: Promise<TestDatabase> | undefined;
  const database = () => (db ??= createTestDatabase('pg'));
  return {
    name: 'postgres',
    database,
    async place() {
      await database();
      return `relay_${randomBytes(5).toString('hex')}`;
    },
    async open(schema, o) {
      const d = await database();
      return PostgresRelayStore.open({
        host: d.connection.host,
        port: d.connection.port,
        database: d.connection.database,
        user: d.connection.user,
        password: d.connection.password,
        poolSize: 4,
        schema,
        statementTimeoutMs: 30_000,
        dedupeWindowMs: o.dedupeWindowMs,
        log: o.log,
        ...(o.clock ? { clock: o.clock } : {}),
      });
    },
    async dispose() {
      if (db) await (await db).drop();
      db = undefined;
    },
  };
}

export function storeFactories(): StoreFactory[] {
  return [sqliteStoreFactory(), postgresStoreFactory()];
}
