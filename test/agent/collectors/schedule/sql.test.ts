/**
 * schedule jobs with a sql: source on the machine's real PostgreSQL and MariaDB (a temp database
 * each, dropped after), through the dialects of agent/databases/: one batch per run with its
 * markers and the rows in the query's order; a result over max_rows (read across several cursor
 * pages) fails the run and emits nothing; a query that fails is an error outcome and the next fire
 * runs once the table is there. The clock is faked (node-cron's timer and the Date), I/O is real.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { create, type ScheduleCollector } from '../../../../agent/collectors/schedule/schedule.js';
import { scheduleSchema } from '../../../../agent/collectors/schedule/schema.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';
import { createTestDatabase, type TestDatabase } from '../../../helpers/sql-databases.js';

const files = useOutboxFiles('schedule-sql-');
const CLOCK = { toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] as ('setTimeout' | 'clearTimeout' | 'setInterval' | 'clearInterval' | 'Date')[] };

interface Rec {
  id: string;
  correlation_id: string | null;
  data: { op?: string; run: string; row?: number; rows?: number; values?: Record<string, unknown> };
}

const ROWS: Record<'pg' | 'mysql', string[]> = {
  pg: [
    `CREATE TABLE onhand (sku text PRIMARY KEY, qty numeric(12,3) NOT NULL, counted_at timestamp NOT NULL)`,
    `INSERT INTO onhand VALUES ('A-1', 5.5, '2026-01-14 23:00:00'), ('B-2', 0, '2026-01-14 23:30:00.25'), ('C-3', 12, '2026-01-15 01:00:00')`,
  ],
  mysql: [
    `CREATE TABLE onhand (sku varchar(20) PRIMARY KEY, qty decimal(12,3) NOT NULL, counted_at datetime(6) NOT NULL)`,
    `INSERT INTO onhand VALUES ('A-1', 5.5, '2026-01-14 23:00:00'), ('B-2', 0, '2026-01-14 23:30:00.25'), ('C-3', 12, '2026-01-15 01:00:00')`,
  ],
};

/** 12 000 rows without a table: more than two of the pg cursor's pages. */
const MANY: Record<'pg' | 'mysql', string> = {
  pg: 'SELECT n FROM generate_series(1, 12000) AS n ORDER BY n',
  // Digits crossed (a recursive CTE stops at MariaDB's max_recursive_iterations, 1000).
  mysql: `WITH d AS (SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)
    SELECT a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n + 1 AS n FROM d a, d b, d c, d e, d f
    WHERE a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n < 12000 ORDER BY n`,
};

for (const driver of ['pg', 'mysql'] as const) {
  describe(`schedule, sql: source on ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} (real server)`, () => {
    let db: TestDatabase;
    let outbox: Outbox;
    let collector: ScheduleCollector | undefined;

    beforeEach(async () => {
      db = await createTestDatabase(driver);
      for (const s of ROWS[driver]) await db.exec(s);
      outbox = files.open();
    });
    afterEach(async () => {
      await collector?.stop();
      collector = undefined;
      vi.useRealTimers();
      await db.drop();
    });

    async function start(query: string, extra: Record<string, unknown> = {}): Promise<ScheduleCollector> {
      const cfg = scheduleSchema.parse({ type: 'schedule', name: 'erp', stream: 'snap', jobs: [{ name: 'inv', cron: '0 * * * *', ...extra, sql: { driver, ...db.connection, query } }] });
      collector = create(cfg, testHost(outbox, cfg, files.dir).ctx);
      await collector.start();
      return collector;
    }
    /** Moves the clock to the next hour (the job's fire time) and waits for the run to finish. */
    async function fire(c: ScheduleCollector): Promise<void> {
      await vi.advanceTimersByTimeAsync(3_600_000 - (Date.now() % 3_600_000));
      await c.jobs[0]!.idle();
    }
    const records = () => outbox.readPending('snap', 0, 1_000_000).map((r) => JSON.parse(r.payload) as Rec);

    it('a run emits one batch: snapshot_start, the rows in the query order, snapshot_end with the count', async () => {
      vi.useFakeTimers(CLOCK);
      vi.setSystemTime(new Date('2026-01-15T07:30:00.000Z'));
      const c = await start('SELECT sku, qty, counted_at FROM onhand ORDER BY qty DESC;');
      await fire(c);
      const recs = records();
      const run = 'inv@2026-01-15T08:00:00Z';
      expect(recs.map((r) => r.id)).toEqual(['snapshot_start', '1', '2', '3', 'snapshot_end'].map((s) => `schedule:erp/inv/${run}/${s}`));
      expect(recs.every((r) => r.correlation_id === run)).toBe(true);
      // Exact decimals stay strings; a zone-less timestamp is carried as written (the dialects' rule).
      expect(recs.slice(1, 4).map((r) => r.data.values)).toEqual([
        { sku: 'C-3', qty: '12.000', counted_at: '2026-01-15T01:00:00.000000' },
        { sku: 'A-1', qty: '5.500', counted_at: '2026-01-14T23:00:00.000000' },
        { sku: 'B-2', qty: '0.000', counted_at: '2026-01-14T23:30:00.250000' },
      ]);
      expect(recs[4]!.data).toMatchObject({ op: 'snapshot_end', rows: 3, columns: ['sku', 'qty', 'counted_at'] });
      expect(c.stats().counters).toMatchObject({ 'inv.last_outcome': 'ok', 'inv.last_rows': 3, 'inv.ok': 1 });
    });

    it('a result over max_rows fails the run with ERP_QUERY_TOO_MANY_ROWS and emits nothing; at max_rows it runs', async () => {
      vi.useFakeTimers(CLOCK);
      vi.setSystemTime(new Date('2026-01-15T07:30:00.000Z'));
      const c = await start(MANY[driver], { max_rows: 11_999 });
      await fire(c);
      expect(records()).toHaveLength(0);
      expect(c.stats().counters).toMatchObject({ 'inv.last_outcome': 'error', 'inv.failed': 1 });
      expect(String(c.stats().counters!['inv.last_error'])).toMatch(/^ERP_QUERY_TOO_MANY_ROWS: .*max_rows \(11999\)/);
      await c.stop();

      collector = undefined;
      const c2 = await start(MANY[driver], { max_rows: 12_000 });
      await fire(c2);
      const recs = records();
      expect(recs).toHaveLength(12_002);
      expect(recs.slice(1, -1).map((r) => Number(r.data.values!.n))).toEqual(Array.from({ length: 12_000 }, (_, i) => i + 1));
      expect(recs.at(-1)!.data).toMatchObject({ op: 'snapshot_end', rows: 12_000 });
    });

    it('a failing query is an error outcome; the collector stays up and the next fire runs', async () => {
      vi.useFakeTimers(CLOCK);
      vi.setSystemTime(new Date('2026-01-15T07:30:00.000Z'));
      const c = await start('SELECT * FROM counts ORDER BY bin');
      await fire(c);
      expect(c.stats().counters).toMatchObject({ 'inv.last_outcome': 'error', 'inv.failed': 1, 'inv.runs': 1 });
      expect(String(c.stats().counters!['inv.last_error'])).toMatch(/counts/);
      expect(records()).toHaveLength(0);

      await db.exec('CREATE TABLE counts (bin varchar(10), qty int)');
      await db.exec(`INSERT INTO counts VALUES ('A-01', 4)`);
      await fire(c);
      expect(c.stats().counters).toMatchObject({ 'inv.last_outcome': 'ok', 'inv.runs': 2, 'inv.ok': 1, 'inv.last_error': '' });
      expect(records().map((r) => r.data.values ?? r.data.op)).toEqual(['snapshot_start', { bin: 'A-01', qty: 4 }, 'snapshot_end']);
      expect(records()[0]!.data.run).toBe('inv@2026-01-15T09:00:00Z');
    });
  });
}
