import { describe, expect, it } from 'vitest';
import { ScanBook } from '../../../../agent/collectors/scanner/scan.js';
import { wireRecordV2 } from '../../../../common/wire-v2.js';
import { testHost } from '../../../helpers/host.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';

const T0 = 1_700_000_000_000;
const GS = '\x1d';

const files = useOutboxFiles('scan-gs1-test-');

describe('GS1 in scan records', () => {
  it('a GS1 scan carries its parsed elements; an invalid one is recorded valid:false with its reasons; plain codes stay plain', async () => {
    const outbox = files.open();
    const { ctx } = testHost(outbox, { type: 'scanner-tcp', name: 'dock' }, files.dir);
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
