import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PG_STORE_SCHEMA_VERSION } from '../../../cloud-relay/store/postgres-migrations.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { createLogger } from '../../../common/logger.js';
import { postgresStoreFactory, sqliteStoreFactory, type StoreFactory } from '../../helpers/relay-stores.js';
import { range } from '../../helpers/relay-wire.js';
import { storeBatch, streamId } from './store-feed.js';

const silent = createLogger({ level: 'silent' });
const pgFactory = postgresStoreFactory();
const factories: StoreFactory[] = [sqliteStoreFactory(), pgFactory];
afterAll(async () => {
  for (const f of factories) await f.dispose();
});

/**
 * Turns a store back into what the release before the sinks wrote (SQLite user_version 7,
 * PostgreSQL schema version 1): the migration's tables and index gone, the version set back.
 */
async function unmigrate(factory: StoreFactory, place: string): Promise<void> {
  const drop = ['DROP TABLE sink_cursors', 'DROP TABLE dead_letters', 'DROP INDEX segments_by_age'];
  if (factory.name === 'sqlite') {
    const db = new Database(place);
    // Migration 9 (numbered ids as ranges) came after the sinks: its tables go too.
    for (const s of [...drop, 'DROP TABLE id_range_gen_0', 'DROP TABLE id_range_gen_1']) db.exec(s);
    db.pragma('user_version = 7');
    db.close();
    return;
  }
  const d = await pgFactory.database();
  const c = new pg.Client({ ...d.connection });
  await c.connect();
  try {
    await c.query(`SET search_path TO ${place}`);
    for (const s of drop) await c.query(s);
    await c.query('UPDATE schema_version SET version = $1', [PG_STORE_SCHEMA_VERSION - 1]);
  } finally {
    await c.end();
  }
}

describe.each(factories)('sink delivery store on the $name store', (factory) => {
  let place: string;
  let now = 1_000_000;
  const clock = () => now;
  const open: RelayStore[] = [];
  const openStore = async () => {
    const s = await factory.open(place, { dedupeWindowMs: 0, log: silent, clock });
    open.push(s);
    return s;
  };
  beforeEach(async () => {
    place = await factory.place();
    now = 1_000_000;
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
  });

  it('leases a (sink, stream) to one owner at a time, fences a cursor move by a lost owner, and never moves a cursor back', async () => {
    const store = await openStore();
    await storeBatch(store, 1, 10);
    const id = await streamId(store, 'orders');
    const d = store.delivery;
    expect(await d.pendingStreams('hook', 10)).toMatchObject([{ id, stream: 'orders', last_seq: 10, delivered_seq: 0 }]);
    expect(await d.claim('hook', id, 'A', now, 1_000)).toBe(0);
    expect(await d.claim('hook', id, 'B', now, 1_000)).toBeNull();
    // Another sink has its own cursor and lease.
    expect(await d.claim('mq', id, 'B', now, 1_000)).toBe(0);
    expect(await d.advance('hook', id, 'A', 6, [], now, 1_000)).toBe(true);
    expect(await d.advance('hook', id, 'B', 9, [], now, 1_000)).toBe(false);
    expect(await d.pendingStreams('hook', 10)).toMatchObject([{ id, delivered_seq: 6 }]);
    // A's lease (renewed by the advance) runs out: B takes over at A's cursor, and A is fenced off.
    now += 1_001;
    expect(await d.claim('hook', id, 'B', now, 1_000)).toBe(6);
    expect(await d.advance('hook', id, 'A', 10, [], now, 1_000)).toBe(false);
    expect(await d.advance('hook', id, 'B', 4, [], now, 1_000)).toBe(true);
    expect((await d.cursors()).filter((c) => c.sink === 'hook')).toMatchObject([{ stream: 'orders', last_seq: 10, delivered_seq: 6 }]);
    // Released: anyone may claim at once.
    await d.release('hook', id, 'B');
    expect(await d.claim('hook', id, 'A', now, 1_000)).toBe(6);
    expect(await d.advance('hook', id, 'A', 10, [], now, 1_000)).toBe(true);
    expect(await d.pendingStreams('hook', 10)).toEqual([]);
    expect((await d.pendingStreams('mq', 10)).map((p) => p.delivered_seq)).toEqual([0]);
  });

  it('offers a stream’s epochs in the order they began: a new epoch waits until the sink passed the earlier one', async () => {
    const store = await openStore();
    await storeBatch(store, 1, 5);
    await storeBatch(store, 1, 3, { epoch: 'epoch-bbbbbbbb', idPrefix: 'b#' });
    await storeBatch(store, 1, 2, { stream: 'returns', epoch: 'epoch-bbbbbbbb', idPrefix: 'r#' });
    const d = store.delivery;
    expect((await d.pendingStreams('hook', 10)).map((p) => `${p.stream}:${p.epoch}`).sort()).toEqual(['orders:epoch-aaaaaaaa', 'returns:epoch-bbbbbbbb']);
    const [a] = (await d.pendingStreams('hook', 10)).filter((p) => p.epoch === 'epoch-aaaaaaaa');
    await d.claim('hook', a!.id, 'A', now, 1_000);
    await d.advance('hook', a!.id, 'A', 5, [], now, 1_000);
    expect((await d.pendingStreams('hook', 10)).map((p) => `${p.stream}:${p.epoch}:${p.delivered_seq}`).sort()).toEqual(['orders:epoch-bbbbbbbb:0', 'returns:epoch-bbbbbbbb:0']);
    // Another sink has passed nothing: it still sees the earlier epoch only.
    expect((await d.pendingStreams('mq', 10)).map((p) => `${p.stream}:${p.epoch}`).sort()).toEqual(['orders:epoch-aaaaaaaa', 'returns:epoch-bbbbbbbb']);
  });

  it('reads stored events after a seq across segments, in seq order, up to a limit', async () => {
    const store = await openStore();
    await storeBatch(store, 1, 4);
    await storeBatch(store, 5, 9);
    const id = await streamId(store, 'orders');
    expect((await store.delivery.read(id, 0, 100)).map((e) => e.seq)).toEqual(range(1, 9));
    expect((await store.delivery.read(id, 3, 3)).map((e) => e.seq)).toEqual([4, 5, 6]);
    expect((await store.delivery.read(id, 9, 3)).map((e) => e.seq)).toEqual([]);
    expect((await store.delivery.read(id, 2, 1))[0]).toMatchObject({ seq: 3, id: 'orders.csv#3', data: { seq: 3, tag: 'first' } });
  });

  it('keeps dead letters with their error and field; lists, retries, settles and discards them by filter; counts them per sink', async () => {
    const store = await openStore();
    await storeBatch(store, 1, 5);
    await storeBatch(store, 1, 3, { stream: 'returns', site: 'plant-9' });
    const orders = await streamId(store, 'orders');
    const returns = await streamId(store, 'returns');
    const d = store.delivery;
    await d.claim('hook', orders, 'A', now, 60_000);
    await d.claim('hook', returns, 'A', now, 60_000);
    await d.claim('mq', orders, 'A', now, 60_000);
    const dead = (seq: number, error = 'HTTP 500', field: string | null = null) => ({ seq, event_id: `orders.csv#${seq}`, attempts: 3, error, field });
    expect(await d.advance('hook', orders, 'A', 5, [dead(2), dead(4, 'transform refused data.qty: not a number', 'data.qty')], now, 60_000)).toBe(true);
    now += 10;
    expect(await d.advance('hook', returns, 'A', 3, [dead(1)], now, 60_000)).toBe(true);
    expect(await d.advance('mq', orders, 'A', 5, [dead(5, 'not connected')], now, 60_000)).toBe(true);

    expect((await d.listDeadLetters({}, 100)).map((r) => `${r.sink}:${r.stream}:${r.seq}`)).toEqual(['hook:orders:2', 'hook:orders:4', 'hook:returns:1', 'mq:orders:5']);
    expect(await d.listDeadLetters({ sink: 'hook', stream: 'orders' }, 100)).toMatchObject([
      { site: 'plant-7', agent: 'edge-1', epoch: 'epoch-aaaaaaaa', seq: 2, event_id: 'orders.csv#2', status: 'dead', attempts: 3, error: 'HTTP 500', field: null, dead_at: 1_000_000 },
      { seq: 4, error: 'transform refused data.qty: not a number', field: 'data.qty' },
    ]);
    expect((await d.listDeadLetters({ site: 'plant-9' }, 100)).map((r) => r.seq)).toEqual([1]);
    expect(await d.listDeadLetters({ sink: 'hook' }, 1)).toHaveLength(1);
    expect(await d.deadLetterStats()).toEqual([
      { sink: 'hook', count: 3, retrying: 0, oldest_at: 1_000_000 },
      { sink: 'mq', count: 1, retrying: 0, oldest_at: 1_000_010 },
    ]);

    const [two] = await d.listDeadLetters({ sink: 'hook', stream: 'orders' }, 1);
    expect(await d.retryDeadLetters({ sink: 'hook', stream: 'orders' }, now)).toBe(2);
    // Already marked: not counted again.
    expect(await d.retryDeadLetters({ sink: 'hook' }, now)).toBe(1);
    expect((await d.listDeadLetters({ status: 'retry' }, 100)).map((r) => `${r.stream}:${r.seq}`)).toEqual(['orders:2', 'orders:4', 'returns:1']);
    expect((await d.deadLetterStats())[0]).toMatchObject({ sink: 'hook', count: 3, retrying: 3 });
    // Delivered: gone. Failed again: dead, attempts added, the new error kept.
    await d.settleRetry(two!.id, true, null, now);
    const [four] = await d.listDeadLetters({ sink: 'hook', stream: 'orders' }, 1);
    now += 5;
    await d.settleRetry(four!.id, false, { attempts: 2, error: 'HTTP 502', field: null }, now);
    expect(await d.listDeadLetters({ sink: 'hook', stream: 'orders' }, 100)).toMatchObject([{ seq: 4, status: 'dead', attempts: 5, error: 'HTTP 502', field: null, dead_at: now }]);

    expect(await d.discardDeadLetters({ ids: [] })).toBe(0);
    expect(await d.discardDeadLetters({ ids: [four!.id] })).toBe(1);
    expect(await d.discardDeadLetters({ sink: 'mq' })).toBe(1);
    expect((await d.listDeadLetters({}, 100)).map((r) => `${r.sink}:${r.stream}:${r.seq}`)).toEqual(['hook:returns:1']);
  });

  it('prunes segments older than the cut only once every sink passed them and no dead letter points into them', async () => {
    const store = await openStore();
    await storeBatch(store, 1, 3); // segment 1..3 at t0
    await storeBatch(store, 4, 6); // segment 4..6 at t0
    now += 50;
    await storeBatch(store, 7, 8); // segment 7..8 at t0 + 50
    const id = await streamId(store, 'orders');
    const d = store.delivery;
    const before = now + 100;
    // No sink has a cursor yet: nothing goes.
    expect(await d.prune(before, ['hook', 'mq'], 100)).toEqual({ segments: 0, records: 0 });
    await d.claim('hook', id, 'A', now, 60_000);
    await d.advance('hook', id, 'A', 8, [{ seq: 5, event_id: 'orders.csv#5', attempts: 1, error: 'HTTP 500', field: null }], now, 60_000);
    // mq has passed nothing.
    expect(await d.prune(before, ['hook', 'mq'], 100)).toEqual({ segments: 0, records: 0 });
    // With hook alone configured: 1..3 and 7..8 go; 4..6 holds a dead letter.
    expect(await d.prune(before, ['hook'], 100)).toEqual({ segments: 2, records: 5 });
    expect((await d.read(id, 0, 100)).map((e) => e.seq)).toEqual([4, 5, 6]);
    // The dead letter discarded: its segment may go, but not before the age cut.
    await d.discardDeadLetters({ sink: 'hook' });
    expect(await d.prune(1_000_000, ['hook'], 100)).toEqual({ segments: 0, records: 0 });
    expect(await d.prune(1_000_001, ['hook'], 100)).toEqual({ segments: 1, records: 3 });
    // The stream's cursor and counts stay (ingest still knows where the stream is).
    expect(await store.watermark('plant-7', 'edge-1', 'orders', 'epoch-aaaaaaaa')).toBe(8);
  });

  it('opens a store written before the sinks migration: its events wait for every sink from the first seq', async () => {
    let store = await openStore();
    await storeBatch(store, 1, 4);
    await store.close();
    open.splice(0);
    await unmigrate(factory, place);
    store = await openStore();
    const id = await streamId(store, 'orders');
    expect(await store.delivery.pendingStreams('hook', 10)).toMatchObject([{ id, stream: 'orders', last_seq: 4, delivered_seq: 0 }]);
    expect(await store.delivery.claim('hook', id, 'A', now, 1_000)).toBe(0);
    expect((await store.delivery.read(id, 0, 10)).map((e) => e.id)).toEqual(range(1, 4).map((s) => `orders.csv#${s}`));
    expect(await store.delivery.advance('hook', id, 'A', 4, [], now, 1_000)).toBe(true);
    expect(await store.delivery.pendingStreams('hook', 10)).toEqual([]);
  });
});
