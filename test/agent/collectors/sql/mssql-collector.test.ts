import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqlSchema } from '../../../../agent/collectors/sql/schema.js';
import { SqlCollector } from '../../../../agent/collectors/sql/sql.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { FakeSqlServer, TABLE } from '../../../helpers/mssql-fake.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { makeTempDir } from '../../../helpers/tmp.js';

/** A driver: mssql collector runs its tables with the same loop as the others: polls, back-off, error in stats, recovery. */
describe('sql collector, driver: mssql (fake server)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let outbox: Outbox;

  beforeEach(() => {
    tmp = makeTempDir('mssql-collector-');
    outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
  });

  afterEach(() => {
    outbox.close();
    tmp.cleanup();
  });

  it('captures, backs off while the database fails with the error in its stats, resumes, and closes the pool on stop', async () => {
    const db = new FakeSqlServer();
    db.insert(1, 'new');
    const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mssql', connection: { database: 'erp', user: 'edge', password: 'pw' }, poll_interval: '20ms', retry: { initial: '20ms', max: '40ms' }, tables: [{ table: TABLE, mode: 'change_tracking' }] });
    const host = testHost(outbox, cfg, tmp.dir);
    let connected: unknown;
    const collector = new SqlCollector(cfg, host.ctx, {
      connectMssql: async (opts) => {
        connected = opts;
        return db;
      },
    });
    const rows = () => outbox.readPending('erp', 0, 1000).map((r) => (JSON.parse(r.payload) as { data: { op: string } }).data.op);
    await collector.start();
    try {
      expect(connected).toMatchObject({ database: 'erp', user: 'edge', encrypt: true, trustServerCertificate: false });
      await waitFor('the snapshot', () => rows().includes('snapshot_end'), 10_000);
      db.down = true;
      await waitFor('the error shown', () => collector.stats().counters?.[`${TABLE}.error`], 10_000);
      expect(collector.stats().counters).toMatchObject({ [`${TABLE}.errors`]: expect.any(Number), [`${TABLE}.error`]: 'Failed to connect to erp-db:1433 - connect ECONNREFUSED', [`${TABLE}.error_since`]: expect.any(String) });
      db.insert(2, 'new');
      db.down = false;
      db.delete(1);
      await waitFor('capture resumed', () => rows().includes('delete'), 10_000);
      await waitFor('the error cleared', () => collector.stats().counters?.[`${TABLE}.error`] === undefined, 10_000);
      expect(rows()).toEqual(['snapshot_start', 'snapshot', 'snapshot_end', 'insert', 'delete']);
      expect(collector.stats().counters).toMatchObject({ [`${TABLE}.deletes`]: 1 });
    } finally {
      host.abort.abort();
      await collector.stop();
    }
    expect(db.closed).toBe(true);
  });

  it('a rowversion table looks for deletes every reconcile_interval: a deleted row becomes a delete record, counted in stats', async () => {
    const db = new FakeSqlServer();
    db.insert(1, 'new');
    db.insert(2, 'new');
    const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mssql', connection: { database: 'erp', user: 'edge' }, poll_interval: '20ms', tables: [{ table: TABLE, mode: 'rowversion', rowversion_column: 'rv', reconcile_interval: '20ms' }] });
    const host = testHost(outbox, cfg, tmp.dir);
    const collector = new SqlCollector(cfg, host.ctx, { connectMssql: async () => db });
    const ops = () => outbox.readPending('erp', 0, 1000).map((r) => (JSON.parse(r.payload) as { data: { op: string } }).data.op);
    await collector.start();
    try {
      await waitFor('the snapshot', () => ops().includes('snapshot_end'), 10_000);
      db.delete(1);
      await waitFor('the delete', () => ops().includes('delete'), 10_000);
      expect(collector.stats().counters).toMatchObject({ [`${TABLE}.deletes`]: 1 });
      expect(collector.stats().counters?.[`${TABLE}.reconcile_error`]).toBeUndefined();
    } finally {
      host.abort.abort();
      await collector.stop();
    }
  });
});
