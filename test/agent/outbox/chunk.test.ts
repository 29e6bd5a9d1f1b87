import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openSqlite } from '../../../agent/outbox/sqlite.js';
import { Outbox, readOutboxStatus, type NewRecord } from '../../../agent/outbox/outbox.js';
import { CHUNK_MAX_BYTES, CHUNK_MAX_RECORDS, lineBytes, lineProblem, quickLineProblem, toChunks } from '../../../agent/outbox/chunk.js';
import { recordLine } from '../../../common/wire-v2.js';
import { wireRecord } from '../../../common/wire-v1.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { testOutboxOptions } from '../../helpers/outbox.js';

let dir: string;
let cleanup: () => void;
let outbox: Outbox | undefined;
beforeEach(() => ({ dir, cleanup } = makeTempDir()));
afterEach(() => {
  outbox?.close();
  outbox = undefined;
  cleanup();
});

const recs = (from: number, to: number, pad = ''): NewRecord[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ id: `r${from + i}`, source: 't', ts: 1_000 + from + i, data: { i: from + i, pad, nl: 'line\nbreak' } }));

function open(opts: Partial<ConstructorParameters<typeof Outbox>[0]> = {}): Outbox {
  outbox = new Outbox(testOutboxOptions(join(dir, 'o.db'), opts));
  return outbox;
}

function chunkSpans(): [number, number][] {
  const db = openSqlite(join(dir, 'o.db'), { readonly: true });
  try {
    return (db.prepare('SELECT first_seq AS f, last_seq AS l FROM chunks ORDER BY first_seq').all() as { f: number; l: number }[]).map((r) => [r.f, r.l]);
  } finally {
    db.close();
  }
}

const readAll = (o: Outbox, after = 0) => o.readPending('s', after, Number.MAX_SAFE_INTEGER);
const dataOf = (rows: { payload: string }[]) => rows.map((r) => (wireRecord.parse(JSON.parse(r.payload)).data as { i: number }).i);

describe('toChunks', () => {
  it('splits by record count and by bytes, keeping seqs contiguous', () => {
    const enc = (n: number, bytes: number) => Array.from({ length: n }, (_, i) => ({ ts: i, body: 'x'.repeat(bytes), bytes }));
    expect(toChunks(enc(2_500, 10), 7).map((c) => [c.firstSeq, c.lastSeq])).toEqual([
      [7, 1_006],
      [1_007, 2_006],
      [2_007, 2_506],
    ]);
    // Lines count their `{"seq":N,` too: two of these fit, three do not.
    const big = toChunks(enc(5, CHUNK_MAX_BYTES / 2 - 20), 1);
    expect(big.map((c) => [c.firstSeq, c.lastSeq])).toEqual([
      [1, 2],
      [3, 4],
      [5, 5],
    ]);
    expect(big.map((c) => c.bytes)).toEqual([2 * (CHUNK_MAX_BYTES / 2 - 20 + 9), 2 * (CHUNK_MAX_BYTES / 2 - 20 + 9), CHUNK_MAX_BYTES / 2 - 20 + 9]);
    // A record larger than the byte limit still gets a chunk of its own.
    expect(toChunks(enc(2, CHUNK_MAX_BYTES + 1), 1).map((c) => c.lastSeq - c.firstSeq + 1)).toEqual([1, 1]);
  });

  it('writes each line as the seq, then the body, lines separated by a newline', () => {
    const bodies = ['"id":"a","data":1}', '"id":"é","data":"x\\ny"}', '"id":"c","data":null}'];
    const [c] = toChunks(
      bodies.map((body, i) => ({ ts: 10 - i, body, bytes: Buffer.byteLength(body) })),
      99,
    );
    expect(c!.payload).toBe(bodies.map((b, i) => recordLine(99 + i, b)).join('\n'));
    expect(c!.payload.split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([99, 100, 101]);
    expect(c).toMatchObject({ firstSeq: 99, lastSeq: 101, minTs: 8, bytes: Buffer.byteLength(c!.payload) - 2 });
  });
});

describe('outbox stored in chunks', () => {
  it('a large append becomes several chunks that read back as one contiguous run, embedded newlines intact', () => {
    const o = open();
    o.append('s', recs(1, 2_500));
    expect(chunkSpans()).toEqual([
      [1, CHUNK_MAX_RECORDS],
      [CHUNK_MAX_RECORDS + 1, 2 * CHUNK_MAX_RECORDS],
      [2 * CHUNK_MAX_RECORDS + 1, 2_500],
    ]);
    const rows = readAll(o);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1));
    expect(dataOf(rows)).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1));
    expect((JSON.parse(rows[0]!.payload) as { data: { nl: string } }).data.nl).toBe('line\nbreak');
    expect(o.usage().bytes).toBe(rows.reduce((s, r) => s + r.bytes, 0));
  });

  it('reads across chunk boundaries in batches, from any seq', () => {
    const o = open();
    o.append('s', recs(1, 1_500));
    const seen: number[] = [];
    let after = 0;
    for (;;) {
      const batch = o.readPending('s', after, 700);
      if (batch.length === 0) break;
      expect(batch.length).toBeLessThanOrEqual(700);
      seen.push(...batch.map((r) => r.seq));
      after = batch[batch.length - 1]!.seq;
    }
    expect(seen).toEqual(Array.from({ length: 1_500 }, (_, i) => i + 1));
    expect(readAll(o, 999).map((r) => r.seq).slice(0, 3)).toEqual([1_000, 1_001, 1_002]);
  });

  it('pruning an ack that falls inside a chunk trims exactly the acked records', () => {
    const o = open({ replayWindowMs: 0 });
    o.append('s', recs(1, 1_500));
    o.ack('s', 1_234);
    expect(o.pruneAcked(true)).toBe(1_234);
    expect(chunkSpans()).toEqual([[1_235, 1_500]]);
    expect(dataOf(readAll(o))).toEqual(Array.from({ length: 266 }, (_, i) => 1_235 + i));
    expect(o.usage().events).toBe(266);
    // Usage as the file has it after a reopen matches the counters.
    const usage = o.usage();
    o.close();
    expect(open({ replayWindowMs: 0 }).usage()).toEqual(usage);
  });

  it('status counts a partly acked chunk exactly (pending count, bytes, oldest pending ts)', () => {
    const o = open();
    o.append('s', recs(1, 1_200));
    o.ack('s', 1_100);
    const st = readOutboxStatus(join(dir, 'o.db')).streams[0]!;
    expect(st.pending).toBe(100);
    expect(st.pendingBytes).toBe(readAll(o, 1_100).reduce((s, r) => s + r.bytes, 0));
    expect(st.oldestPendingTs).toBe(1_000 + 1_101);
  });

  it('drop_oldest trims the head of a chunk record by record, never more than needed', () => {
    const o = open({ maxEvents: 1_300, capPolicy: 'drop_oldest' });
    o.append('s', recs(1, 1_000));
    o.append('s', recs(1_001, 1_500));
    expect(o.usage()).toMatchObject({ events: 1_300, dropped: 200 });
    expect(o.droppedUpto('s')).toBe(200);
    expect(readAll(o).map((r) => r.seq)[0]).toBe(201);
    expect(chunkSpans()).toEqual([
      [201, 1_000],
      [1_001, 1_500],
    ]);
  });

  it('never serves a deleted chunk from the read cache when its row id is reused by another stream', () => {
    const o = open({ replayWindowMs: 0 });
    o.append('orders', recs(1, 5));
    expect(o.readPending('orders', 0, 10)).toHaveLength(5); // now cached
    o.ack('orders', 5);
    o.pruneAcked(true); // the table is empty: the next chunk gets the same row id
    o.append('returns', [{ id: 'ret-1', source: 't', data: { i: 901 } }, { id: 'ret-2', source: 't', data: { i: 902 } }]);
    const rows = o.readPending('returns', 0, 10);
    expect(rows.map((r) => (JSON.parse(r.payload) as { id: string }).id)).toEqual(['ret-1', 'ret-2']);
  });
});


describe('record lines read without making strings', () => {
  const seqs = [1, 7, 9, 10, 99, 100, 12_345, 10 ** 14, 10 ** 15 - 1, 10 ** 15, 2 ** 53 - 1];

  it('lineBytes is the UTF-8 size of the line, across digit counts', () => {
    const body = '"id":"é-1","ts":1,"data":{}}';
    for (const seq of seqs) expect({ seq, bytes: lineBytes(seq, Buffer.byteLength(body)) }).toEqual({ seq, bytes: Buffer.byteLength(recordLine(seq, body)) });
  });

  it('quickLineProblem passes a line exactly when it ends in a brace and starts with its own seq prefix', () => {
    const body = '"id":"a","ts":1,"data":{}}';
    const lines = (seq: number) => [
      recordLine(seq, body),
      `{"seq":0${seq},${body}`,
      `{"seq":-${seq},${body}`,
      `{"seq":${seq}${body}`,
      `{"seq":${seq} ,${body}`,
      `{"seq":${seq + 1},${body}`,
      `{"seq":${seq},${body}`.slice(0, -1), // still ends in a brace (data's): passes, as documented
      `{"seq":${seq},${body}`.slice(0, -3),
      `{"seq": ${seq},${body}`,
      `{"seq":${seq}0,${body}`,
      '{"seq":,"id":"a"}',
      '',
      '}',
    ];
    for (const seq of seqs) {
      for (const line of lines(seq)) {
        const prefixed = line.endsWith('}') && line.startsWith(`{"seq":${seq},`);
        // Seqs of 16 digits and more always get the full check.
        const want = prefixed && seq < 10 ** 15 ? undefined : lineProblem(line, seq);
        expect({ line, seq, problem: quickLineProblem(line, seq) }).toEqual({ line, seq, problem: want });
      }
    }
    expect(quickLineProblem(recordLine(3, body), 3)).toBeUndefined();
  });
});
