import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ScanBook, type ScanInput } from '../../../../agent/collectors/scanner/scan.js';
import { ScanQueue } from '../../../../agent/collectors/scanner/scan-queue.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { isErpEdgeError } from '../../../../common/errors.js';
import { wireRecordV2 } from '../../../../common/wire-v2.js';
import { testHost } from '../../../helpers/host.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';

const files = useOutboxFiles('scan-queue-test-', { synchronous: 'NORMAL' });
const STREAM = 'dock';

function queueOn(o: Outbox, opts: { whenFull?: 'wait' | 'refuse'; maxBatch?: number; highWater?: number } = {}) {
  const h = testHost(o, { type: 'scanner-tcp', name: STREAM }, files.dir);
  const book = new ScanBook(h.ctx.writer, { gs1: {}, repeatWindowMs: 0 });
  const queue = new ScanQueue({ writer: h.ctx.writer, book, whenFull: opts.whenFull ?? 'wait', maxBatch: opts.maxBatch, highWater: opts.highWater });
  return { h, book, queue };
}

const scan = (device: string, code: string): ScanInput => ({ device, raw: Buffer.from(code), receivedAt: Date.now() });

function stored(o: Outbox): { device: string; seq: number; barcode: string }[] {
  return o.readPending(STREAM, 0, Number.MAX_SAFE_INTEGER).map((r) => wireRecordV2.parse(JSON.parse(r.payload)).data as { device: string; seq: number; barcode: string });
}

describe('ScanQueue: group commit', () => {
  it('scans pushed in one turn go in one append, in arrival order, each promise settling with its device seq', async () => {
    const o = files.open();
    const { h, queue } = queueOn(o);
    const pushed = ['a', 'b', 'a', 'c', 'b', 'a'].map((d, i) => queue.push(scan(d, `${d}${i}`)));
    const seqs = await Promise.all(pushed);
    expect(seqs.map((s) => s.seq)).toEqual([1, 1, 2, 1, 2, 3]);
    expect(h.writer.stats().appends).toBe(1);
    expect(stored(o).map((s) => s.barcode)).toEqual(['a0', 'b1', 'a2', 'c3', 'b4', 'a5']);
  });

  it('scans arriving while an append is in flight go together in the next one, capped at maxBatch', async () => {
    const o = files.open();
    const { h, queue } = queueOn(o, { maxBatch: 3 });
    const first = queue.push(scan('a', 'x0'));
    const rest = Array.from({ length: 7 }, (_, i) => queue.push(scan('a', `x${i + 1}`)));
    await Promise.all([first, ...rest]);
    // 8 scans, 3 per append at most.
    expect(h.writer.stats().appends).toBe(3);
    expect(stored(o).map((s) => s.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await queue.drain();
    expect(queue.backlog).toBe(0);
  });
});

describe('ScanQueue: back-pressure', () => {
  it('with the outbox full under block: pauses at high water, resumes once acks make room, loses nothing', async () => {
    const o = files.open({ capPolicy: 'block', maxEvents: 4 });
    const { queue } = queueOn(o, { maxBatch: 2, highWater: 6 });
    const events: string[] = [];
    queue.on('pause', () => events.push('pause'));
    queue.on('resume', () => events.push('resume'));
    const paused = once(queue, 'pause');
    const pushed = Array.from({ length: 12 }, (_, i) => queue.push(scan(`d${i % 2}`, `c${i}`)));
    await paused;
    expect(queue.paused).toBe(true);

    // The forwarder's part: ack what is stored until everything is in.
    const settled = Promise.all(pushed);
    let done = false;
    void settled.then(() => (done = true));
    while (!done) {
      const last = o.lastSeq(STREAM);
      if (last > o.ackedSeq(STREAM)) o.ack(STREAM, last);
      await new Promise((r) => setImmediate(r));
    }
    await queue.drain();
    expect(events).toEqual(['pause', 'resume']);
    expect(queue.paused).toBe(false);
    expect(o.lastSeq(STREAM)).toBe(12);
    const seqs = (await settled).map((s) => s.seq);
    expect(seqs).toEqual([1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
  });

  it('whenFull refuse: the scan is refused with ERP_OUTBOX_FULL and its sequence given back', async () => {
    const o = files.open({ capPolicy: 'block', maxEvents: 1 });
    const { queue } = queueOn(o, { whenFull: 'refuse' });
    expect(await queue.push(scan('d1', 'A'))).toEqual({ seq: 1 });
    const err = await queue.push(scan('d1', 'B')).catch((e: unknown) => e);
    expect(isErpEdgeError(err, 'ERP_OUTBOX_FULL')).toBe(true);
    o.ack(STREAM, 1);
    expect(await queue.push(scan('d1', 'B'))).toEqual({ seq: 2 });
    expect(stored(o).map((s) => [s.barcode, s.seq])).toEqual([['B', 2]]);
  });
});
