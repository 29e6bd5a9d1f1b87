import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cast, CastError, type CastOptions } from '../../../cloud-relay/mapping/casts.js';

const dot: CastOptions = { decimalSeparator: '.' };
const comma: CastOptions = { decimalSeparator: ',' };
const runs = { numRuns: 300 };

/** A decimal as text with arbitrary padding an export may add: sign, leading zeros, trailing zeros. */
const decimalText = fc
  .record({
    negative: fc.boolean(),
    whole: fc.bigInt({ min: 0n, max: 10n ** 30n }),
    fraction: fc.stringMatching(/^\d{0,12}$/),
    leadingZeros: fc.nat(3),
    trailingZeros: fc.nat(3),
  })
  .map((r) => ({
    ...r,
    text: `${r.negative ? '-' : ''}${'0'.repeat(r.leadingZeros)}${r.whole}${r.fraction || r.trailingZeros ? `.${r.fraction}${'0'.repeat(r.trailingZeros)}` : ''}`,
  }));

describe('casts (properties)', () => {
  it('integer: a safe integer, as a number or as text with sign, padding zeros and a zero fraction, is itself', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), fc.nat(3), fc.nat(3), fc.boolean(), (n, lead, zeros, plus) => {
        expect(cast(n, 'integer', dot)).toBe(n === 0 ? 0 : n);
        const digits = '0'.repeat(lead) + String(Math.abs(n));
        const text = `${n < 0 ? '-' : plus ? '+' : ''}${digits}${zeros > 0 ? `.${'0'.repeat(zeros)}` : ''}`;
        expect(cast(text, 'integer', dot)).toBe(n === 0 ? 0 : n);
      }),
      runs,
    );
  });

  it('integer: a fraction that is not zero, or a value beyond 2^53, is an error, never rounded', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 999 }), (n, f) => {
        expect(() => cast(`${n}.${String(f).padStart(3, '0')}`, 'integer', dot)).toThrow(/not a whole number/);
      }),
      runs,
    );
    expect(() => cast('9007199254740993', 'integer', dot)).toThrow(/too large for an integer/);
    expect(() => cast(2 ** 60, 'integer', dot)).toThrow(/too large/);
  });

  it('number: every finite double reads back from its own text, in either decimal separator', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        const expected = d === 0 ? 0 : d; // -0 becomes 0: JSON cannot carry it
        expect(cast(String(d), 'number', dot)).toBe(expected);
        expect(cast(String(d).replace('.', ','), 'number', comma)).toBe(expected);
        expect(cast(d, 'number', dot)).toBe(expected);
      }),
      runs,
    );
  });

  it('decimal: exact text whose value is the input, canonical (cast again gives itself), any size', () => {
    fc.assert(
      fc.property(decimalText, (r) => {
        const out = cast(r.text, 'decimal', dot) as string;
        expect(out).toMatch(/^-?(0|[1-9]\d*)(\.\d*[1-9])?$/);
        expect(cast(out, 'decimal', dot)).toBe(out);
        // Compare exactly, as scaled bigints: the value is the input's.
        const scaled = (t: string) => {
          const [w, f = ''] = t.replace('-', '').split('.');
          return (t.startsWith('-') ? -1n : 1n) * BigInt(w! + f.padEnd(20, '0'));
        };
        expect(scaled(out)).toBe(scaled(r.text));
      }),
      runs,
    );
  });

  it('decimal with a scale: padded to it; more significant places than it is an error', () => {
    fc.assert(
      fc.property(decimalText, fc.integer({ min: 0, max: 8 }), (r, scale) => {
        const significant = r.fraction.replace(/0+$/, '').length;
        if (significant > scale) {
          expect(() => cast(r.text, 'decimal', { ...dot, scale })).toThrow(CastError);
        } else {
          const out = cast(r.text, 'decimal', { ...dot, scale }) as string;
          expect(out.split('.')[1]?.length ?? 0).toBe(scale);
          expect(cast(out, 'decimal', dot)).toBe(cast(r.text, 'decimal', dot));
        }
      }),
      runs,
    );
  });

  it('decimal from a JSON number: the shortest text of that double, exponents expanded', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        const out = cast(d, 'decimal', dot) as string;
        expect(out).not.toMatch(/e/i);
        expect(Number(out)).toBe(d === 0 ? 0 : d);
      }),
      runs,
    );
  });

  it('boolean and string: what one writes, the other reads back', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.constantFrom('', ' '), (b, pad) => {
        expect(cast(`${pad}${cast(b, 'string', dot) as string}${pad}`, 'boolean', dot)).toBe(b);
      }),
    );
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        expect(Number(cast(d, 'string', dot))).toBe(d === 0 ? 0 : d);
      }),
      runs,
    );
  });
});

describe('casts (examples)', () => {
  it('reads the spellings ERP exports use, and refuses text that is not the type with the value in the reason', () => {
    expect(cast(' 12 ', 'integer', dot)).toBe(12);
    expect(cast('12,500', 'decimal', comma)).toBe('12.5');
    expect(cast('1e3', 'integer', dot)).toBe(1000);
    expect(cast('YES', 'boolean', dot)).toBe(true);
    expect(cast('n', 'boolean', dot)).toBe(false);
    expect(cast(0, 'boolean', dot)).toBe(false);
    expect(cast(true, 'string', dot)).toBe('true');
    expect(cast('-0.00', 'decimal', { ...dot, scale: 2 })).toBe('0.00');
    expect(cast('.5', 'decimal', dot)).toBe('0.5');
    expect(() => cast('12 pcs', 'number', dot)).toThrow('"12 pcs" is not a number');
    expect(() => cast('1.234,5', 'number', comma)).toThrow('holds "." but the decimal separator is ","');
    expect(() => cast('maybe', 'boolean', dot)).toThrow('"maybe" is not a boolean');
    expect(() => cast({ a: 1 }, 'string', dot)).toThrow('an object is not a plain value');
    expect(() => cast('0x10', 'integer', dot)).toThrow('"0x10" is not a whole number');
    expect(() => cast('12 kg', 'decimal', dot)).toThrow('"12 kg" is not a decimal number');
    expect(() => cast('Infinity', 'number', dot)).toThrow('is not a number');
    expect(() => cast('1e400', 'number', dot)).toThrow('too large for a number');
    expect(() => cast('12.345', 'decimal', { ...dot, scale: 2 })).toThrow('has more than 2 decimal places');
  });
});
