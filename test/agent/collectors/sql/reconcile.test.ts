import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqlSource } from '../../../../agent/databases/dialect.js';
import { pollIncremental, type TableCapture } from '../../../../agent/collectors/sql/incremental.js';
import { decodeKey, reconcileDeletes } from '../../../../agent/collectors/sql/reconcile.js';
import { recordKey } from '../../../../agent/collectors/sql/record.js';
import { incrementalTables, sqlSchema } from '../../../../agent/collectors/sql/schema.js';
import { create } from '../../../../agent/collectors/sql/sql.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { createTestDatabase, type TestDatabase } from '../../../helpers/sql-databases.js';
import { closeSqlFixture, openSqlFixture } from '../../../helpers/sql-fixture.js';
import { makeTempDir } from '../../../helpers/tmp.js';

interface Rec {
  id: string;
  data: { op: string; key?: Record<string, unknown> };
}

const DDL = {
  pg: 'CREATE TABLE order_lines (order_no text NOT NULL, line int NOT NULL, qty int NOT NULL, updated_at timestamp(6) NOT NULL, PRIMARY KEY (order_no, line))',
  mysql: 'CREATE TABLE order_lines (order_no varchar(40) NOT NULL, line int NOT NULL, qty int NOT NULL, updated_at datetime(6) NOT NULL, PRIMARY KEY (order_no, line)) ENGINE=InnoDB',
};

describe('decodeKey', () => {
  it('gives back the key values a record key was built from, separators and % included', () => {
    for (const parts of [['SO/1|A', '2'], ['100%', 'x~y'], ['Łódź', '7']]) expect(decodeKey(recordKey(parts))).toEqual(parts);
  });
});

for (const driver of ['pg', 'mysql'] as const) {
  describe(`sql collector, deletes by reconciliation, on ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} (real server)`, () => {
    let db: TestDatabase;
    let tmp: ReturnType<typeof makeTempDir>;
    let outbox: Outbox;
    let source: SqlSource;

    beforeEach(async () => {
      ({ db, tmp, outbox, source } = await openSqlFixture(driver, [DDL[driver]], 'sql-reconcile-'));
    });

    afterEach(() => closeSqlFixture({ db, tmp, outbox, source }));

    const table = { table: 'order_lines', key: ['order_no', 'line'], mode: 'incremental', version_column: 'updated_at' };
    const config = ({ table: tableExtra, ...extra }: Record<string, unknown> = {}) =>
      sqlSchema.parse({ type: 'sql', name: 'erp', driver, connection: db.connection, ...extra, tables: [{ ...table, ...(tableExtra as object) }] });
    const records = () => outbox.readPending('erp', 0, 100_000).map((r) => JSON.parse(r.payload) as Rec);
    const summary = () => records().map((r) => `${r.data.op} ${String(r.data.key?.order_no)}#${String(r.data.key?.line)}`);

    it('a deleted row becomes one delete record (composite key with / and | in it); inserted again, it is an insert', async () => {
      const cfg = config();
      const host = testHost(outbox, cfg, tmp.dir);
      const c: TableCapture = { table: incrementalTables(cfg)[0]!, source, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: 1_000 };
      const signal = new AbortController().signal;
      await db.exec(`INSERT INTO order_lines VALUES ('SO/1|A', 1, 5, '2026-01-01 00:00:01'), ('SO/1|A', 2, 6, '2026-01-01 00:00:02'), ('SO-2', 1, 7, '2026-01-01 00:00:03')`);
      await pollIncremental(c, signal);
      expect(await reconcileDeletes(c, signal)).toBe(0);
      await db.exec(`DELETE FROM order_lines WHERE order_no = 'SO/1|A' AND line = 2`);
      expect(await reconcileDeletes(c, signal)).toBe(1);
      expect(await reconcileDeletes(c, signal)).toBe(0); // forgotten with its delete: never twice
      await db.exec(`INSERT INTO order_lines VALUES ('SO/1|A', 2, 9, '2026-01-01 00:00:04')`);
      await pollIncremental(c, signal);
      expect(summary()).toEqual(['insert SO/1|A#1', 'insert SO/1|A#2', 'insert SO-2#1', 'delete SO/1|A#2', 'insert SO/1|A#2']);
      // The delete carries the key as the insert did, typed (line a number, not "2").
      const [insert, del] = records().filter((r) => r.data.key?.line === 2 || r.data.key?.line === '2');
      expect(del!.data.key).toEqual(insert!.data.key);
      expect(del!.data.key).toEqual({ order_no: 'SO/1|A', line: 2 });
      expect(outbox.keyVersionCount('sql:erp', 'order_lines')).toBe(3);
    });

    it('the collector looks for deletes every reconcile_interval: inserts, updates and deletes arrive in order with their ops', async () => {
      await db.exec(`INSERT INTO order_lines VALUES ('SO-1', 1, 5, '2026-01-01 00:00:01')`);
      const cfg = config({ poll_interval: '100ms', table: { reconcile_interval: '300ms' } });
      const host = testHost(outbox, cfg, tmp.dir);
      const collector = create(cfg, host.ctx);
      await collector.start();
      try {
        await waitFor('snapshot', () => summary().includes('snapshot SO-1#1'), 10_000);
        await db.exec(`INSERT INTO order_lines VALUES ('SO-1', 2, 1, '2026-01-01 00:00:02')`);
        await waitFor('insert', () => summary().includes('insert SO-1#2'), 10_000);
        await db.exec(`UPDATE order_lines SET qty = 3, updated_at = '2026-01-01 00:00:03' WHERE line = 1`);
        await waitFor('update', () => summary().includes('update SO-1#1'), 10_000);
        await db.exec(`DELETE FROM order_lines WHERE line = 2`);
        await waitFor('delete', () => summary().includes('delete SO-1#2'), 10_000);
        expect(summary().filter((s) => !s.startsWith('snapshot_'))).toEqual(['snapshot SO-1#1', 'insert SO-1#2', 'update SO-1#1', 'delete SO-1#2']);
        expect(collector.stats!().counters).toMatchObject({ 'order_lines.deletes': 1 });
      } finally {
        host.abort.abort();
        await collector.stop();
      }
    });
  });
}

for (const driver of ['pg', 'mysql'] as const) {
  describe(`reconciliation with a time-typed key on ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'}`, () => {
    it('a row whose key is a timestamp is found, not reported deleted (the server compares in the column type)', async () => {
      const db = await createTestDatabase(driver);
      const tmp = makeTempDir('sql-reconcile-ts-');
      const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
      const dialect = driver === 'pg' ? await import('../../../../agent/databases/dialects/pg.js') : await import('../../../../agent/databases/dialects/mysql.js');
      const source = await dialect.connect({ ...db.connection, poolSize: 1, connectTimeoutMs: 5_000 });
      try {
        const ts = driver === 'pg' ? 'timestamp(6)' : 'datetime(6)';
        await db.exec(`CREATE TABLE readings (taken_at ${ts} NOT NULL, sensor int NOT NULL, v int NOT NULL, updated_at ${ts} NOT NULL, PRIMARY KEY (taken_at, sensor))`);
        await db.exec(`INSERT INTO readings VALUES ('2026-01-01 00:00:01', 1, 5, '2026-01-01 00:00:01'), ('2026-01-01 00:00:02.5', 1, 6, '2026-01-01 00:00:02')`);
        const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver, connection: db.connection, tables: [{ table: 'readings', key: ['taken_at', 'sensor'], mode: 'incremental', version_column: 'updated_at' }] });
        const host = testHost(outbox, cfg, tmp.dir);
        const c: TableCapture = { table: incrementalTables(cfg)[0]!, source, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: 1_000 };
        const signal = new AbortController().signal;
        await pollIncremental(c, signal);
        expect(await reconcileDeletes(c, signal)).toBe(0);
        await db.exec(`DELETE FROM readings WHERE v = 6`);
        expect(await reconcileDeletes(c, signal)).toBe(1);
      } finally {
        await source.close();
        outbox.close();
        await db.drop();
        tmp.cleanup();
      }
    });
  });
}

describe('reconciliation refuses keys it cannot match back', () => {
  it('a bytea key: an error naming the column and the setting, never a delete for a row that is there', async () => {
    const db = await createTestDatabase('pg');
    const tmp = makeTempDir('sql-reconcile-bytea-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
    const { connect } = await import('../../../../agent/databases/dialects/pg.js');
    const source = await connect({ ...db.connection, poolSize: 1, connectTimeoutMs: 5_000 });
    try {
      await db.exec(`CREATE TABLE blobs (k bytea PRIMARY KEY, updated_at timestamp(6) NOT NULL)`);
      await db.exec(`INSERT INTO blobs VALUES ('\\x0102', '2026-01-01 00:00:01')`);
      const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'pg', connection: db.connection, tables: [{ table: 'blobs', key: ['k'], mode: 'incremental', version_column: 'updated_at' }] });
      const host = testHost(outbox, cfg, tmp.dir);
      const c: TableCapture = { table: incrementalTables(cfg)[0]!, source, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: 1_000 };
      const signal = new AbortController().signal;
      await pollIncremental(c, signal);
      await expect(reconcileDeletes(c, signal)).rejects.toThrow(/key column\(s\) k cannot be matched back.*reconcile_interval: 0/);
      expect(outbox.readPending('erp', 0, 100).map((r) => (JSON.parse(r.payload) as Rec).data.op)).toEqual(['insert']);
    } finally {
      await source.close();
      outbox.close();
      await db.drop();
      tmp.cleanup();
    }
  });
});
