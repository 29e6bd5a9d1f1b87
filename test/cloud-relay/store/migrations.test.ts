import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteRelayStore } from '../../../cloud-relay/store/sqlite-store.js';
import { STORE_SCHEMA_VERSION } from '../../../cloud-relay/store/migrations.js';
import { applyBatches } from '../../../cloud-relay/ingest/apply.js';
import { decodeEventBatch } from '../../../cloud-relay/ingest/decode.js';
import { isErpEdgeError } from '../../../common/errors.js';
import { createLogger } from '../../../common/logger.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { AGENT, SITE, batchV2, recordV1, servedV1, servedV2, type BatchV2 } from '../../helpers/relay-wire.js';

const silent = createLogger({ level: 'silent' });

/** The relay store schema of release 0.1, verbatim (cloud-relay/store.ts at 0.1): CREATE IF NOT EXISTS, user_version left at 0. */
const SCHEMA_0_1 = `
CREATE TABLE IF NOT EXISTS streams (
  id INTEGER PRIMARY KEY,
  site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL, epoch TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  UNIQUE (site, agent, stream, epoch)
);
-- One row per stored run of consecutive records (a segment): inserting a batch costs one row, not
-- one per record, which is most of the relay's per-event cost. Records are the v1 JSON array.
CREATE TABLE IF NOT EXISTS segments (
  id INTEGER PRIMARY KEY,
  stream_id INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  records TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_seq ON segments (stream_id, last_seq);
`;

const OLD_EPOCH = 'epoch-01010101';
const OLD_EPOCH_2 = 'epoch-02020202';

/** A relay.db as release 0.1 left it: two epochs of `orders` (one with a drop), one `returns` stream. */
function writeRelease01Db(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(SCHEMA_0_1);
  const stream = db.prepare('INSERT INTO streams (site, agent, stream, epoch, last_seq, dropped, first_seen, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const segment = db.prepare('INSERT INTO segments (stream_id, first_seq, last_seq, received_at, records) VALUES (?, ?, ?, ?, ?)');
  // 0.1 stored each record normalized: {seq, id, ts, source, correlation_id, data}.
  const recs = (from: number, to: number, prefix = 'orders.csv#') =>
    JSON.stringify(Array.from({ length: to - from + 1 }, (_, i) => recordV1(from + i, { idPrefix: prefix })));
  const a = Number(stream.run(SITE, AGENT, 'orders', OLD_EPOCH, 5, 0, 1_000, 2_000).lastInsertRowid);
  segment.run(a, 1, 3, 1_500, recs(1, 3));
  segment.run(a, 4, 5, 2_000, recs(4, 5));
  const b = Number(stream.run(SITE, AGENT, 'orders', OLD_EPOCH_2, 9, 4, 3_000, 4_000).lastInsertRowid);
  segment.run(b, 5, 9, 4_000, recs(5, 9, 'b#'));
  const c = Number(stream.run(SITE, AGENT, 'returns', OLD_EPOCH, 2, 0, 1_100, 1_200).lastInsertRowid);
  segment.run(c, 1, 2, 1_200, recs(1, 2, 'ret#'));
  expect(db.pragma('user_version', { simple: true })).toBe(0);
  db.close();
}

describe('relay store migrations', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let path: string;
  const open: SqliteRelayStore[] = [];
  const openStore = () => {
    const s = new SqliteRelayStore({ path, dedupeWindowMs: 7 * 86_400_000, log: silent });
    open.push(s);
    return s;
  };
  const apply = async (store: SqliteRelayStore, b: BatchV2) => {
    const r = decodeEventBatch({ version: 2, site: b.site, agent: b.agent, stream: b.stream }, Buffer.from(JSON.stringify(b)), { maxRecordBytes: 1 << 20 });
    if (!r.ok) throw new Error(r.detail);
    return (await applyBatches(store, [r.batch]))[0]!;
  };
  const userVersion = () => {
    const db = new Database(path, { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  };

  beforeEach(() => {
    tmp = makeTempDir('erp-edge-relay-migrations-');
    path = join(tmp.dir, 'relay.db');
  });
  afterEach(async () => {
    for (const s of open.splice(0)) {
      try {
        await s.close();
      } catch {
        /* closed by the test */
      }
    }
    tmp.cleanup();
  });

  it('creates a new store at the current schema version', async () => {
    await openStore().close();
    expect(userVersion()).toBe(STORE_SCHEMA_VERSION);
    // Opening again runs no step twice.
    openStore().close();
    expect(userVersion()).toBe(STORE_SCHEMA_VERSION);
  });

  it('upgrades a relay.db written by release 0.1 in place: events, cursors and epochs kept, v2 batches taken', async () => {
    writeRelease01Db(path);
    const store = openStore();
    expect(userVersion()).toBe(STORE_SCHEMA_VERSION);

    expect((await store.listStreams()).map((s) => [s.stream, s.epoch, s.last_seq, s.dropped, s.current, s.forked_from, s.duplicate_ids, s.dead_lettered])).toEqual([
      ['orders', OLD_EPOCH, 5, 0, false, null, 0, 0],
      ['orders', OLD_EPOCH_2, 9, 4, true, null, 0, 0],
      ['returns', OLD_EPOCH, 2, 0, true, null, 0, 0],
    ]);
    // Records stored, counted from the segments by the upgrade (the relay's counters start from them).
    expect((await store.listStreams()).map((s) => s.stored)).toEqual([5, 5, 2]);
    expect((await store.streamTotals()).map((t) => [t.stream, t.stored, t.dropped])).toEqual([['orders', 10, 4], ['returns', 2, 0]]);
    const old = await store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', epoch: OLD_EPOCH, after: 0, limit: 100 });
    expect(old.events.map(({ received_at: _r, ...e }) => e)).toEqual([1, 2, 3, 4, 5].map((s) => servedV1(recordV1(s))));
    expect(old.events.map((e) => e.received_at)).toEqual([1_500, 1_500, 1_500, 2_000, 2_000]);
    expect((await store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 0, limit: 100 })).events.map((e) => e.seq)).toEqual([5, 6, 7, 8, 9]);

    // The cursor of the current epoch carries on with v2 batches.
    const next = batchV2(10, 11, { epoch: OLD_EPOCH_2, idPrefix: 'b#' });
    expect(await apply(store, next)).toMatchObject({ status: 'ok', upto: 11, stored: 2 });
    // A resend of 0.1-stored seqs is compared with the ids 0.1 stored: same ids a duplicate...
    expect(await apply(store, batchV2(8, 9, { epoch: OLD_EPOCH_2, idPrefix: 'b#' }))).toMatchObject({ status: 'ok', upto: 11, duplicates: 2 });
    // ...other ids a conflict.
    expect(await apply(store, batchV2(9, 9, { epoch: OLD_EPOCH_2, idPrefix: 'other#' }))).toMatchObject({ status: 'conflict', upto: 11, forkedFrom: 9 });
    // A gap is still a gap against the 0.1 cursor.
    expect(await apply(store, batchV2(8, 8, { stream: 'returns', epoch: OLD_EPOCH, idPrefix: 'ret#' }))).toMatchObject({ status: 'gap', upto: 2 });
    const cur = (await store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 9, limit: 100 })).events;
    expect(cur.map(({ received_at: _r, ...e }) => e)).toEqual(next.records.map(servedV2));

    // A new epoch of a 0.1 stream gets the stream key 0.1 rows were given by the migration.
    expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-03030303', idPrefix: 'new#' }))).toMatchObject({ status: 'ok', newEpoch: true, previousEpochs: [OLD_EPOCH, OLD_EPOCH_2] });
    expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-04040404', idPrefix: 'new#' }))).toMatchObject({ status: 'ok', stored: 0, duplicateIds: 1 });

    // And the upgraded file opens again as is.
    await store.close();
    const again = openStore();
    expect((await again.listStreams()).find((s) => s.epoch === OLD_EPOCH_2)).toMatchObject({ last_seq: 11, forked_from: 9, conflicts: 1, stored: 7 });
  });

  it('upgrades a store of release 0.4 (ids one row each): ids remembered before the upgrade are still recognised', async () => {
    // A 0.4 store: batches stored, then the remembered ids put back as 0.4 kept them (a row per id
    // in id_gen_*, no range tables, user_version 8), with one id that is not numbered.
    const first = openStore();
    expect(await apply(first, batchV2(1, 40, { epoch: 'epoch-0a0a0a0a', idPrefix: 'orders.csv:ab:' }))).toMatchObject({ status: 'ok', stored: 40 });
    await first.close();
    const db = new Database(path);
    const ranges = db.prepare<[], { stream_key: number; prefix: string; lo: number; hi: number }>('SELECT stream_key, prefix, lo, hi FROM id_range_gen_0').all();
    expect(ranges.length).toBeGreaterThan(0);
    const put = db.prepare('INSERT INTO id_gen_0 (stream_key, id) VALUES (?, ?)');
    for (const r of ranges) for (let n = r.lo; n <= r.hi; n++) put.run(r.stream_key, `${r.prefix}${n}`);
    put.run(ranges[0]!.stream_key, 'not-numbered-x');
    db.exec('DROP TABLE id_range_gen_0; DROP TABLE id_range_gen_1');
    db.pragma('user_version = 8');
    const oldRows = db.prepare('SELECT count(*) FROM id_gen_0').pluck().get();
    db.close();
    expect(oldRows).toBe(ranges.reduce((n, r) => n + r.hi - r.lo + 1, 0) + 1);

    const store = openStore();
    expect(userVersion()).toBe(STORE_SCHEMA_VERSION);
    const check = new Database(path, { readonly: true });
    expect(check.prepare('SELECT id FROM id_gen_0').pluck().all()).toEqual(['not-numbered-x']);
    expect(check.prepare('SELECT prefix, lo, hi FROM id_range_gen_0').all()).toEqual(ranges.map(({ stream_key: _k, ...r }) => r));
    check.close();
    // The same records again in a new epoch (a restored outbox): recognised by id, keyed or not.
    const again = await apply(store, batchV2(1, 40, { epoch: 'epoch-0b0b0b0b', idPrefix: 'orders.csv:ab:' }));
    expect(again).toMatchObject({ status: 'ok', stored: 0, duplicateIds: 40 });
    expect(await apply(store, batchV2(41, 42, { epoch: 'epoch-0b0b0b0b', idPrefix: 'orders.csv:ab:' }))).toMatchObject({ status: 'ok', stored: 2 });
  });

  it('refuses a store written by a newer relay (ERP_STORE_SCHEMA) and leaves it untouched', () => {
    const db = new Database(path);
    db.exec('CREATE TABLE future (x)');
    db.pragma(`user_version = ${STORE_SCHEMA_VERSION + 1}`);
    db.close();
    let err: unknown;
    try {
      openStore();
    } catch (e) {
      err = e;
    }
    expect(isErpEdgeError(err, 'ERP_STORE_SCHEMA')).toBe(true);
    expect((err as Error).message).toMatch(/newer than this relay supports/);
    expect(userVersion()).toBe(STORE_SCHEMA_VERSION + 1);
    const check = new Database(path, { readonly: true });
    expect(check.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all()).toEqual(['future']);
    expect(check.pragma('journal_mode', { simple: true })).toBe('delete');
    check.close();
  });
});
