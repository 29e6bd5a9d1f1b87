import { describe, expect, it } from 'vitest';
import { ScanBook, type ScanInput } from '../../../../agent/collectors/scanner/scan.js';
import type { Writer } from '../../../../agent/host/writer.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { wireRecordV2 } from '../../../../common/wire-v2.js';
import { testHost } from '../../../helpers/host.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';

const T0 = 1_700_000_000_000;
const files = useOutboxFiles('scan-book-test-', { synchronous: 'NORMAL' });

const cfg = { type: 'scanner-tcp', name: 'dock' };

function bookOn(o: Outbox, repeatWindowMs = 2_000) {
  const h = testHost(o, cfg, files.dir);
  return { h, book: new ScanBook(h.ctx.writer, { gs1: {}, repeatWindowMs }) };
}

const scan = (device: string, code: string, at = T0, extra: Partial<ScanInput> = {}): ScanInput => ({ device, raw: Buffer.from(code), receivedAt: at, ...extra });

function records(o: Outbox) {
  return o.readPending('dock', 0, Number.MAX_SAFE_INTEGER).map((r) => wireRecordV2.parse(JSON.parse(r.payload)));
}

/** Stamps, appends and commits, as ScanQueue does. */
async function append(book: ScanBook, writer: Writer, inputs: ScanInput[]) {
  const s = book.stamp(inputs);
  await writer.append(s.records, s.checkpoints, { invalid: 'dead_letter' });
  s.commit();
  return s;
}

describe('ScanBook: per-device sequence', () => {
  it('numbers each device on its own, and continues after a restart (a new book on the same outbox)', async () => {
    const o = files.open();
    const first = bookOn(o);
    const a = await append(first.book, first.h.ctx.writer, [scan('d1', 'A'), scan('d2', 'B'), scan('d1', 'C')]);
    expect(a.seqs).toEqual([1, 1, 2]);

    const second = bookOn(o);
    const b = await append(second.book, second.h.ctx.writer, [scan('d2', 'D'), scan('d1', 'E'), scan('d3', 'F')]);
    expect(b.seqs).toEqual([2, 3, 1]);

    const recs = records(o);
    expect(recs.map((r) => (r.data as { seq: number }).seq)).toEqual([1, 1, 2, 2, 3, 1]);
    // The run id is kept with the sequences: the ids of both books are one lineage, all distinct.
    const run = recs[0]!.id.split('/')[2];
    expect(recs.map((r) => r.id)).toEqual(['d1/1', 'd2/1', 'd1/2', 'd2/2', 'd1/3', 'd3/1'].map((s) => `scanner-tcp:dock/${s.replace('/', `/${run}/`)}`));
  });

  it('a batch that was not committed (refused append) gives its sequences back', async () => {
    const o = files.open();
    const { h, book } = bookOn(o);
    const refused = book.stamp([scan('d1', 'A'), scan('d1', 'B')]);
    expect(refused.seqs).toEqual([1, 2]);
    const again = await append(book, h.ctx.writer, [scan('d1', 'A'), scan('d1', 'B')]);
    expect(again.seqs).toEqual([1, 2]);
    expect(book.stats()).toMatchObject({ scans: 2, devices: 1 });
  });

  it('a new outbox starts a new run: ids of a wiped outbox never collide with the old ones', async () => {
    const one = bookOn(files.open({}, 'a.db'));
    const two = bookOn(files.open({}, 'b.db'));
    const a = one.book.stamp([scan('d1', 'A')]);
    const b = two.book.stamp([scan('d1', 'A')]);
    expect(a.records[0]!.id).not.toBe(b.records[0]!.id);
  });
});

describe('ScanBook: record shape', () => {
  it('stamps receive time, device time and device, and keeps the raw bytes', () => {
    const { book } = bookOn(files.open());
    const s = book.stamp([scan('d1', 'ABC', T0 + 5, { deviceTs: T0, location: 'dock-3' })]);
    const r = s.records[0]!;
    expect(r).toMatchObject({ ts: T0 + 5, source_ts: T0, correlation_id: 'd1' });
    expect(r.data).toMatchObject({ device: 'd1', seq: 1, barcode: 'ABC', raw: Buffer.from('ABC').toString('base64'), received_at: T0 + 5, device_ts: T0, location: 'dock-3', repeat: false });
  });

  it('keeps bytes that are not UTF-8 (raw, base64) and reads them as Latin-1', () => {
    const { book } = bookOn(files.open());
    const raw = Buffer.from([0xff, 0x00, 0x41, 0xc3]);
    const r = book.stamp([{ device: 'd1', raw, receivedAt: T0 }]).records[0]!;
    expect((r.data as { raw: string }).raw).toBe(raw.toString('base64'));
    expect((r.data as { barcode: string }).barcode).toBe(raw.toString('latin1'));
  });
});

describe('ScanBook: repeats', () => {
  it('marks the same code from the same device within the window, within a batch and across batches', async () => {
    const o = files.open();
    const { h, book } = bookOn(o, 1_000);
    const a = await append(book, h.ctx.writer, [scan('d1', 'X', T0), scan('d1', 'X', T0 + 500), scan('d2', 'X', T0 + 600), scan('d1', 'Y', T0 + 700)]);
    expect(a.records.map((r) => (r.data as { repeat: boolean }).repeat)).toEqual([false, true, false, false]);
    // Measured from the last read (T0 + 500): 1 400 is inside, then 2 401 is past it.
    const b = await append(book, h.ctx.writer, [scan('d1', 'X', T0 + 1_400), scan('d1', 'X', T0 + 2_401)]);
    expect(b.records.map((r) => (r.data as { repeat: boolean }).repeat)).toEqual([true, false]);
    expect(book.stats().repeats).toBe(2);
  });

  it('a window of 0 marks nothing', () => {
    const { book } = bookOn(files.open(), 0);
    const s = book.stamp([scan('d1', 'X'), scan('d1', 'X')]);
    expect(s.records.map((r) => (r.data as { repeat: boolean }).repeat)).toEqual([false, false]);
  });
});

const GS = '\x1d';
const gsFiles = useOutboxFiles('scan-gs1-test-');

describe('GS1 in scan records', () => {
  it('a GS1 scan carries its parsed elements; an invalid one is recorded valid:false with its reasons; plain codes stay plain', async () => {
    const outbox = gsFiles.open();
    const { ctx } = testHost(outbox, { type: 'scanner-tcp', name: 'dock' }, gsFiles.dir);
    const book = new ScanBook(ctx.writer, { gs1: { gsReplacement: '|' }, repeatWindowMs: 0 });
    const scans = [
      `]C10109521234543213` + `17260630` + `10LOT7${GS}21S1`,
      ']C10109521234543214',
      ']C10109521234543213|10LOT7|3103000525',
      ']A0HELLO-39',
    ];
    const batch = book.stamp(scans.map((s, i) => ({ device: 'gun-1', raw: Buffer.from(s, 'latin1'), receivedAt: T0 + i })));
    await ctx.writer.append(batch.records, batch.checkpoints);
    batch.commit();

    // read back from the outbox file: what the relay will get
    const data = outbox.readPending('dock', 0, 100).map((r) => wireRecordV2.parse(JSON.parse(r.payload)).data as Record<string, unknown>);
    expect(data).toHaveLength(4);

    expect(data[0]).toMatchObject({ seq: 1, symbology: ']C1', gs1: true, valid: true, raw: Buffer.from(scans[0]!, 'latin1').toString('base64') });
    expect(data[0]!.reasons).toBeUndefined();
    expect(data[0]!.elements).toEqual([
      { ai: '01', title: 'GTIN', value: '09521234543213', valid: true },
      { ai: '17', title: 'USE BY or EXPIRY', value: '260630', parsed: '2026-06-30', valid: true },
      { ai: '10', title: 'BATCH/LOT', value: 'LOT7', valid: true },
      { ai: '21', title: 'SERIAL', value: 'S1', valid: true },
    ]);

    expect(data[1]).toMatchObject({ seq: 2, gs1: true, valid: false, reasons: ['(01) check digit is 4, expected 3'] });
    expect(data[1]!.elements).toEqual([{ ai: '01', title: 'GTIN', value: '09521234543214', valid: false, reason: 'check digit is 4, expected 3' }]);

    // the collector's gs_replacement reaches the parser
    expect(data[2]).toMatchObject({ valid: true, gs1: true });
    expect((data[2]!.elements as { ai: string; parsed?: string }[]).map((e) => [e.ai, e.parsed])).toEqual([
      ['01', undefined],
      ['10', undefined],
      ['3103', '0.525'],
    ]);

    expect(data[3]).toMatchObject({ symbology: ']A0', barcode: 'HELLO-39', gs1: false, valid: true });
    expect(data[3]).not.toHaveProperty('elements');

    expect(book.stats()).toMatchObject({ scans: 4, invalid: 1 });
  });
});
