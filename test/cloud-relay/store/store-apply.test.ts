import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteRelayStore } from '../../../cloud-relay/store/sqlite-store.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { applyBatches, type BatchOutcome } from '../../../cloud-relay/ingest/apply.js';
import { decodeEventBatch } from '../../../cloud-relay/ingest/decode.js';
import { createLogger } from '../../../common/logger.js';
import type { EventBatch } from '../../../common/wire-v1.js';
import { storeFactories, type StoreFactory } from '../../helpers/relay-stores.js';
import { AGENT, EPOCH_A, EPOCH_B, SITE, batchV1, batchV2, range, recordV1, recordV2, servedV1, servedV2, skipOnlyV2, type BatchV2 } from '../../helpers/relay-wire.js';

const DAY = 86_400_000;
const silent = createLogger({ level: 'silent' });

/** The fields the 0.1 store returned, plus the v1 drop count: what v1 tests compare. */
function v1Brief(o: BatchOutcome) {
  return { upto: o.upto, status: o.status, stored: o.stored, duplicates: o.duplicates, conflicts: o.conflicts, droppedAtAgent: o.skipped.dropped, newEpoch: o.newEpoch };
}

const factories = storeFactories();
afterAll(async () => {
  for (const f of factories) await f.dispose();
});

describe.each(factories)('ingest apply (ordering, skips, conflicts, rejects, id de-duplication) on the $name store', (factory) => {
  let place: string;
  let now: number;
  const open: RelayStore[] = [];

  async function openStore(o: { windowMs?: number; maxRecordBytes?: number } = {}): Promise<RelayStore> {
    const s = await factory.open(place, { dedupeWindowMs: o.windowMs ?? 7 * DAY, log: silent, clock: () => now });
    open.push(s);
    return s;
  }

  /** Sends one batch through decode and apply, as the relay does (one transaction). */
  async function apply(store: RelayStore, b: EventBatch | BatchV2, maxRecordBytes = 1024 * 1024): Promise<BatchOutcome> {
    const r = decodeEventBatch({ version: b.v, site: b.site, agent: b.agent, stream: b.stream }, Buffer.from(JSON.stringify(b)), { maxRecordBytes });
    if (!r.ok) throw new Error(`decode refused the batch: ${r.reason} ${r.detail}`);
    return (await applyBatches(store, [r.batch]))[0]!;
  }

  async function events(store: RelayStore, q: { stream?: string; agent?: string; epoch?: string; after?: number; limit?: number } = {}) {
    const r = await store.listEvents({
      site: SITE,
      agent: q.agent ?? AGENT,
      stream: q.stream ?? 'orders',
      ...(q.epoch !== undefined ? { epoch: q.epoch } : {}),
      after: q.after ?? 0,
      limit: q.limit ?? 1000,
    });
    return { epoch: r.epoch, seqs: r.events.map((e) => e.seq), events: r.events };
  }

  const row = async (store: RelayStore, epoch = EPOCH_A, stream = 'orders') => (await store.listStreams()).find((s) => s.epoch === epoch && s.stream === stream)!;

  beforeEach(async () => {
    // SQLite: a file in a nested folder the store must create itself; PostgreSQL: a schema of its own.
    place = await factory.place();
    now = 1_800_000_000_000;
  });

  afterEach(async () => {
    for (const s of open.splice(0)) {
      try {
        await await s.close();
      } catch {
        // already closed by the test
      }
    }
  });

  describe('v1 batches (release 0.1 agents)', () => {
    it('stores in-order batches with every field intact', async () => {
      const store = await openStore();
      expect(v1Brief(await apply(store, batchV1(1, 3)))).toEqual({ upto: 3, status: 'ok', stored: 3, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
      expect(v1Brief(await apply(store, batchV1(4, 5)))).toEqual({ upto: 5, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });

      const { epoch, seqs, events: ev } = await events(store);
      expect(epoch).toBe(EPOCH_A);
      expect(seqs).toEqual([1, 2, 3, 4, 5]);
      const { received_at, ...fourth } = ev[3]!;
      expect(fourth).toEqual(servedV1(recordV1(4)));
      expect(received_at).toBe(now);
      expect(ev[0]!.correlation_id).toBeNull();

      const streams = (await store.listStreams());
      expect(streams).toHaveLength(1);
      expect(streams[0]).toMatchObject({ site: SITE, agent: AGENT, stream: 'orders', epoch: EPOCH_A, last_seq: 5, dropped: 0, current: true, forked_from: null, duplicate_ids: 0 });
    });

    it('pages events with after and limit, in seq order', async () => {
      const store = await openStore();
      await apply(store, batchV1(1, 10));
      expect((await events(store, { after: 2, limit: 3 })).seqs).toEqual([3, 4, 5]);
      expect((await events(store, { after: 8, limit: 100 })).seqs).toEqual([9, 10]);
      expect((await events(store, { after: 10 })).seqs).toEqual([]);
    });

    it('keeps sequences of different streams and agents apart', async () => {
      const store = await openStore();
      expect((await apply(store, batchV1(1, 2, { stream: 'orders' }))).upto).toBe(2);
      expect(await apply(store, batchV1(1, 1, { stream: 'returns', idPrefix: 'returns#' }))).toMatchObject({ status: 'ok', upto: 1, stored: 1, newEpoch: false });
      expect(await apply(store, batchV1(1, 3, { agent: 'edge-2' }))).toMatchObject({ status: 'ok', upto: 3, stored: 3, newEpoch: false });
      expect((await events(store)).seqs).toEqual([1, 2]);
      expect((await events(store, { stream: 'returns' })).seqs).toEqual([1]);
      // Same ids on another agent are other records: de-duplication is per (site, agent, stream).
      expect((await events(store, { agent: 'edge-2' })).seqs).toEqual([1, 2, 3]);
      expect((await store.listStreams()).map((s) => [s.agent, s.stream, s.last_seq, s.current])).toEqual([
        ['edge-1', 'orders', 2, true],
        ['edge-1', 'returns', 1, true],
        ['edge-2', 'orders', 3, true],
      ]);
    });

    it('counts resent seqs that carry other records than those stored (agent outbox rolled back) and stores none of them', async () => {
      const store = await openStore();
      await apply(store, batchV1(1, 5));
      const rolledBack = batchV1(4, 7, { idPrefix: 'after-restore#' });
      expect(v1Brief(await apply(store, rolledBack))).toEqual({ upto: 7, status: 'ok', stored: 2, duplicates: 2, conflicts: 2, droppedAtAgent: 0, newEpoch: false });
      expect((await events(store)).events.map((e) => e.id)).toEqual(['orders.csv#1', 'orders.csv#2', 'orders.csv#3', 'orders.csv#4', 'orders.csv#5', 'after-restore#6', 'after-restore#7']);
      expect(await row(store)).toMatchObject({ conflicts: 2, forked_from: null });
      // A plain resend of the same records is no conflict; v1 never forks an epoch.
      expect((await apply(store, batchV1(1, 5))).conflicts).toBe(0);
      expect(await apply(store, batchV1(8, 8, { idPrefix: 'after-restore#' }))).toMatchObject({ status: 'ok', upto: 8, stored: 1 });
    });

    it('skips a duplicate batch and stores only the new tail of an overlapping one', async () => {
      const store = await openStore();
      await apply(store, batchV1(1, 5));
      expect(v1Brief(await apply(store, batchV1(1, 5, { tag: 'resent' })))).toEqual({ upto: 5, status: 'ok', stored: 0, duplicates: 5, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
      expect(v1Brief(await apply(store, batchV1(4, 7, { tag: 'resent' })))).toEqual({ upto: 7, status: 'ok', stored: 2, duplicates: 2, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
      const { seqs, events: ev } = await events(store);
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7]);
      // The first copy of a seq is kept; a resend never overwrites it.
      expect(ev.map((e) => (e.data as { tag: string }).tag)).toEqual(['first', 'first', 'first', 'first', 'first', 'resent', 'resent']);
      expect((await row(store)).last_seq).toBe(7);
    });

    it('refuses a batch that skips seqs, storing nothing, and reports the last stored seq', async () => {
      const store = await openStore();
      await apply(store, batchV1(1, 3));
      const gap = await apply(store, batchV1(6, 8));
      expect(v1Brief(gap)).toEqual({ upto: 3, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
      expect(gap.gapAt).toBe(6);
      expect((await events(store)).seqs).toEqual([1, 2, 3]);
      expect((await row(store)).last_seq).toBe(3);
      // The resend from upto + 1 is accepted: the gap's ids were not remembered.
      expect(await apply(store, batchV1(4, 8))).toMatchObject({ upto: 8, status: 'ok', stored: 5, duplicateIds: 0 });
      expect((await events(store)).seqs).toEqual(range(1, 8));
    });

    it('refuses a first batch that does not start at seq 1 with upto 0', async () => {
      const store = await openStore();
      expect(v1Brief(await apply(store, batchV1(2, 4)))).toEqual({ upto: 0, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
      expect((await events(store)).seqs).toEqual([]);
      expect(await row(store)).toMatchObject({ last_seq: 0 });
      expect(await apply(store, batchV1(1, 4))).toMatchObject({ upto: 4, status: 'ok', stored: 4 });
    });

    it('keeps a new epoch apart, names the earlier epochs, and lists the newest epoch by default', async () => {
      const store = await openStore();
      expect((await apply(store, batchV1(1, 3, { epoch: EPOCH_A, tag: 'a', idPrefix: 'a#' }))).previousEpochs).toEqual([]);

      // The agent's outbox was wiped: a new epoch starts again at seq 1, which is not a duplicate.
      const b = await apply(store, batchV1(1, 2, { epoch: EPOCH_B, tag: 'b', idPrefix: 'b#' }));
      expect(v1Brief(b)).toEqual({ upto: 2, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: true });
      expect(b.previousEpochs).toEqual([EPOCH_A]);

      const current = await events(store);
      expect(current.epoch).toBe(EPOCH_B);
      expect(current.seqs).toEqual([1, 2]);
      expect(current.events.map((e) => (e.data as { tag: string }).tag)).toEqual(['b', 'b']);
      const old = await events(store, { epoch: EPOCH_A });
      expect(old.epoch).toBe(EPOCH_A);
      expect(old.seqs).toEqual([1, 2, 3]);
      expect(old.events.map((e) => (e.data as { tag: string }).tag)).toEqual(['a', 'a', 'a']);
      expect(await events(store, { epoch: 'epoch-unknown' })).toMatchObject({ epoch: 'epoch-unknown', seqs: [] });

      // A late batch of the old epoch continues its own sequence and does not make it current again.
      expect(await apply(store, batchV1(4, 4, { epoch: EPOCH_A, tag: 'a', idPrefix: 'a#' }))).toMatchObject({ upto: 4, status: 'ok', newEpoch: false });
      expect((await events(store)).epoch).toBe(EPOCH_B);
      expect((await events(store, { epoch: EPOCH_A })).seqs).toEqual([1, 2, 3, 4]);
      expect((await events(store, { epoch: EPOCH_B })).seqs).toEqual([1, 2]);
      expect((await store.listStreams()).map((s) => ({ epoch: s.epoch, last_seq: s.last_seq, current: s.current }))).toEqual([
        { epoch: EPOCH_A, last_seq: 4, current: false },
        { epoch: EPOCH_B, last_seq: 2, current: true },
      ]);
    });

    it('returns no epoch and no events for an unknown stream', async () => {
      const store = await openStore();
      expect(await events(store, { stream: 'nothing' })).toMatchObject({ epoch: null, seqs: [] });
    });

    it('moves the cursor past seqs the agent dropped and counts them once', async () => {
      const store = await openStore();
      await apply(store, batchV1(1, 3));
      expect(v1Brief(await apply(store, batchV1(8, 9, { dropped_upto: 7 })))).toEqual({ upto: 9, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 4, newEpoch: false });
      expect((await events(store)).seqs).toEqual([1, 2, 3, 8, 9]);
      expect(await row(store)).toMatchObject({ last_seq: 9, dropped: 4 });

      // The same batch again: duplicates, and the drop is not counted twice.
      expect(v1Brief(await apply(store, batchV1(8, 9, { dropped_upto: 7 })))).toEqual({ upto: 9, status: 'ok', stored: 0, duplicates: 2, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
      expect(await row(store)).toMatchObject({ last_seq: 9, dropped: 4 });

      // Dropped up to 12, but the batch starts at 15: the drop is recorded, the batch is a gap.
      expect(v1Brief(await apply(store, batchV1(15, 16, { dropped_upto: 12 })))).toEqual({ upto: 12, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent: 3, newEpoch: false });
      expect(await row(store)).toMatchObject({ last_seq: 12, dropped: 7 });
      expect((await events(store)).seqs).toEqual([1, 2, 3, 8, 9]);
      expect(await apply(store, batchV1(13, 16))).toMatchObject({ upto: 16, status: 'ok', stored: 4 });
      expect((await events(store)).seqs).toEqual([1, 2, 3, 8, 9, 13, 14, 15, 16]);
    });

    it('handles dropped_upto on the first batch of a stream', async () => {
      const store = await openStore();
      expect(v1Brief(await apply(store, batchV1(6, 7, { dropped_upto: 5 })))).toEqual({ upto: 7, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 5, newEpoch: false });
      expect((await events(store)).seqs).toEqual([6, 7]);
      expect(await row(store)).toMatchObject({ last_seq: 7, dropped: 5 });
    });

    it('keeps events, cursors and epochs across a reopen', async () => {
      const first = await openStore();
      await apply(first, batchV1(1, 4, { epoch: EPOCH_A }));
      await apply(first, batchV1(1, 2, { epoch: EPOCH_B, dropped_upto: 0, idPrefix: 'b#' }));
      await apply(first, batchV1(1, 1, { stream: 'returns', dropped_upto: 0 }));
      await first.close();

      const again = await openStore();
      expect((await events(again, { epoch: EPOCH_A })).seqs).toEqual([1, 2, 3, 4]);
      expect(await events(again)).toMatchObject({ epoch: EPOCH_B, seqs: [1, 2] });
      expect((await events(again, { stream: 'returns' })).seqs).toEqual([1]);
      expect((await again.listStreams()).map((s) => [s.stream, s.epoch, s.last_seq, s.current])).toEqual([
        ['orders', EPOCH_A, 4, false],
        ['orders', EPOCH_B, 2, true],
        ['returns', EPOCH_A, 1, true],
      ]);
      // The cursor survived: an overlap is deduplicated and a skip is still a gap.
      expect(await apply(again, batchV1(3, 5, { epoch: EPOCH_A }))).toMatchObject({ upto: 5, status: 'ok', stored: 1, duplicates: 2, newEpoch: false });
      expect(await apply(again, batchV1(7, 7, { epoch: EPOCH_A }))).toMatchObject({ upto: 5, status: 'gap', stored: 0 });
      expect((await events(again, { epoch: EPOCH_A })).seqs).toEqual([1, 2, 3, 4, 5]);
      // The id index survived too: ids stored before the reopen are recognised in a new epoch.
      expect(await apply(again, batchV1(1, 2, { epoch: 'epoch-cccccccc' }))).toMatchObject({ upto: 2, status: 'ok', stored: 0, duplicateIds: 2 });
    });
  });

  describe('v2 batches', () => {
    it('stores records with every field and serves them, absent optional fields as null', async () => {
      const store = await openStore();
      const b = batchV2(1, 4);
      expect(await apply(store, b)).toMatchObject({ status: 'ok', upto: 4, stored: 4, duplicates: 0, duplicateIds: 0 });
      const got = (await events(store)).events.map(({ received_at: _r, ...e }) => e);
      expect(got).toEqual(b.records.map(servedV2));
      expect(got[1]).toMatchObject({ source_ts: 1_699_999_000_002, key: 'SO-2|1', txn: 'txn-0' });
      expect(got[0]).toMatchObject({ source_ts: null, key: null, txn: null, correlation_id: null });
    });

    it('moves past skipped ranges in the middle and at the tail, counting them by reason', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 3));
      // 4..5 dead-lettered, 6 dropped, then records 7..8 and 9 pruned at the tail.
      const mid = batchV2(7, 8, {
        skipped: [
          { from: 4, to: 5, reason: 'dead_letter' },
          { from: 6, to: 6, reason: 'dropped' },
          { from: 9, to: 9, reason: 'pruned' },
        ],
      });
      expect(await apply(store, mid)).toMatchObject({ status: 'ok', upto: 9, stored: 2, skipped: { dead_letter: 2, dropped: 1, pruned: 1, other: 0 } });
      // A batch of only skipped ranges (records dead-lettered at the tail) passes without a gap.
      expect(await apply(store, skipOnlyV2([{ from: 10, to: 12, reason: 'dead_letter' }, { from: 13, to: 13, reason: 'some_future_reason' }]))).toMatchObject({
        status: 'ok',
        upto: 13,
        stored: 0,
        skipped: { dead_letter: 3, dropped: 0, pruned: 0, other: 1 },
      });
      // The same skip again is no new skip.
      expect(await apply(store, skipOnlyV2([{ from: 10, to: 12, reason: 'dead_letter' }]))).toMatchObject({ status: 'ok', upto: 13, skipped: { dead_letter: 0 } });
      expect((await events(store)).seqs).toEqual([1, 2, 3, 7, 8]);
      expect(await row(store)).toMatchObject({ last_seq: 13, dropped: 1, dead_lettered: 5, skipped_other: 2 });
      // A skipped range that does not follow the cursor is a gap: nothing moves.
      expect(await apply(store, skipOnlyV2([{ from: 15, to: 16, reason: 'dead_letter' }]))).toMatchObject({ status: 'gap', upto: 13, gapAt: 15 });
      expect((await row(store)).last_seq).toBe(13);
      expect(await apply(store, batchV2(14, 14))).toMatchObject({ status: 'ok', upto: 14, stored: 1 });
    });

    it('rejects invalid records: stores the valid prefix, names every invalid record with its reason, stores nothing after', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 2));
      const b = batchV2(3, 10);
      b.records[2]!.ts = null; // seq 5: schema-invalid
      b.records[3]!.ts = null; // seq 6: same reason, merged with 5
      b.records[5]!.data = { blob: 'x'.repeat(600) }; // seq 8: too large for a 500-byte limit
      delete b.records[6]!.id; // seq 9: no id
      const o = await apply(store, b, 500);
      expect(o).toMatchObject({ status: 'rejected', upto: 4, stored: 2, rejectedRecords: { invalid_record: 3, record_too_large: 1 } });
      expect(o.ranges).toEqual([
        { from: 5, to: 6, reason: expect.stringMatching(/^invalid_record: ts: /) },
        { from: 8, to: 8, reason: 'record_too_large: over limits.max_record_bytes (500)' },
        { from: 9, to: 9, reason: expect.stringMatching(/^invalid_record: id: /) },
      ]);
      expect(o.ids).toEqual(['orders.csv#5', 'orders.csv#6', 'orders.csv#8']);
      expect(o.reason).toMatch(/4 record\(s\) refused/);
      expect((await events(store)).seqs).toEqual([1, 2, 3, 4]);
      expect(await row(store)).toMatchObject({ last_seq: 4, rejected_records: 4 });

      // The agent dead-letters them and resends with the seqs skipped: the stream moves on.
      const resend = batchV2(7, 10, { skipped: [{ from: 5, to: 6, reason: 'dead_letter' }] });
      resend.records = resend.records.filter((r) => r.seq === 7 || r.seq === 10);
      resend.skipped!.push({ from: 8, to: 9, reason: 'dead_letter' });
      expect(await apply(store, resend, 500)).toMatchObject({ status: 'ok', upto: 10, stored: 2, skipped: { dead_letter: 4 } });
      expect((await events(store)).seqs).toEqual([1, 2, 3, 4, 7, 10]);
    });

    it('answers conflict when resent seqs carry other ids, stores nothing, refuses the epoch from there, accepts a new epoch', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 5));
      // The outbox went back in time: seqs 4..5 are reused for other records, 6..7 are new.
      const forked = batchV2(4, 7, { idPrefix: 'after-restore#' });
      const o = await apply(store, forked);
      expect(o).toMatchObject({ status: 'conflict', upto: 5, stored: 0, conflicts: 2, forkedFrom: 4 });
      // Refused from the first conflicting seq to the end of the batch.
      expect(o.ranges).toEqual([{ from: 4, to: 7 }]);
      expect(o.ids).toEqual(['after-restore#4', 'after-restore#5', 'after-restore#6', 'after-restore#7']);
      expect((await events(store)).seqs).toEqual([1, 2, 3, 4, 5]);
      expect(await row(store)).toMatchObject({ last_seq: 5, forked_from: 4, conflicts: 2 });

      // In-flight batches sent before the agent saw the conflict: refused the same way, nothing stored.
      const later = await apply(store, batchV2(8, 9, { idPrefix: 'after-restore#' }));
      expect(later).toMatchObject({ status: 'conflict', upto: 5, stored: 0, forkedFrom: 4, ranges: [{ from: 8, to: 9 }], ids: ['after-restore#8', 'after-restore#9'] });
      expect(await apply(store, batchV2(6, 6))).toMatchObject({ status: 'conflict', upto: 5, stored: 0 });
      expect(await apply(store, skipOnlyV2([{ from: 6, to: 6, reason: 'dead_letter' }]))).toMatchObject({ status: 'conflict', upto: 5 });
      // A plain resend below the fork point is still a duplicate.
      expect(await apply(store, batchV2(1, 3))).toMatchObject({ status: 'ok', upto: 5, duplicates: 3 });
      expect((await events(store)).seqs).toEqual([1, 2, 3, 4, 5]);
      expect(await row(store)).toMatchObject({ last_seq: 5, forked_from: 4 });

      // The agent moves the stream to a new epoch: records the relay holds are recognised by id.
      const renumbered = batchV2(1, 4, { epoch: EPOCH_B, idPrefix: 'after-restore#' });
      renumbered.records[0]!.id = 'orders.csv#3'; // held in epoch A
      expect(await apply(store, renumbered)).toMatchObject({ status: 'ok', upto: 4, stored: 3, duplicateIds: 1, newEpoch: true });
      expect((await events(store)).events.map((e) => e.id)).toEqual(['after-restore#2', 'after-restore#3', 'after-restore#4']);
    });

    it('compares a resend at a seq held by a recognised id (not stored) with that id: another id there is a conflict', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 3));
      // Epoch B: seq 1 carries an id held in epoch A (recognised, not stored), seq 2 a new one.
      const b = batchV2(1, 2, { epoch: EPOCH_B, idPrefix: 'b#' });
      b.records[0]!.id = 'orders.csv#1';
      expect(await apply(store, b)).toMatchObject({ status: 'ok', upto: 2, stored: 1, duplicateIds: 1 });
      // The same records again: plain duplicates.
      const same = batchV2(1, 3, { epoch: EPOCH_B, idPrefix: 'b#' });
      same.records[0]!.id = 'orders.csv#1';
      expect(await apply(store, same)).toMatchObject({ status: 'ok', upto: 3, stored: 1, duplicates: 2, conflicts: 0 });
      // Holes in segments: listing and conflict lookups still line seqs up with their records.
      expect((await events(store, { epoch: EPOCH_B })).events.map((e) => [e.seq, e.id])).toEqual([
        [2, 'b#2'],
        [3, 'b#3'],
      ]);
      expect((await events(store, { epoch: EPOCH_B, after: 2 })).seqs).toEqual([3]);
      // Another record at seq 1 (the outbox went back in time): the relay remembers what seq 1 held.
      const restored = batchV2(1, 1, { epoch: EPOCH_B, idPrefix: 'restored#' });
      expect(await apply(store, restored)).toMatchObject({ status: 'conflict', forkedFrom: 1, ranges: [{ from: 1, to: 1 }], ids: ['restored#1'] });
    });

    it('a valid record at a seq the agent declared skipped is a conflict; a stale copy of a refused record there is a duplicate', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 3));
      expect(await apply(store, skipOnlyV2([{ from: 4, to: 5, reason: 'dead_letter' }]))).toMatchObject({ status: 'ok', upto: 5 });
      const stale = batchV2(4, 4);
      stale.records[0]!.ts = null; // the record refused before, delivered again
      expect(await apply(store, stale)).toMatchObject({ status: 'ok', upto: 5, duplicates: 1, conflicts: 0 });
      // A new record where the agent said none would ever be: another lineage (a restored outbox).
      expect(await apply(store, batchV2(4, 6, { idPrefix: 'new#' }))).toMatchObject({ status: 'conflict', upto: 5, stored: 0, forkedFrom: 4, ranges: [{ from: 4, to: 6 }] });
      expect((await events(store)).seqs).toEqual([1, 2, 3]);
    });

    it('refuses a forked epoch from the fork point only, and still compares what is resent below it', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 6));
      expect(await apply(store, batchV2(5, 7, { idPrefix: 'x#' }))).toMatchObject({ status: 'conflict', forkedFrom: 5 });
      // The original records below the fork point, then in-flight ones above it: named from the fork point.
      expect(await apply(store, batchV2(3, 8))).toMatchObject({ status: 'conflict', forkedFrom: 5, ranges: [{ from: 5, to: 8 }] });
      // Other records below the fork point too: the fork point moves down to the first of them.
      expect(await apply(store, batchV2(2, 3, { idPrefix: 'y#' }))).toMatchObject({ status: 'conflict', conflicts: 2, forkedFrom: 2, ranges: [{ from: 2, to: 3 }] });
      expect(await row(store)).toMatchObject({ forked_from: 2 });
      expect(await apply(store, batchV2(1, 1))).toMatchObject({ status: 'ok', duplicates: 1 });
    });

    it('recognises a keyed record by its key’s latest id: a row that changes and changes back is stored again', async () => {
      const store = await openStore();
      const keyed = (seq: number, version: string, epoch = EPOCH_A) => {
        const b = batchV2(seq, seq, { epoch });
        Object.assign(b.records[0]!, { id: `file-drop:orders/SO-1|1/${version}`, key: 'SO-1|1' });
        return b;
      };
      expect(await apply(store, keyed(1, 'A'))).toMatchObject({ stored: 1 });
      expect(await apply(store, keyed(2, 'A'))).toMatchObject({ stored: 0, duplicateIds: 1 }); // re-exported unchanged
      expect(await apply(store, keyed(3, 'B'))).toMatchObject({ stored: 1 }); // changed
      expect(await apply(store, keyed(4, 'A'))).toMatchObject({ stored: 1, duplicateIds: 0 }); // changed back: the latest is A again
      expect(await apply(store, keyed(5, 'A'))).toMatchObject({ stored: 0, duplicateIds: 1 });
      // Across epochs too (a restored outbox capturing the row again).
      expect(await apply(store, keyed(1, 'A', EPOCH_B))).toMatchObject({ stored: 0, duplicateIds: 1 });
      expect((await events(store, { epoch: EPOCH_A })).events.map((e) => e.id.split('/').at(-1))).toEqual(['A', 'B', 'A']);
    });

    it('keeps an id seen again remembered: the window slides with each sighting', async () => {
      const store = await openStore({ windowMs: DAY });
      const t0 = now;
      await apply(store, batchV2(1, 1, { idPrefix: 'daily#' }));
      now = t0 + DAY; // rotation: daily#1 now sits in the previous generation, and is seen again
      expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-00000010', idPrefix: 'daily#' }))).toMatchObject({ stored: 0, duplicateIds: 1 });
      now = t0 + 2 * DAY; // rotation: the generation it was first stored in is cleared
      expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-00000011', idPrefix: 'daily#' }))).toMatchObject({ stored: 0, duplicateIds: 1 });
      now = t0 + 4 * DAY; // not seen for two windows: forgotten
      expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-00000012', idPrefix: 'daily#' }))).toMatchObject({ stored: 1, duplicateIds: 0 });
    });

    it('recognises a record id stored before, across epochs and inside one batch, and does not store it again', async () => {
      const store = await openStore();
      await apply(store, batchV2(1, 3, { idPrefix: 'r#' }));
      const b = batchV2(1, 5, { epoch: EPOCH_B, idPrefix: 'r#' });
      b.records[4]!.id = 'r#4'; // seq 5 repeats seq 4's id inside the batch
      expect(await apply(store, b)).toMatchObject({ status: 'ok', upto: 5, stored: 1, duplicateIds: 4 });
      expect((await events(store)).events.map((e) => [e.seq, e.id])).toEqual([[4, 'r#4']]);
      expect(await row(store, EPOCH_B)).toMatchObject({ last_seq: 5, duplicate_ids: 4 });
      // Another stream of the same agent keeps its own ids.
      expect(await apply(store, batchV2(1, 2, { stream: 'returns', idPrefix: 'r#' }))).toMatchObject({ stored: 2, duplicateIds: 0 });
    });

    it('remembers ids for dedupe.window: the index rotates generations by the store clock', async () => {
      const store = await openStore({ windowMs: DAY });
      const t0 = now;
      await apply(store, batchV2(1, 2, { idPrefix: 'x#' }));
      if (store instanceof SqliteRelayStore) expect(store.idIndexState()).toMatchObject({ current: 0, startedAt: t0 });

      // Within the window: recognised.
      now = t0 + DAY - 1;
      expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-00000001', idPrefix: 'x#' }))).toMatchObject({ stored: 0, duplicateIds: 1 });
      // One window on: the generations rotate; ids of the previous one are still recognised.
      now = t0 + DAY;
      expect(await apply(store, batchV2(1, 1, { epoch: 'epoch-00000002', idPrefix: 'x#' }))).toMatchObject({ stored: 0, duplicateIds: 1 });
      if (store instanceof SqliteRelayStore) expect(store.idIndexState()).toMatchObject({ current: 1, startedAt: t0 + DAY, previousEmpty: false });
      // A new id goes into the current generation.
      await apply(store, batchV2(3, 3, { idPrefix: 'x#' }));
      // Two windows on: the older generation is forgotten: x#2 with it; x#1 was seen again one window
      // ago (carried into the newer generation) and x#3 stored then, so both are still known.
      now = t0 + 2 * DAY;
      const again = batchV2(1, 3, { epoch: 'epoch-00000003', idPrefix: 'x#' });
      expect(await apply(store, again)).toMatchObject({ status: 'ok', upto: 3, stored: 1, duplicateIds: 2 });
      if (store instanceof SqliteRelayStore) expect(store.idIndexState()).toMatchObject({ current: 0, startedAt: t0 + 2 * DAY });
      // The rotation state survives a reopen.
      await store.close();
      const reopened = await openStore({ windowMs: DAY });
      if (reopened instanceof SqliteRelayStore) expect(reopened.idIndexState()).toMatchObject({ current: 0, startedAt: t0 + 2 * DAY, previousEmpty: false });
      expect(await apply(reopened, batchV2(1, 1, { epoch: 'epoch-00000004', idPrefix: 'x#' }))).toMatchObject({ stored: 0, duplicateIds: 1 });
    });

    it('stores every record when dedupe.window is 0', async () => {
      const store = await openStore({ windowMs: 0 });
      await apply(store, batchV2(1, 2));
      expect(await apply(store, batchV2(1, 2, { epoch: EPOCH_B }))).toMatchObject({ stored: 2, duplicateIds: 0 });
    });

    it('applies a group of batches in one transaction, in order, with the right outcome each', async () => {
      const store = await openStore();
      const bs = [batchV2(1, 2), batchV2(3, 4), batchV2(7, 8), batchV2(5, 6)].map((b) => {
        const r = decodeEventBatch({ version: 2, site: SITE, agent: AGENT, stream: 'orders' }, Buffer.from(JSON.stringify(b)), { maxRecordBytes: 1 << 20 });
        if (!r.ok) throw new Error(r.detail);
        return r.batch;
      });
      expect((await applyBatches(store, bs)).map((o) => [o.status, o.upto])).toEqual([
        ['ok', 2],
        ['ok', 4],
        ['gap', 4],
        ['ok', 6],
      ]);
      expect((await events(store)).seqs).toEqual(range(1, 6));
    });

    it('v1 and v2 batches of one epoch share its cursor and its records', async () => {
      const store = await openStore();
      await apply(store, batchV1(1, 2));
      expect(await apply(store, batchV2(2, 4))).toMatchObject({ status: 'ok', upto: 4, stored: 2, duplicates: 1 });
      expect((await events(store)).events.map((e) => e.id)).toEqual(range(1, 4).map((s) => `orders.csv#${s}`));
      expect((await events(store)).events[3]).toMatchObject(servedV2(recordV2(4)));
    });
  });
});
