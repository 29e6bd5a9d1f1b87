/**
 * mode logical (PostgreSQL logical decoding, pgoutput) on the test's own cluster (wal_level=logical):
 * inserts, updates, deletes and truncates arrive in commit order with their ops; a restart on the
 * same outbox emits nothing twice and misses nothing; a crash after the append and before the slot
 * is advanced (or in the middle of a transaction bigger than a page) replays without duplicates; a
 * dropped slot is a gap record.
 */
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { Writer } from '../../../../agent/host/writer.js';
import { fullXid, LogicalCapture, parseSnapshot, visible } from '../../../../agent/collectors/sql/logical.js';
import { sqlSchema, type SqlConfig } from '../../../../agent/collectors/sql/schema.js';
import { create } from '../../../../agent/collectors/sql/sql.js';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost } from '../../../helpers/host.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { useLogicalCluster } from '../../../helpers/pg-cluster.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const own = useLogicalCluster();
const { exec, withClient } = own;
let tmp: ReturnType<typeof makeTempDir> | undefined;
let dbCount = 0;

afterEach(() => tmp?.cleanup());

/** A database of its own with the orders table. */
async function ordersDb(): Promise<string> {
  const name = `logical_${++dbCount}`;
  await exec('postgres', `CREATE DATABASE ${name}`);
  await exec(name, 'CREATE TABLE orders (id int PRIMARY KEY, status text, updated_at timestamptz)');
  return name;
}

function config(database: string, name: string, extra: Record<string, unknown> = {}): SqlConfig {
  return sqlSchema.parse({ type: 'sql', name, driver: 'pg', connection: { ...own.cluster.connection, database, connect_timeout: '2s' }, poll_interval: '100ms', retry: { initial: '100ms', max: '400ms' }, logical: { tables: [{ table: 'orders', initial: 'none' }] }, ...extra });
}

interface Rec { id: string; data: { op: string; table: string; key?: { id: number; [k: string]: unknown }; version?: string; values?: Record<string, unknown>; slot?: string; schema_version?: string; schema_changed?: true; moved_to?: { id: number } } }
const records = (outbox: Outbox, stream: string): Rec[] => outbox.readPending(stream, 0, 10_000).map((r) => JSON.parse(r.payload) as Rec);
const changes = (outbox: Outbox, stream: string) => records(outbox, stream).filter((r) => r.data.key).map((r) => `${r.data.op} ${r.data.key!.id}`);
/** `op id` per record, `op` alone for markers and gaps. */
const ops = (outbox: Outbox, stream: string) => records(outbox, stream).map((r) => (r.data.key ? `${r.data.op} ${r.data.key.id}` : r.data.op));

async function confirmedFlush(database: string, slot: string): Promise<string> {
  return withClient(database, async (c) => (await c.query<{ l: string }>('SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]!.l);
}

describe('sql collector, mode logical (own PostgreSQL cluster, wal_level=logical)', () => {
  it('captures inserts, updates and deletes in commit order, typed; a restart emits nothing twice and misses nothing', async () => {
    const db = await ordersDb();
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'erp');
    try {
      let host = testHost(outbox, cfg, tmp.dir);
      let collector = create(cfg, host.ctx);
      await collector.start();
      try {
        await waitFor('the slot made', () => Number(collector.stats!().counters?.['logical.polls']) >= 1, 15_000);
        await exec(db, `INSERT INTO orders VALUES (1, 'new', '2026-01-01 00:00:01.123456+00')`);
        await exec(db, `UPDATE orders SET status = 'paid' WHERE id = 1`);
        await exec(db, 'BEGIN', `INSERT INTO orders VALUES (2, 'new', now())`, `INSERT INTO orders VALUES (3, 'new', now())`, `UPDATE orders SET status = 'held' WHERE id = 2`, 'COMMIT');
        // Two transactions committing in the opposite order of their starts: commit order wins.
        await withClient(db, async (a) => {
          await withClient(db, async (b) => {
            await a.query('BEGIN');
            await a.query(`INSERT INTO orders VALUES (10, 'a', now())`);
            await b.query('BEGIN');
            await b.query(`INSERT INTO orders VALUES (20, 'b', now())`);
            await b.query('COMMIT');
            await a.query('COMMIT');
          });
        });
        await exec(db, 'DELETE FROM orders WHERE id = 1');
        const expected = ['insert 1', 'update 1', 'insert 2', 'insert 3', 'update 2', 'insert 20', 'insert 10', 'delete 1'];
        await waitFor('all changes', () => changes(outbox, 'erp').length >= expected.length, 15_000);
        expect(changes(outbox, 'erp')).toEqual(expected);
        const first = records(outbox, 'erp')[0]!;
        expect(first.data).toMatchObject({ op: 'insert', table: 'public.orders', key: { id: 1 }, values: { id: 1, status: 'new', updated_at: '2026-01-01T00:00:01.123456Z' } });
        expect(first.data.version).toMatch(/^[0-9A-F]+\/[0-9A-F]+:1$/);
        const multi = records(outbox, 'erp').filter((r) => r.data.key && [2, 3].includes(r.data.key.id)).map((r) => r.data.version!);
        expect(new Set(multi.map((v) => v.split(':')[0])).size).toBe(1); // one transaction, one commit LSN
        expect(multi.map((v) => v.split(':')[1])).toEqual(['1', '2', '3']);
        await waitFor('lag reported', () => collector.stats!().counters?.['logical.slot_lag_bytes'] !== undefined, 5_000);
      } finally {
        host.abort.abort();
        await collector.stop();
      }
      // Changes while the agent is down, then a new instance on the same outbox.
      await exec(db, `INSERT INTO orders VALUES (30, 'new', now())`, `UPDATE orders SET status = 'done' WHERE id = 3`);
      host = testHost(outbox, cfg, tmp.dir);
      collector = create(cfg, host.ctx);
      await collector.start();
      try {
        await waitFor('changes made while down', () => changes(outbox, 'erp').length >= 10, 15_000);
        await exec(db, 'TRUNCATE orders');
        await waitFor('the truncate', () => records(outbox, 'erp').some((r) => r.data.op === 'truncate'), 15_000);
        await new Promise((r) => setTimeout(r, 500)); // more polls: nothing more may come
        expect(changes(outbox, 'erp')).toEqual(['insert 1', 'update 1', 'insert 2', 'insert 3', 'update 2', 'insert 20', 'insert 10', 'delete 1', 'insert 30', 'update 3']);
        const all = records(outbox, 'erp');
        expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
        expect(all.filter((r) => r.data.op === 'truncate')).toHaveLength(1);
      } finally {
        host.abort.abort();
        await collector.stop();
      }
    } finally {
      outbox.close();
    }
  }, 90_000);

  it('a crash after the append and before the slot advance replays; the checkpoint skips what is in the outbox', async () => {
    const db = await ordersDb();
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'crash');
    const host = testHost(outbox, cfg, tmp.dir);
    try {
      const failing = new LogicalCapture({ cfg, writer: host.ctx.writer, advance: () => Promise.reject(new Error('killed before the advance')) });
      await failing.setup();
      const before = await confirmedFlush(db, failing.slot);
      await exec(db, `INSERT INTO orders VALUES (1, 'new', now())`, `UPDATE orders SET status = 'paid' WHERE id = 1`);
      await expect(failing.poll(new AbortController().signal)).rejects.toThrow(/killed before the advance/);
      await failing.close();
      expect(changes(outbox, 'crash')).toEqual(['insert 1', 'update 1']);
      expect(await confirmedFlush(db, failing.slot)).toBe(before); // the slot still holds them: they will be peeked again

      const next = new LogicalCapture({ cfg, writer: host.ctx.writer });
      try {
        expect(await next.poll(new AbortController().signal)).toBe(0);
        expect(changes(outbox, 'crash')).toEqual(['insert 1', 'update 1']);
        expect(await confirmedFlush(db, next.slot)).not.toBe(before); // advanced past the replay
        await exec(db, 'DELETE FROM orders WHERE id = 1');
        expect(await next.poll(new AbortController().signal)).toBe(1);
        expect(changes(outbox, 'crash')).toEqual(['insert 1', 'update 1', 'delete 1']);
      } finally {
        await next.close();
      }
    } finally {
      host.abort.abort();
      outbox.close();
    }
  }, 60_000);

  it('a crash in the middle of a transaction bigger than a page resumes after its last appended change', async () => {
    const db = await ordersDb();
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'pages', { batch_size: 2 });
    const host = testHost(outbox, cfg, tmp.dir);
    try {
      let appends = 0;
      const w = host.ctx.writer;
      // The second page's append fails (the process dies): the first page is in, with its checkpoint.
      const crashing: Writer = { ...w, append: (r, cp, o) => (++appends === 2 ? Promise.reject(new Error('killed during the append')) : w.append(r, cp, o)) };
      const first = new LogicalCapture({ cfg, writer: w });
      await first.setup();
      await first.close();
      await exec(db, 'BEGIN', ...[1, 2, 3, 4, 5].map((i) => `INSERT INTO orders VALUES (${i}, 'new', now())`), 'COMMIT');
      const dying = new LogicalCapture({ cfg, writer: crashing });
      await expect(dying.poll(new AbortController().signal)).rejects.toThrow(/killed during the append/);
      await dying.close();
      expect(changes(outbox, 'pages')).toEqual(['insert 1', 'insert 2']);
      const next = new LogicalCapture({ cfg, writer: w });
      try {
        expect(await next.poll(new AbortController().signal)).toBe(3);
      } finally {
        await next.close();
      }
      expect(changes(outbox, 'pages')).toEqual(['insert 1', 'insert 2', 'insert 3', 'insert 4', 'insert 5']);
    } finally {
      host.abort.abort();
      outbox.close();
    }
  }, 60_000);

  it('a slot that disappeared is a gap record naming it; capture goes on with a new slot', async () => {
    const db = await ordersDb();
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'gone', { logical: { tables: [{ table: 'orders' }] } }); // initial: snapshot
    const host = testHost(outbox, cfg, tmp.dir);
    try {
      const a = new LogicalCapture({ cfg, writer: host.ctx.writer });
      await exec(db, `INSERT INTO orders VALUES (1, 'before the slot', now())`);
      await a.setup();
      await exec(db, `INSERT INTO orders VALUES (2, 'new', now())`);
      expect(await a.poll(new AbortController().signal)).toBe(4); // start, 1, 2, end: the insert of 2 is in the snapshot already
      await a.close();
      await exec(db, `SELECT pg_drop_replication_slot('erp_edge_gone')`);
      const b = new LogicalCapture({ cfg, writer: host.ctx.writer });
      try {
        await b.setup();
        await exec(db, `INSERT INTO orders VALUES (3, 'new', now())`);
        await b.poll(new AbortController().signal);
      } finally {
        await b.close();
      }
      const all = records(outbox, 'gone');
      expect(ops(outbox, 'gone')).toEqual([
        'snapshot_start', 'snapshot 1', 'snapshot 2', 'snapshot_end',
        'gap',
        // Changes between the two slots are lost to decoding: the table is loaded again.
        'snapshot_start', 'snapshot 1', 'snapshot 2', 'snapshot 3', 'snapshot_end',
      ]);
      expect(all[4]!.data).toMatchObject({ op: 'gap', slot: 'erp_edge_gone', resnapshot: true, resnapshot_tables: ['public.orders'] });
      expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
    } finally {
      host.abort.abort();
      outbox.close();
    }
  }, 60_000);

  it('a slot the server invalidated (past max_slot_wal_keep_size) is a gap record; a new slot takes over', async () => {
    const db = await ordersDb();
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'lost');
    const host = testHost(outbox, cfg, tmp.dir);
    try {
      const a = new LogicalCapture({ cfg, writer: host.ctx.writer });
      await a.setup();
      await a.close();
      await exec('postgres', `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`, 'SELECT pg_reload_conf()');
      try {
        // WAL past the limit while the slot is not advanced, then a checkpoint removes it.
        await waitFor('the slot invalidated', async () => {
          await exec(db, `INSERT INTO orders SELECT g, repeat('x', 200), now() FROM generate_series(1, 20000) g ON CONFLICT (id) DO UPDATE SET status = excluded.status || 'y'`, 'SELECT pg_switch_wal()', 'CHECKPOINT');
          return withClient(db, async (c) => (await c.query<{ s: string }>(`SELECT wal_status AS s FROM pg_replication_slots WHERE slot_name = 'erp_edge_lost'`)).rows[0]?.s === 'lost');
        }, 30_000);
      } finally {
        await exec('postgres', 'ALTER SYSTEM RESET max_slot_wal_keep_size', 'SELECT pg_reload_conf()');
      }
      const b = new LogicalCapture({ cfg, writer: host.ctx.writer });
      try {
        await b.setup();
        await exec(db, 'DELETE FROM orders WHERE id = 1');
        await b.poll(new AbortController().signal);
      } finally {
        await b.close();
      }
      const all = records(outbox, 'lost');
      expect(ops(outbox, 'lost')).toEqual(['gap', 'delete 1']);
      expect(all[0]!.data).toMatchObject({ op: 'gap', slot: 'erp_edge_lost', resnapshot: false });
      expect(JSON.stringify(all[0]!.data)).toMatch(/invalidated/);
    } finally {
      host.abort.abort();
      outbox.close();
    }
  }, 90_000);

  it('a table added to the config later is added to the existing publication', async () => {
    const db = await ordersDb();
    await exec(db, 'CREATE TABLE erp_lines (order_id int, line int, qty numeric(12,3), PRIMARY KEY (order_id, line))');
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const first = config(db, 'grow');
    const host = testHost(outbox, first, tmp.dir);
    try {
      const a = new LogicalCapture({ cfg: first, writer: host.ctx.writer });
      await a.setup();
      await a.close();
      await exec(db, `INSERT INTO erp_lines VALUES (6, 1, 1.000)`, `INSERT INTO orders VALUES (6, 'before', now())`);
      // erp_lines (initial: snapshot) is new to this capture: its rows are loaded; orders was begun before.
      const grown = config(db, 'grow', { logical: { tables: [{ table: 'orders', initial: 'none' }, { table: 'public.erp_lines', stream: 'lines' }] } });
      const b = new LogicalCapture({ cfg: grown, writer: host.ctx.writer });
      try {
        await b.setup();
        expect(await b.poll(new AbortController().signal)).toBe(4); // the insert of order 6; start, line (6, 1), end
        await exec(db, `INSERT INTO erp_lines VALUES (7, 1, 2.500)`, `INSERT INTO orders VALUES (7, 'new', now())`);
        expect(await b.poll(new AbortController().signal)).toBe(2);
        await b.close();
        await b.setup(); // again: nothing more to load
        expect(await b.poll(new AbortController().signal)).toBe(0);
      } finally {
        await b.close();
      }
      expect(records(outbox, 'lines').map((r) => r.data.op)).toEqual(['snapshot_start', 'snapshot', 'snapshot_end', 'insert']);
      expect(records(outbox, 'lines')[1]!.data).toMatchObject({ table: 'public.erp_lines', key: { order_id: 6, line: 1 }, values: { qty: '1.000' } });
      expect(records(outbox, 'lines')[3]!.data).toEqual(expect.objectContaining({ op: 'insert', table: 'public.erp_lines', key: { order_id: 7, line: 1 }, values: { order_id: 7, line: 1, qty: '2.500' } }));
      expect(changes(outbox, 'grow')).toEqual(['insert 6', 'insert 7']);
    } finally {
      host.abort.abort();
      outbox.close();
    }
  }, 60_000);

  it('a failing slot (here: a table the publication cannot take) shows logical.error with back-off, then recovers', async () => {
    const db = await ordersDb();
    tmp = makeTempDir('sql-logical-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'later', { logical: { tables: [{ table: 'late_table', initial: 'none' }] } });
    const host = testHost(outbox, cfg, tmp.dir);
    const collector = create(cfg, host.ctx);
    await collector.start();
    try {
      const counters = await waitFor('the error shown', () => {
        const c = collector.stats!().counters;
        return c?.['logical.error'] ? c : undefined;
      }, 15_000);
      expect(String(counters['logical.error'])).toMatch(/late_table/);
      expect(counters['logical.error_since']).toEqual(expect.any(String));
      const errorsThen = Number(counters['logical.errors']);
      await waitFor('more attempts', () => Number(collector.stats!().counters?.['logical.errors']) > errorsThen, 10_000);
      await exec(db, 'CREATE TABLE late_table (id int PRIMARY KEY, v text)');
      await waitFor('recovered', () => collector.stats!().counters?.['logical.error'] === undefined && Number(collector.stats!().counters?.['logical.polls']) >= 1, 15_000);
      await exec(db, `INSERT INTO late_table VALUES (1, 'x')`);
      await waitFor('captured', () => changes(outbox, 'later').length === 1, 15_000);
      expect(changes(outbox, 'later')).toEqual(['insert 1']);
    } finally {
      host.abort.abort();
      await collector.stop();
      outbox.close();
    }
  }, 60_000);

  it('config: logical capture only with driver pg; slot names checked', () => {
    const base = { type: 'sql', name: 'x', connection: { database: 'd', user: 'u' }, logical: { tables: [{ table: 'orders' }] } };
    expect(sqlSchema.safeParse({ ...base, driver: 'mysql' }).error?.issues[0]?.message).toMatch(/needs driver: pg/);
    expect(sqlSchema.safeParse({ ...base, driver: 'pg' }).success).toBe(true);
    expect(sqlSchema.safeParse({ ...base, driver: 'pg', logical: { slot: 'Bad-Name', tables: [{ table: 'orders' }] } }).success).toBe(false);
    expect(sqlSchema.safeParse({ ...base, driver: 'pg', logical: undefined }).error?.issues[0]?.message).toMatch(/no table to capture/);
  });
});

describe('sql collector, mode logical: keys and relations (review fixes)', () => {
  it('keys by the primary key under REPLICA IDENTITY FULL, and types each change with the relation it was decoded with', async () => {
    const db = await ordersDb();
    await exec(db, 'ALTER TABLE orders ADD COLUMN note text', 'ALTER TABLE orders REPLICA IDENTITY FULL');
    tmp = makeTempDir('sql-logical-keys-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'keys');
    const host = testHost(outbox, cfg, tmp.dir);
    const schemaChanges: string[][] = [];
    const capture = new LogicalCapture({ cfg, writer: host.ctx.writer, onSchemaChange: (...args) => void schemaChanges.push(args) });
    try {
      await capture.setup();
      // All in one peek: an update under FULL identity, then a rename between two transactions.
      await exec(db, `INSERT INTO orders VALUES (1, 'new', now(), 'x')`, `UPDATE orders SET status = 'paid' WHERE id = 1`);
      await exec(db, `INSERT INTO orders VALUES (2, 'new', now(), 'before-rename')`, 'ALTER TABLE orders RENAME COLUMN note TO remark', `INSERT INTO orders VALUES (3, 'new', now(), 'after')`);
      await capture.poll(new AbortController().signal);
      const recs = records(outbox, 'keys').filter((r) => r.data.key);
      expect(recs.map((r) => r.data.key)).toEqual([{ id: 1 }, { id: 1 }, { id: 2 }, { id: 3 }]);
      expect(recs[2]!.data.values).toMatchObject({ id: 2, note: 'before-rename' });
      expect(recs[3]!.data.values).toMatchObject({ id: 3, remark: 'after' });
      // The rename is a new schema version: the first change read with it is flagged, and the collector told.
      expect(recs.map((r) => r.data.schema_changed ?? false)).toEqual([false, false, false, true]);
      expect(new Set(recs.slice(0, 3).map((r) => r.data.schema_version)).size).toBe(1);
      expect(recs[3]!.data.schema_version).toMatch(/^[0-9a-f]{16}$/);
      expect(recs[3]!.data.schema_version).not.toBe(recs[0]!.data.schema_version);
      expect(schemaChanges).toEqual([['public.orders', recs[0]!.data.schema_version, recs[3]!.data.schema_version]]);
    } finally {
      await capture.close();
      outbox.close();
    }
  });

  it('an update that changes the primary key is a delete under the old key, then the update under the new one (default and FULL identity)', async () => {
    const db = await ordersDb();
    await exec(db, 'CREATE TABLE lines (id int PRIMARY KEY, qty int)', 'ALTER TABLE lines REPLICA IDENTITY FULL');
    tmp = makeTempDir('sql-logical-pk-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'pk', { logical: { tables: [{ table: 'orders', initial: 'none' }, { table: 'lines', initial: 'none' }] } });
    const capture = new LogicalCapture({ cfg, writer: testHost(outbox, cfg, tmp.dir).ctx.writer });
    try {
      await capture.setup();
      await exec(db, `INSERT INTO orders VALUES (1, 'new', now())`, `UPDATE orders SET id = 2 WHERE id = 1`, `UPDATE orders SET status = 'paid' WHERE id = 2`);
      await exec(db, `INSERT INTO lines VALUES (10, 1)`, `UPDATE lines SET id = 11 WHERE id = 10`, `UPDATE lines SET qty = 2 WHERE id = 11`);
      await capture.poll(new AbortController().signal);
      const recs = records(outbox, 'pk').filter((r) => r.data.key);
      expect(recs.map((r) => `${r.data.table} ${r.data.op} ${r.data.key!.id}${r.data.moved_to ? ` -> ${r.data.moved_to.id}` : ''}`)).toEqual([
        'public.orders insert 1',
        'public.orders delete 1 -> 2',
        'public.orders update 2',
        'public.orders update 2',
        'public.lines insert 10',
        'public.lines delete 10 -> 11',
        'public.lines update 11',
        'public.lines update 11', // FULL identity sends the old row on every update: same key, no delete
      ]);
      expect(new Set(recs.map((r) => r.id)).size).toBe(recs.length);
    } finally {
      await capture.close();
      outbox.close();
    }
  });
});

describe('sql collector, mode logical: initial snapshot and hand-over (own cluster)', () => {

  it('loads the rows first; a change the snapshot already holds is not sent again, one it missed (committed after its page, or in progress during it) is sent after', async () => {
    const db = await ordersDb();
    await exec(db, `INSERT INTO orders SELECT g, 'new', now() FROM generate_series(1, 5) g`);
    tmp = makeTempDir('sql-logical-snap-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'snap', { batch_size: 2, logical: { tables: [{ table: 'orders' }] } });
    const host = testHost(outbox, cfg, tmp.dir);
    const w = host.ctx.writer;
    const pending = new pg.Client({ ...own.cluster.connection, database: db });
    await pending.connect();
    // Runs after each snapshot page is in the outbox, as the ERP's writes land between pages.
    const afterPage = async (lastKey: number) => {
      if (lastKey === 2) {
        await exec(db, `UPDATE orders SET status = 'after page 1' WHERE id = 1`); // read already: sent
        await exec(db, `UPDATE orders SET status = 'before page 3' WHERE id = 5`, `INSERT INTO orders VALUES (6, 'before page 3', now())`); // read later: in the snapshot
      }
      if (lastKey === 4) await pending.query('COMMIT'); // in progress while page 2 was read: sent
    };
    const capture = new LogicalCapture({ cfg, writer: hooked(w, afterPage) });
    try {
      await capture.setup();
      await exec(db, `UPDATE orders SET status = 'before page 1' WHERE id = 2`); // after the slot, before its page: in the snapshot
      await pending.query('BEGIN');
      await pending.query(`UPDATE orders SET status = 'in progress' WHERE id = 4`);
      await capture.poll(new AbortController().signal);
      expect(ops(outbox, 'snap')).toEqual(['snapshot_start', 'snapshot 1', 'snapshot 2', 'snapshot 3', 'snapshot 4', 'snapshot 5', 'snapshot 6', 'snapshot_end', 'update 1', 'update 4']);
      const byOp = (op: string, id: number) => records(outbox, 'snap').find((r) => r.data.op === op && r.data.key?.id === id)!.data.values!.status;
      expect([byOp('snapshot', 2), byOp('snapshot', 4), byOp('snapshot', 5), byOp('update', 1), byOp('update', 4)]).toEqual(['before page 1', 'new', 'before page 3', 'after page 1', 'in progress']);
      await exec(db, `UPDATE orders SET status = 'later' WHERE id = 2`, 'DELETE FROM orders WHERE id = 6');
      await capture.poll(new AbortController().signal);
      expect(ops(outbox, 'snap').slice(10)).toEqual(['update 2', 'delete 6']);
      const all = records(outbox, 'snap');
      expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
      expect(all[1]!.data.version).toMatch(/^[0-9A-F]+\/[0-9A-F]+:snapshot$/);
    } finally {
      await capture.close();
      await pending.end();
      outbox.close();
    }
  }, 60_000);

  it('a crash in the middle of the snapshot resumes after its last committed page: every row once, one start and one end', async () => {
    const db = await ordersDb();
    await exec(db, `INSERT INTO orders SELECT g, 'new', now() FROM generate_series(1, 7) g`);
    tmp = makeTempDir('sql-logical-snap-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'resume', { batch_size: 2, logical: { tables: [{ table: 'orders' }] } });
    const host = testHost(outbox, cfg, tmp.dir);
    const w = host.ctx.writer;
    let pages = 0;
    const crashing: Writer = { ...w, append: (r, cp, o) => (r.some((x) => (x.data as Rec['data']).op === 'snapshot') && ++pages === 3 ? Promise.reject(new Error('killed during the snapshot')) : w.append(r, cp, o)) };
    const dying = new LogicalCapture({ cfg, writer: crashing });
    try {
      await expect(dying.poll(new AbortController().signal)).rejects.toThrow(/killed during the snapshot/);
    } finally {
      await dying.close();
    }
    expect(ops(outbox, 'resume')).toEqual(['snapshot_start', 'snapshot 1', 'snapshot 2', 'snapshot 3', 'snapshot 4']);
    await exec(db, `UPDATE orders SET status = 'changed' WHERE id = 1`, `UPDATE orders SET status = 'changed' WHERE id = 7`);
    const next = new LogicalCapture({ cfg, writer: w });
    try {
      await next.poll(new AbortController().signal);
    } finally {
      await next.close();
    }
    expect(ops(outbox, 'resume')).toEqual(['snapshot_start', 'snapshot 1', 'snapshot 2', 'snapshot 3', 'snapshot 4', 'snapshot 5', 'snapshot 6', 'snapshot 7', 'snapshot_end', 'update 1']);
    expect(records(outbox, 'resume').at(-2)!.data).toMatchObject({ op: 'snapshot_end', rows: 7 });
  }, 60_000);

  it('unit: snapshot visibility and 32-bit xids placed in their epoch', () => {
    const snap = parseSnapshot('100:110:103,107');
    expect([99n, 100n, 103n, 105n, 107n, 110n].map((x) => visible(x, snap))).toEqual([true, true, false, true, false, false]);
    expect(parseSnapshot('5:5:')).toEqual({ xmin: 5n, xmax: 5n, xip: [] });
    const epoch1 = 1n << 32n;
    expect(fullXid(10, epoch1 + 20n)).toBe(epoch1 + 10n);
    expect(fullXid(0xffff_fff0, epoch1 + 20n)).toBe(epoch1 - 16n); // just before the wrap: the previous epoch
    expect(fullXid(30, epoch1 - 16n)).toBe(epoch1 + 30n); // just after it: the next
  });

  it('unit: a change 2^31 transactions after the snapshot is placed by the server\'s next xid, not by the old hand-over bound: sent, not skipped', () => {
    const cfg = sqlSchema.parse({ type: 'sql', name: 'w', driver: 'pg', connection: { database: 'd', user: 'u' }, logical: { tables: [{ table: 'orders' }] } });
    const writer = { source: 'sql:w', keyVersions: (_s: string, keys: string[]) => new Map(keys.map((k) => [k, 's:900:1000:'])) } as unknown as Writer;
    const cap = new LogicalCapture({ cfg, writer }) as unknown as { handover: Record<string, string>; nextXid: bigint; seenBySnapshot(t: string, xid: number, k: unknown[]): boolean };
    cap.handover = { 'public.orders': '1000' }; // the key's page saw xids below 900; kept in the checkpoint for good
    const later = 1000n + (1n << 31n) + 10n;
    cap.nextXid = later + 5n; // read before the peek that returned it
    expect(cap.seenBySnapshot('public.orders', Number(later & 0xffffffffn), [1])).toBe(false);
    cap.nextXid = 1_005n;
    expect(cap.seenBySnapshot('public.orders', 1_002, [1])).toBe(false); // after the page's snapshot
    expect(cap.seenBySnapshot('public.orders', 950, [1])).toBe(true); // committed before it: seen
  });

  it('upgrade: a slot begun by release 0.3.0 (its checkpoint names no tables) is not loaded again; a table configured since is', async () => {
    const db = await ordersDb();
    await exec(db, 'CREATE TABLE lines (id int PRIMARY KEY)', `INSERT INTO orders VALUES (1, 'old', now())`, 'INSERT INTO lines VALUES (1)');
    tmp = makeTempDir('sql-logical-upgrade-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'up', { logical: { tables: [{ table: 'orders' }] } });
    const host = testHost(outbox, cfg, tmp.dir);
    try {
      // What 0.3.0 left: its slot, and a checkpoint with the position only.
      const lsn = await withClient(db, async (c) => (await c.query<{ l: string }>(`SELECT lsn::text AS l FROM pg_create_logical_replication_slot('erp_edge_up', 'pgoutput')`)).rows[0]!.l);
      await exec(db, 'CREATE PUBLICATION erp_edge_up FOR TABLE orders');
      await host.ctx.writer.append([], { key: 'logical', value: { lsn } });
      const capture = new LogicalCapture({ cfg, writer: host.ctx.writer });
      try {
        await exec(db, `INSERT INTO orders VALUES (2, 'new', now())`);
        await capture.poll(new AbortController().signal);
        expect(ops(outbox, 'up')).toEqual(['insert 2']);
      } finally {
        await capture.close();
      }
      const grown = config(db, 'up', { logical: { tables: [{ table: 'orders' }, { table: 'lines' }] } });
      const again = new LogicalCapture({ cfg: grown, writer: host.ctx.writer });
      try {
        await again.poll(new AbortController().signal);
      } finally {
        await again.close();
      }
      expect(ops(outbox, 'up')).toEqual(['insert 2', 'snapshot_start', 'snapshot 1', 'snapshot_end']);
      expect(records(outbox, 'up')[2]!.data.table).toBe('public.lines');
    } finally {
      host.abort.abort();
      outbox.close();
    }
  }, 60_000);

  it('with time_zone, zone-less timestamps other than the key come as UTC, in the snapshot and in decoded changes alike', async () => {
    const db = await ordersDb();
    await exec(db, 'CREATE TABLE stamps (at timestamp(6) PRIMARY KEY, seen timestamp(6))', `INSERT INTO stamps VALUES ('2026-01-15 12:00:00', '2026-01-15 12:00:00')`);
    tmp = makeTempDir('sql-logical-tz-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'tz', { time_zone: 'Europe/Berlin', logical: { tables: [{ table: 'stamps' }] } });
    const capture = new LogicalCapture({ cfg, writer: testHost(outbox, cfg, tmp.dir).ctx.writer });
    try {
      await capture.poll(new AbortController().signal); // the snapshot
      await exec(db, `INSERT INTO stamps VALUES ('2026-07-15 12:00:00.5', '2026-07-15 12:00:00.5')`);
      await capture.poll(new AbortController().signal);
      const rows = records(outbox, 'tz').filter((r) => r.data.values).map((r) => [r.data.op, r.data.values]);
      expect(rows).toEqual([
        ['snapshot', { at: '2026-01-15T12:00:00.000000', seen: '2026-01-15T11:00:00.000000Z' }],
        ['insert', { at: '2026-07-15T12:00:00.500000', seen: '2026-07-15T10:00:00.500000Z' }],
      ]);
    } finally {
      await capture.close();
      outbox.close();
    }
  }, 60_000);
});

/** Replays records as a consumer keyed by (table, key) would: the keys it ends with. */
function replay(recs: Rec[], table = 'public.orders'): number[] {
  const rows = new Map<number, unknown>();
  for (const r of recs) {
    if (r.data.table !== table) continue;
    if (r.data.op === 'truncate') rows.clear();
    else if (r.data.op === 'delete') rows.delete(r.data.key!.id);
    else if (r.data.key) rows.set(r.data.key.id, r.data.values?.status);
  }
  return [...rows.keys()].sort((a, b) => a - b);
}

/** A writer that runs `afterPage(last key of the page)` after each snapshot page is in the outbox. */
function hooked(w: Writer, afterPage: (lastKey: number) => Promise<void>): Writer {
  return {
    ...w,
    append: async (recs, cp, o) => {
      const r = await w.append(recs, cp, o);
      const rows = recs.filter((x) => (x.data as Rec['data']).op === 'snapshot');
      if (rows.length > 0) await afterPage((rows.at(-1)!.data as Rec['data']).key!.id);
      return r;
    },
  };
}

describe('sql collector, mode logical: hand-over edge cases (review fixes)', () => {
  it('a key changed between pages (old key read by page 1, new key by page 2): the delete of the old key is sent, the new key comes in the snapshot', async () => {
    const db = await ordersDb();
    await exec(db, `INSERT INTO orders (id, status) VALUES (1,'a'),(2,'a'),(5,'a'),(6,'a')`);
    tmp = makeTempDir('rv-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'pkmove', { batch_size: 2, logical: { tables: [{ table: 'orders' }] } });
    const w = testHost(outbox, cfg, tmp.dir).ctx.writer;
    const cap = new LogicalCapture({ cfg, writer: hooked(w, async (last) => { if (last === 2) await exec(db, 'UPDATE orders SET id = 3 WHERE id = 1'); }) });
    try {
      await cap.poll(new AbortController().signal);
      await cap.poll(new AbortController().signal);
      const final = await own.withClient(db, async (c) => (await c.query('SELECT id FROM orders ORDER BY id')).rows.map((r) => r.id));
      expect(replay(records(outbox, 'pkmove'))).toEqual(final); // [2,3,5,6]
    } finally { await cap.close(); outbox.close(); }
  });

  it('TRUNCATE and reload after the slot, before the snapshot page: the truncate is sent and the table loaded again, the consumer ends with the reloaded rows', async () => {
    const db = await ordersDb();
    await exec(db, `INSERT INTO orders (id, status) VALUES (1,'old'),(2,'old')`);
    tmp = makeTempDir('rv-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'trunc', { batch_size: 10, logical: { tables: [{ table: 'orders' }] } });
    const cap = new LogicalCapture({ cfg, writer: testHost(outbox, cfg, tmp.dir).ctx.writer });
    try {
      await cap.setup();
      await exec(db, 'BEGIN', 'TRUNCATE orders', `INSERT INTO orders (id, status) VALUES (1,'new'),(3,'new')`, 'COMMIT');
      await cap.poll(new AbortController().signal);
      await cap.poll(new AbortController().signal);
      expect(replay(records(outbox, 'trunc'))).toEqual([1, 3]);
    } finally { await cap.close(); outbox.close(); }
  });

  it('TRUNCATE and reload between snapshot pages: the consumer ends with the table', async () => {
    const db = await ordersDb();
    await exec(db, `INSERT INTO orders (id, status) VALUES (1,'old'),(2,'old'),(3,'old'),(4,'old')`);
    tmp = makeTempDir('rv-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'trunc2', { batch_size: 2, logical: { tables: [{ table: 'orders' }] } });
    const w = testHost(outbox, cfg, tmp.dir).ctx.writer;
    const cap = new LogicalCapture({ cfg, writer: hooked(w, async (last) => { if (last === 2) await exec(db, 'BEGIN', 'TRUNCATE orders', `INSERT INTO orders (id, status) VALUES (3,'new'),(4,'new')`, 'COMMIT'); }) });
    try {
      await cap.poll(new AbortController().signal);
      await cap.poll(new AbortController().signal);
      expect(replay(records(outbox, 'trunc2'))).toEqual([3, 4]);
    } finally { await cap.close(); outbox.close(); }
  });

  it('a table added to the config later: the earlier table\'s hand-over survives setup (a change its snapshot holds is not sent again)', async () => {
    const db = await ordersDb();
    await exec(db, `CREATE TABLE lines (id int PRIMARY KEY)`, `INSERT INTO orders (id, status) VALUES (1,'a')`, 'INSERT INTO lines VALUES (1)');
    tmp = makeTempDir('rv-');
    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const cfg = config(db, 'grow', { logical: { tables: [{ table: 'orders' }] } });
    const w = testHost(outbox, cfg, tmp.dir).ctx.writer;
    // Stopped (SIGTERM) right after orders' snapshot, before the slot was read.
    const ac = new AbortController();
    const stopping: Writer = { ...w, append: async (r, cp, o) => { const x = await w.append(r, cp, o); if (r.some((y) => (y.data as Rec['data']).op === 'snapshot_end')) ac.abort(); return x; } };
    const a = new LogicalCapture({ cfg, writer: stopping });
    await a.setup();
    await exec(db, `UPDATE orders SET status = 'b' WHERE id = 1`); // after the slot, before the page: in the snapshot
    await expect(a.poll(ac.signal)).rejects.toThrow();
    await a.close();
    const grown = config(db, 'grow', { logical: { tables: [{ table: 'orders' }, { table: 'lines' }] } });
    const b = new LogicalCapture({ cfg: grown, writer: w });
    try {
      await b.poll(new AbortController().signal);
      expect(ops(outbox, 'grow')).toEqual(['snapshot_start', 'snapshot 1', 'snapshot_end', 'snapshot_start', 'snapshot 1', 'snapshot_end']); // orders, then lines: the update of order 1 is in its snapshot, not sent again
    } finally { await b.close(); outbox.close(); }
  });

  for (const [label, ddl, values] of [
    ['a domain column', ['CREATE DOMAIN qty AS int', 'CREATE TABLE dom (id int PRIMARY KEY, n qty)'], [{ id: 1, n: 5 }, { id: 1, n: 6 }]],
    ['a generated column', ['CREATE TABLE dom (id int PRIMARY KEY, n int, n2 int GENERATED ALWAYS AS (n * 2) STORED)'], [{ id: 1, n: 5 }, { id: 1, n: 6 }]],
  ] as const) {
    it(`${label}: the snapshot and the decoded changes carry the same schema version and typing (the first change is not flagged)`, async () => {
      const db = await ordersDb();
      await exec(db, ...ddl, 'INSERT INTO dom (id, n) VALUES (1, 5)');
      tmp = makeTempDir('sql-logical-dom-');
      const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
      const cfg = config(db, 'dom', { logical: { tables: [{ table: 'dom' }] } });
      const cap = new LogicalCapture({ cfg, writer: testHost(outbox, cfg, tmp.dir).ctx.writer });
      try {
        await cap.poll(new AbortController().signal);
        await exec(db, 'UPDATE dom SET n = 6 WHERE id = 1');
        await cap.poll(new AbortController().signal);
        const recs = records(outbox, 'dom').filter((r) => r.data.values);
        expect(recs.map((r) => [r.data.op, r.data.values])).toEqual([['snapshot', values[0]], ['update', values[1]]]);
        expect(recs[1]!.data.schema_version).toBe(recs[0]!.data.schema_version);
        expect(recs[1]!.data.schema_changed).toBeUndefined();
      } finally {
        await cap.close();
        outbox.close();
      }
    });
  }
});
