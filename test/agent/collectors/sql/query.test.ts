/**
 * mode query on the real servers: a custom SELECT (here a join, and a view) read after :last, page by
 * page; rows read back over a margin are not emitted twice; a crash inside a poll resumes after its
 * last committed page; `edge-agent sql test` runs the statement.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testSqlCollector } from '../../../../agent/collectors/sql/check.js';
import type { QueryPage, SqlSource } from '../../../../agent/databases/dialect.js';
import { pollQuery, queryCheckpointKey, type QueryCapture, type QueryCheckpoint } from '../../../../agent/collectors/sql/query.js';
import { sqlSchema, type QueryConfig, type SqlConfig } from '../../../../agent/collectors/sql/schema.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import type { TestDatabase } from '../../../helpers/sql-databases.js';
import { closeSqlFixture, openSqlFixture } from '../../../helpers/sql-fixture.js';
import { makeTempDir } from '../../../helpers/tmp.js';

interface Rec {
  id: string;
  data: { op: string; table: string; key: Record<string, unknown>; version: string; schema_version: string; values: Record<string, unknown> };
}

const DDL = {
  pg: [
    'CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)',
    'CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, changed_at timestamp(6) NOT NULL)',
  ],
  mysql: [
    'CREATE TABLE customers (id int PRIMARY KEY, name varchar(40) NOT NULL) ENGINE=InnoDB',
    'CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status varchar(20) NOT NULL, changed_at datetime(6) NOT NULL) ENGINE=InnoDB',
  ],
};

/** A join over a margin of one minute before :last (late commits), as the README suggests. */
const JOIN = {
  pg: `SELECT o.id AS order_id, c.name AS customer, o.status, o.changed_at FROM orders o JOIN customers c ON c.id = o.customer_id
        WHERE o.changed_at >= CAST(:last AS timestamp) - interval '1 minute'`,
  mysql: `SELECT o.id AS order_id, c.name AS customer, o.status, o.changed_at FROM orders o JOIN customers c ON c.id = o.customer_id
        WHERE o.changed_at >= CAST(:last AS DATETIME(6)) - INTERVAL 1 MINUTE`,
};

for (const driver of ['pg', 'mysql'] as const) {
  describe(`sql collector, mode query, on ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} (real server)`, () => {
    let f: Awaited<ReturnType<typeof openSqlFixture>>;
    let db: TestDatabase;
    let outbox: Outbox;
    let tmp: ReturnType<typeof makeTempDir>;

    beforeEach(async () => {
      f = await openSqlFixture(driver, [...DDL[driver], `INSERT INTO customers VALUES (1, 'Acme'), (2, 'Globex')`], 'sql-query-');
      ({ db, outbox, tmp } = f);
    });
    afterEach(() => closeSqlFixture(f));

    function config(entry: Record<string, unknown> = {}): SqlConfig {
      return sqlSchema.parse({
        type: 'sql', name: 'erp', driver, connection: db.connection, batch_size: 2,
        tables: [{ mode: 'query', name: 'order_view', query: JOIN[driver], key: ['order_id'], version_column: 'changed_at', start: '1970-01-01 00:00:00', ...entry }],
      });
    }
    function capture(cfg = config(), source: SqlSource = f.source): QueryCapture {
      const host = testHost(outbox, cfg, tmp.dir);
      return { query: cfg.tables[0] as QueryConfig, source, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: cfg.batch_size };
    }
    const records = () => outbox.readPending('erp', 0, 100_000).map((r) => JSON.parse(r.payload) as Rec);
    const poll = (c: QueryCapture) => pollQuery(c, new AbortController().signal);
    const order = (id: number, customer: number, status: string, at: string) => db.exec(`INSERT INTO orders VALUES (${id}, ${customer}, '${status}', '${at}')`);

    it('captures the join in version order, pages of 2; rows read back over the margin are not emitted twice; updates are updates', async () => {
      const c = capture();
      await order(1, 1, 'new', '2026-01-01 00:00:01');
      await order(2, 2, 'new', '2026-01-01 00:00:02.5');
      await order(3, 1, 'new', '2026-01-01 00:00:03');
      expect(await poll(c)).toBe(3);
      expect(await poll(c)).toBe(0); // all three read again (inside the minute before :last), unchanged
      await db.exec(`UPDATE orders SET status = 'picked', changed_at = '2026-01-01 00:00:04' WHERE id = 2`);
      await db.exec(`UPDATE customers SET name = 'Globex Corp' WHERE id = 2`); // not a version change: not seen
      expect(await poll(c)).toBe(1);
      const recs = records();
      expect(recs.map((r) => [r.data.op, r.data.table, r.data.key.order_id, r.data.values.customer, r.data.values.status])).toEqual([
        ['upsert', 'order_view', 1, 'Acme', 'new'],
        ['upsert', 'order_view', 2, 'Globex', 'new'],
        ['upsert', 'order_view', 3, 'Acme', 'new'],
        ['update', 'order_view', 2, 'Globex Corp', 'picked'],
      ]);
      expect(recs[1]!.data.version).toBe('2026-01-01T00:00:02.500000');
      expect(recs[1]!.id).toBe('sql:erp/order_view/2/2026-01-01T00:00:02.500000');
      expect(recs.every((r) => /^[0-9a-f]{16}$/.test(r.data.schema_version))).toBe(true);
      expect(outbox.getCheckpoint<QueryCheckpoint>('sql:erp', queryCheckpointKey('order_view'))).toMatchObject({ last: '2026-01-01T00:00:04.000000' });
    });

    it('an integer version (an id) binds :last as a number and orders past 9 → 10', async () => {
      for (let i = 1; i <= 11; i++) await order(i, 1, 'new', '2026-01-01 00:00:01');
      const cfg = config({ query: 'SELECT id, status FROM orders WHERE id > :last', key: ['id'], version_column: 'id', start: 0 });
      const c = capture(cfg);
      expect(await poll(c)).toBe(11);
      await order(12, 2, 'new', '2026-01-01 00:00:01');
      expect(await poll(c)).toBe(1);
      expect(records().map((r) => r.data.key.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect(outbox.getCheckpoint<QueryCheckpoint>('sql:erp', queryCheckpointKey('order_view'))?.last).toBe(12);
    });

    it('a poll cut short after a committed page resumes after it: nothing twice, nothing missed, even with a strict > :last', async () => {
      // Five rows with the same version: a strict `>` after a checkpoint moved to it would lose the rest.
      for (let i = 1; i <= 5; i++) await order(i, 1, 'new', '2026-01-01 00:00:05');
      const cfg = config({ query: 'SELECT id, status, changed_at FROM orders WHERE changed_at > :last', key: ['id'] });
      let pages = 0;
      const failing: SqlSource = { ...f.source, readQuery: async (p: QueryPage) => {
        if (++pages === 2) throw new Error('connection lost');
        return f.source.readQuery(p);
      } };
      await expect(poll(capture(cfg, failing))).rejects.toThrow('connection lost');
      const cp = outbox.getCheckpoint<QueryCheckpoint>('sql:erp', queryCheckpointKey('order_view'));
      expect(cp).toMatchObject({ last: '1970-01-01 00:00:00', after: { key: [2] } });
      expect(await poll(capture(cfg))).toBe(3);
      expect(records().map((r) => r.data.key.id)).toEqual([1, 2, 3, 4, 5]);
      expect(outbox.getCheckpoint<QueryCheckpoint>('sql:erp', queryCheckpointKey('order_view'))).toEqual({ last: '2026-01-01T00:00:05.000000', schema: expect.any(String) });
    });

    it('with a time_zone west of UTC, a zone-less version column pages and moves :last on the database\'s own values (the UTC form is for values only)', async () => {
      for (let i = 1; i <= 5; i++) await order(i, 1, 'new', `2026-01-15 1${i}:00:00`);
      const dialect = driver === 'pg' ? await import('../../../../agent/databases/dialects/pg.js') : await import('../../../../agent/databases/dialects/mysql.js');
      const zoned = await dialect.connect({ ...db.connection, poolSize: 1, connectTimeoutMs: 5_000, timeZone: 'America/New_York' });
      try {
        const cfg = config({ query: 'SELECT id, status, changed_at FROM orders WHERE changed_at >= :last', key: ['id'] });
        const c = capture(cfg, zoned);
        expect(await poll(c)).toBe(5);
        await order(6, 1, 'new', '2026-01-15 16:00:00');
        expect(await poll(c)).toBe(1);
        expect(records().map((r) => [r.data.key.id, r.data.values.changed_at])).toEqual([1, 2, 3, 4, 5, 6].map((i) => [i, `2026-01-15T${10 + i + 5}:00:00.000000Z`]));
        expect(outbox.getCheckpoint<QueryCheckpoint>('sql:erp', queryCheckpointKey('order_view'))?.last).toBe('2026-01-15T16:00:00.000000');
      } finally {
        await zoned.close();
      }
    });

    it('a row without a version stops the poll with an error that says how to fix the statement', async () => {
      await order(1, 1, 'new', '2026-01-01 00:00:01');
      const cfg = config({ query: 'SELECT id, status, NULL AS changed_at FROM orders WHERE id > :last', key: ['id'], start: 0 });
      await expect(poll(capture(cfg))).rejects.toMatchObject({ code: 'ERP_COLLECTOR_FAILED', message: expect.stringMatching(/no changed_at \(NULL\).*IS NOT NULL/) });
      expect(records()).toEqual([]);
    });

    it('edge-agent sql test runs the statement: ok, a key column not in the result FAILs, a broken statement FAILs with the server\'s words', async () => {
      await order(1, 1, 'new', '2026-01-01 00:00:01');
      const run = async (entry: Record<string, unknown>) => (await testSqlCollector(config(entry))).filter((r) => r.subject.startsWith('query'));
      expect(await run({})).toMatchObject([{ level: 'ok', subject: 'query order_view' }]);
      expect(await run({ key: ['id'] })).toMatchObject([{ level: 'FAIL', message: expect.stringMatching(/the statement fails .*[`"]?q[`"]?\.[`"]?id/), fix: expect.stringMatching(/key and version_column must be columns of its result/) }]);
      expect(await run({ query: 'SELECT * FROM no_such_view WHERE changed_at > :last' })).toMatchObject([{ level: 'FAIL', message: expect.stringMatching(/no_such_view/) }]);
      expect(await run({ start: '2030-01-01 00:00:00' })).toMatchObject([{ level: 'warn', message: expect.stringMatching(/no row after start.*nothing to capture yet/) }]);
    });
  });
}

describe('sql collector, mode query: config', () => {
  const parse = (entry: Record<string, unknown>, more: Record<string, unknown>[] = []) =>
    sqlSchema.safeParse({ type: 'sql', name: 'erp', driver: 'pg', connection: { database: 'd', user: 'u' }, tables: [{ mode: 'query', name: 'v', query: 'SELECT * FROM v WHERE t > :last', key: ['id'], version_column: 't', start: 0, ...entry }, ...more] });
  it('refuses a statement that is not one SELECT using :last, a missing start, and a name used twice', () => {
    expect(parse({}).success).toBe(true);
    expect(parse({ query: 'EXEC dbo.changes :last' }).error?.issues[0]).toMatchObject({ path: ['tables', 0, 'query'], message: expect.stringMatching(/must be a SELECT/) });
    expect(parse({ query: 'SELECT * FROM v' }).error?.issues[0]?.message).toMatch(/does not use :last/);
    expect(parse({ start: undefined }).error?.issues[0]?.path).toEqual(['tables', 0, 'start']);
    expect(parse({}, [{ table: 'v', key: ['id'], mode: 'incremental', version_column: 't' }]).error?.issues[0]?.message).toMatch(/v is listed twice/);
  });
});
