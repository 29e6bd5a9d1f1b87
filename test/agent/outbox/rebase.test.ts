import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineBody } from '../../../agent/outbox/chunk.js';
import { Outbox, type NewRecord, type OutboxOptions } from '../../../agent/outbox/outbox.js';
import { isErpEdgeError } from '../../../common/errors.js';
import { wireRecordV2 } from '../../../common/wire-v2.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';
import { fileChunks, fileRecords, fileTable, fileUsage } from '../../helpers/outbox-file.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

const files = useOutboxFiles('rebase-test-', { synchronous: 'NORMAL', capPolicy: 'drop_oldest', replayWindowMs: HOUR });
const dbPath = files.dbPath;
const open = files.open;

function recs(stream: string, from: number, to: number): NewRecord[] {
  // Seqs go from one digit to two across the rebase: line bytes change, usage must follow.
  return Array.from({ length: to - from + 1 }, (_, k) => ({ id: `${stream}-${from + k}`, source: `test:${stream}`, ts: T0 + 100 - (from + k), data: { i: from + k } }));
}

interface Fixture {
  o: Outbox;
  /** Record lines of s by their seq before the rebase. */
  before: Map<number, string>;
  otherChunks: ReturnType<typeof fileChunks>;
  otherState: unknown;
}

/**
 * Stream s: 1..2 dropped by drop_oldest (droppedUpto 2), then chunks [3], [4..5], [6..9], [10..15],
 * [16..18]; acked up to 4 (rows 3, 4 kept for the replay window); optionally a dead-lettered range.
 * Stream o beside it, with an ack, a dead-lettered record and its skips row.
 */
function fixture(deadLetter?: { from: number; to: number }): Fixture {
  const small = open({ maxEvents: 3 });
  small.append('s', recs('s', 1, 3));
  small.append('s', recs('s', 4, 5)); // two over the cap: 1 and 2 are dropped
  expect(small.droppedUpto('s')).toBe(2);
  small.close();
  files.untrack(small);

  const o = open();
  o.append('s', recs('s', 6, 9));
  o.append('s', recs('s', 10, 15));
  o.append('s', recs('s', 16, 18));
  o.append('o', recs('o', 1, 3));
  o.append('o', recs('o', 4, 6));
  o.ack('s', 4);
  o.ack('o', 2);
  o.deadLetterPending('o', [{ from: 5, to: 5, reason: 'other stream' }]);
  if (deadLetter) expect(o.deadLetterPending('s', [{ ...deadLetter, reason: 'refused' }])).toBe(deadLetter.to - deadLetter.from + 1);
  const before = new Map(fileRecords(dbPath(), 's').map((r) => [r.seq, r.line]));
  expect(fileChunks(dbPath(), 's')[0]).toMatchObject({ first: 3, last: 3 });
  return { o, before, otherChunks: fileChunks(dbPath(), 'o'), otherState: otherState(o) };
}

function otherState(o: Outbox) {
  return {
    epoch: o.streamEpoch('o'),
    acked: o.ackedSeq('o'),
    last: o.lastSeq('o'),
    droppedUpto: o.droppedUpto('o'),
    skips: o.skipsBetween('o', 0, 1_000),
    deadLetters: o.deadLetters.list({ stream: 'o' }),
    status: o.streamStatus().find((s) => s.stream === 'o'),
    ackLog: fileTable(dbPath(), "SELECT * FROM ack_log WHERE stream = 'o' ORDER BY id"),
  };
}

/** The seqs of s that survive a rebase from `from`: everything at or after it still stored, in order. */
function survivors(f: Fixture, from: number): number[] {
  return [...f.before.keys()].filter((s) => s >= from).sort((a, b) => a - b);
}

function expectUsageMatchesFile(o: Outbox) {
  const u = o.usage();
  expect({ bytes: u.bytes, events: u.events, dropped: u.dropped }).toEqual(fileUsage(dbPath()));
}

describe('rebaseStream', () => {
  it('moves the stream to a new epoch that survives a reopen; other streams keep theirs', () => {
    const f = fixture({ from: 12, to: 13 });
    const old = f.o.streamEpoch('s');
    expect(old).toBe(f.o.epoch);
    const epoch = f.o.rebaseStream('s', 8);
    expect(epoch).not.toBe(old);
    expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(f.o.streamEpoch('s')).toBe(epoch);
    expect(f.o.streamEpoch('o')).toBe(f.o.epoch);
    expect(f.o.streamStatus().find((s) => s.stream === 's')!.epoch).toBe(epoch);
    f.o.close();
    const r = open();
    expect(r.epoch).toBe(old); // the outbox's own epoch does not change
    expect(r.streamEpoch('s')).toBe(epoch);
    expect(r.streamEpoch('o')).toBe(old);
    // A second rebase gives yet another epoch.
    expect(r.rebaseStream('s', 2)).not.toBe(epoch);
  });

  it('renumbers what is from `from` on to 1..n in the original order, each record JSON with its own new seq; acked 0, droppedUpto 0; appends continue after n', () => {
    const f = fixture();
    const kept = survivors(f, 8); // 8..18: the straddling chunk [6..9] loses 6 and 7
    f.o.rebaseStream('s', 8);
    const n = kept.length;
    const rows = f.o.readPending('s', 0, Number.MAX_SAFE_INTEGER);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, k) => k + 1));
    rows.forEach((r, k) => {
      const rec = wireRecordV2.parse(JSON.parse(r.payload));
      expect(rec.seq).toBe(r.seq);
      expect(r.bytes).toBe(Buffer.byteLength(r.payload));
      // The record itself is untouched: only its seq changed.
      expect(lineBody(r.payload)).toBe(lineBody(f.before.get(kept[k]!)!));
    });
    expect(f.o.ackedSeq('s')).toBe(0);
    expect(f.o.lastSeq('s')).toBe(n);
    expect(f.o.droppedUpto('s')).toBe(0);
    expect(f.o.skipsBetween('s', 0, 1_000)).toEqual([]);
    expect(f.o.streamStatus().find((s) => s.stream === 's')).toMatchObject({ lastSeq: n, ackedSeq: 0, pending: n, droppedUpto: 0, lastAckAt: null });
    expect(f.o.append('s', recs('s', 19, 20))).toEqual({ firstSeq: n + 1, lastSeq: n + 2 });
    expect(wireRecordV2.parse(JSON.parse(f.o.readPending('s', n, 10)[0]!.payload))).toMatchObject({ seq: n + 1, id: 's-19' });
  });

  it.each([
    { what: 'a dead-lettered range above from', deadLetter: { from: 12, to: 13 }, from: 8 },
    { what: 'from inside a dead-lettered range', deadLetter: { from: 12, to: 13 }, from: 13 },
  ])('renumbers so that `from` becomes 1, holes moving with the records ($what)', ({ deadLetter, from }) => {
    const f = fixture(deadLetter);
    const kept = survivors(f, from);
    const lastBefore = f.o.lastSeq('s');
    f.o.rebaseStream('s', from);
    const rows = f.o.readPending('s', 0, Number.MAX_SAFE_INTEGER);
    expect(rows.map((r) => (JSON.parse(r.payload) as { id: string }).id)).toEqual(kept.map((s) => `s-${s}`));
    expect(rows.map((r) => r.seq)).toEqual(kept.map((s) => s - from + 1));
    expect(rows.map((r) => (JSON.parse(r.payload) as { seq: number }).seq)).toEqual(kept.map((s) => s - from + 1));
    expect(f.o.lastSeq('s')).toBe(lastBefore - from + 1);
    // The dead-lettered hole is still declared (clipped to `from`), in the new numbering.
    const a = Math.max(deadLetter.from, from) - from + 1;
    expect(f.o.skipsBetween('s', 1, f.o.lastSeq('s'))).toEqual([{ first: a, last: deadLetter.to - from + 1, reason: 'dead_letter' }]);
    expect(f.o.append('s', recs('s', 19, 19)).firstSeq).toBe(lastBefore - from + 2);
  });

  it('leaves every seq of the rebased stream either a record or declared skipped, never both (what the forwarder sends from)', () => {
    for (const [deadLetter, from] of [
      [{ from: 12, to: 13 }, 8],
      [{ from: 12, to: 13 }, 13],
      [undefined, 8],
    ] as const) {
      files.reset();
      const f = fixture(deadLetter);
      f.o.rebaseStream('s', from);
      const records = new Set(f.o.readPending('s', 0, Number.MAX_SAFE_INTEGER).map((r) => r.seq));
      const skipped = f.o.skipsBetween('s', 1, f.o.lastSeq('s')).flatMap((k) => Array.from({ length: k.last - k.first + 1 }, (_, i) => k.first + i));
      const dropped = Array.from({ length: f.o.droppedUpto('s') }, (_, i) => i + 1);
      const covered = [...records, ...skipped, ...dropped].sort((a, b) => a - b);
      expect(covered, `rebase from ${from} with ${JSON.stringify(deadLetter)}`).toEqual(Array.from({ length: f.o.lastSeq('s') }, (_, k) => k + 1));
    }
  });

  it('deletes what is below from (acked rows, pending rows, the head of the straddling chunk) and keeps stale acks from pruning the new seqs', () => {
    const f = fixture();
    const usageBefore = f.o.usage();
    expect(fileRecords(dbPath(), 's').map((r) => r.seq)).toEqual(Array.from({ length: 16 }, (_, k) => k + 3));
    f.o.rebaseStream('s', 8);
    expect(f.o.usage().events).toBe(usageBefore.events - 5); // 3, 4 (acked), 5, 6, 7 (pending)
    expect(fileUsage(dbPath()).events).toBe(usageBefore.events - 5);
    const chunks = fileChunks(dbPath(), 's');
    expect(chunks.map((c) => [c.first, c.last])).toEqual([
      [1, 2],
      [3, 8],
      [9, 11],
    ]);
    for (const c of chunks) {
      expect(c.lines).toHaveLength(c.last - c.first + 1);
      c.lines.forEach((l, i) => expect((JSON.parse(l) as { seq: number }).seq).toBe(c.first + i));
    }
    expect(fileTable(dbPath(), "SELECT min_ts FROM chunks WHERE stream = 's' ORDER BY first_seq")).toEqual(
      chunks.map((c) => ({ min_ts: Math.min(...c.lines.map((l) => (JSON.parse(l) as { ts: number }).ts)) })),
    );
    // Stale acks of the old epoch (upto 4) can never prune renumbered records.
    expect(fileTable(dbPath(), "SELECT * FROM ack_log WHERE stream = 's'")).toEqual([]);
    f.o.pruneAcked(false, Date.now() + 2 * HOUR);
    f.o.pruneAcked(true);
    expect(f.o.readPending('s', 0, 100).map((r) => r.seq)).toEqual(Array.from({ length: 11 }, (_, k) => k + 1));
  });

  it.each([
    { what: 'no dead-lettered range', deadLetter: undefined },
    { what: 'a dead-lettered range above from', deadLetter: { from: 12, to: 13 } },
  ])('keeps usage equal to the file, and each chunk row\'s bytes equal to its records\' bytes ($what)', ({ deadLetter }) => {
    const f = fixture(deadLetter);
    f.o.rebaseStream('s', 8);
    expectUsageMatchesFile(f.o);
    const status = f.o.streamStatus().find((s) => s.stream === 's')!;
    expect(status.pendingBytes).toBe(f.o.readPending('s', 0, 100).reduce((n, r) => n + r.bytes, 0));
    for (const c of fileChunks(dbPath(), 's')) expect(c.bytes, `chunk ${c.first}..${c.last}`).toBe(c.lines.reduce((b, l) => b + Buffer.byteLength(l), 0));
    // The next open reads usage from the file: the same again.
    const usage = f.o.usage();
    f.o.close();
    const r = open();
    expect(r.usage()).toEqual(usage);
    expectUsageMatchesFile(r);
  });

  it('leaves other streams untouched: chunks, acks, ack log, skips, dead letters, epoch', () => {
    const f = fixture({ from: 12, to: 13 });
    f.o.rebaseStream('s', 8);
    expect(fileChunks(dbPath(), 'o')).toEqual(f.otherChunks);
    expect(otherState(f.o)).toEqual(f.otherState);
    // The dead letters of s keep the epoch and seqs they had (what the relay was told about).
    expect(f.o.deadLetters.list({ stream: 's' }).map((d) => [d.epoch, d.seq])).toEqual([
      [f.o.epoch, 12],
      [f.o.epoch, 13],
    ]);
  });

  it('refuses an unknown stream with ERP_OUTBOX_SEQ and changes nothing', () => {
    const f = fixture();
    const usage = f.o.usage();
    let code: string | undefined;
    try {
      f.o.rebaseStream('nope', 3);
    } catch (err) {
      code = isErpEdgeError(err) ? err.code : String(err);
    }
    expect(code).toBe('ERP_OUTBOX_SEQ');
    expect(f.o.usage()).toEqual(usage);
    expect(f.o.streamNames()).toEqual(['o', 's']);
  });
});
