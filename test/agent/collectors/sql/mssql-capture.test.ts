import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MssqlCapture, type MssqlCheckpoint } from '../../../../agent/collectors/sql/mssql-capture.js';
import { mssqlTables, sqlSchema } from '../../../../agent/collectors/sql/schema.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { FakeSqlServer, rvHex, TABLE } from '../../../helpers/mssql-fake.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { makeTempDir } from '../../../helpers/tmp.js';

/**
 * The SQL Server capture engine against an in-memory SQL Server (test/helpers/mssql-fake.ts, which
 * asserts every statement is the builder's) and a real outbox.
 */

interface Rec {
  id: string;
  data: { op: string; table?: string; key?: { id: number }; version?: string; values?: Record<string, unknown>; rows?: number; reason?: string; saved_version?: string; min_valid_version?: string; schema_version?: string; schema_changed?: true };
}

describe('SQL Server capture (fake server, real outbox)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let outbox: Outbox;
  let db: FakeSqlServer;
  const signal = new AbortController().signal;

  beforeEach(() => {
    tmp = makeTempDir('mssql-capture-');
    outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
    db = new FakeSqlServer();
    for (let i = 1; i <= 5; i++) db.insert(i, 'new', `${i}.50`);
  });

  afterEach(() => {
    outbox.close();
    tmp.cleanup();
  });

  /** A capture instance as the collector makes one (a new one is a restart on the same outbox). */
  function capture(table: Record<string, unknown>, batchSize = 2, onSchemaChange?: (table: string, from: string, to: string) => void): MssqlCapture {
    const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mssql', connection: { database: 'erp', user: 'edge' }, batch_size: batchSize, tables: [{ table: TABLE, ...table }] });
    const host = testHost(outbox, cfg, tmp.dir);
    return new MssqlCapture({ table: mssqlTables(cfg)[0]!, runner: db, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize, onSchemaChange });
  }
  const records = () => outbox.readPending('erp', 0, 100_000).map((r) => JSON.parse(r.payload) as Rec);
  const summary = () => records().map((r) => (r.data.key ? `${r.data.op} ${r.data.key.id}${r.data.values?.status ? ` ${r.data.values.status}` : ''}` : `${r.data.op}${r.data.rows === undefined ? '' : ` ${r.data.rows}`}`));
  const checkpoint = () => outbox.getCheckpoint<MssqlCheckpoint>('sql:erp', `table:${TABLE}`);

  describe('change_tracking', () => {
    it('snapshots first, then hands over to the changes with neither a gap nor a duplicate; deletes carry only the key', async () => {
      db.hook = (name) => {
        if (name !== 'snapshot(2)') return;
        // After the first chunk (rows 1, 2): row 1 (read) and row 5 (not read yet) change, row 6 arrives.
        db.update(1, 'picked');
        db.update(5, 'packed');
        db.insert(6, 'new');
      };
      const c = capture({ mode: 'change_tracking' });
      await c.poll(signal);
      expect(summary()).toEqual([
        'snapshot_start',
        'snapshot 1 new',
        'snapshot 2 new',
        'snapshot 3 new',
        'snapshot 4 new',
        'snapshot 5 packed', // read after its change: not emitted again by the poll
        'snapshot 6 new',
        'snapshot_end 6',
        'update 1 picked', // changed after it was read
      ]);
      // The versions: the snapshot's row 5 has the version the change carries, so the same id.
      const r5 = records().find((r) => r.data.key?.id === 5)!;
      expect(r5.data.version).toBe('17');
      expect(r5.id).toBe(`sql:erp/${TABLE}/5/17`);
      expect(r5.data.values).toEqual({ id: 5, status: 'packed', amount: '5.50', rv: expect.stringMatching(/^0x[0-9A-F]{16}$/) });
      expect(r5.data.schema_version).toMatch(/^[0-9a-f]{16}$/);
      // The min-valid check and the CHANGETABLE read ran in one snapshot transaction, from the hand-over version.
      expect(db.log.slice(db.log.indexOf('begin'))).toEqual(['begin', 'ct.versions', 'ct.poll(15,18)', 'commit']);
      expect(checkpoint()).toEqual({ mode: 'change_tracking', position: '18', schema: expect.stringMatching(/^[0-9a-f]{16}$/) });

      db.delete(2);
      db.update(3, 'shipped');
      await c.poll(signal);
      const last = records().slice(-2);
      expect(last.map((r) => r.data.op)).toEqual(['delete', 'update']);
      expect(last[0]!.data).toMatchObject({ op: 'delete', table: TABLE, key: { id: 2 }, version: '19', values: { id: 2 } });
      expect(Object.keys(last[0]!.data.values!)).toEqual(['id']);
      // Nothing new: one transaction, no CHANGETABLE read, nothing appended.
      const before = records().length;
      db.log.length = 0;
      await c.poll(signal);
      expect(db.log).toEqual(['begin', 'ct.versions', 'commit']);
      expect(records()).toHaveLength(before);
    });

    it('a checkpoint below CHANGE_TRACKING_MIN_VALID_VERSION: one gap record and a re-snapshot, nothing skipped silently', async () => {
      const c = capture({ mode: 'change_tracking' });
      await c.poll(signal);
      expect(checkpoint()?.position).toBe('15');
      const n = records().length;
      // The agent was away: changes happened and the cleanup removed their change rows.
      db.update(1, 'picked');
      db.delete(4);
      db.cleanUp({ ctMinValid: 17n });
      await c.poll(signal);
      const after = records().slice(n);
      expect(after.map((r) => r.data.op)).toEqual(['gap', 'snapshot_start', 'snapshot', 'snapshot', 'snapshot', 'snapshot', 'snapshot_end']);
      expect(after[0]!.data).toMatchObject({ op: 'gap', table: TABLE, reason: 'below_min_valid', saved_version: '15', min_valid_version: '17' });
      expect(summary().slice(n + 2)).toEqual(['snapshot 1 picked', 'snapshot 2 new', 'snapshot 3 new', 'snapshot 5 new', 'snapshot_end 4']);
      expect(checkpoint()).toEqual({ mode: 'change_tracking', position: '17', schema: expect.stringMatching(/^[0-9a-f]{16}$/) });
      expect(records().filter((r) => r.data.op === 'gap')).toHaveLength(1);
      // Capture goes on from the re-snapshot's version.
      db.update(2, 'packed');
      await c.poll(signal);
      expect(summary().at(-1)).toBe('update 2 packed');
    });

    it('a crash mid-snapshot: a new instance on the same outbox resumes after the last committed chunk, every row once', async () => {
      db.insert(6, 'new');
      db.insert(7, 'new');
      db.failOn = { prefix: 'snapshot(', skip: 2 }; // the third chunk (after key 4) fails
      await expect(capture({ mode: 'change_tracking' }).poll(signal)).rejects.toThrow(/ECONNRESET/);
      expect(summary()).toEqual(['snapshot_start', 'snapshot 1 new', 'snapshot 2 new', 'snapshot 3 new', 'snapshot 4 new']);
      db.log.length = 0;
      await capture({ mode: 'change_tracking' }).poll(signal); // the restarted agent
      expect(db.log.filter((l) => l.startsWith('snapshot('))).toEqual(['snapshot(4)', 'snapshot(6)']);
      expect(summary()).toEqual(['snapshot_start', ...[1, 2, 3, 4, 5, 6, 7].map((i) => `snapshot ${i} new`), 'snapshot_end 7']);
    });

    it('a poll of more changes than batch_size: pages of their own, the last with the new checkpoint; a crash between pages repeats none', async () => {
      await capture({ mode: 'change_tracking' }).poll(signal);
      const n = records().length;
      for (let i = 1; i <= 5; i++) db.update(i, 'picked'); // versions 16..20
      // An instance whose third append (the third page) fails, as a crash there would.
      const cfg = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mssql', connection: { database: 'erp', user: 'edge' }, batch_size: 2, tables: [{ table: TABLE, mode: 'change_tracking' }] });
      const writer = testHost(outbox, cfg, tmp.dir).ctx.writer;
      let appends = 0;
      const crashing = { ...writer, append: (...a: Parameters<typeof writer.append>) => (++appends === 3 ? Promise.reject(new Error('crash')) : writer.append(...a)) };
      const c = new MssqlCapture({ table: mssqlTables(cfg)[0]!, runner: db, writer: crashing, sourceId: writer.source, stream: 'erp', batchSize: 2 });
      await expect(c.poll(signal)).rejects.toThrow('crash');
      expect(db.log.at(-1)).toBe('rollback');
      expect(summary().slice(n)).toEqual(['update 1 picked', 'update 2 picked', 'update 3 picked', 'update 4 picked']);
      expect(checkpoint()?.position).toBe('15'); // pages before the last keep the old position
      await capture({ mode: 'change_tracking' }).poll(signal);
      expect(summary().slice(n)).toEqual([1, 2, 3, 4, 5].map((i) => `update ${i} picked`));
      expect(checkpoint()?.position).toBe('20');
    });

    it('a checkpoint ahead of the database (restored from a backup) is a gap too', async () => {
      const c = capture({ mode: 'change_tracking' });
      await c.poll(signal);
      db.ctVersion = 12n; // the database went back in time
      await c.poll(signal);
      expect(records().filter((r) => r.data.op === 'gap').map((r) => r.data)).toEqual([expect.objectContaining({ reason: 'ahead_of_database', saved_version: '15' })]);
      expect(checkpoint()).toEqual({ mode: 'change_tracking', position: '12', schema: expect.stringMatching(/^[0-9a-f]{16}$/) });
    });

    it('a column added: records carry the new schema_version, the first is flagged schema_changed, the change is reported once (a restart included)', async () => {
      const changes: string[][] = [];
      const c = capture({ mode: 'change_tracking' }, 10, (table, from, to) => changes.push([table, from, to]));
      await c.poll(signal);
      const before = records().find((r) => r.data.op === 'snapshot')!.data.schema_version;
      db.cols.push({ name: 'note', type: 'nvarchar', length: 100 });
      db.update(1, 'picked');
      await c.poll(signal);
      await c.poll(signal);
      const last = records().at(-1)!.data;
      expect(last).toMatchObject({ op: 'update', values: { id: 1, status: 'picked', note: null } });
      expect(last.schema_version).not.toBe(before);
      expect(last.schema_changed).toBe(true); // the first record captured with the new columns is flagged
      expect(records().filter((r) => r.data.schema_changed)).toHaveLength(1);
      expect(changes).toEqual([[TABLE, before, last.schema_version]]);
      // A new instance (a restart) knows the version from the checkpoint: nothing flagged again.
      db.update(2, 'picked');
      await capture({ mode: 'change_tracking' }, 10, (table, from, to) => changes.push([table, from, to])).poll(signal);
      expect(records().at(-1)!.data).toMatchObject({ op: 'update', key: { id: 2 } });
      expect(records().at(-1)!.data.schema_changed).toBeUndefined();
      expect(changes).toHaveLength(1);
    });

    it('initial: none captures only the changes from now on', async () => {
      const c = capture({ mode: 'change_tracking', initial: 'none' });
      await c.poll(signal);
      expect(records()).toEqual([]);
      db.insert(6, 'new');
      await c.poll(signal);
      expect(summary()).toEqual(['insert 6 new']);
    });
  });

  describe('rowversion', () => {
    it('reads below MIN_ACTIVE_ROWVERSION() only: a transaction that took its rowversion first and commits late is not passed over', async () => {
      const c = capture({ mode: 'rowversion', rowversion_column: 'rv' });
      await c.poll(signal);
      expect(summary()).toEqual(['snapshot_start', 'snapshot 1 new', 'snapshot 2 new', 'snapshot 3 new', 'snapshot 4 new', 'snapshot 5 new', 'snapshot_end 5']);
      const start = checkpoint()!.position;
      expect(start).toBe(rvHex(0x7d5n)); // the baseline: the next rowversion at the snapshot's start
      const late = db.beginUpdate(1, 'late'); // takes 0x7D5, commits later
      db.update(2, 'quick'); // 0x7D6, committed
      await c.poll(signal);
      expect(summary().slice(7)).toEqual([]); // 0x7D6 is above MIN_ACTIVE_ROWVERSION() (0x7D5): not yet
      expect(checkpoint()!.position).toBe(start);
      late.commit();
      await c.poll(signal);
      expect(summary().slice(7)).toEqual(['update 1 late', 'update 2 quick']);
      expect(records().at(-1)!.data.version).toBe(rvHex(0x7d6n));
      expect(checkpoint()!.position).toBe(rvHex(0x7d7n));
      // Polls 2 and 3 read from the baseline; poll 3's full page (2 rows) asks for the next one.
      expect(db.log.filter((l) => l.startsWith('rv.poll'))).toEqual([`rv.poll(${start})`, `rv.poll(${start})`, `rv.poll(${start})`, `rv.poll(${rvHex(0x7d7n)})`]);
    });

    it('a key captured before is an update, a new key an insert (a rowversion cannot tell them apart)', async () => {
      const c = capture({ mode: 'rowversion', rowversion_column: 'rv' }, 10);
      await c.poll(signal);
      db.insert(6, 'new');
      db.update(3, 'picked');
      await c.poll(signal);
      expect(summary().filter((s) => !s.startsWith('snapshot'))).toEqual(['insert 6 new', 'update 3 picked']);
    });

    it('with chunks: a row changed before its chunk is read comes once, in the snapshot', async () => {
      db.hook = (name) => {
        if (name === 'snapshot(2)') db.update(4, 'packed');
      };
      const c = capture({ mode: 'rowversion', rowversion_column: 'rv' });
      await c.poll(signal);
      expect(summary()).toEqual(['snapshot_start', 'snapshot 1 new', 'snapshot 2 new', 'snapshot 3 new', 'snapshot 4 packed', 'snapshot 5 new', 'snapshot_end 5']);
    });
  });

  describe('rowversion deletes (reconciliation)', () => {
    it('a captured key without a row becomes one delete record and is forgotten: inserted again, it is an insert', async () => {
      const c = capture({ mode: 'rowversion', rowversion_column: 'rv' }, 10);
      await c.poll(signal);
      db.delete(2);
      db.delete(4);
      expect(await c.reconcile(signal)).toBe(2);
      expect(db.log.filter((l) => l.startsWith('keys('))).toEqual(['keys(1,2,3,4,5)']);
      const deletes = records().filter((r) => r.data.op === 'delete');
      expect(deletes.map((r) => r.data.key)).toEqual([{ id: 2 }, { id: 4 }]);
      expect(deletes[0]!.data.version).toMatch(/^deleted@/);
      expect(await c.reconcile(signal)).toBe(0); // forgotten: not reported twice
      db.insert(2, 'again');
      await c.poll(signal);
      expect(summary().at(-1)).toBe('insert 2 again');
    });

    it('a key the server cannot match back as captured is refused, not probed', async () => {
      const c = capture({ mode: 'rowversion', rowversion_column: 'rv', key: ['rv'] }, 10);
      await expect(c.reconcile(signal)).rejects.toThrow(/deletes cannot be looked for in dbo\.Orders: key column\(s\) rv cannot be matched back as captured; set reconcile_interval: 0/);
      expect(db.log).toEqual([]);
    });
  });

  describe('cdc', () => {
    it('snapshot, then inserts, updates (after image only) and deletes (with their values) in LSN order', async () => {
      const c = capture({ mode: 'cdc' });
      await c.poll(signal);
      const n = records().length;
      db.update(1, 'picked');
      db.delete(2);
      db.insert(6, 'new');
      await c.poll(signal);
      expect(summary().slice(n)).toEqual(['update 1 picked', 'delete 2 new', 'insert 6 new']);
      const del = records()[n + 1]!;
      expect(del.data.values).toEqual({ id: 2, status: 'new', amount: '2.50', rv: expect.stringMatching(/^0x/) });
      expect(del.data.version).toMatch(/^0x[0-9A-F]{20}:0x[0-9A-F]{20}$/);
      expect(checkpoint()).toEqual({ mode: 'cdc', position: `0x${db.cdcMaxLsn.toString(16).toUpperCase().padStart(20, '0')}`, schema: expect.stringMatching(/^[0-9a-f]{16}$/) });
      // Caught up: bounds only.
      db.log.length = 0;
      await c.poll(signal);
      expect(db.log.map((l) => l.replace(/\(.*\)/, ''))).toEqual(['cdc.bounds']);
    });

    it('a checkpoint below the capture instance min LSN: one gap record and a re-snapshot', async () => {
      const c = capture({ mode: 'cdc' });
      await c.poll(signal);
      const saved = checkpoint()!.position;
      const n = records().length;
      db.update(3, 'picked');
      db.cleanUp({ cdcMinLsn: db.cdcMaxLsn + 1n });
      await c.poll(signal);
      const after = records().slice(n);
      expect(after[0]!.data).toMatchObject({ op: 'gap', reason: 'below_min_valid', saved_version: saved });
      expect(summary().slice(n + 1)).toEqual(['snapshot_start', 'snapshot 1 new', 'snapshot 2 new', 'snapshot 3 picked', 'snapshot 4 new', 'snapshot 5 new', 'snapshot_end 5']);
      expect(db.log.some((l) => l.startsWith('cdc.poll'))).toBe(false); // the gap's range was never read as if complete
    });
  });

  it('a table that does not exist, a change tracking key other than the primary key, or a mode changed under a checkpoint, is an error, not a silent start over', async () => {
    const missing = sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mssql', connection: { database: 'erp', user: 'edge' }, tables: [{ table: 'dbo.Nope', mode: 'change_tracking' }] });
    const host = testHost(outbox, missing, tmp.dir);
    const c = new MssqlCapture({ table: mssqlTables(missing)[0]!, runner: db, writer: host.ctx.writer, sourceId: host.ctx.writer.source, stream: 'erp', batchSize: 2 });
    await expect(c.poll(signal)).rejects.toThrow(/dbo\.Nope not found/);
    await expect(capture({ mode: 'change_tracking', key: ['status'] }).poll(signal)).rejects.toThrow(/change tracking identifies the rows of dbo\.Orders by its primary key \(id\)/);
    await capture({ mode: 'change_tracking' }).poll(signal);
    await expect(capture({ mode: 'cdc' }).poll(signal)).rejects.toThrow(/captured with mode change_tracking, now configured as cdc/);
  });
});
