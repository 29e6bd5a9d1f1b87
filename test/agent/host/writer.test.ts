import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import type { CaptureInput } from '../../../agent/host/writer.js';
import { Outbox, type OutboxOptions } from '../../../agent/outbox/outbox.js';
import { ErpEdgeError } from '../../../common/errors.js';
import { wireRecordV2 } from '../../../common/wire-v2.js';
import { testHost, type TestHost } from '../../helpers/host.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';
import { fileRecords, fileTable, fileUsage } from '../../helpers/outbox-file.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const MAX_RECORD_BYTES = 64 * 1024;

const files = useOutboxFiles('writer-test-', { synchronous: 'NORMAL' });
const dbPath = files.dbPath;
const open = files.open;

/** A collector `test:<name>` (stream `<name>`) with a real capture writer on `o`. */
function host(o: Outbox, name = 'orders', maxRecordBytes = MAX_RECORD_BYTES): TestHost {
  return testHost(o, { type: 'test', name }, files.dir, { maxRecordBytes });
}

function rec(id: string, extra: Partial<CaptureInput> = {}): CaptureInput {
  return { id, ts: T0, data: { id }, ...extra };
}

function rows(o: Outbox, stream: string, after = 0) {
  return o.readPending(stream, after, Number.MAX_SAFE_INTEGER).map((r) => ({ seq: r.seq, rec: wireRecordV2.parse(JSON.parse(r.payload)) }));
}

async function failure(p: Promise<unknown>): Promise<ErpEdgeError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ErpEdgeError) return err;
    throw new Error(`expected an ErpEdgeError, got ${String(err)}`);
  }
  throw new Error('expected the append to be refused, it was not');
}

/** Nothing of any append reached the file: no record, no seq, no checkpoint, no dead letter. */
function expectNothingWritten(o: Outbox) {
  expect(o.streamNames()).toEqual([]);
  expect(o.usage().events).toBe(0);
  expect(fileUsage(dbPath())).toEqual({ bytes: 0, events: 0, dropped: 0 });
  expect(fileTable(dbPath(), 'SELECT * FROM checkpoints')).toEqual([]);
  expect(o.deadLetters.list()).toEqual([]);
}

interface Problem {
  index: number;
  id: unknown;
  field: string;
  code: string;
}

describe('invalid records, invalid: refuse (the default)', () => {
  it('refuses a record with ts NaN with ERP_RECORD_INVALID naming index, id and the field ts; writes nothing; counts it', async () => {
    const o = open();
    const h = host(o);
    const err = await failure(h.writer.append([rec('ok-0'), rec('bad-ts', { ts: Number.NaN })], { key: 'pos', value: 2 }));
    expect(err.code).toBe('ERP_RECORD_INVALID');
    expect(err.message).toMatch(/^record 1 \(id "bad-ts"\) ts: /);
    expect(err.context).toMatchObject({ source: 'test:orders', stream: 'orders' });
    expect(err.context.invalid as Problem[]).toEqual([expect.objectContaining({ index: 1, id: 'bad-ts', field: 'ts', code: 'ERP_RECORD_INVALID' })]);
    // The valid record of the same append is not written either, nor the checkpoint.
    expectNothingWritten(o);
    expect(h.writer.stats()).toMatchObject({ refused: 1, appends: 0, records: 0, bytes: 0, dead_lettered: 0, last_append_at: null });

    // The writer is not stuck: the next valid append gets seq 1.
    expect(await h.writer.append([rec('ok-0')])).toMatchObject({ appended: 1, firstSeq: 1, lastSeq: 1 });
  });

  it('refuses a record with a 10 MB data payload with ERP_RECORD_TOO_LARGE naming the size and the limit', async () => {
    const o = open();
    const h = host(o);
    const big = rec('big', { data: 'x'.repeat(10 * 1024 * 1024) });
    const err = await failure(h.writer.append([rec('ok-0'), big, rec('ok-2')]));
    expect(err.code).toBe('ERP_RECORD_TOO_LARGE');
    expect(err.message).toMatch(/^record 1 \(id "big"\).*over outbox\.max_record_bytes \(65536\)/);
    expect(err.context.invalid as Problem[]).toEqual([expect.objectContaining({ index: 1, id: 'big', code: 'ERP_RECORD_TOO_LARGE' })]);
    expectNothingWritten(o);
    expect(h.writer.stats()).toMatchObject({ refused: 1, appends: 0, records: 0 });
  });

  it('names every invalid record in the context and counts them all', async () => {
    const o = open();
    const h = host(o);
    const err = await failure(h.writer.append([rec('a', { ts: -1 }), rec('b'), rec('', {}), rec('d', { ts: 1.5 })]));
    expect(err.message).toMatch(/\(and 2 more\)$/);
    expect((err.context.invalid as Problem[]).map((p) => [p.index, p.field])).toEqual([
      [0, 'ts'],
      [2, 'id'],
      [3, 'ts'],
    ]);
    expect(h.writer.stats().refused).toBe(3);
    expectNothingWritten(o);
  });

  it('refuses data JSON cannot carry (BigInt, a cycle) naming the field data', async () => {
    const o = open();
    const h = host(o);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    for (const data of [{ amount: 10n }, cyclic, [1, 2n]]) {
      const err = await failure(h.writer.append([rec('r', { data })]));
      expect(err.code).toBe('ERP_RECORD_INVALID');
      expect(err.message).toMatch(/^record 0 \(id "r"\) data: not serialisable as JSON/);
      expect(err.context.invalid as Problem[]).toEqual([expect.objectContaining({ index: 0, id: 'r', field: 'data' })]);
    }
    expect(h.writer.stats().refused).toBe(3);
    expectNothingWritten(o);
  });

  it('refuses an invalid stream override (an MQTT topic level) before anything is written; a valid one is used', async () => {
    const o = open();
    const h = host(o);
    for (const stream of ['a/b', '+', '#', '', 'x'.repeat(65), '.hidden']) {
      const err = await failure(h.writer.append([rec('r')], { key: 'k', value: 1 }, { stream }));
      expect(err.code).toBe('ERP_RECORD_INVALID');
      expect(err.message).toContain(`stream "${stream}"`);
    }
    expectNothingWritten(o);

    expect(await h.writer.append([rec('r')], [], { stream: 'orders-archive' })).toMatchObject({ appended: 1, firstSeq: 1 });
    expect(o.streamNames()).toEqual(['orders-archive']);
    expect(rows(o, 'orders-archive')[0]!.rec.source).toBe('test:orders');
  });
});

describe('invalid records, invalid: dead_letter', () => {
  it('appends the valid records with contiguous seqs and stores the invalid ones (origin capture, reason naming the field) with the checkpoint', async () => {
    const o = open();
    const h = host(o);
    const r = await h.writer.append(
      [rec('ok-0'), rec('bad-ts', { ts: Number.NaN }), rec('ok-2'), rec('big', { data: 'x'.repeat(10 * 1024 * 1024) }), rec('ok-4')],
      { key: 'pos', value: { line: 5 } },
      { invalid: 'dead_letter' },
    );
    expect(r).toEqual({ appended: 3, deadLettered: 2, firstSeq: 1, lastSeq: 3, waitedMs: 0 });
    expect(rows(o, 'orders').map((x) => [x.seq, x.rec.id])).toEqual([
      [1, 'ok-0'],
      [2, 'ok-2'],
      [3, 'ok-4'],
    ]);
    // The file agrees (seqs from the chunk rows themselves).
    expect(fileRecords(dbPath(), 'orders').map((x) => [x.seq, (JSON.parse(x.line) as { seq: number; id: string }).seq])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);

    const dl = o.deadLetters.list();
    expect(dl.map((d) => ({ stream: d.stream, origin: d.origin, seq: d.seq, recordId: d.recordId, source: d.source }))).toEqual([
      { stream: 'orders', origin: 'capture', seq: null, recordId: 'bad-ts', source: 'test:orders' },
      { stream: 'orders', origin: 'capture', seq: null, recordId: 'big', source: 'test:orders' },
    ]);
    expect(dl[0]!.reason).toMatch(/^ts: /);
    expect(dl[1]!.reason).toMatch(/^\(record\): record is \d+ bytes, over outbox\.max_record_bytes \(65536\)$/);
    // JSON cannot carry NaN: what is kept is marked a preview (shown, never resent as other data).
    expect(JSON.parse(dl[0]!.payload)).toMatchObject({ preview_only: true, record: { id: 'bad-ts', ts: 'NaN' } });
    expect((JSON.parse(dl[1]!.payload) as { id: string }).id).toBe('big');
    expect(o.getCheckpoint('test:orders', 'pos')).toEqual({ line: 5 });
    expect(h.writer.stats()).toMatchObject({ appends: 1, records: 3, dead_lettered: 2, refused: 0 });
    expect(o.streamStatus()[0]).toMatchObject({ stream: 'orders', lastSeq: 3, pending: 3, deadLetters: 2, deadLettered: 0 });

    // The next append continues the seqs: dead-lettered records never took one.
    expect(await h.writer.append([rec('ok-5'), { id: 'x', ts: T0, data: 1n }], [], { invalid: 'dead_letter' })).toMatchObject({
      appended: 1,
      deadLettered: 1,
      firstSeq: 4,
      lastSeq: 4,
    });
    expect(o.deadLetters.list()[2]!.reason).toMatch(/^data: not serialisable as JSON/);
  });

  it('stores only the dead letters and the checkpoint when no record of the append is valid', async () => {
    const o = open();
    const h = host(o);
    const r = await h.writer.append([rec('bad', { ts: Number.NaN })], { key: 'pos', value: 1 }, { invalid: 'dead_letter' });
    expect(r).toEqual({ appended: 0, deadLettered: 1, firstSeq: 0, lastSeq: 0, waitedMs: 0 });
    expect(o.lastSeq('orders')).toBe(0);
    expect(o.usage().events).toBe(0);
    expect(o.deadLetters.list().map((d) => d.recordId)).toEqual(['bad']);
    expect(o.getCheckpoint('test:orders', 'pos')).toBe(1);
  });

  it('writes records, dead letters and checkpoint in one transaction: a failing dead-letter insert leaves none of them', async () => {
    const o = open();
    const h = host(o);
    await h.writer.append([rec('before')], { key: 'pos', value: 1 });
    const usage = o.usage();
    // Fault injection from a second connection: the dead-letter insert fails inside the append.
    const db = new Database(dbPath());
    db.exec("CREATE TRIGGER fail_dead_letter BEFORE INSERT ON dead_letters BEGIN SELECT RAISE(ABORT, 'injected dead-letter failure'); END");
    db.close();

    await expect(h.writer.append([rec('ok'), rec('bad', { ts: Number.NaN })], { key: 'pos', value: 2 }, { invalid: 'dead_letter' })).rejects.toThrow(
      /injected dead-letter failure/,
    );
    expect(o.lastSeq('orders')).toBe(1);
    expect(rows(o, 'orders').map((x) => x.rec.id)).toEqual(['before']);
    expect(o.getCheckpoint('test:orders', 'pos')).toBe(1);
    expect(o.deadLetters.list()).toEqual([]);
    expect(o.usage()).toEqual(usage);
    expect(o.usage()).toEqual({ ...fileUsage(dbPath()), full: false });

    const fix = new Database(dbPath());
    fix.exec('DROP TRIGGER fail_dead_letter');
    fix.close();
    expect(await h.writer.append([rec('ok'), rec('bad', { ts: Number.NaN })], { key: 'pos', value: 2 }, { invalid: 'dead_letter' })).toMatchObject({
      appended: 1,
      deadLettered: 1,
      firstSeq: 2,
    });
    expect(o.getCheckpoint('test:orders', 'pos')).toBe(2);
  });
});

describe('stamping and namespaces', () => {
  it('stamps source (a collector cannot set its own) and ts when absent', async () => {
    const o = open();
    const h = host(o);
    const before = Date.now();
    const forged = { id: 'forged', ts: T0, data: 1, source: 'file-drop:payroll' } as unknown as CaptureInput;
    await h.ctx.writer.append([forged, { id: 'no-ts', data: 2 }]);
    const after = Date.now();
    const [a, b] = rows(o, 'orders');
    expect(a!.rec).toMatchObject({ id: 'forged', source: 'test:orders', ts: T0 });
    expect(b!.rec.source).toBe('test:orders');
    expect(b!.rec.ts).toBeGreaterThanOrEqual(before);
    expect(b!.rec.ts).toBeLessThanOrEqual(after);
    // In the dead-letter table too.
    await h.ctx.writer.append([{ ...(forged as object), id: 'forged-bad', ts: -5 } as CaptureInput], [], { invalid: 'dead_letter' });
    expect(o.deadLetters.list()[0]).toMatchObject({ recordId: 'forged-bad', source: 'test:orders' });
    expect(h.ctx.writer.source).toBe('test:orders');
    expect(h.ctx.writer.stream).toBe('orders');
  });

  it('keeps each collector\'s checkpoints in its own namespace "<type>:<name>"', async () => {
    const o = open();
    const a = host(o, 'a');
    const b = host(o, 'b');
    await a.ctx.writer.append([rec('a1')], { key: 'pos', value: 10 });
    await b.ctx.writer.append([rec('b1')], [{ key: 'pos', value: 20 }, { key: 'file', value: 'x.csv' }]);
    b.ctx.writer.setCheckpoints({ key: 'state', value: { ok: true } });

    expect(o.getCheckpoint('test:a', 'pos')).toBe(10);
    expect(o.getCheckpoint('test:b', 'pos')).toBe(20);
    expect(o.getCheckpoint('a', 'pos')).toBeUndefined();
    expect(a.ctx.writer.getCheckpoint('pos')).toBe(10);
    expect(b.ctx.writer.getCheckpoint('pos')).toBe(20);
    expect(a.ctx.writer.getCheckpoint('file')).toBeUndefined();
    expect(a.ctx.writer.listCheckpoints()).toEqual([{ key: 'pos', value: 10 }]);
    expect(b.ctx.writer.listCheckpoints()).toEqual([
      { key: 'file', value: 'x.csv' },
      { key: 'pos', value: 20 },
      { key: 'state', value: { ok: true } },
    ]);
    expect(fileTable<{ collector: string; key: string }>(dbPath(), 'SELECT collector, key FROM checkpoints ORDER BY collector, key')).toEqual([
      { collector: 'test:a', key: 'pos' },
      { collector: 'test:b', key: 'file' },
      { collector: 'test:b', key: 'pos' },
      { collector: 'test:b', key: 'state' },
    ]);
    // A null value deletes, and only in the writer's own namespace.
    await a.ctx.writer.append([], { key: 'pos', value: null });
    expect(o.getCheckpoint('test:a', 'pos')).toBeUndefined();
    expect(o.getCheckpoint('test:b', 'pos')).toBe(20);
  });
});

describe('back-pressure under the block cap policy', () => {
  it('two writers block (without waiting themselves) until acks free space, never past the cap; waitedMs and stats count the wait', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0);
    const o = open({ capPolicy: 'block', maxEvents: 4, replayWindowMs: HOUR });
    const samples: number[] = [];
    o.on('appended', () => samples.push(o.usage().events));
    const a = host(o, 'a');
    const b = host(o, 'b');
    await a.ctx.writer.append([rec('a1'), rec('a2')]);
    await b.ctx.writer.append([rec('b1'), rec('b2')]);
    expect(o.isFull()).toBe(true);

    const settled: string[] = [];
    const pa = a.ctx.writer.append([rec('a3'), rec('a4')], { key: 'pos', value: 4 }).then((r) => (settled.push('a'), r));
    const pb = b.ctx.writer.append([rec('b3'), rec('b4')], { key: 'pos', value: 4 }).then((r) => (settled.push('b'), r));
    for (let i = 0; i < 5; i++) await tick();
    expect(settled).toEqual([]);
    expect(o.usage().events).toBe(4);
    expect(o.getCheckpoint('test:a', 'pos')).toBeUndefined(); // the checkpoint waits with its records

    // The relay acks two records: room for one of the two appends, not both.
    vi.setSystemTime(T0 + 500);
    o.ack('a', 2);
    await waitForSettled(settled, 1);
    const first = settled[0]!;
    const firstResult = await (first === 'a' ? pa : pb);
    expect(firstResult).toMatchObject({ appended: 2, firstSeq: 3, lastSeq: 4, waitedMs: 500 });
    for (let i = 0; i < 5; i++) await tick();
    expect(settled).toEqual([first]);
    expect(o.isFull()).toBe(true);
    expect(o.usage().events).toBe(4);

    vi.setSystemTime(T0 + 800);
    o.ack(first, 4); // frees the two records just appended
    await waitForSettled(settled, 2);
    const second = settled[1]!;
    expect(await (second === 'a' ? pa : pb)).toMatchObject({ appended: 2, firstSeq: 3, lastSeq: 4, waitedMs: 800 });

    expect((first === 'a' ? a : b).writer.stats()).toMatchObject({ waits: 1, waited_ms: 500, appends: 2, records: 4 });
    expect((second === 'a' ? a : b).writer.stats()).toMatchObject({ waits: 1, waited_ms: 800, appends: 2, records: 4 });
    expect(o.getCheckpoint('test:a', 'pos')).toBe(4);
    expect(o.getCheckpoint('test:b', 'pos')).toBe(4);
    expect(samples.length).toBe(4);
    expect(Math.max(...samples)).toBeLessThanOrEqual(4);
    expect(o.usage()).toEqual({ ...fileUsage(dbPath()), full: o.isFull() });
  });

  it('never lets usage go past the cap, whatever the batch sizes, and loses nothing', async () => {
    const CAP = 5;
    const o = open({ capPolicy: 'block', maxEvents: CAP, replayWindowMs: HOUR });
    let max = 0;
    o.on('appended', () => (max = Math.max(max, o.usage().events)));
    const writers = [host(o, 'a'), host(o, 'b')];
    const sizes = [
      [2, 3, 2, 1, 3, 2],
      [3, 2, 3, 2, 1, 2],
    ];
    const MAX_BATCH = 3;
    let done = false;
    // The relay: while the largest batch would not fit (or the outbox is full) it acks the oldest
    // pending record, one at a time, so acks free less than a batch.
    const relay = (async () => {
      while (!done) {
        if (o.isFull() || o.usage().events > CAP - MAX_BATCH) {
          for (const s of ['a', 'b']) {
            if (o.lastSeq(s) > o.ackedSeq(s)) {
              o.ack(s, o.ackedSeq(s) + 1);
              break;
            }
          }
        }
        await tick();
      }
    })();
    await Promise.all(
      writers.map(async (h, w) => {
        let n = 0;
        for (const size of sizes[w]!) {
          await h.ctx.writer.append(Array.from({ length: size }, () => rec(`${'ab'[w]}${++n}`)));
        }
      }),
    );
    done = true;
    await relay;
    // Nothing lost or reordered...
    for (const [w, s] of ['a', 'b'].entries()) {
      const total = sizes[w]!.reduce((x, y) => x + y, 0);
      expect(o.lastSeq(s)).toBe(total);
      expect(rows(o, s, o.ackedSeq(s)).map((r) => r.rec.id)).toEqual(Array.from({ length: total - o.ackedSeq(s) }, (_, k) => `${s}${o.ackedSeq(s) + k + 1}`));
    }
    expect(writers.every((h) => h.writer.stats().waits > 0)).toBe(true);
    // ...and the cap held at every append.
    expect(max).toBeLessThanOrEqual(CAP);
  });

  it('whenFull: refuse throws ERP_OUTBOX_FULL at once, writes nothing (not even the checkpoint) and counts it', async () => {
    const o = open({ capPolicy: 'block', maxEvents: 2, replayWindowMs: HOUR });
    const h = host(o);
    await h.ctx.writer.append([rec('r1'), rec('r2')], undefined, { whenFull: 'refuse' });
    expect(o.isFull()).toBe(true);
    const err = await failure(h.ctx.writer.append([rec('r3')], { key: 'pos', value: 3 }, { whenFull: 'refuse' }));
    expect(err.code).toBe('ERP_OUTBOX_FULL');
    expect(o.lastSeq('orders')).toBe(2);
    expect(o.getCheckpoint('test:orders', 'pos')).toBeUndefined();
    expect(h.writer.stats()).toMatchObject({ full_refusals: 1, waits: 0, appends: 1, records: 2 });
    // Room again: the same call goes in without waiting.
    o.ack('orders', 2);
    expect(await h.ctx.writer.append([rec('r3')], { key: 'pos', value: 3 }, { whenFull: 'refuse' })).toMatchObject({ appended: 1, firstSeq: 3, waitedMs: 0 });
  });

  it('an abort signal ends the wait with an AbortError; nothing is written and no wait is counted', async () => {
    const o = open({ capPolicy: 'block', maxEvents: 2, replayWindowMs: HOUR });
    const h = host(o);
    await h.ctx.writer.append([rec('r1'), rec('r2')]);
    expect(o.isFull()).toBe(true);
    const waiting = h.ctx.writer.append([rec('r3')], { key: 'pos', value: 3 });
    let state = 'pending';
    waiting.then(
      () => (state = 'resolved'),
      () => (state = 'rejected'),
    );
    for (let i = 0; i < 5; i++) await tick();
    expect(state).toBe('pending');
    h.abort.abort(); // the collector instance is stopped
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(o.lastSeq('orders')).toBe(2);
    expect(o.getCheckpoint('test:orders', 'pos')).toBeUndefined();
    expect(h.writer.stats()).toMatchObject({ waits: 0, waited_ms: 0, appends: 1, records: 2 });

    // The writer itself is fine: a later append (another instance's view) goes in once there is space.
    o.ack('orders', 2);
    expect(await h.writer.append([rec('r3')])).toMatchObject({ appended: 1, firstSeq: 3, waitedMs: 0 });
  });

  it('a stopped instance appends nothing more, even when there is room', async () => {
    const o = open();
    const h = host(o);
    h.abort.abort();
    await expect(h.ctx.writer.append([rec('late')], { key: 'pos', value: 9 })).rejects.toMatchObject({ name: 'AbortError' });
    expectNothingWritten(o);
  });

  it('serves appends waiting for room in the order they came: a stream of small appends cannot starve a big one', async () => {
    const o = open({ capPolicy: 'block', maxEvents: 10, replayWindowMs: HOUR });
    const big = host(o, 'files');
    const small = host(o, 'scans');
    await small.ctx.writer.append(Array.from({ length: 5 }, (_, i) => rec(`s${i}`)));
    // 5 + 8 > 10: the big append waits; small ones coming after it queue behind it.
    const order: string[] = [];
    const bigDone = big.ctx.writer.append(Array.from({ length: 8 }, (_, i) => rec(`f${i}`))).then(() => order.push('big'));
    await tick();
    const smallDone = Promise.all([1, 2].map((k) => small.ctx.writer.append([rec(`late${k}`)]).then(() => order.push(`small${k}`))));
    for (let i = 0; i < 5; i++) await tick();
    expect(o.waitingAppends).toBe(3);
    // Room for a small append but not for the big one: nobody passes the big one.
    o.ack('scans', 2);
    for (let i = 0; i < 5; i++) await tick();
    expect(order).toEqual([]);
    expect(o.usage().events).toBe(3);
    // Room for the big one: it goes first, then the small ones (8 + 2 = 10).
    o.ack('scans', 5);
    await Promise.all([bigDone, smallDone]);
    expect(order).toEqual(['big', 'small1', 'small2']);
    expect(o.usage().events).toBe(10);
    expect(o.waitingAppends).toBe(0);
  });
});

async function waitForSettled(settled: string[], n: number): Promise<void> {
  for (let i = 0; i < 1_000 && settled.length < n; i++) await tick();
  if (settled.length < n) throw new Error(`only ${settled.length} of ${n} appends went through after the ack`);
}
