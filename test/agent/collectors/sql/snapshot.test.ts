import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SnapshotPage, SourceRow, SqlSource } from '../../../../agent/databases/dialect.js';
import { pollIncremental, type TableCapture } from '../../../../agent/collectors/sql/incremental.js';
import { incrementalTables, sqlSchema } from '../../../../agent/collectors/sql/schema.js';
import { initialLoad } from '../../../../agent/collectors/sql/snapshot.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import type { TestDatabase } from '../../../helpers/sql-databases.js';
import { closeSqlFixture, openSqlFixture } from '../../../helpers/sql-fixture.js';
import { makeTempDir } from '../../../helpers/tmp.js';

interface Rec {
  id: string;
  data: { op: string; key?: Record<string, unknown>; version?: string; values?: Record<string, unknown>; rows?: number };
}

const DDL = {
  pg: 'CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, updated_at timestamp(6) NOT NULL)',
  mysql: 'CREATE TABLE orders (id int PRIMARY KEY, status varchar(20) NOT NULL, updated_at datetime(6) NOT NULL) ENGINE=InnoDB',
};

/** A source whose snapshot pages run `hook(pageNumber)` first: changes land between pages, as in production. */
function withHook(source: SqlSource, hook: (page: number) => Promise<void>): SqlSource {
  let n = 0;
  return {
    readIncremental: (p) => source.readIncremental(p),
    readQuery: (p) => source.readQuery(p),
    maxVersion: (t, v) => source.maxVersion(t, v),
    existingKeys: (t, k, keys) => source.existingKeys(t, k, keys),
    close: () => source.close(),
    async readSnapshot(p: SnapshotPage): Promise<SourceRow[]> {
      await hook(++n);
      return source.readSnapshot(p);
    },
  };
}

for (const driver of ['pg', 'mysql'] as const) {
  describe(`sql collector, snapshot then changes, on ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} (real server)`, () => {
    let db: TestDatabase;
    let tmp: ReturnType<typeof makeTempDir>;
    let outbox: Outbox;
    let source: SqlSource;

    beforeEach(async () => {
      ({ db, tmp, outbox, source } = await openSqlFixture(driver, [DDL[driver], ...[1, 2, 3, 4, 5].map((i) => `INSERT INTO orders VALUES (${i}, 'new', '2026-01-01 00:00:0${i}')`)], 'sql-snapshot-'));
    });

    afterEach(() => closeSqlFixture({ db, tmp, outbox, source }));

    function capture(src: SqlSource): TableCapture {
      const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver, connection: db.connection, batch_size: 2, tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] });
      const host = testHost(outbox, cfg, tmp.dir);
      return { table: incrementalTables(cfg)[0]!, source: src, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: cfg.batch_size };
    }
    const records = () => outbox.readPending('erp', 0, 100_000).map((r) => JSON.parse(r.payload) as Rec);
    const summary = () => records().map((r) => (r.data.key ? `${r.data.op} ${r.data.key.id} ${r.data.values!.status}` : `${r.data.op}${r.data.rows === undefined ? '' : ` ${r.data.rows}`}`));

    it('loads every row between start and end markers, then hands over to changes with neither a gap nor a duplicate', async () => {
      const src = withHook(source, async (page) => {
        if (page !== 2) return;
        // After the first page (rows 1, 2): row 1 (read) and row 5 (not read yet) change, row 6 arrives.
        await db.exec(`UPDATE orders SET status = 'picked', updated_at = '2026-01-01 00:00:06' WHERE id = 1`);
        await db.exec(`UPDATE orders SET status = 'packed', updated_at = '2026-01-01 00:00:07' WHERE id = 5`);
        await db.exec(`INSERT INTO orders VALUES (6, 'new', '2026-01-01 00:00:08')`);
      });
      const c = capture(src);
      const signal = new AbortController().signal;
      await initialLoad(c, signal);
      await pollIncremental(c, signal);
      await pollIncremental(c, signal);
      expect(summary()).toEqual([
        'snapshot_start',
        'snapshot 1 new',
        'snapshot 2 new',
        'snapshot 3 new',
        'snapshot 4 new',
        'snapshot 5 packed', // read after its change: the change is in the snapshot, and not emitted again
        'snapshot 6 new',
        'snapshot_end 6',
        'update 1 picked', // changed after it was read
      ]);
      expect(await initialLoad(c, signal)).toBe(0); // done: never again
    });

    it('a snapshot stopped halfway resumes after the last committed key: one start, one end, every row once', async () => {
      const stop = new AbortController();
      const src = withHook(source, async (page) => {
        if (page === 2) stop.abort(); // as a crash after two committed pages
      });
      await expect(initialLoad(capture(src), stop.signal)).rejects.toThrow();
      expect(summary()).toEqual(['snapshot_start', 'snapshot 1 new', 'snapshot 2 new', 'snapshot 3 new', 'snapshot 4 new']);
      await initialLoad(capture(source), new AbortController().signal);
      expect(summary()).toEqual(['snapshot_start', 'snapshot 1 new', 'snapshot 2 new', 'snapshot 3 new', 'snapshot 4 new', 'snapshot 5 new', 'snapshot_end 5']);
    });
  });
}

