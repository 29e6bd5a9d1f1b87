import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pad, wallClock } from '../../../common/time-zone.js';
import { compileDateFormat, DateFormatError } from '../../../cloud-relay/mapping/date-format.js';

const runs = { numRuns: 200 };
/** Years 1000-9999 (four-digit years), milliseconds. */
const anyInstant = fc.integer({ min: -30_610_224_000_000, max: 253_402_300_799_999 });
/** Whole seconds, 1970-2100: the range IANA rules are well defined for. */
const modernSecond = fc.integer({ min: 0, max: 4_102_444_799 }).map((s) => s * 1000);
/** Zones with DST, half- and quarter-hour offsets, a 30-minute DST shift (Lord Howe), southern summers. */
const zones = fc.constantFrom('Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'America/St_Johns', 'Pacific/Chatham', 'America/Sao_Paulo');

describe('date formats (properties)', () => {
  it('a UTC wall time written with a pattern parses back to the same instant, to the millisecond', () => {
    const parse = compileDateFormat("yyyy-MM-dd'T'HH:mm:ss.SSS", 'UTC');
    fc.assert(
      fc.property(anyInstant, (ms) => {
        const d = new Date(ms);
        const text = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
        expect(parse(text)).toBe(d.toISOString());
      }),
      runs,
    );
  });

  it("a zone's wall clock parses back to that instant, or (in the hour the clock shows twice) to the earlier one showing the same wall time", () => {
    const patterns = ['dd.MM.yyyy HH:mm:ss', 'M/d/yyyy H:mm:ss', 'yyyyMMddHHmmss'];
    fc.assert(
      fc.property(modernSecond, zones, fc.constantFrom(...patterns), (ms, zone, pattern) => {
        const w = wallClock(ms, zone);
        const text = pattern
          .replace('yyyy', pad(w.y, 4))
          .replace('MM', pad(w.mo))
          .replace('M', String(w.mo))
          .replace('dd', pad(w.d))
          .replace('d', String(w.d))
          .replace('HH', pad(w.h))
          .replace('H', String(w.h))
          .replace('mm', pad(w.mi))
          .replace('ss', pad(w.s));
        const back = Date.parse(compileDateFormat(pattern, zone)(text));
        expect(wallClock(back, zone)).toEqual(w);
        if (back !== ms) {
          expect(back).toBeLessThan(ms);
          expect(ms - back).toBeLessThanOrEqual(2 * 3_600_000);
        }
      }),
      runs,
    );
  });

  it('an explicit offset wins over the zone: the same instant whatever offset it is written in', () => {
    const parse = compileDateFormat("yyyy-MM-dd'T'HH:mm:ssXXX", 'Europe/Paris');
    const parseBasic = compileDateFormat('yyyyMMddHHmmssXX', undefined);
    fc.assert(
      fc.property(modernSecond, fc.integer({ min: -56, max: 56 }).map((q) => q * 15), (ms, offset) => {
        const local = new Date(ms + offset * 60_000);
        const sign = offset < 0 ? '-' : '+';
        const hh = pad(Math.floor(Math.abs(offset) / 60));
        const mm = pad(Math.abs(offset) % 60);
        const wall = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}T${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}`;
        const expected = new Date(ms).toISOString();
        expect(parse(`${wall}${offset === 0 ? 'Z' : `${sign}${hh}:${mm}`}`)).toBe(expected);
        expect(parseBasic(`${wall.replace(/[-T:]/g, '')}${sign}${hh}${mm}`)).toBe(expected);
        expect(compileDateFormat('iso', undefined)(`${wall}${sign}${hh}:${mm}`)).toBe(expected);
      }),
      runs,
    );
  });

  it('epoch_ms and epoch_s give the instant they count', () => {
    fc.assert(
      fc.property(anyInstant, (ms) => {
        expect(compileDateFormat('epoch_ms', undefined)(String(ms))).toBe(new Date(ms).toISOString());
        const s = Math.trunc(ms / 1000);
        expect(compileDateFormat('epoch_s', undefined)(String(s))).toBe(new Date(s * 1000).toISOString());
      }),
      runs,
    );
  });
});

describe('date formats (examples)', () => {
  it('the hour Paris skips is read with the offset before the change; the hour it repeats as the earlier instant', () => {
    const parse = compileDateFormat('yyyy-MM-dd HH:mm', 'Europe/Paris');
    expect(parse('2026-03-29 02:30')).toBe('2026-03-29T01:30:00.000Z');
    expect(parse('2026-10-25 02:30')).toBe('2026-10-25T00:30:00.000Z');
    expect(parse('2026-07-01 10:00')).toBe('2026-07-01T08:00:00.000Z');
  });

  it('keeps every fraction digit the source had; iso reads both offset and zone-less values', () => {
    expect(compileDateFormat('yyyy-MM-dd HH:mm:ss.SSSSSS', 'UTC')('2026-01-02 03:04:05.123456')).toBe('2026-01-02T03:04:05.123456Z');
    expect(compileDateFormat('iso', 'America/New_York')('2026-01-02T03:04:05')).toBe('2026-01-02T08:04:05.000Z');
    expect(compileDateFormat('iso', undefined)('2026-01-02T03:04:05.5+01:00')).toBe('2026-01-02T02:04:05.500Z');
    expect(compileDateFormat('dd/MM/yyyy', 'UTC')('05/11/2026')).toBe('2026-11-05T00:00:00.000Z');
  });

  it('a value that does not fit says why', () => {
    const parse = compileDateFormat('dd.MM.yyyy', 'Europe/Berlin');
    expect(() => parse('29.02.2027')).toThrow('"29.02.2027" has no such day');
    expect(() => parse('01.13.2026')).toThrow('has no such month');
    expect(() => parse('2026-01-01')).toThrow('"2026-01-01" does not match the format "dd.MM.yyyy"');
    expect(() => compileDateFormat('iso', undefined)('2026-01-01T10:00')).toThrow('has no UTC offset and the step has no zone');
    expect(() => compileDateFormat('epoch_s', undefined)('12.5')).toThrow('is not a whole number of seconds');
    expect(() => compileDateFormat('yyyy-MM-dd HH:mm', 'UTC')('2026-01-01 24:00')).toThrow('has no such hour');
  });

  it('a format it cannot use is refused when compiled, with the reason', () => {
    const bad = (format: string, zone?: string) => {
      try {
        compileDateFormat(format, zone);
      } catch (err) {
        expect(err).toBeInstanceOf(DateFormatError);
        return (err as Error).message;
      }
      throw new Error(`${format} compiled`);
    };
    expect(bad('yyyy-MM-dd HH:mm:ss Q', 'UTC')).toContain('unknown pattern "Q"');
    expect(bad('yy-MM-dd', 'UTC')).toContain('unknown pattern "yy"');
    expect(bad('MM-dd HH:mm', 'UTC')).toContain('has no year');
    expect(bad('yyyy-MM-dd MM', 'UTC')).toContain('reads the month twice');
    expect(bad('yyyy-MM-dd HH:mm')).toContain("give the source's zone");
    expect(bad("yyyy-MM-dd'T", 'UTC')).toContain('unclosed quote');
  });
});
