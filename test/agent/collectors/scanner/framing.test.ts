import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DevicePrefix } from '../../../../agent/collectors/scanner/device-prefix.js';
import { Framer, terminatorBytes, type FrameEvent } from '../../../../agent/collectors/scanner/framing.js';
import { framingSchema, type FramingConfig } from '../../../../agent/collectors/scanner/schema.js';

const cfg = (input: Record<string, unknown> = {}): FramingConfig => framingSchema.parse(input);
const b = (s: string) => Buffer.from(s, 'latin1');

/** Frames as strings ('!<n>' for an oversize report), from one framer fed `chunks`. */
function run(framing: FramingConfig, chunks: Buffer[]): string[] {
  const f = new Framer(framing);
  return chunks.flatMap((c) => f.push(c)).map(show);
}

function show(e: FrameEvent): string {
  return e.kind === 'scan' ? e.bytes.toString('latin1') : `!${e.length}`;
}

/** `whole` cut at the given positions (any order, duplicates and out-of-range ones ignored). */
function splitAt(whole: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((x, y) => x - y);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, whole.length]) {
    if (c > prev) parts.push(whole.subarray(prev, c));
    prev = Math.max(prev, c);
  }
  return parts;
}

const terminators: FramingConfig['terminator'][] = ['cr', 'lf', 'crlf', 'etx', { hex: '1e04' }, { hex: '0d0a0d' }];

describe('Framer: terminators', () => {
  it('cuts at CR and tolerates the LF of a CRLF, also when the LF comes in the next read', () => {
    expect(run(cfg({ terminator: 'cr' }), [b('A1\rB2\r\nC3\r'), b('\nD4\r')])).toEqual(['A1', 'B2', 'C3', 'D4']);
  });

  it('keeps an LF inside a scan in cr mode (a multi-line QR code)', () => {
    expect(run(cfg({ terminator: 'cr' }), [b('line1\nline2\r')])).toEqual(['line1\nline2']);
  });

  it('cuts at LF and strips the CR of a CRLF', () => {
    expect(run(cfg({ terminator: 'lf' }), [b('A1\nB2\r'), b('\nC3\r\n')])).toEqual(['A1', 'B2', 'C3']);
  });

  it('crlf wants both bytes, also split across reads', () => {
    expect(run(cfg({ terminator: 'crlf' }), [b('A\r1\r'), b('\nB2\r\n')])).toEqual(['A\r1', 'B2']);
  });

  it('etx with stx: the STX and what came before it (a BCC byte, CR LF) are not part of the scan', () => {
    expect(run(cfg({ terminator: 'etx', stx: true }), [b('\x02A1\x03\x7f\r\n\x02B2\x03'), b('C3\x03')])).toEqual(['A1', 'B2', 'C3']);
  });

  it('a custom byte sequence, split byte by byte', () => {
    const whole = b('AB\x1e\x04C\x1eD\x1e\x04');
    expect(run(cfg({ terminator: { hex: '1E 04' } }), [...whole].map((x) => Buffer.from([x])))).toEqual(['AB', 'C\x1eD']);
  });

  it('a three-byte terminator arriving one byte per read', () => {
    expect(run(cfg({ terminator: { hex: '0d0a0d' } }), [b('X\r'), b('\n'), b('\r'), b('Y\r\n'), b('\r')])).toEqual(['X', 'Y']);
  });

  it('ignores empty frames', () => {
    expect(run(cfg({ terminator: 'lf' }), [b('\n\n\r\nA\n\n')])).toEqual(['A']);
    expect(run(cfg({ terminator: 'etx', stx: true }), [b('\x03\x02\x03A\x03')])).toEqual(['A']);
  });

  it('fixed length cuts every N bytes whatever the reads', () => {
    expect(run(cfg({ fixed_length: 4 }), [b('AAAAB'), b('BB'), b('BCCCCDD')])).toEqual(['AAAA', 'BBBB', 'CCCC']);
  });
});

describe('Framer: split and coalesced reads (property)', () => {
  it('any split of a concatenation yields the same frames as one read', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...terminators),
        fc.boolean(),
        fc.integer({ min: 1, max: 40 }),
        fc.uint8Array({ maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (terminator, stx, max, bytes, cuts) => {
          const framing = cfg({ terminator, stx, max_length: max });
          const whole = Buffer.from(bytes);
          expect(run(framing, splitAt(whole, cuts))).toEqual(run(framing, [whole]));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('scans without terminator bytes come out exactly, in order, however they are cut', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...terminators),
        fc.array(fc.stringMatching(/^[0-9A-Za-z\]()\x1d]{1,30}$/), { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (terminator, scans, cuts) => {
          const term = terminatorBytes(terminator);
          const whole = Buffer.concat(scans.flatMap((s) => [b(s), term]));
          expect(run(cfg({ terminator }), splitAt(whole, cuts))).toEqual(scans);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('fixed-length frames come out exactly however they are cut', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 30 }), (n, bytes, cuts) => {
        const whole = Buffer.from(bytes);
        const want: string[] = [];
        for (let i = 0; i + n <= whole.length; i += n) want.push(whole.toString('latin1', i, i + n));
        expect(run(cfg({ fixed_length: n }), splitAt(whole, cuts))).toEqual(want);
      }),
    );
  });
});

describe('Framer: maximum length', () => {
  it('a frame of exactly max_length is a scan; one byte more is reported once with its length', () => {
    const framing = cfg({ terminator: 'crlf', max_length: 5 });
    expect(run(framing, [b('12345\r\n123456\r\nok\r\n')])).toEqual(['12345', '!6', 'ok']);
  });

  it('a 1 MB line with max 4 KB never holds more than about max bytes, is reported once, and the next scan is read', () => {
    for (const terminator of terminators) {
      const f = new Framer(cfg({ terminator, max_length: 4_096 }));
      const term = terminatorBytes(terminator);
      const line = Buffer.alloc(1_048_576, 0x41);
      const events: FrameEvent[] = [];
      let most = 0;
      for (let i = 0; i < line.length; i += 1_000) {
        events.push(...f.push(line.subarray(i, i + 1_000)));
        most = Math.max(most, f.pending);
      }
      events.push(...f.push(Buffer.concat([term, b('NEXT'), term])));
      expect(events.map(show), JSON.stringify(terminator)).toEqual([`!${line.length}`, 'NEXT']);
      expect(most).toBeLessThanOrEqual(4_096 + term.length);
    }
  });

  it('a frame over max_length in one read is reported, not split', () => {
    expect(run(cfg({ terminator: 'lf', max_length: 3 }), [b('abcdefgh\nxy\n')])).toEqual(['!8', 'xy']);
  });
});

describe('Framer: end of stream', () => {
  it('an unfinished frame is not a scan: end() gives its length and the framer starts over', () => {
    const f = new Framer(cfg({ terminator: 'cr' }));
    expect(f.push(b('A\rpart')).map(show)).toEqual(['A']);
    expect(f.end()).toBe(4);
    expect(f.push(b('B\r')).map(show)).toEqual(['B']);
    expect(f.end()).toBe(0);
  });

  it('counts the discarded bytes of an over-long unfinished frame', () => {
    const f = new Framer(cfg({ terminator: 'cr', max_length: 10 }));
    f.push(Buffer.alloc(100, 0x41));
    expect(f.pending).toBeLessThanOrEqual(10);
    expect(f.end()).toBe(100);
  });
});

describe('framing config', () => {
  it('defaults: CR, no STX, 4096 bytes', () => {
    expect(cfg()).toEqual({ terminator: 'cr', stx: false, max_length: 4_096 });
  });

  it('reads a hex terminator with spaces or colons, refuses odd or empty hex', () => {
    expect(cfg({ terminator: { hex: '1E:04' } }).terminator).toEqual({ hex: '1e04' });
    expect(framingSchema.safeParse({ terminator: { hex: '1e0' } }).success).toBe(false);
    expect(framingSchema.safeParse({ terminator: { hex: '' } }).success).toBe(false);
  });

  it('refuses a fixed length over max_length', () => {
    expect(framingSchema.safeParse({ fixed_length: 10, max_length: 5 }).success).toBe(false);
  });
});

describe('DevicePrefix', () => {
  const p = new DevicePrefix({ separator: '|' });

  it('splits the device id off a scan', () => {
    const r = p.split(b('DEV01|0123456789'));
    expect(r?.device).toBe('DEV01');
    expect(r?.raw.toString()).toBe('0123456789');
  });

  it('leaves a scan without a usable prefix whole', () => {
    expect(p.split(b('0123456789'))).toBeUndefined();
    expect(p.split(b('|0123'))).toBeUndefined();
    expect(p.split(b('a/b|0123'))).toBeUndefined();
    expect(p.split(Buffer.concat([Buffer.alloc(70, 0x41), b('|x')]))).toBeUndefined();
  });
});
