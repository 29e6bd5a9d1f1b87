import { join } from 'node:path';
import { openSqlite } from '../../../agent/outbox/sqlite.js';
import { describe, expect, it } from 'vitest';
import { migrate, SCHEMA_VERSION } from '../../../agent/outbox/migrations.js';
import { Outbox, readOutboxStatus, type OutboxOptions, type StreamStatus } from '../../../agent/outbox/outbox.js';
import { wireRecord } from '../../../common/wire-v1.js';
import { wireRecordV2 } from '../../../common/wire-v2.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';
import { fileChunks, fileTable, fileUsage, withFile } from '../../helpers/outbox-file.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const EPOCH = '3f1c2a9e-5d7b-4c1e-9a0f-2b8d6e4c7a10';

const files = useOutboxFiles('upgrade-test-', { synchronous: 'NORMAL', replayWindowMs: HOUR });
const dbPath = files.dbPath;
const open = files.open;

/** A record line exactly as release 0.1 wrote it: the v1 wire record, keys in this order. */
function v1Line(stream: string, seq: number): string {
  return JSON.stringify({ seq, id: `${stream}-${seq}`, ts: T0 + seq * 1_000, source: `file-drop:${stream}`, correlation_id: seq % 2 ? null : `file:${stream}`, data: { seq, name: `Müller ${seq}`, note: 'two\nlines' } });
}

interface V1File {
  lines: Map<string, Map<number, string>>;
  bytes: number;
  events: number;
}

/**
 * An outbox as release 0.1 left it: schema 1, the outbox epoch in meta, stream `orders` with seqs
 * 1..2 dropped by drop_oldest and 3..9 in three chunks, acked up to 4 (ack log row), stream
 * `scans` with 1..3 pending, and a collector checkpoint.
 */
function writeRelease01(): V1File {
  const db = openSqlite(dbPath());
  db.pragma('journal_mode = WAL');
  migrate(db, 1);
  const lines = new Map<string, Map<number, string>>();
  let bytes = 0;
  let events = 0;
  const chunk = db.prepare('INSERT INTO chunks (stream, first_seq, last_seq, min_ts, bytes, payload) VALUES (?, ?, ?, ?, ?, ?)');
  const addChunk = (stream: string, first: number, last: number) => {
    const ls: string[] = [];
    for (let seq = first; seq <= last; seq++) ls.push(v1Line(stream, seq));
    const m = lines.get(stream) ?? new Map<number, string>();
    ls.forEach((l, i) => m.set(first + i, l));
    lines.set(stream, m);
    const b = ls.reduce((n, l) => n + Buffer.byteLength(l), 0);
    chunk.run(stream, first, last, Math.min(...ls.map((l) => (JSON.parse(l) as { ts: number }).ts)), b, ls.join('\n'));
    bytes += b;
    events += ls.length;
  };
  db.transaction(() => {
    db.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?), ('created_at', ?)").run(EPOCH, String(T0));
    db.prepare('INSERT INTO streams (stream, next_seq, acked_seq, acked_at, dropped_upto, dropped_count) VALUES (?, ?, ?, ?, ?, ?)').run('orders', 10, 4, T0 + 50_000, 2, 2);
    db.prepare('INSERT INTO streams (stream, next_seq) VALUES (?, ?)').run('scans', 4);
    addChunk('orders', 3, 4);
    addChunk('orders', 5, 7);
    addChunk('orders', 8, 9);
    addChunk('scans', 1, 3);
    db.prepare('INSERT INTO ack_log (stream, upto, acked_at) VALUES (?, ?, ?)').run('orders', 4, T0 + 50_000);
    db.prepare('INSERT INTO checkpoints (collector, key, value, updated_at) VALUES (?, ?, ?, ?)').run('file-drop:orders', 'done:orders-0001.csv', JSON.stringify({ size: 1234, mtime: T0 }), T0);
  })();
  db.close();
  return { lines, bytes, events };
}

function expectedStatus(v1: V1File): StreamStatus[] {
  const pendingBytes = (stream: string, after: number) => [...v1.lines.get(stream)!].filter(([s]) => s > after).reduce((n, [, l]) => n + Buffer.byteLength(l), 0);
  return [
    {
      stream: 'orders',
      epoch: EPOCH,
      lastSeq: 9,
      ackedSeq: 4,
      pending: 5,
      pendingBytes: pendingBytes('orders', 4),
      oldestPendingTs: T0 + 5_000,
      lastAckAt: T0 + 50_000,
      droppedUpto: 2,
      dropped: 2,
      deadLetters: 0,
      deadLettered: 0,
    },
    {
      stream: 'scans',
      epoch: EPOCH,
      lastSeq: 3,
      ackedSeq: 0,
      pending: 3,
      pendingBytes: pendingBytes('scans', 0),
      oldestPendingTs: T0 + 1_000,
      lastAckAt: null,
      droppedUpto: 0,
      dropped: 0,
      deadLetters: 0,
      deadLettered: 0,
    },
  ];
}

const userVersion = () => withFile(dbPath(), (db) => db.pragma('user_version', { simple: true }) as number);
const columns = (table: string) => fileTable<{ name: string }>(dbPath(), `SELECT name FROM pragma_table_info('${table}')`).map((c) => c.name);

describe('an outbox written by release 0.1', () => {
  it('is read by readOutboxStatus as it is, without migrating it', () => {
    const v1 = writeRelease01();
    expect(userVersion()).toBe(1);
    const s = readOutboxStatus(dbPath());
    expect(s).toEqual({ epoch: EPOCH, streams: expectedStatus(v1), deadLetters: { count: 0, oldestAt: null } });
    // Read only: still schema 1, no v2 column or table.
    expect(userVersion()).toBe(1);
    expect(columns('chunks')).not.toContain('wire');
    expect(fileTable(dbPath(), "SELECT name FROM sqlite_master WHERE name IN ('dead_letters', 'skips')")).toEqual([]);
  });

  it('is migrated on open, keeping epoch, seqs, acks, drops, checkpoints and usage', () => {
    const v1 = writeRelease01();
    const before = readOutboxStatus(dbPath());
    const o = open();
    expect(userVersion()).toBe(SCHEMA_VERSION);
    expect(o.epoch).toBe(EPOCH);
    expect(o.streamEpoch('orders')).toBe(EPOCH);
    expect(o.streamNames()).toEqual(['orders', 'scans']);
    expect([o.lastSeq('orders'), o.ackedSeq('orders'), o.droppedUpto('orders')]).toEqual([9, 4, 2]);
    expect([o.lastSeq('scans'), o.ackedSeq('scans'), o.droppedUpto('scans')]).toEqual([3, 0, 0]);
    expect(o.getCheckpoint('file-drop:orders', 'done:orders-0001.csv')).toEqual({ size: 1234, mtime: T0 });
    expect(o.usage()).toEqual({ bytes: v1.bytes, events: v1.events, dropped: 2, full: false });
    expect(o.usage()).toEqual({ ...fileUsage(dbPath()), full: false });
    expect(o.streamStatus()).toEqual(before.streams);
    expect(o.streamStatus()).toEqual(expectedStatus(v1));
    // The old rows are read back exactly as written.
    expect(o.readPending('orders', 0, 100).map((r) => [r.seq, r.payload])).toEqual([...v1.lines.get('orders')!]);
    expect(o.readPending('scans', 0, 100).map((r) => [r.seq, r.payload])).toEqual([...v1.lines.get('scans')!]);
    // The old ack log still prunes: the ack at T0 + 50 s is long past the replay window.
    expect(o.pruneAcked()).toBe(2);
    expect(o.readPending('orders', 0, 100).map((r) => r.seq)).toEqual([5, 6, 7, 8, 9]);
    expect(o.usage()).toEqual({ ...fileUsage(dbPath()), full: false });
    // A second open finds nothing to migrate and the same state.
    const status = o.streamStatus();
    o.close();
    const again = open();
    expect(again.streamStatus()).toEqual(status);
    expect(again.epoch).toBe(EPOCH);
  });

  it('keeps wire 1 on the old chunks; new appends are wire 2; old and new rows read back in one readPending, valid v1 and v2 records', () => {
    const v1 = writeRelease01();
    const o = open();
    expect(o.chunkWireVersions('orders')).toEqual([1]);
    expect(o.chunkWireVersions('scans')).toEqual([1]);
    expect(o.append('orders', [
      { id: 'orders-10', source: 'file-drop:orders', ts: T0 + 10_000, source_ts: T0 - 5, key: 'PO-10|1', txn: 'tx-77', correlation_id: 'file:orders', data: { seq: 10 } },
      { id: 'orders-11', source: 'file-drop:orders', ts: T0 + 11_000, data: { seq: 11 } },
    ])).toEqual({ firstSeq: 10, lastSeq: 11 });
    expect(o.chunkWireVersions('orders')).toEqual([1, 2]);
    expect(o.chunkWireVersions('scans')).toEqual([1]);
    expect(fileTable<{ first_seq: number; wire: number }>(dbPath(), "SELECT first_seq, wire FROM chunks WHERE stream = 'orders' ORDER BY first_seq")).toEqual([
      { first_seq: 3, wire: 1 },
      { first_seq: 5, wire: 1 },
      { first_seq: 8, wire: 1 },
      { first_seq: 10, wire: 2 },
    ]);

    const rows = o.readPending('orders', 4, 100);
    expect(rows.map((r) => r.seq)).toEqual([5, 6, 7, 8, 9, 10, 11]);
    for (const r of rows) {
      const json = JSON.parse(r.payload) as Record<string, unknown>;
      expect(wireRecord.safeParse(json).success, `seq ${r.seq} as v1`).toBe(true);
      expect(wireRecordV2.safeParse(json).success, `seq ${r.seq} as v2`).toBe(true);
      expect(json.seq).toBe(r.seq);
      if (r.seq <= 9) expect(r.payload).toBe(v1.lines.get('orders')!.get(r.seq));
    }
    const v2Only = (p: string) => ['source_ts', 'key', 'txn'].filter((k) => k in (JSON.parse(p) as object));
    expect(rows.map((r) => [r.seq, v2Only(r.payload)])).toEqual([
      [5, []],
      [6, []],
      [7, []],
      [8, []],
      [9, []],
      [10, ['source_ts', 'key', 'txn']],
      [11, []],
    ]);
    expect(wireRecordV2.parse(JSON.parse(rows[5]!.payload))).toMatchObject({ source_ts: T0 - 5, key: 'PO-10|1', txn: 'tx-77' });
    expect(o.usage()).toEqual({ ...fileUsage(dbPath()), full: false });
  });

  it('keeps wire 1 on old chunks that are trimmed or renumbered after the upgrade (ack trim, rebase)', () => {
    writeRelease01();
    const o = open();
    o.ack('orders', 8);
    o.pruneAcked(true); // trims the old chunk 8..9 to 9
    expect(fileChunks(dbPath(), 'orders').map((c) => [c.first, c.last])).toEqual([[9, 9]]);
    o.rebaseStream('scans', 2); // renumbers the old chunk of scans
    expect(o.readPending('scans', 0, 10).map((r) => [r.seq, (JSON.parse(r.payload) as { id: string }).id])).toEqual([
      [1, 'scans-2'],
      [2, 'scans-3'],
    ]);
    for (const r of [...o.readPending('orders', 0, 10), ...o.readPending('scans', 0, 10)]) expect(wireRecord.safeParse(JSON.parse(r.payload)).success).toBe(true);
    expect(o.chunkWireVersions('scans')).toEqual([1]);
    expect(o.chunkWireVersions('orders')).toEqual([1]);
  });

  it('keeps wire 1 on both parts of an old chunk that deadLetterPending splits', () => {
    const v1 = writeRelease01();
    const o = open();
    expect(o.deadLetterPending('orders', [{ from: 6, to: 6, reason: 'refused by a v2 relay' }])).toBe(1);
    expect(o.deadLetters.list()[0]!.payload).toBe(v1.lines.get('orders')!.get(6));
    expect(o.readPending('orders', 4, 10).map((r) => r.payload)).toEqual([5, 7, 8, 9].map((s) => v1.lines.get('orders')!.get(s)));
    expect(fileTable<{ first_seq: number; last_seq: number; wire: number }>(dbPath(), "SELECT first_seq, last_seq, wire FROM chunks WHERE stream = 'orders' ORDER BY first_seq")).toEqual([
      { first_seq: 3, last_seq: 4, wire: 1 },
      { first_seq: 5, last_seq: 5, wire: 1 },
      { first_seq: 7, last_seq: 7, wire: 1 },
      { first_seq: 8, last_seq: 9, wire: 1 },
    ]);
  });
});

describe('an outbox written by release 0.2', () => {
  /** Schema 2 as release 0.2 left it: records pending in a v2 chunk, a file-drop checkpoint, a dead letter. */
  function writeRelease02(): string[] {
    const db = openSqlite(dbPath());
    db.pragma('journal_mode = WAL');
    migrate(db, 2);
    const lines = [1, 2].map((seq) => JSON.stringify({ id: `r${seq}`, source: 'file-drop:orders', ts: T0 + seq, data: { n: seq }, seq }));
    db.transaction(() => {
      db.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?), ('created_at', ?)").run(EPOCH, String(T0));
      db.prepare('INSERT INTO streams (stream, next_seq) VALUES (?, ?)').run('orders', 3);
      const payload = lines.join('\n');
      db.prepare('INSERT INTO chunks (stream, first_seq, last_seq, min_ts, bytes, payload, wire) VALUES (?, ?, ?, ?, ?, ?, 2)').run('orders', 1, 2, T0 + 1, Buffer.byteLength(payload) - 1, payload);
      db.prepare('INSERT INTO checkpoints (collector, key, value, updated_at) VALUES (?, ?, ?, ?)').run('file-drop:orders', 'abc', JSON.stringify({ state: 'archived', rows: 2 }), T0);
      db.prepare("INSERT INTO dead_letters (stream, origin, reason, at, bytes, payload) VALUES ('orders', 'capture', 'too large', ?, 3, '{}')").run(T0);
    })();
    db.close();
    return lines;
  }

  it('is migrated on open to schema 3 (the key-version store), keeping records, checkpoints and dead letters', () => {
    const lines = writeRelease02();
    expect(userVersion()).toBe(2);
    const o = open();
    expect(userVersion()).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(3);
    expect(o.epoch).toBe(EPOCH);
    expect(o.readPending('orders', 0, 10).map((r) => r.payload)).toEqual(lines);
    expect(o.getCheckpoint('file-drop:orders', 'abc')).toEqual({ state: 'archived', rows: 2 });
    expect(o.deadLetters.list()).toHaveLength(1);
    // The new store works on the migrated file, in the append's transaction.
    o.append('orders', [{ id: 'r3', source: 'sql:erp', data: {} }], { collector: 'sql:erp', key: 'table:t', value: { hw: 'v1' } }, { keyVersions: { collector: 'sql:erp', scope: 't', set: [['1', 'v1']] } });
    expect(o.getKeyVersions('sql:erp', 't', ['1', '2'])).toEqual(new Map([['1', 'v1']]));
    expect(o.lastSeq('orders')).toBe(3);
  });
});
