/**
 * A PostgreSQL cluster of the test's own, for tests that stop the server or need special settings
 * (e.g. wal_level=logical) without touching the machine's shared one. Shared with the bench, which
 * owns it (bench/lib/pg-cluster.ts); tests run it without fsync.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startPgCluster as startCluster, type BenchPgCluster } from '../../bench/lib/pg-cluster.js';

export type PgCluster = BenchPgCluster;

export function startPgCluster(settings: Record<string, string> = {}): Promise<PgCluster> {
  return startCluster({ fsync: 'off', ...settings });
}

/** Runs `fn` with a client of its own on `database` of the cluster, closed after. */
export async function withClient<T>(cluster: PgCluster, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...cluster.connection, database });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A cluster with wal_level=logical for the enclosing describe block (or file): started before its
 * tests, destroyed after; the slots its tests leave are dropped after each (max_replication_slots 4).
 */
export function useLogicalCluster(): {
  readonly cluster: PgCluster;
  withClient<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T>;
  exec(database: string, ...sql: string[]): Promise<void>;
} {
  let cluster: PgCluster | undefined;
  const self = {
    get cluster(): PgCluster {
      if (!cluster) throw new Error('the logical cluster is not started (use it inside a test)');
      return cluster;
    },
    withClient: <T>(database: string, fn: (c: pg.Client) => Promise<T>) => withClient(self.cluster, database, fn),
    exec: (database: string, ...sql: string[]) =>
      self.withClient(database, async (c) => {
        for (const s of sql) await c.query(s);
      }),
  };
  beforeAll(async () => {
    cluster = await startPgCluster({ wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' });
  }, 60_000);
  afterAll(() => cluster?.destroy());
  afterEach(async () => {
    await self.exec('postgres', 'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active');
  });
  return self;
}
