/**
 * Scanner framing under random byte streams (#12 item 6). Apart from framing.test.ts because the
 * scanner-tcp work may still change that file; these only use Framer's public surface.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Framer, terminatorBytes } from '../../../../agent/collectors/scanner/framing.js';
import { framingSchema, type FramingConfig } from '../../../../agent/collectors/scanner/schema.js';

const terminators: FramingConfig['terminator'][] = ['cr', 'lf', 'crlf', 'etx', { hex: '1e04' }, { hex: '0d0a0d' }];

const framing = fc.oneof(
  fc.record({ terminator: fc.constantFrom(...terminators), stx: fc.boolean(), max_length: fc.integer({ min: 1, max: 64 }) }),
  fc.integer({ min: 1, max: 16 }).map((n) => ({ fixed_length: n, max_length: 64 })),
);

/** Random bytes, biased towards the bytes framing reacts to, cut into random reads (empty ones too). */
const reads = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.array(fc.constantFrom(0x0d, 0x0a, 0x02, 0x03, 0x1e, 0x04, 0x41), { maxLength: 50 }).map((a) => Uint8Array.from(a)),
    fc.integer({ min: 65, max: 1_000 }).map((n) => new Uint8Array(n).fill(0x41)), // a line longer than max_length
  ),
  { maxLength: 40 },
);

describe('Framer: random byte streams', () => {
  it('never throws; every scan is within max_length; held bytes stay within max_length plus a terminator; each byte is accounted for once', () => {
    fc.assert(
      fc.property(framing, reads, (input, chunks) => {
        const cfg = framingSchema.parse(input);
        const f = new Framer(cfg);
        const max = cfg.fixed_length ?? cfg.max_length;
        const slack = cfg.fixed_length !== undefined ? 0 : terminatorBytes(cfg.terminator).length + 1;
        let fed = 0;
        let framed = 0;
        for (const c of chunks) {
          fed += c.length;
          for (const e of f.push(Buffer.from(c))) {
            if (e.kind === 'scan') {
              expect(e.bytes.length).toBeGreaterThan(0);
              expect(e.bytes.length).toBeLessThanOrEqual(max);
              framed += e.bytes.length;
            } else {
              expect(e.length).toBeGreaterThan(max);
              framed += e.length;
            }
          }
          expect(f.pending).toBeLessThanOrEqual(max + slack);
        }
        const rest = f.end();
        expect(rest).toBeGreaterThanOrEqual(0);
        // Scans, oversize frames and the unfinished rest never add up to more than was read (the
        // rest is terminators, STX prefixes and empty frames).
        expect(framed + rest).toBeLessThanOrEqual(fed);
        if (cfg.fixed_length !== undefined) expect(framed + rest).toBe(fed);
        expect(f.pending).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
