import { join } from 'node:path';
import { openSqlite } from '../../../agent/outbox/sqlite.js';
import { describe, expect, it, vi } from 'vitest';
import { resendDeadLetters, discardDeadLetters } from '../../../agent/host/dead-letter-actions.js';
import { lineBody } from '../../../agent/outbox/chunk.js';
import { Outbox, type NewRecord, type OutboxOptions } from '../../../agent/outbox/outbox.js';
import { createLogger } from '../../../common/logger.js';
import { wireRecordV2 } from '../../../common/wire-v2.js';
import { testHost } from '../../helpers/host.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';
import { fileChunks, fileRecords, fileUsage } from '../../helpers/outbox-file.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const silent = createLogger({ level: 'silent' });

const files = useOutboxFiles('dead-letter-test-', { synchronous: 'NORMAL', replayWindowMs: HOUR });
const dbPath = files.dbPath;
const open = files.open;

function recs(stream: string, from: number, to: number): NewRecord[] {
  return Array.from({ length: to - from + 1 }, (_, k) => ({ id: `${stream}-${from + k}`, source: `test:${stream}`, ts: T0 + from + k, data: { i: from + k, text: 'é\nü' } }));
}

/** Stream s in three chunks: 1..5, 6..10, 11..15. */
function fixture(o: Outbox, stream = 's'): Map<number, string> {
  o.append(stream, recs(stream, 1, 5));
  o.append(stream, recs(stream, 6, 10));
  o.append(stream, recs(stream, 11, 15));
  // The original lines, by seq, as the file holds them before anything moves.
  return new Map(fileRecords(dbPath(), stream).map((r) => [r.seq, r.line]));
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
const except = (all: number[], gone: number[]) => all.filter((s) => !gone.includes(s));

/** Pending rows: seq, the seq inside the JSON and the data, checked against the original lines. */
function expectRecords(o: Outbox, stream: string, seqs: number[], original: Map<number, string>, after = 0) {
  const rows = o.readPending(stream, after, Number.MAX_SAFE_INTEGER);
  expect(rows.map((r) => r.seq)).toEqual(seqs);
  for (const r of rows) {
    expect(r.payload).toBe(original.get(r.seq));
    expect(r.bytes).toBe(Buffer.byteLength(r.payload));
    const rec = wireRecordV2.parse(JSON.parse(r.payload));
    expect(rec.seq).toBe(r.seq);
    expect(rec.data).toEqual({ i: r.seq, text: 'é\nü' });
  }
  // The file's own chunk rows say the same.
  expect(fileRecords(dbPath(), stream).filter((r) => r.seq > after).map((r) => r.seq)).toEqual(seqs);
}

function expectUsageMatchesFile(o: Outbox) {
  const u = o.usage();
  expect({ bytes: u.bytes, events: u.events, dropped: u.dropped }).toEqual(fileUsage(dbPath()));
}

/** Every stream's chunks are internally consistent: bytes and line count match their span. */
function expectChunksConsistent(stream: string) {
  for (const c of fileChunks(dbPath(), stream)) {
    expect(c.lines.length).toBe(c.last - c.first + 1);
    expect(c.bytes).toBe(c.lines.reduce((n, l) => n + Buffer.byteLength(l), 0));
    c.lines.forEach((l, i) => expect((JSON.parse(l) as { seq: number }).seq).toBe(c.first + i));
  }
}

describe('deadLetterPending', () => {
  it('moves a range in the middle of a chunk, splitting it, leaving a hole and a skips row', () => {
    const o = open();
    const original = fixture(o);
    expect(o.deadLetterPending('s', [{ from: 2, to: 3, reason: 'data.qty: expected number' }])).toBe(2);

    expectRecords(o, 's', except(range(1, 15), [2, 3]), original);
    expect(fileChunks(dbPath(), 's').map((c) => [c.first, c.last])).toEqual([
      [1, 1],
      [4, 5],
      [6, 10],
      [11, 15],
    ]);
    expectChunksConsistent('s');
    expect(o.skipsBetween('s', 1, 15)).toEqual([{ first: 2, last: 3, reason: 'dead_letter' }]);
    expect(o.skipsBetween('s', 3, 3)).toEqual([{ first: 2, last: 3, reason: 'dead_letter' }]);
    expect(o.skipsBetween('s', 4, 15)).toEqual([]);
    expectUsageMatchesFile(o);
    expect(o.usage().events).toBe(13);

    const dl = o.deadLetters.list();
    expect(dl.map((d) => ({ stream: d.stream, epoch: d.epoch, seq: d.seq, recordId: d.recordId, source: d.source, origin: d.origin, reason: d.reason }))).toEqual(
      [2, 3].map((seq) => ({ stream: 's', epoch: o.epoch, seq, recordId: `s-${seq}`, source: 'test:s', origin: 'relay', reason: 'data.qty: expected number' })),
    );
    expect(dl.map((d) => d.payload)).toEqual([original.get(2), original.get(3)]);
    expect(dl.map((d) => d.bytes)).toEqual([Buffer.byteLength(original.get(2)!), Buffer.byteLength(original.get(3)!)]);

    const st = o.streamStatus().find((s) => s.stream === 's')!;
    const pendingBytes = o.readPending('s', 0, Number.MAX_SAFE_INTEGER).reduce((n, r) => n + r.bytes, 0);
    expect(st).toMatchObject({ lastSeq: 15, ackedSeq: 0, pending: 13, pendingBytes, deadLetters: 2, deadLettered: 2 });
    // The seqs are not reused: the next append continues after 15.
    expect(o.append('s', recs('s', 16, 16))).toEqual({ firstSeq: 16, lastSeq: 16 });
  });

  it('moves a range spanning chunks', () => {
    const o = open();
    const original = fixture(o);
    expect(o.deadLetterPending('s', [{ from: 4, to: 12, reason: 'too big for the relay' }])).toBe(9);
    expectRecords(o, 's', [1, 2, 3, 13, 14, 15], original);
    expect(fileChunks(dbPath(), 's').map((c) => [c.first, c.last])).toEqual([
      [1, 3],
      [13, 15],
    ]);
    expectChunksConsistent('s');
    expect(o.skipsBetween('s', 1, 15)).toEqual([{ first: 4, last: 12, reason: 'dead_letter' }]);
    expect(o.deadLetters.list().map((d) => d.seq)).toEqual(range(4, 12));
    expectUsageMatchesFile(o);
    expect(o.streamStatus()[0]).toMatchObject({ pending: 6, deadLetters: 9, deadLettered: 9 });
  });

  it('moves a range at the tail: no record after it, the seqs stay used', () => {
    const o = open();
    const original = fixture(o);
    expect(o.deadLetterPending('s', [{ from: 13, to: 15, reason: 'bad' }])).toBe(3);
    expectRecords(o, 's', range(1, 12), original);
    expect(o.hasRecordsAfter('s', 12)).toBe(false);
    expect(o.hasRecordsAfter('s', 11)).toBe(true);
    expect(o.lastSeq('s')).toBe(15);
    expect(o.skipsBetween('s', 13, 15)).toEqual([{ first: 13, last: 15, reason: 'dead_letter' }]);
    expectUsageMatchesFile(o);
    expect(o.append('s', recs('s', 16, 17))).toEqual({ firstSeq: 16, lastSeq: 17 });
    expect(o.readPending('s', 12, 100).map((r) => r.seq)).toEqual([16, 17]);
  });

  it('clips ranges to the pending part of the stream (after the ack, up to the last seq)', () => {
    const o = open();
    const original = fixture(o);
    o.ack('s', 3);
    const moved = o.deadLetterPending('s', [
      { from: 1, to: 5, reason: 'partly acked' },
      { from: 14, to: 40, reason: 'partly beyond the last seq' },
      { from: 1, to: 3, reason: 'all acked' },
      { from: 20, to: 30, reason: 'all beyond' },
    ]);
    expect(moved).toBe(4);
    // The acked rows 1..3 are still stored (replay window) and were not moved.
    expectRecords(o, 's', except(range(1, 15), [4, 5, 14, 15]), original);
    expect(o.skipsBetween('s', 1, 100)).toEqual([
      { first: 4, last: 5, reason: 'dead_letter' },
      { first: 14, last: 15, reason: 'dead_letter' },
    ]);
    expect(o.deadLetters.list().map((d) => [d.seq, d.reason])).toEqual([
      [4, 'partly acked'],
      [5, 'partly acked'],
      [14, 'partly beyond the last seq'],
      [15, 'partly beyond the last seq'],
    ]);
    expect(o.lastSeq('s')).toBe(15);
    expectUsageMatchesFile(o);
    expect(o.streamStatus()[0]).toMatchObject({ ackedSeq: 3, pending: 8, deadLetters: 4, deadLettered: 4 });
    // Nothing to move: nothing changes.
    expect(o.deadLetterPending('s', [{ from: 1, to: 2, reason: 'acked' }])).toBe(0);
    expect(o.deadLetterPending('unknown', [{ from: 1, to: 2, reason: 'no such stream' }])).toBe(0);
    expect(o.streamNames()).toEqual(['s']);
    expect(o.streamStatus()[0]).toMatchObject({ deadLettered: 4 });
  });

  it('is idempotent: the same rejected range again (a redelivered ack) moves nothing and adds no second skips row', () => {
    const o = open();
    const original = fixture(o);
    expect(o.deadLetterPending('s', [{ from: 4, to: 6, reason: 'bad' }])).toBe(3);
    let again: number | undefined;
    expect(() => (again = o.deadLetterPending('s', [{ from: 4, to: 6, reason: 'bad' }]))).not.toThrow();
    expect(again).toBe(0);
    expect(o.skipsBetween('s', 1, 15)).toEqual([{ first: 4, last: 6, reason: 'dead_letter' }]);
    expect(o.deadLetters.list()).toHaveLength(3);
    expect(o.streamStatus()[0]).toMatchObject({ deadLetters: 3, deadLettered: 3 });
    expectRecords(o, 's', except(range(1, 15), [4, 5, 6]), original);
    expectUsageMatchesFile(o);
  });

  it('never leaves one seq in two skips rows when a range overlaps one already moved', () => {
    const o = open();
    fixture(o);
    o.deadLetterPending('s', [{ from: 5, to: 6, reason: 'bad' }]);
    expect(o.deadLetterPending('s', [{ from: 4, to: 7, reason: 'bad again' }])).toBe(2);
    const covered = o.skipsBetween('s', 1, 15).flatMap((k) => range(k.first, k.last));
    expect(covered.sort((a, b) => a - b)).toEqual([4, 5, 6, 7]);
    expect(o.deadLetters.list().map((d) => d.seq)).toEqual([5, 6, 4, 7]);
  });

  it('keeps usage equal to the file after a reopen, and the dead letters and skips with it', () => {
    const o = open();
    const original = fixture(o);
    o.deadLetterPending('s', [
      { from: 2, to: 2, reason: 'a' },
      { from: 7, to: 11, reason: 'b' },
    ]);
    const usage = o.usage();
    const status = o.streamStatus();
    o.close();
    const r = open();
    expect(r.usage()).toEqual(usage);
    expect(r.streamStatus()).toEqual(status);
    expect(r.skipsBetween('s', 1, 15)).toEqual([
      { first: 2, last: 2, reason: 'dead_letter' },
      { first: 7, last: 11, reason: 'dead_letter' },
    ]);
    expectRecords(r, 's', except(range(1, 15), [2, 7, 8, 9, 10, 11]), original);
    expectUsageMatchesFile(r);
  });

  it('an ack past a range prunes its skips row; one inside it keeps the row', () => {
    const o = open();
    fixture(o);
    o.deadLetterPending('s', [
      { from: 4, to: 5, reason: 'a' },
      { from: 8, to: 10, reason: 'b' },
    ]);
    o.ack('s', 5); // an ack may end on a skipped seq
    expect(o.skipsBetween('s', 1, 15)).toEqual([{ first: 8, last: 10, reason: 'dead_letter' }]);
    o.ack('s', 9);
    expect(o.skipsBetween('s', 1, 15)).toEqual([{ first: 8, last: 10, reason: 'dead_letter' }]);
    o.ack('s', 10);
    expect(o.skipsBetween('s', 1, 15)).toEqual([]);
    // The dead letters themselves stay until an operator acts.
    expect(o.deadLetters.list()).toHaveLength(5);
    o.pruneAcked(true);
    expectRecords(o, 's', range(11, 15), new Map(fileRecords(dbPath(), 's').map((r) => [r.seq, r.line])), 0);
    expectUsageMatchesFile(o);
    expect(o.streamStatus()[0]).toMatchObject({ ackedSeq: 10, pending: 5, deadLetters: 5, deadLettered: 5 });
  });
});

describe('the dead-letter table: list, summary, discard', () => {
  it('lists by stream, ids and page; summarises per stream; discards for good and returns what it deleted', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0);
    const o = open();
    fixture(o, 's');
    fixture(o, 't');
    o.deadLetterPending('s', [{ from: 2, to: 4, reason: 'bad s' }]);
    vi.setSystemTime(T0 + 1_000);
    o.deadLetterPending('t', [{ from: 10, to: 11, reason: 'bad t' }]);
    const usage = o.usage();

    const all = o.deadLetters.list();
    expect(all.map((d) => [d.stream, d.seq])).toEqual([
      ['s', 2],
      ['s', 3],
      ['s', 4],
      ['t', 10],
      ['t', 11],
    ]);
    expect(all.map((d) => d.at)).toEqual([T0, T0, T0, T0 + 1_000, T0 + 1_000]);
    expect(o.deadLetters.list({ stream: 't' }).map((d) => d.seq)).toEqual([10, 11]);
    expect(o.deadLetters.list({ ids: [all[1]!.id, all[4]!.id] }).map((d) => d.seq)).toEqual([3, 11]);
    expect(o.deadLetters.list({ ids: [] })).toEqual([]);
    expect(o.deadLetters.list({ afterId: all[1]!.id, limit: 2 }).map((d) => d.seq)).toEqual([4, 10]);
    expect(o.deadLetters.list({ stream: 's', afterId: all[0]!.id }).map((d) => d.seq)).toEqual([3, 4]);
    expect(o.deadLetters.summary()).toEqual([
      { stream: 's', count: 3, oldestAt: T0 },
      { stream: 't', count: 2, oldestAt: T0 + 1_000 },
    ]);

    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } });
    const gone = discardDeadLetters(o, { stream: 's', ids: [all[0]!.id, all[2]!.id, all[3]!.id] }, log);
    expect(gone.map((d) => [d.stream, d.seq])).toEqual([
      ['s', 2],
      ['s', 4],
    ]);
    expect(o.deadLetters.list().map((d) => [d.stream, d.seq])).toEqual([
      ['s', 3],
      ['t', 10],
      ['t', 11],
    ]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ discarded: 2, records: [{ stream: 's', seq: 2, id: 's-2', reason: 'bad s' }, { stream: 's', seq: 4 }] });
    expect(o.deadLetters.discard({ stream: 't' }).map((d) => d.seq)).toEqual([10, 11]);
    expect(o.deadLetters.summary()).toEqual([{ stream: 's', count: 1, oldestAt: T0 }]);

    // Counts: what is in the table now; what was ever moved stays counted. Records are not touched.
    const st = Object.fromEntries(o.streamStatus().map((s) => [s.stream, s]));
    expect(st.s).toMatchObject({ deadLetters: 1, deadLettered: 3 });
    expect(st.t).toMatchObject({ deadLetters: 0, deadLettered: 2 });
    expect(o.usage()).toEqual(usage);
    expectUsageMatchesFile(o);
  });
});

describe('resendDeadLetters', () => {
  it('re-appends them as new records (new seqs, same ids and data) and removes them from the table', () => {
    const o = open();
    const original = fixture(o);
    o.deadLetterPending('s', [
      { from: 3, to: 4, reason: 'relay bug, since fixed' },
      { from: 9, to: 9, reason: 'relay bug, since fixed' },
    ]);
    const other = fixture(o, 't');
    o.deadLetterPending('t', [{ from: 1, to: 1, reason: 'x' }]);

    const r = resendDeadLetters(o, { stream: 's' }, 64 * 1024, silent);
    expect(r).toEqual({ resent: 3, refused: [], streams: { s: 3 } });
    expect(o.lastSeq('s')).toBe(18);
    const resent = o.readPending('s', 15, Number.MAX_SAFE_INTEGER);
    expect(resent.map((x) => x.seq)).toEqual([16, 17, 18]);
    // The same records, only with their new seq.
    expect(resent.map((x) => lineBody(x.payload))).toEqual([3, 4, 9].map((s) => lineBody(original.get(s)!)));
    expect(resent.map((x) => wireRecordV2.parse(JSON.parse(x.payload)).id)).toEqual(['s-3', 's-4', 's-9']);
    expect(o.deadLetters.list().map((d) => [d.stream, d.seq])).toEqual([['t', 1]]);
    // The holes stay holes (declared as skipped until acked past): the records live on at 16..18.
    expect(o.skipsBetween('s', 1, 18)).toEqual([
      { first: 3, last: 4, reason: 'dead_letter' },
      { first: 9, last: 9, reason: 'dead_letter' },
    ]);
    expect(o.readPending('t', 0, 100).map((x) => x.payload)).toEqual(range(2, 15).map((s) => other.get(s)));
    expectUsageMatchesFile(o);
    expect(o.streamStatus().find((s) => s.stream === 's')).toMatchObject({ pending: 15, deadLetters: 0, deadLettered: 3 });
  });

  it('appends and removes in one transaction: if the removal fails, nothing was appended', () => {
    const o = open();
    fixture(o);
    o.deadLetterPending('s', [{ from: 5, to: 6, reason: 'x' }]);
    const usage = o.usage();
    const db = openSqlite(dbPath());
    db.exec("CREATE TRIGGER keep_dead_letters BEFORE DELETE ON dead_letters BEGIN SELECT RAISE(ABORT, 'injected delete failure'); END");
    db.close();

    expect(() => resendDeadLetters(o, {}, 64 * 1024, silent)).toThrow(/injected delete failure/);
    expect(o.lastSeq('s')).toBe(15);
    expect(o.readPending('s', 15, 100)).toEqual([]);
    expect(o.deadLetters.list().map((d) => d.seq)).toEqual([5, 6]);
    expect(o.usage()).toEqual(usage);
    expectUsageMatchesFile(o);
  });

  it('refuses (keeps) a record refused at capture that is still invalid, and resends the ones that now pass', async () => {
    const o = open();
    const h = testHost(o, { type: 'test', name: 'orders' }, files.dir, { maxRecordBytes: 1_000 });
    await h.writer.append(
      [
        { id: 'ok', ts: T0, data: 1 },
        { id: 'nan-ts', ts: Number.NaN, data: 2 },
        { id: 'big', ts: T0, data: 'x'.repeat(2_000) },
      ],
      [],
      { invalid: 'dead_letter' },
    );
    o.append('orders', recs('orders', 2, 3));
    o.deadLetterPending('orders', [{ from: 2, to: 2, reason: 'relay refused' }]);
    const before = o.deadLetters.list();
    expect(before.map((d) => [d.recordId, d.origin])).toEqual([
      ['nan-ts', 'capture'],
      ['big', 'capture'],
      ['orders-2', 'relay'],
    ]);

    // Still over 1 000 bytes: both capture-refused records stay; the relay-refused one goes.
    const first = resendDeadLetters(o, {}, 1_000, silent);
    expect(first.resent).toBe(1);
    expect(first.refused).toEqual([
      { id: before[0]!.id, reason: expect.stringMatching(/only a preview/) },
      { id: before[1]!.id, reason: expect.stringMatching(/^\(record\): record is \d+ bytes, over outbox\.max_record_bytes \(1000\)$/) },
    ]);
    expect(o.deadLetters.list().map((d) => d.recordId)).toEqual(['nan-ts', 'big']);

    // With a larger limit the big one passes; the NaN one never does.
    const second = resendDeadLetters(o, {}, 64 * 1024, silent);
    expect(second).toMatchObject({ resent: 1, refused: [{ id: before[0]!.id }], streams: { orders: 1 } });
    expect(o.deadLetters.list().map((d) => d.recordId)).toEqual(['nan-ts']);
    const rows = o.readPending('orders', 0, 100).map((x) => ({ seq: x.seq, rec: wireRecordV2.parse(JSON.parse(x.payload)) }));
    expect(rows.map((x) => [x.seq, x.rec.id])).toEqual([
      [1, 'ok'],
      [3, 'orders-3'],
      [4, 'orders-2'],
      [5, 'big'],
    ]);
    expect(rows[3]!.rec).toMatchObject({ source: 'test:orders', ts: T0, data: 'x'.repeat(2_000) });
    expectUsageMatchesFile(o);
  });
});
