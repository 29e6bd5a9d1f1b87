import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqlSource } from '../../../../agent/databases/dialect.js';
import { checkpointKey, pollIncremental, type IncrementalCheckpoint, type TableCapture } from '../../../../agent/collectors/sql/incremental.js';
import { create } from '../../../../agent/collectors/sql/sql.js';
import { incrementalTables, sqlSchema, type SqlConfig, type TableConfig } from '../../../../agent/collectors/sql/schema.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { waitFor } from '../../../helpers/net.js';
import type { TestDatabase } from '../../../helpers/sql-databases.js';
import { closeSqlFixture, openSqlFixture } from '../../../helpers/sql-fixture.js';
import { makeTempDir } from '../../../helpers/tmp.js';

interface Rec {
  id: string;
  key: string;
  data: { op: string; table: string; key: Record<string, unknown>; version: string; schema_version: string; schema_changed?: true; values: Record<string, unknown> };
}

const DDL = {
  pg: 'CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, qty int NOT NULL, amount numeric(12,2), updated_at timestamp(6) NOT NULL)',
  mysql: 'CREATE TABLE orders (id int PRIMARY KEY, status varchar(20) NOT NULL, qty int NOT NULL, amount decimal(12,2), updated_at datetime(6) NOT NULL) ENGINE=InnoDB',
};

for (const driver of ['pg', 'mysql'] as const) {
  describe(`sql collector, incremental, on ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} (real server)`, () => {
    let db: TestDatabase;
    let tmp: ReturnType<typeof makeTempDir>;
    let outbox: Outbox;
    let source: SqlSource;

    beforeEach(async () => {
      ({ db, tmp, outbox, source } = await openSqlFixture(driver, [DDL[driver]], 'sql-test-'));
    });

    afterEach(() => closeSqlFixture({ db, tmp, outbox, source }));

    function config(table: Record<string, unknown> = {}): SqlConfig {
      return sqlSchema.parse({ type: 'sql', name: 'erp', driver, connection: db.connection, batch_size: 2, tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at', ...table }] });
    }

    function capture(cfg = config()): TableCapture {
      const host = testHost(outbox, cfg, tmp.dir);
      return { table: incrementalTables(cfg)[0]!, source, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: cfg.batch_size };
    }

    const records = () => outbox.readPending('erp', 0, 100_000).map((r) => JSON.parse(r.payload) as Rec);
    /** Row records (not the snapshot's start and end markers). */
    const rows = () => records().filter((r) => r.data.key !== undefined);
    const poll = (c: TableCapture) => pollIncremental(c, new AbortController().signal);
    const insert = (id: number, status: string, at: string) => db.exec(`INSERT INTO orders (id, status, qty, amount, updated_at) VALUES (${id}, '${status}', ${id * 10}, ${id}.5, '${at}')`);

    it('captures inserts and updates in version order (pages of 2), typed values, each once; a poll with nothing new emits nothing', async () => {
      const c = capture();
      await insert(1, 'new', '2026-01-01 00:00:01.000001');
      await insert(2, 'new', '2026-01-01 00:00:02');
      await insert(3, 'new', '2026-01-01 00:00:03');
      expect(await poll(c)).toBe(3);
      await db.exec(`UPDATE orders SET status = 'picked', updated_at = '2026-01-01 00:00:04' WHERE id = 2`);
      expect(await poll(c)).toBe(1);
      expect(await poll(c)).toBe(0); // every row is inside the look-back: read again, not emitted
      const recs = records();
      expect(recs.map((r) => [r.data.op, r.data.key.id, r.data.values.status])).toEqual([
        ['insert', 1, 'new'],
        ['insert', 2, 'new'],
        ['insert', 3, 'new'],
        ['update', 2, 'picked'],
      ]);
      expect(recs[0]!.data.version).toBe('2026-01-01T00:00:01.000001');
      expect(recs[0]!.data.values.amount).toBe('1.50'); // exact decimal, as a string
      expect(recs[0]!.id).toBe('sql:erp/orders/1/2026-01-01T00:00:01.000001');
      expect(new Set(recs.map((r) => r.id)).size).toBe(4);
      const cp = outbox.getCheckpoint<IncrementalCheckpoint>('sql:erp', checkpointKey('orders'));
      expect(cp?.hw).toBe('2026-01-01T00:00:04.000000');
    });

    it('stamps every record with the schema version; a column added (or retyped) changes it, and the first records read with it are flagged, once, and the collector is told', async () => {
      const seen: [string, string, string][] = [];
      const c = { ...capture(), onSchemaChange: (table: string, from: string, to: string) => seen.push([table, from, to]) };
      await insert(1, 'new', '2026-01-01 00:00:01');
      await poll(c);
      await db.exec('ALTER TABLE orders ADD COLUMN note varchar(10)');
      await insert(2, 'new', '2026-01-01 00:00:02');
      await poll(c);
      await db.exec(driver === 'pg' ? 'ALTER TABLE orders ALTER COLUMN note TYPE varchar(20)' : 'ALTER TABLE orders MODIFY COLUMN note varchar(20)');
      await insert(3, 'new', '2026-01-01 00:00:03');
      await poll(c);
      await insert(4, 'new', '2026-01-01 00:00:04');
      await poll(c);
      const recs = rows();
      const versions = recs.map((r) => r.data.schema_version);
      expect(versions.every((v) => /^[0-9a-f]{16}$/.test(v))).toBe(true);
      expect(new Set(versions).size).toBe(3); // initial, column added, column retyped
      expect(recs.map((r) => [r.data.key.id, r.data.schema_changed ?? false])).toEqual([
        [1, false],
        [2, true],
        [3, true],
        [4, false],
      ]);
      expect(seen).toEqual([
        ['orders', versions[0], versions[1]],
        ['orders', versions[1], versions[2]],
      ]);
      expect(outbox.getCheckpoint<IncrementalCheckpoint>('sql:erp', checkpointKey('orders'))?.schema).toBe(versions[3]);
    });

    it('with the collector\'s time_zone, zone-less timestamps are read in it and carried as UTC (DST both ways); the version and key columns stay the database\'s', async () => {
      const dialect = driver === 'pg' ? await import('../../../../agent/databases/dialects/pg.js') : await import('../../../../agent/databases/dialects/mysql.js');
      const zoned = await dialect.connect({ ...db.connection, poolSize: 1, connectTimeoutMs: 5_000, timeZone: 'Europe/Berlin' });
      try {
        const c = { ...capture(), source: zoned };
        await insert(1, 'winter', '2026-01-15 12:00:00.123456');
        await insert(2, 'summer', '2026-07-15 12:00:00');
        await insert(3, 'overlap', '2026-10-25 02:30:00'); // existed twice: the earlier instant
        await poll(c);
        expect(rows().map((r) => [r.data.values.status, r.data.values.updated_at, r.data.version])).toEqual([
          ['winter', '2026-01-15T11:00:00.123456Z', '2026-01-15T12:00:00.123456'],
          ['summer', '2026-07-15T10:00:00.000000Z', '2026-07-15T12:00:00.000000'],
          ['overlap', '2026-10-25T00:30:00.000000Z', '2026-10-25T02:30:00.000000'],
        ]);
        // A key column stays as written: it pages the reads and is matched back against the table as stored.
        await db.exec(driver === 'pg' ? 'CREATE TABLE events (at timestamp(6) PRIMARY KEY, seen timestamp(6) NOT NULL)' : 'CREATE TABLE events (at datetime(6) PRIMARY KEY, seen datetime(6) NOT NULL) ENGINE=InnoDB');
        await db.exec(`INSERT INTO events VALUES ('2026-07-15 12:00:00', '2026-07-15 12:00:00')`);
        const [ev] = await zoned.readSnapshot({ table: 'events', key: ['at'], versionColumn: 'seen', limit: 10 });
        expect(ev!.values).toEqual({ at: '2026-07-15T12:00:00.000000', seen: '2026-07-15T10:00:00.000000Z' });
        expect(await zoned.existingKeys('events', ['at'], [[ev!.values.at]])).toEqual(new Set([0]));
        expect(sqlSchema.safeParse({ type: 'sql', name: 'erp', driver, connection: db.connection, time_zone: 'Mars/Olympus', tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] }).error?.issues[0]).toMatchObject({ path: ['time_zone'], message: expect.stringContaining('unknown IANA time zone') });
      } finally {
        await zoned.close();
      }
    });

    it('carries timestamps as the database holds them, microseconds included, whatever the agent machine\'s time zone', async () => {
      const tz = process.env.TZ;
      process.env.TZ = 'Asia/Kolkata'; // +05:30: a shift would show
      try {
        const c = capture();
        await insert(1, 'new', '2026-01-01 00:00:01.123456');
        await insert(2, 'new', '2026-01-01 00:00:02.4'); // PostgreSQL writes .4: six digits, as MySQL and the version
        await insert(3, 'new', '2026-01-01 00:00:03');
        await poll(c);
        expect(records().map((r) => r.data.values.updated_at)).toEqual(['2026-01-01T00:00:01.123456', '2026-01-01T00:00:02.400000', '2026-01-01T00:00:03.000000']);
      } finally {
        if (tz === undefined) delete process.env.TZ;
        else process.env.TZ = tz;
      }
    });

    for (const lookback of ['60s', 0] as const) {
      it(`a transaction that took its version first and commits after a poll is ${lookback ? 'still captured (look-back 60 s)' : 'missed with look-back 0'}`, async () => {
        const c = capture(config({ lookback }));
        const a = await db.session();
        try {
          await a.exec(driver === 'pg' ? 'BEGIN' : 'START TRANSACTION');
          await a.exec(`INSERT INTO orders VALUES (10, 'late', 1, 1, '2026-01-01 00:00:01')`); // A: earlier version, not committed
          await insert(11, 'early', '2026-01-01 00:00:02'); // B commits
          expect(await poll(c)).toBe(1);
          await a.exec('COMMIT');
        } finally {
          await a.close();
        }
        await poll(c);
        const ids = records().map((r) => r.data.key.id);
        if (lookback) expect(ids).toEqual([11, 10]);
        else expect(ids).toEqual([11]);
      });
    }

    it('resumes from its checkpoint: a new instance emits only what is new', async () => {
      await insert(1, 'new', '2026-01-01 00:00:01');
      expect(await poll(capture())).toBe(1);
      await insert(2, 'new', '2026-01-01 00:00:02');
      expect(await poll(capture())).toBe(1);
      expect(records().map((r) => r.data.key.id)).toEqual([1, 2]);
    });

    it('the collector backs off while a table fails, shows the error in its stats, and resumes when it is back', async () => {
      const cfg = config({ poll_interval: '100ms' });
      const host = testHost(outbox, { ...cfg, retry: { initial: 100, max: 200 } } as SqlConfig, tmp.dir);
      const collector = create({ ...cfg, poll_interval: 100, retry: { initial: 100, max: 200 } }, host.ctx);
      await collector.start();
      try {
        await insert(1, 'new', '2026-01-01 00:00:01');
        await waitFor('first row', () => rows().length === 1, 10_000);
        await db.exec('ALTER TABLE orders RENAME TO orders_away');
        await waitFor('the error shown', () => collector.stats!().counters?.['orders.error'], 10_000);
        expect(collector.stats!().counters).toMatchObject({ 'orders.errors': expect.any(Number), 'orders.error_since': expect.any(String) });
        await db.exec('ALTER TABLE orders_away RENAME TO orders');
        await insert(2, 'new', '2026-01-01 00:00:02');
        await waitFor('capture resumed', () => rows().length === 2, 10_000);
        // The poll that committed row 2 may still be reading its next page: the error clears when it ends.
        await waitFor('the error cleared', () => collector.stats!().counters?.['orders.error'] === undefined, 10_000);
      } finally {
        host.abort.abort();
        await collector.stop();
      }
    });
  });
}
