/**
 * The database goes away (its server stopped) while the collector runs: the collector backs off,
 * its stats show the error and since when, and once the server is back capture resumes where it
 * stopped: nothing lost, nothing twice.
 */
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { sqlSchema } from '../../../../agent/collectors/sql/schema.js';
import { create } from '../../../../agent/collectors/sql/sql.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { startPgCluster, type PgCluster } from '../../../helpers/pg-cluster.js';
import { makeTempDir } from '../../../helpers/tmp.js';

let cluster: PgCluster | undefined;
let tmp: ReturnType<typeof makeTempDir> | undefined;
afterEach(() => {
  cluster?.destroy();
  tmp?.cleanup();
});

async function exec(c: PgCluster, sql: string): Promise<void> {
  const client = new pg.Client(c.connection);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('sql collector when its database stops (own PostgreSQL cluster)', () => {
  it('backs off while the server is down, shows the error and its age, and resumes without loss once it is back', async () => {
    cluster = await startPgCluster();
    await exec(cluster, 'CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, updated_at timestamp(6) NOT NULL)');
    await exec(cluster, `INSERT INTO orders VALUES (1, 'new', '2026-01-01 00:00:01')`);
    tmp = makeTempDir('sql-outage-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = sqlSchema.parse({
      type: 'sql',
      name: 'erp',
      driver: 'pg',
      connection: { ...cluster.connection, connect_timeout: '1s' },
      poll_interval: '100ms',
      retry: { initial: '100ms', max: '400ms' },
      tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }],
    });
    const host = testHost(outbox, cfg, tmp.dir);
    const collector = create(cfg, host.ctx);
    const rows = () => outbox.readPending('erp', 0, 1000).map((r) => JSON.parse(r.payload) as { data: { op: string; key?: { id: number } } }).filter((r) => r.data.key);
    await collector.start();
    try {
      await waitFor('the first row', () => rows().length === 1, 10_000);
      cluster.stop();
      const counters = await waitFor('the error shown', () => {
        const c = collector.stats!().counters;
        return c?.['orders.error'] ? c : undefined;
      }, 15_000);
      expect(counters['orders.error_since']).toEqual(expect.any(String));
      const errorsThen = Number(counters['orders.errors']);
      await waitFor('more attempts, backing off', () => Number(collector.stats!().counters?.['orders.errors']) > errorsThen, 10_000);
      cluster.start();
      await exec(cluster, `INSERT INTO orders VALUES (2, 'new', '2026-01-01 00:00:02')`);
      await waitFor('capture resumed', () => rows().length === 2, 20_000);
      expect(collector.stats!().counters?.['orders.error']).toBeUndefined();
      expect(rows().map((r) => r.data.key!.id)).toEqual([1, 2]);
    } finally {
      host.abort.abort();
      await collector.stop();
      outbox.close();
    }
  }, 60_000);
});

describe('sql collector when its MariaDB connections are killed', () => {
  it('gets new connections and goes on capturing, nothing lost', async () => {
    const { createTestDatabase } = await import('../../../helpers/sql-databases.js');
    const db = await createTestDatabase('mysql');
    tmp = makeTempDir('sql-outage-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    try {
      await db.exec('CREATE TABLE orders (id int PRIMARY KEY, status varchar(20) NOT NULL, updated_at datetime(6) NOT NULL)');
      await db.exec(`INSERT INTO orders VALUES (1, 'new', '2026-01-01 00:00:01')`);
      const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mysql', connection: db.connection, poll_interval: '100ms', retry: { initial: '100ms', max: '400ms' }, tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] });
      const host = testHost(outbox, cfg, tmp.dir);
      const collector = create(cfg, host.ctx);
      const rows = () => outbox.readPending('erp', 0, 1000).map((r) => JSON.parse(r.payload) as { data: { key?: { id: number } } }).filter((r) => r.data.key);
      await collector.start();
      try {
        await waitFor('the first row', () => rows().length === 1, 10_000);
        // Every connection of the collector's pool, as a DBA's KILL or a server-side timeout would.
        const mysql = await import('mysql2/promise');
        const conn = await mysql.createConnection({ ...db.connection });
        try {
          const [procs] = await conn.query('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [db.database]);
          expect((procs as unknown[]).length).toBeGreaterThan(0);
          for (const p of procs as { ID: number }[]) await conn.query(`KILL ${p.ID}`);
        } finally {
          await conn.end();
        }
        await db.exec(`INSERT INTO orders VALUES (2, 'new', '2026-01-01 00:00:02')`);
        await waitFor('capture goes on', () => rows().length === 2, 15_000);
        expect(rows().map((r) => r.data.key!.id)).toEqual([1, 2]);
      } finally {
        host.abort.abort();
        await collector.stop();
      }
    } finally {
      outbox.close();
      await db.drop();
    }
  }, 60_000);
});
