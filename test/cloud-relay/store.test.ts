import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RelayStore } from '../../cloud-relay/store.js';
import { createLogger } from '../../common/logger.js';
import type { EventBatch, WireRecord } from '../../common/wire-v1.js';
import { makeTempDir } from '../helpers/tmp.js';

const EPOCH_A = 'epoch-aaaaaaaa';
const EPOCH_B = 'epoch-bbbbbbbb';

interface BatchOpts {
  site?: string;
  agent?: string;
  stream?: string;
  epoch?: string;
  dropped_upto?: number;
  /** Tag put into each record's data, to tell two sends of the same seq apart. */
  tag?: string;
}

function record(seq: number, tag: string): WireRecord {
  return {
    seq,
    id: `orders.csv#${seq}`,
    ts: 1_700_000_000_000 + seq,
    source: 'file-drop:orders',
    correlation_id: seq % 2 === 0 ? `po-${seq}` : null,
    data: { seq, tag, lines: [{ sku: `SKU-${seq}`, qty: seq * 2 }] },
  };
}

function batch(from: number, to: number, o: BatchOpts = {}): EventBatch {
  const records: WireRecord[] = [];
  for (let s = from; s <= to; s++) records.push(record(s, o.tag ?? 'first'));
  return {
    v: 1,
    site: o.site ?? 'plant-7',
    agent: o.agent ?? 'edge-1',
    stream: o.stream ?? 'orders',
    epoch: o.epoch ?? EPOCH_A,
    ...(o.dropped_upto !== undefined ? { dropped_upto: o.dropped_upto } : {}),
    sent_at: 1_700_000_100_000,
    records,
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Collects the JSON log lines a pino logger writes. */
function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

describe('RelayStore', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let path: string;
  const open: RelayStore[] = [];
  const silent = createLogger({ level: 'silent' });

  function openStore(logger = silent): RelayStore {
    const s = new RelayStore(path, logger);
    open.push(s);
    return s;
  }

  function seqs(store: RelayStore, q: { stream?: string; agent?: string; epoch?: string; after?: number; limit?: number } = {}) {
    const r = store.listEvents({
      site: 'plant-7',
      agent: q.agent ?? 'edge-1',
      stream: q.stream ?? 'orders',
      ...(q.epoch !== undefined ? { epoch: q.epoch } : {}),
      after: q.after ?? 0,
      limit: q.limit ?? 1000,
    });
    return { epoch: r.epoch, seqs: r.events.map((e) => e.seq), events: r.events };
  }

  beforeEach(() => {
    tmp = makeTempDir('erp-edge-relay-store-');
    // A nested folder the store must create itself.
    path = join(tmp.dir, 'var', 'relay', 'relay.db');
  });

  afterEach(() => {
    for (const s of open.splice(0)) {
      try {
        s.close();
      } catch {
        // already closed by the test
      }
    }
    tmp.cleanup();
  });

  it('stores in-order batches with every field intact', () => {
    const store = openStore();
    expect(store.applyBatch(batch(1, 3))).toEqual({ upto: 3, status: 'ok', stored: 3, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
    expect(store.applyBatch(batch(4, 5))).toEqual({ upto: 5, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });

    const { epoch, seqs: got, events } = seqs(store);
    expect(epoch).toBe(EPOCH_A);
    expect(got).toEqual([1, 2, 3, 4, 5]);
    const fourth = events[3]!;
    const sent = record(4, 'first');
    expect({ seq: fourth.seq, id: fourth.id, ts: fourth.ts, source: fourth.source, correlation_id: fourth.correlation_id, data: fourth.data }).toEqual(sent);
    expect(events[0]!.correlation_id).toBeNull();
    expect(typeof fourth.received_at).toBe('number');

    const streams = store.listStreams();
    expect(streams).toHaveLength(1);
    expect(streams[0]).toMatchObject({ site: 'plant-7', agent: 'edge-1', stream: 'orders', epoch: EPOCH_A, last_seq: 5, dropped: 0, current: true });
  });

  it('pages events with after and limit, in seq order', () => {
    const store = openStore();
    store.applyBatch(batch(1, 10));
    expect(seqs(store, { after: 2, limit: 3 }).seqs).toEqual([3, 4, 5]);
    expect(seqs(store, { after: 8, limit: 100 }).seqs).toEqual([9, 10]);
    expect(seqs(store, { after: 10 }).seqs).toEqual([]);
  });

  it('keeps sequences of different streams and agents apart', () => {
    const store = openStore();
    expect(store.applyBatch(batch(1, 2, { stream: 'orders' })).upto).toBe(2);
    expect(store.applyBatch(batch(1, 1, { stream: 'returns' }))).toMatchObject({ status: 'ok', upto: 1, stored: 1, newEpoch: false });
    expect(store.applyBatch(batch(1, 3, { agent: 'edge-2' }))).toMatchObject({ status: 'ok', upto: 3, stored: 3, newEpoch: false });
    expect(seqs(store).seqs).toEqual([1, 2]);
    expect(seqs(store, { stream: 'returns' }).seqs).toEqual([1]);
    expect(seqs(store, { agent: 'edge-2' }).seqs).toEqual([1, 2, 3]);
    expect(store.listStreams().map((s) => [s.agent, s.stream, s.last_seq, s.current])).toEqual([
      ['edge-1', 'orders', 2, true],
      ['edge-1', 'returns', 1, true],
      ['edge-2', 'orders', 3, true],
    ]);
  });

  it('counts resent seqs that carry other records than those stored (agent outbox rolled back) and stores none of them', () => {
    const store = openStore();
    store.applyBatch(batch(1, 5));
    // Same seqs, other record ids: the agent's outbox went back in time under the same epoch.
    const rolledBack = batch(4, 7);
    rolledBack.records = rolledBack.records.map((r) => ({ ...r, id: `after-restore#${r.seq}` }));
    expect(store.applyBatch(rolledBack)).toEqual({ upto: 7, status: 'ok', stored: 2, duplicates: 2, conflicts: 2, droppedAtAgent: 0, newEpoch: false });
    const stored = store.listEvents({ site: 'plant-7', agent: 'edge-1', stream: 'orders', after: 0, limit: 100 }).events;
    expect(stored.map((e) => e.id)).toEqual(['orders.csv#1', 'orders.csv#2', 'orders.csv#3', 'orders.csv#4', 'orders.csv#5', 'after-restore#6', 'after-restore#7']);
    // A plain resend of the same records is no conflict.
    expect(store.applyBatch(batch(1, 5)).conflicts).toBe(0);
  });

  it('skips a duplicate batch and stores only the new tail of an overlapping one', () => {
    const store = openStore();
    store.applyBatch(batch(1, 5));

    expect(store.applyBatch(batch(1, 5, { tag: 'resent' }))).toEqual({ upto: 5, status: 'ok', stored: 0, duplicates: 5, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
    expect(store.applyBatch(batch(4, 7, { tag: 'resent' }))).toEqual({ upto: 7, status: 'ok', stored: 2, duplicates: 2, conflicts: 0, droppedAtAgent: 0, newEpoch: false });

    const { seqs: got, events } = seqs(store);
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // The first copy of a seq is kept; a resend never overwrites it.
    expect(events.map((e) => (e.data as { tag: string }).tag)).toEqual(['first', 'first', 'first', 'first', 'first', 'resent', 'resent']);
    expect(store.listStreams()[0]!.last_seq).toBe(7);
  });

  it('refuses a batch that skips seqs, storing nothing, and reports the last stored seq', () => {
    const store = openStore();
    store.applyBatch(batch(1, 3));

    expect(store.applyBatch(batch(6, 8))).toEqual({ upto: 3, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
    expect(seqs(store).seqs).toEqual([1, 2, 3]);
    expect(store.listStreams()[0]!.last_seq).toBe(3);

    // The resend from upto + 1 is accepted.
    expect(store.applyBatch(batch(4, 8))).toMatchObject({ upto: 8, status: 'ok', stored: 5 });
    expect(seqs(store).seqs).toEqual(range(1, 8));
  });

  it('refuses a first batch that does not start at seq 1 with upto 0', () => {
    const store = openStore();
    expect(store.applyBatch(batch(2, 4))).toEqual({ upto: 0, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
    expect(seqs(store).seqs).toEqual([]);
    expect(store.listStreams()[0]).toMatchObject({ last_seq: 0 });
    expect(store.applyBatch(batch(1, 4))).toMatchObject({ upto: 4, status: 'ok', stored: 4 });
  });

  it('keeps a new epoch apart, logs a warning, and lists the newest epoch by default', () => {
    const { lines, logger } = captureLogger();
    const store = openStore(logger);
    store.applyBatch(batch(1, 3, { epoch: EPOCH_A, tag: 'a' }));
    expect(lines.filter((l) => l.level === 40)).toEqual([]);

    // The agent's outbox was wiped: a new epoch starts again at seq 1, which is not a duplicate.
    expect(store.applyBatch(batch(1, 2, { epoch: EPOCH_B, tag: 'b' }))).toEqual({
      upto: 2,
      status: 'ok',
      stored: 2,
      duplicates: 0,
      conflicts: 0,
      droppedAtAgent: 0,
      newEpoch: true,
    });
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ epoch: EPOCH_B, previous: [EPOCH_A], stream: 'orders' });
    expect(String(warnings[0]!.msg)).toMatch(/new outbox epoch/);

    const current = seqs(store);
    expect(current.epoch).toBe(EPOCH_B);
    expect(current.seqs).toEqual([1, 2]);
    expect(current.events.map((e) => (e.data as { tag: string }).tag)).toEqual(['b', 'b']);

    const old = seqs(store, { epoch: EPOCH_A });
    expect(old.epoch).toBe(EPOCH_A);
    expect(old.seqs).toEqual([1, 2, 3]);
    expect(old.events.map((e) => (e.data as { tag: string }).tag)).toEqual(['a', 'a', 'a']);

    expect(seqs(store, { epoch: 'epoch-unknown' })).toMatchObject({ epoch: 'epoch-unknown', seqs: [] });

    // A late batch of the old epoch continues its own sequence and does not make it current again.
    expect(store.applyBatch(batch(4, 4, { epoch: EPOCH_A, tag: 'a' }))).toMatchObject({ upto: 4, status: 'ok', newEpoch: false });
    expect(seqs(store).epoch).toBe(EPOCH_B);
    expect(seqs(store, { epoch: EPOCH_A }).seqs).toEqual([1, 2, 3, 4]);
    expect(seqs(store, { epoch: EPOCH_B }).seqs).toEqual([1, 2]);

    const rows = store.listStreams().map((s) => ({ epoch: s.epoch, last_seq: s.last_seq, current: s.current }));
    expect(rows).toHaveLength(2);
    expect(rows).toEqual(
      expect.arrayContaining([
        { epoch: EPOCH_A, last_seq: 4, current: false },
        { epoch: EPOCH_B, last_seq: 2, current: true },
      ]),
    );
  });

  it('returns no epoch and no events for an unknown stream', () => {
    const store = openStore();
    expect(seqs(store, { stream: 'nothing' })).toMatchObject({ epoch: null, seqs: [] });
  });

  it('moves the cursor past seqs the agent dropped and counts them once', () => {
    const store = openStore();
    store.applyBatch(batch(1, 3));

    expect(store.applyBatch(batch(8, 9, { dropped_upto: 7 }))).toEqual({ upto: 9, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 4, newEpoch: false });
    expect(seqs(store).seqs).toEqual([1, 2, 3, 8, 9]);
    expect(store.listStreams()[0]).toMatchObject({ last_seq: 9, dropped: 4 });

    // The same batch again: duplicates, and the drop is not counted twice.
    expect(store.applyBatch(batch(8, 9, { dropped_upto: 7 }))).toEqual({ upto: 9, status: 'ok', stored: 0, duplicates: 2, conflicts: 0, droppedAtAgent: 0, newEpoch: false });
    expect(store.listStreams()[0]).toMatchObject({ last_seq: 9, dropped: 4 });

    // Dropped up to 12, but the batch starts at 15: the drop is recorded, the batch is a gap.
    expect(store.applyBatch(batch(15, 16, { dropped_upto: 12 }))).toEqual({ upto: 12, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent: 3, newEpoch: false });
    expect(store.listStreams()[0]).toMatchObject({ last_seq: 12, dropped: 7 });
    expect(seqs(store).seqs).toEqual([1, 2, 3, 8, 9]);
    expect(store.applyBatch(batch(13, 16))).toMatchObject({ upto: 16, status: 'ok', stored: 4 });
    expect(seqs(store).seqs).toEqual([1, 2, 3, 8, 9, 13, 14, 15, 16]);
  });

  it('handles dropped_upto on the first batch of a stream', () => {
    const store = openStore();
    expect(store.applyBatch(batch(6, 7, { dropped_upto: 5 }))).toEqual({ upto: 7, status: 'ok', stored: 2, duplicates: 0, conflicts: 0, droppedAtAgent: 5, newEpoch: false });
    expect(seqs(store).seqs).toEqual([6, 7]);
    expect(store.listStreams()[0]).toMatchObject({ last_seq: 7, dropped: 5 });
  });

  it('keeps events, cursors and epochs across a reopen', () => {
    const first = openStore();
    first.applyBatch(batch(1, 4, { epoch: EPOCH_A }));
    first.applyBatch(batch(1, 2, { epoch: EPOCH_B, dropped_upto: 0 }));
    first.applyBatch(batch(1, 1, { stream: 'returns', dropped_upto: 0 }));
    first.close();

    const again = openStore();
    expect(seqs(again, { epoch: EPOCH_A }).seqs).toEqual([1, 2, 3, 4]);
    expect(seqs(again)).toMatchObject({ epoch: EPOCH_B, seqs: [1, 2] });
    expect(seqs(again, { stream: 'returns' }).seqs).toEqual([1]);
    expect(again.listStreams().map((s) => [s.stream, s.epoch, s.last_seq, s.current])).toEqual([
      ['orders', EPOCH_A, 4, false],
      ['orders', EPOCH_B, 2, true],
      ['returns', EPOCH_A, 1, true],
    ]);

    // The cursor survived: an overlap is deduplicated and a skip is still a gap.
    expect(again.applyBatch(batch(3, 5, { epoch: EPOCH_A }))).toMatchObject({ upto: 5, status: 'ok', stored: 1, duplicates: 2, newEpoch: false });
    expect(again.applyBatch(batch(7, 7, { epoch: EPOCH_A }))).toMatchObject({ upto: 5, status: 'gap', stored: 0 });
    expect(seqs(again, { epoch: EPOCH_A }).seqs).toEqual([1, 2, 3, 4, 5]);
  });
});
