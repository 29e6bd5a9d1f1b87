import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { openSqlite } from '../../../agent/outbox/sqlite.js';
import { describe, expect, it, vi } from 'vitest';
import { Outbox, readOutboxStatus, type NewRecord, type OutboxOptions } from '../../../agent/outbox/outbox.js';
import { SCHEMA_VERSION } from '../../../agent/outbox/migrations.js';
import { isErpEdgeError, type ErrorCode } from '../../../common/errors.js';
import { createLogger } from '../../../common/logger.js';
import { wireRecord } from '../../../common/wire-v1.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

const files = useOutboxFiles('outbox-test-', {});
const dbPath = files.dbPath;
const open = files.open;

function rec(stream: string, i: number, extra: Partial<NewRecord> = {}): NewRecord {
  return { id: `${stream}-${i}`, source: `test:${stream}`, ts: T0 + i, data: { stream, i }, ...extra };
}

function recs(stream: string, from: number, to: number): NewRecord[] {
  const out: NewRecord[] = [];
  for (let i = from; i <= to; i++) out.push(rec(stream, i));
  return out;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

/** Every row still stored for a stream (acked or not). */
function allRows(o: Outbox, stream: string) {
  return o.readPending(stream, 0, Number.MAX_SAFE_INTEGER);
}

function seqs(o: Outbox, stream: string): number[] {
  return allRows(o, stream).map((r) => r.seq);
}

function dataIs(o: Outbox, stream: string): number[] {
  return allRows(o, stream).map((r) => (JSON.parse(r.payload) as { data: { i: number } }).data.i);
}

/** Usage as the file has it, counted independently of the Outbox. */
function fileUsage(path = dbPath()): { bytes: number; events: number; dropped: number } {
  const db = openSqlite(path, { readonly: true });
  try {
    // Records are stored in chunks, one JSON record per line: count lines and bytes less the newlines.
    const u = db
      .prepare(
        'SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS events, coalesce(sum(length(CAST(payload AS BLOB)) - (last_seq - first_seq)), 0) AS bytes FROM chunks',
      )
      .get() as {
      events: number;
      bytes: number;
    };
    const d = db.prepare('SELECT coalesce(sum(dropped_count), 0) AS dropped FROM streams').get() as { dropped: number };
    return { bytes: u.bytes, events: u.events, dropped: d.dropped };
  } finally {
    db.close();
  }
}

/** How many of this process's file descriptors point at `path` (Linux /proc), or undefined elsewhere. */
function openHandles(path: string): number | undefined {
  if (!existsSync('/proc/self/fd')) return undefined;
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

function errorCode(fn: () => unknown): ErrorCode | string {
  try {
    fn();
  } catch (err) {
    if (isErpEdgeError(err)) return err.code;
    return `not an ErpEdgeError: ${String(err)}`;
  }
  return 'did not throw';
}

describe('append: seqs', () => {
  it('assigns contiguous seqs from 1 per stream, independent across streams', () => {
    const o = open();
    expect(o.append('a', recs('a', 1, 3))).toEqual({ firstSeq: 1, lastSeq: 3 });
    expect(o.append('b', recs('b', 1, 2))).toEqual({ firstSeq: 1, lastSeq: 2 });
    expect(o.append('a', recs('a', 4, 7))).toEqual({ firstSeq: 4, lastSeq: 7 });
    expect(o.append('b', [rec('b', 3)])).toEqual({ firstSeq: 3, lastSeq: 3 });
    // An empty append assigns nothing.
    expect(o.append('a', [])).toEqual({ firstSeq: 8, lastSeq: 7 });
    expect(o.append('a', [rec('a', 8)])).toEqual({ firstSeq: 8, lastSeq: 8 });

    expect(seqs(o, 'a')).toEqual(range(1, 8));
    expect(dataIs(o, 'a')).toEqual(range(1, 8));
    expect(seqs(o, 'b')).toEqual(range(1, 3));
    expect(dataIs(o, 'b')).toEqual(range(1, 3));
    expect(o.streamNames()).toEqual(['a', 'b']);
    expect(o.streamStatus().map((s) => [s.stream, s.lastSeq, s.pending])).toEqual([
      ['a', 8, 8],
      ['b', 3, 3],
    ]);
    expect(o.usage().events).toBe(11);
  });

  it("emits 'appended' with the stream after a non-empty append", () => {
    const o = open();
    const seen: string[] = [];
    o.on('appended', (s: string) => seen.push(s));
    o.append('a', [rec('a', 1)]);
    o.append('b', []);
    o.append('b', [rec('b', 1)]);
    expect(seen).toEqual(['a', 'b']);
  });

  it('stores each record as its v1 wire JSON, with its byte length', () => {
    const o = open();
    const before = Date.now();
    o.append('orders', [
      { id: 'r-1', source: 'file-drop:orders', ts: T0, correlation_id: 'po-42', data: { sku: 'A-1', qty: 3, note: 'größe ✓' } },
      { id: 'r-2', source: 'file-drop:orders', data: [1, 'two', null] },
    ]);
    const after = Date.now();
    const rows = allRows(o, 'orders');
    expect(rows).toHaveLength(2);

    const first = wireRecord.parse(JSON.parse(rows[0]!.payload));
    expect(first).toEqual({ seq: 1, id: 'r-1', ts: T0, source: 'file-drop:orders', correlation_id: 'po-42', data: { sku: 'A-1', qty: 3, note: 'größe ✓' } });
    expect(Object.keys(JSON.parse(rows[0]!.payload) as object)).toEqual(['seq', 'id', 'ts', 'source', 'correlation_id', 'data']);
    // bytes is the UTF-8 length, not the string length (the note has multi-byte characters).
    expect(rows[0]!.bytes).toBe(Buffer.byteLength(rows[0]!.payload));
    expect(rows[0]!.bytes).toBeGreaterThan(rows[0]!.payload.length);

    const second = wireRecord.parse(JSON.parse(rows[1]!.payload));
    expect(second.seq).toBe(2);
    expect(second.correlation_id).toBeNull();
    expect(second.data).toEqual([1, 'two', null]);
    // ts defaults to the append time.
    expect(second.ts).toBeGreaterThanOrEqual(before);
    expect(second.ts).toBeLessThanOrEqual(after);

    expect(o.usage().bytes).toBe(rows[0]!.bytes + rows[1]!.bytes);
  });
});

describe('checkpoints', () => {
  it('are written with the records, listed per collector, and deleted by a null value', () => {
    const o = open();
    o.append('a', recs('a', 1, 2), [
      { collector: 'c1', key: 'k2', value: { row: 2 } },
      { collector: 'c1', key: 'k1', value: 'one' },
      { collector: 'c2', key: 'k1', value: 7 },
    ]);
    expect(o.getCheckpoint('c1', 'k2')).toEqual({ row: 2 });
    expect(o.getCheckpoint('c2', 'k1')).toBe(7);
    expect(o.getCheckpoint('c2', 'nope')).toBeUndefined();
    expect(o.listCheckpoints('c1')).toEqual([
      { key: 'k1', value: 'one' },
      { key: 'k2', value: { row: 2 } },
    ]);
    o.setCheckpoint({ collector: 'c1', key: 'k1', value: null });
    expect(o.listCheckpoints('c1')).toEqual([{ key: 'k2', value: { row: 2 } }]);
    o.append('a', [rec('a', 3)], { collector: 'c1', key: 'k2', value: { row: 3 } });
    expect(o.getCheckpoint('c1', 'k2')).toEqual({ row: 3 });
  });

  it('are atomic with the records: a failing append leaves no record, no checkpoint, no seq, same usage', () => {
    const o = open();
    o.append('a', recs('a', 1, 2), { collector: 'c', key: 'a', value: { count: 2 } });
    const usage = o.usage();
    const status = o.streamStatus();

    // The second record cannot be serialised: the first was already inserted when it throws.
    const bad = [rec('a', 3), rec('a', 4, { data: { big: 10n } }), rec('a', 5)];
    expect(() => o.append('a', bad, { collector: 'c', key: 'a', value: { count: 5 } })).toThrow(/BigInt/);
    // Same into a stream that does not exist yet: the stream must not be created either.
    expect(() => o.append('fresh', [rec('fresh', 1), rec('fresh', 2, { data: 1n })], { collector: 'c', key: 'fresh', value: { count: 2 } })).toThrow(
      /BigInt/,
    );
    // And a checkpoint that cannot be serialised rolls back good records.
    expect(() => o.append('a', [rec('a', 3)], { collector: 'c', key: 'a', value: { count: 3n } })).toThrow(/BigInt/);

    expect(seqs(o, 'a')).toEqual([1, 2]);
    expect(o.getCheckpoint('c', 'a')).toEqual({ count: 2 });
    expect(o.getCheckpoint('c', 'fresh')).toBeUndefined();
    expect(o.streamNames()).toEqual(['a']);
    expect(o.usage()).toEqual(usage);
    expect(o.streamStatus()).toEqual(status);
    expect(fileUsage()).toEqual({ bytes: usage.bytes, events: usage.events, dropped: 0 });

    // The seq did not advance.
    expect(o.append('a', [rec('a', 3)], { collector: 'c', key: 'a', value: { count: 3 } })).toEqual({ firstSeq: 3, lastSeq: 3 });
    expect(dataIs(o, 'a')).toEqual([1, 2, 3]);
    expect(o.getCheckpoint('c', 'a')).toEqual({ count: 3 });
  });

  it('keep usage equal to the file when a transaction fails after the counters moved (drop and prune paths)', () => {
    const o = open({ maxEvents: 5, capPolicy: 'drop_oldest' });
    o.append('a', recs('a', 1, 3), { collector: 'c', key: 'a', value: { count: 3 } });
    o.append('b', recs('b', 1, 2));
    o.ack('a', 1);
    o.ack('b', 1);
    const usage = o.usage();
    // Fault injection from a second connection: deleting or trimming a chunk of stream b aborts,
    // so the transaction fails after stream a's records were already deleted and uncounted.
    const db = openSqlite(dbPath());
    db.exec("CREATE TRIGGER no_delete_b BEFORE DELETE ON chunks WHEN OLD.stream = 'b' BEGIN SELECT RAISE(ABORT, 'injected delete failure'); END");
    db.exec("CREATE TRIGGER no_trim_b BEFORE UPDATE ON chunks WHEN OLD.stream = 'b' BEGIN SELECT RAISE(ABORT, 'injected delete failure'); END");
    try {
      // Over the cap: the rows are inserted and counted, then making room fails.
      expect(() => o.append('a', recs('a', 4, 5), { collector: 'c', key: 'a', value: { count: 5 } })).toThrow(/injected/);
      expect(o.usage()).toEqual(usage);
      expect(o.getCheckpoint('c', 'a')).toEqual({ count: 3 });
      expect(() => o.pruneAcked(true)).toThrow(/injected/);
      expect(o.usage()).toEqual(usage);
      expect(o.usage()).toEqual({ ...fileUsage(), full: false });
      expect(seqs(o, 'a')).toEqual([1, 2, 3]);
    } finally {
      db.exec('DROP TRIGGER no_delete_b');
      db.exec('DROP TRIGGER no_trim_b');
      db.close();
    }
    // Working again, from the right numbers: the acked a1 and b1 make the room, nothing is dropped.
    o.append('a', recs('a', 4, 5), { collector: 'c', key: 'a', value: { count: 5 } });
    expect(seqs(o, 'a')).toEqual([2, 3, 4, 5]);
    expect(seqs(o, 'b')).toEqual([2]);
    expect(o.usage()).toEqual({ ...fileUsage(), full: false });
    expect(o.usage().dropped).toBe(0);
  });
});

describe('readPending', () => {
  it('honours afterSeq and maxRecords', () => {
    const o = open();
    o.append('a', recs('a', 1, 10));
    o.append('b', recs('b', 1, 4));
    expect(o.readPending('a', 0, 3).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(o.readPending('a', 3, 100).map((r) => r.seq)).toEqual(range(4, 10));
    expect(o.readPending('a', 8, 1).map((r) => r.seq)).toEqual([9]);
    expect(o.readPending('a', 10, 100)).toEqual([]);
    expect(o.readPending('b', 0, 100).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(o.readPending('nope', 0, 100)).toEqual([]);
  });

  it('honours maxBytes, always returning at least one row', () => {
    const o = open();
    // Rows of clearly different sizes.
    o.append(
      'a',
      [10, 200, 30, 400, 50].map((n, k) => rec('a', k + 1, { data: 'x'.repeat(n) })),
    );
    const rows = allRows(o, 'a');
    const b = rows.map((r) => r.bytes);
    expect(new Set(b).size).toBe(5);

    // Exactly the first three fit.
    const three = b[0]! + b[1]! + b[2]!;
    expect(o.readPending('a', 0, 100, three).map((r) => r.seq)).toEqual([1, 2, 3]);
    // One byte less: two.
    expect(o.readPending('a', 0, 100, three - 1).map((r) => r.seq)).toEqual([1, 2]);
    // maxRecords still applies under a large byte budget.
    expect(o.readPending('a', 0, 2, Number.MAX_SAFE_INTEGER).map((r) => r.seq)).toEqual([1, 2]);
    // A row larger than the budget still comes alone, so the forwarder can never stall.
    expect(o.readPending('a', 0, 100, 1).map((r) => r.seq)).toEqual([1]);
    expect(o.readPending('a', 3, 100, b[3]! - 1).map((r) => r.seq)).toEqual([4]);
    expect(o.readPending('a', 3, 100, b[3]! + b[4]!).map((r) => r.seq)).toEqual([4, 5]);
  });
});

describe('ack', () => {
  it('advances the cursor, is idempotent, and keeps the rows until pruned', () => {
    const o = open();
    o.append('a', recs('a', 1, 5));
    o.append('b', recs('b', 1, 2));
    expect(o.ack('a', 3)).toBe(3);
    expect(o.ackedSeq('a')).toBe(3);
    expect(o.ack('a', 3)).toBe(0);
    expect(o.ack('a', 1)).toBe(0);
    expect(o.ackedSeq('a')).toBe(3);
    expect(o.ack('a', 0)).toBe(0);
    expect(o.ackedSeq('b')).toBe(0);

    const a = o.streamStatus().find((s) => s.stream === 'a')!;
    expect({ ackedSeq: a.ackedSeq, pending: a.pending, lastSeq: a.lastSeq }).toEqual({ ackedSeq: 3, pending: 2, lastSeq: 5 });
    // Deletion comes later: the acked rows are still there.
    expect(seqs(o, 'a')).toEqual(range(1, 5));
    expect(o.usage().events).toBe(7);

    expect(o.ack('a', 5)).toBe(2);
    expect(o.ackedSeq('a')).toBe(5);
  });

  it('rejects an upto beyond the last seq with ERP_OUTBOX_SEQ and changes nothing', () => {
    const o = open();
    o.append('a', recs('a', 1, 5));
    o.ack('a', 2);
    expect(errorCode(() => o.ack('a', 6))).toBe('ERP_OUTBOX_SEQ');
    expect(o.ackedSeq('a')).toBe(2);
    // A stream that was never appended to has no seqs at all.
    expect(errorCode(() => o.ack('ghost', 1))).toBe('ERP_OUTBOX_SEQ');
    expect(o.ack('ghost', 0)).toBe(0);
    expect(o.streamNames()).toEqual(['a']);
    expect(o.ack('a', 5)).toBe(3);
  });
});

describe('pruneAcked', () => {
  it('deletes acked rows only once the replay window has passed', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0);
    const o = open({ replayWindowMs: 10_000 });
    o.append('a', recs('a', 1, 6));
    o.append('b', recs('b', 1, 3));
    o.ack('a', 2); // at T0
    vi.setSystemTime(T0 + 5_000);
    o.ack('a', 4); // at T0 + 5 s
    o.ack('b', 3);

    expect(o.pruneAcked(false, T0 + 9_999)).toBe(0);
    expect(seqs(o, 'a')).toEqual(range(1, 6));

    // The first ack is out of the window, the second is not.
    expect(o.pruneAcked(false, T0 + 10_000)).toBe(2);
    expect(seqs(o, 'a')).toEqual([3, 4, 5, 6]);
    expect(seqs(o, 'b')).toEqual([1, 2, 3]);
    expect(o.pruneAcked(false, T0 + 10_000)).toBe(0);

    expect(o.pruneAcked(false, T0 + 15_000)).toBe(5);
    expect(seqs(o, 'a')).toEqual([5, 6]);
    expect(seqs(o, 'b')).toEqual([]);
    // Pending rows are never pruned.
    expect(o.pruneAcked(false, T0 + 100 * HOUR)).toBe(0);
    expect(o.usage().events).toBe(2);
    expect(o.usage()).toEqual({ ...fileUsage(), full: false });
  });

  it('with all, deletes every acked row whatever the window', () => {
    const o = open({ replayWindowMs: HOUR });
    o.append('a', recs('a', 1, 4));
    o.append('b', recs('b', 1, 4));
    o.ack('a', 3);
    o.ack('b', 1);
    expect(o.pruneAcked()).toBe(0);
    expect(o.pruneAcked(true)).toBe(4);
    expect(seqs(o, 'a')).toEqual([4]);
    expect(seqs(o, 'b')).toEqual([2, 3, 4]);
    expect(o.usage()).toEqual({ ...fileUsage(), full: false });
    // The ack log went with them: nothing left to prune later.
    expect(o.pruneAcked(false, Date.now() + 2 * HOUR)).toBe(0);
    // The cursor is untouched and the seqs carry on.
    expect(o.ackedSeq('a')).toBe(3);
    expect(o.append('a', [rec('a', 5)]).firstSeq).toBe(5);
  });
});

describe('reopen', () => {
  it('keeps epoch, seqs, acks, checkpoints and usage (read from the file)', () => {
    const o = open({ replayWindowMs: HOUR });
    o.append('a', recs('a', 1, 5), { collector: 'c', key: 'a', value: { count: 5 } });
    o.append('b', recs('b', 1, 3), { collector: 'c', key: 'b', value: { count: 3 } });
    o.ack('a', 4);
    o.ack('b', 1);
    o.pruneAcked(true);
    o.ack('b', 2); // acked, kept for the window
    const epoch = o.epoch;
    const usage = o.usage();
    const status = o.streamStatus();
    const payloads = allRows(o, 'a').map((r) => r.payload);
    o.close();
    expect(() => o.append('a', [rec('a', 6)])).toThrow(expect.objectContaining({ code: 'ERP_OUTBOX_CLOSED' }));

    const r = open({ replayWindowMs: HOUR });
    expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.epoch).toBe(epoch);
    expect(r.usage()).toEqual(usage);
    expect(usage).toEqual({ ...fileUsage(), full: false });
    expect(usage.events).toBe(1 + 2);
    expect(r.streamStatus()).toEqual(status);
    expect(allRows(r, 'a').map((x) => x.payload)).toEqual(payloads);
    expect(r.listCheckpoints('c')).toEqual([
      { key: 'a', value: { count: 5 } },
      { key: 'b', value: { count: 3 } },
    ]);
    expect(r.append('a', [rec('a', 6)])).toEqual({ firstSeq: 6, lastSeq: 6 });
    expect(r.append('b', [rec('b', 4)])).toEqual({ firstSeq: 4, lastSeq: 4 });
    // The replay-window ack of b survived too.
    expect(r.pruneAcked(true)).toBe(1);
    expect(seqs(r, 'b')).toEqual([3, 4]);
  });

  it('gives a new outbox file a new epoch', () => {
    const a = open();
    const b = files.open({}, 'other.db');
    expect(b.epoch).not.toBe(a.epoch);
    expect(b.epoch.length).toBeGreaterThanOrEqual(8);
  });
});

describe('migrations', () => {
  it('sets user_version to the schema version', () => {
    open().close();
    const db = openSqlite(dbPath(), { readonly: true });
    try {
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
      expect(tables).toEqual(['ack_log', 'checkpoints', 'chunks', 'dead_letters', 'key_versions', 'meta', 'skips', 'streams']);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('refuses a file with a newer schema than supported (ERP_OUTBOX_SCHEMA), leaving it untouched', () => {
    const o = open();
    o.append('a', recs('a', 1, 2));
    o.close();
    const db = openSqlite(dbPath());
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();

    const handles = openHandles(dbPath());
    expect(errorCode(() => new Outbox(testOutboxOptions(dbPath())))).toBe('ERP_OUTBOX_SCHEMA');
    // The refused open does not leak its connection (checked where /proc exists).
    expect(openHandles(dbPath())).toBe(handles);

    const check = openSqlite(dbPath(), { readonly: true });
    try {
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
      expect((check.prepare('SELECT sum(last_seq - first_seq + 1) AS n FROM chunks').get() as { n: number }).n).toBe(2);
    } finally {
      check.close();
    }
  });
});

describe('cap policy block', () => {
  it("becomes full at the cap, and waitForRoom() resolves once an ack frees space (acked rows pruned at once)", async () => {
    const o = open({ maxEvents: 5, capPolicy: 'block', replayWindowMs: HOUR });
    const events: string[] = [];
    o.on('full', () => events.push('full'));
    o.on('space', () => events.push('space'));

    o.releaseRoom(await o.waitForRoom('a', 3, 0)); // room: resolves at once
    o.append('a', recs('a', 1, 3));
    expect(o.isFull()).toBe(false);
    o.append('b', recs('b', 1, 2));
    expect(o.isFull()).toBe(true);
    expect(o.usage()).toEqual({ bytes: fileUsage().bytes, events: 5, dropped: 0, full: true });
    expect(events).toEqual(['full']);

    let resolved = false;
    const waiting = o.waitForRoom('a', 1, 0).then((t) => {
      resolved = true;
      return t;
    });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(resolved).toBe(false);

    // Nothing is dropped under block, and nothing goes past the cap: an append of records while
    // full is refused (the capture writer waits first); one that only stores checkpoints is not.
    expect(errorCode(() => o.append('a', [rec('a', 4)]))).toBe('ERP_OUTBOX_FULL');
    o.append('a', [], { collector: 'c', key: 'k', value: 1 });
    expect(o.getCheckpoint('c', 'k')).toBe(1);
    expect(o.usage().events).toBe(5);
    expect(seqs(o, 'a')).toEqual([1, 2, 3]);
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false);
    expect(events).toEqual(['full']);

    // An ack under pressure prunes the acked rows at once, despite the one-hour window.
    expect(o.ack('a', 2)).toBe(2);
    await waiting;
    expect(resolved).toBe(true);
    expect(events).toEqual(['full', 'space']);
    expect(o.isFull()).toBe(false);
    // The waiter holds the head of the queue: it appends first, then lets the queue move on.
    expect(errorCode(() => o.append('b', [rec('b', 9)]))).toBe('ERP_OUTBOX_FULL');
    const ticket = await waiting;
    const body = '"id":"a-4","ts":1,"source":"test:a","correlation_id":null,"data":4}';
    o.appendEncoded('a', [{ ts: T0 + 4, body, bytes: Buffer.byteLength(body) }], [], { ticket });
    o.releaseRoom(ticket);
    expect(seqs(o, 'a')).toEqual([3, 4]);
    expect(seqs(o, 'b')).toEqual([1, 2]);
    expect(o.usage()).toEqual({ ...fileUsage(), full: false });
    expect(o.usage().events).toBe(4);

    // And the cycle repeats.
    o.append('b', [rec('b', 3)]);
    expect(o.isFull()).toBe(true);
    expect(events).toEqual(['full', 'space', 'full']);
  });

  it('applies maxBytes the same way', async () => {
    const probe = new Outbox(testOutboxOptions(dbPath('probe.db')));
    probe.append('a', [rec('a', 1)]);
    const rowBytes = allRows(probe, 'a')[0]!.bytes;
    probe.close();

    const o = open({ maxBytes: rowBytes * 3, capPolicy: 'block' });
    o.append('a', recs('a', 1, 2));
    expect(o.isFull()).toBe(false);
    o.append('a', [rec('a', 3)]);
    expect(o.usage().bytes).toBe(rowBytes * 3);
    expect(o.isFull()).toBe(true);
    // Body bytes (what the writer measures): the row less its `{"seq":N,` prefix.
    const waiting = o.waitForRoom('a', 1, rowBytes - 9);
    o.ack('a', 1);
    o.releaseRoom(await waiting);
    expect(o.isFull()).toBe(false);
    expect(o.usage().bytes).toBe(rowBytes * 2);
  });

  it('waitForRoom() honours an abort signal and is released by close()', async () => {
    const o = open({ maxEvents: 1, capPolicy: 'block' });
    o.append('a', [rec('a', 1)]);
    const ac = new AbortController();
    const aborted = o.waitForRoom('a', 1, 0, ac.signal);
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    const released = o.waitForRoom('a', 1, 0).then(() => undefined);
    o.close();
    await expect(released).resolves.toBeUndefined();
  });

  it('refuses an append that would go past a cap even below it, and lets one bigger than the cap into an empty outbox', () => {
    const o = open({ maxEvents: 5, capPolicy: 'block', replayWindowMs: HOUR });
    o.append('a', recs('a', 1, 4));
    expect(o.isFull()).toBe(false);
    expect(o.hasRoomFor('a', 2, 0)).toBe(false);
    expect(errorCode(() => o.append('a', recs('a', 5, 6)))).toBe('ERP_OUTBOX_FULL');
    expect(o.usage().events).toBe(4);
    o.append('a', [rec('a', 5)]);
    expect(o.usage().events).toBe(5);
    // Acked rows kept for the replay window give way to an append that needs their room.
    o.ack('a', 5);
    expect(o.hasRoomFor('a', 5, 0)).toBe(true);
    expect(o.usage().events).toBe(0);
    // Bigger than the whole cap: refused while anything else is held, taken into an empty outbox.
    expect(o.append('b', recs('b', 1, 8)).lastSeq).toBe(8);
    expect(o.usage().events).toBe(8);
  });

  it('reopened full of pending rows is full; full of acked rows prunes them at once instead of blocking forever', () => {
    const a = open({ replayWindowMs: HOUR });
    a.append('a', recs('a', 1, 5));
    a.close();
    const pending = open({ maxEvents: 5, capPolicy: 'block', replayWindowMs: HOUR });
    expect(pending.isFull()).toBe(true);
    expect(pending.usage().events).toBe(5);
    pending.ack('a', 5);
    expect(pending.isFull()).toBe(false);
    pending.append('a', recs('a', 6, 10)); // full again
    pending.ack('a', 8); // 6..8 pruned at once
    pending.close();
    const c = open({ replayWindowMs: HOUR });
    expect(seqs(c, 'a')).toEqual([9, 10]);
    c.ack('a', 10); // kept for the window: 2 acked rows, none pending
    c.close();

    // Caps lowered to 2: every row is acked, nothing can be acked any more to free space.
    const d = open({ maxEvents: 2, capPolicy: 'block', replayWindowMs: HOUR });
    expect(d.isFull()).toBe(false);
    expect(d.usage().events).toBe(0);
    expect(seqs(d, 'a')).toEqual([]);
    expect(d.append('a', [rec('a', 11)]).firstSeq).toBe(11);
  });
});

describe('cap policy drop_oldest', () => {
  it('drops the oldest rows (acked first, then pending), counts them and sets droppedUpto', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } });
    const o = open({ maxEvents: 5, capPolicy: 'drop_oldest', replayWindowMs: HOUR, logger });
    const full: string[] = [];
    o.on('full', () => full.push('full'));

    o.append('a', recs('a', 1, 3));
    o.append('b', recs('b', 1, 2));
    expect(o.usage().dropped).toBe(0);

    // Two over the cap: a1 and a2 are the oldest rows.
    o.append('a', recs('a', 4, 5));
    expect(o.usage()).toEqual({ bytes: fileUsage().bytes, events: 5, dropped: 2, full: false });
    expect(seqs(o, 'a')).toEqual([3, 4, 5]);
    expect(dataIs(o, 'a')).toEqual([3, 4, 5]);
    expect(seqs(o, 'b')).toEqual([1, 2]);
    expect(o.droppedUpto('a')).toBe(2);
    expect(o.droppedUpto('b')).toBe(0);
    const st = Object.fromEntries(o.streamStatus().map((s) => [s.stream, s]));
    expect({ dropped: st.a!.dropped, droppedUpto: st.a!.droppedUpto, pending: st.a!.pending, lastSeq: st.a!.lastSeq }).toEqual({
      dropped: 2,
      droppedUpto: 2,
      pending: 3,
      lastSeq: 5,
    });
    expect({ dropped: st.b!.dropped, droppedUpto: st.b!.droppedUpto }).toEqual({ dropped: 0, droppedUpto: 0 });
    expect(lines.map((l) => JSON.parse(l) as { stream: string; dropped: number; dropped_upto: number })).toEqual([
      expect.objectContaining({ stream: 'a', dropped: 2, dropped_upto: 2 }),
    ]);

    // Acked rows go before any pending one, and are not counted as dropped.
    o.ack('b', 2);
    o.append('a', [rec('a', 6)]);
    expect(seqs(o, 'b')).toEqual([]);
    expect(seqs(o, 'a')).toEqual([3, 4, 5, 6]);
    expect(o.usage().dropped).toBe(2);

    // Then the oldest pending rows again, across streams by age: a3, a4 are older than b3..b5.
    o.append('b', recs('b', 3, 5));
    expect(seqs(o, 'a')).toEqual([5, 6]);
    expect(seqs(o, 'b')).toEqual([3, 4, 5]);
    expect(dataIs(o, 'b')).toEqual([3, 4, 5]);
    expect(o.droppedUpto('a')).toBe(4);
    expect(o.usage()).toEqual({ bytes: fileUsage().bytes, events: 5, dropped: 4, full: false });
    expect(o.isFull()).toBe(false);
    expect(full).toEqual([]);

    // A batch bigger than the cap keeps only its newest rows.
    o.append('c', recs('c', 1, 8));
    expect(seqs(o, 'c')).toEqual([4, 5, 6, 7, 8]);
    expect(o.droppedUpto('c')).toBe(3);
    expect(o.usage().dropped).toBe(4 + 5 + 3);

    // The counts are in the file.
    const status = o.streamStatus();
    const usage = o.usage();
    o.close();
    const r = open({ maxEvents: 5, capPolicy: 'drop_oldest' });
    expect(r.usage()).toEqual(usage);
    expect(r.streamStatus()).toEqual(status);
  });
});

describe('readOutboxStatus', () => {
  it('reports pending count, bytes, oldest pending ts and last ack, read-only, while the outbox is open', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0 + HOUR);
    const o = open();
    o.append('a', [rec('a', 1, { ts: 1_000 }), rec('a', 2, { ts: 3_000 }), rec('a', 3, { ts: 2_000 }), rec('a', 4, { ts: 4_000 })]);
    o.append('b', [rec('b', 1, { ts: 9_000 })]);
    o.ack('a', 1);
    const aRows = allRows(o, 'a');

    const s = readOutboxStatus(dbPath());
    expect(s.epoch).toBe(o.epoch);
    expect(s.streams).toEqual([
      {
        stream: 'a',
        lastSeq: 4,
        ackedSeq: 1,
        pending: 3,
        pendingBytes: aRows[1]!.bytes + aRows[2]!.bytes + aRows[3]!.bytes,
        oldestPendingTs: 2_000,
        lastAckAt: T0 + HOUR,
        droppedUpto: 0,
        dropped: 0,
        epoch: o.epoch,
        deadLetters: 0,
        deadLettered: 0,
      },
      {
        stream: 'b',
        lastSeq: 1,
        ackedSeq: 0,
        pending: 1,
        pendingBytes: allRows(o, 'b')[0]!.bytes,
        oldestPendingTs: 9_000,
        lastAckAt: null,
        droppedUpto: 0,
        dropped: 0,
        epoch: o.epoch,
        deadLetters: 0,
        deadLettered: 0,
      },
    ]);
    expect(s.streams).toEqual(o.streamStatus());

    // Fully acked: nothing pending, no oldest ts.
    vi.setSystemTime(T0 + 2 * HOUR);
    o.ack('b', 1);
    o.close();
    const after = readOutboxStatus(dbPath()).streams.find((x) => x.stream === 'b')!;
    expect(after).toMatchObject({ pending: 0, pendingBytes: 0, oldestPendingTs: null, lastAckAt: T0 + 2 * HOUR, ackedSeq: 1 });
  });

  it('does not create a missing outbox', () => {
    const missing = dbPath('missing.db');
    expect(() => readOutboxStatus(missing)).toThrow();
    expect(existsSync(missing)).toBe(false);
  });
});
