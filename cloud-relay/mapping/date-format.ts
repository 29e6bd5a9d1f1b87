import { isoUtc, utcMs, zonedWallToUtc } from '../../common/time-zone.js';

/**
 * Dates as exports write them → ISO 8601 UTC (`2026-03-01T08:30:00.000Z`). A format is compiled
 * once into a parser:
 *
 *   yyyy  year (4 digits)        MM / M  month (2 digits / 1-2)   dd / d  day
 *   HH / H  hour 0-23            mm  minute                       ss  second
 *   S…    fraction, as many digits as letters (SSS: milliseconds)
 *   XXX   offset `Z` or `+02:00`  XX  offset `Z` or `+0200`
 *   'text'  literal text ('' is a quote); any other non-letter is literal too
 *
 * or one of the named formats: `iso` (ISO 8601, with or without an offset), `epoch_ms`, `epoch_s`.
 * A value without an offset is wall-clock time in the step's `zone` (an IANA name); in the hour a
 * year a zone's clock shows twice the earlier instant is taken, in the hour it skips the clock is
 * read with the offset before the change (as java.time does).
 */

export const NAMED_FORMATS = ['iso', 'epoch_ms', 'epoch_s'] as const;

export type DateParser = (text: string) => string;

export class DateFormatError extends Error {}

interface Parts {
  y?: number;
  mo?: number;
  d?: number;
  h?: number;
  mi?: number;
  s?: number;
  frac?: string;
  /** Minutes east of UTC. */
  offset?: number;
}

type Token = { re: string; set?: (p: Parts, v: string) => void };

const TOKENS: Record<string, Token> = {
  yyyy: { re: '(\\d{4})', set: (p, v) => (p.y = Number(v)) },
  MM: { re: '(\\d{2})', set: (p, v) => (p.mo = Number(v)) },
  M: { re: '(\\d{1,2})', set: (p, v) => (p.mo = Number(v)) },
  dd: { re: '(\\d{2})', set: (p, v) => (p.d = Number(v)) },
  d: { re: '(\\d{1,2})', set: (p, v) => (p.d = Number(v)) },
  HH: { re: '(\\d{2})', set: (p, v) => (p.h = Number(v)) },
  H: { re: '(\\d{1,2})', set: (p, v) => (p.h = Number(v)) },
  mm: { re: '(\\d{2})', set: (p, v) => (p.mi = Number(v)) },
  ss: { re: '(\\d{2})', set: (p, v) => (p.s = Number(v)) },
  XXX: { re: '(Z|[+-]\\d{2}:\\d{2})', set: (p, v) => (p.offset = offsetMinutes(v)) },
  XX: { re: '(Z|[+-]\\d{4})', set: (p, v) => (p.offset = offsetMinutes(v)) },
};

/** What a format reads, for the config check (a format without a year or an offset cannot give an instant). */
export interface FormatShape {
  hasOffset: boolean;
}

/**
 * Compiles a format; throws DateFormatError (its message is the reason, for the config error) when
 * it has an unknown letter, a token twice, or lacks the year, month or day.
 */
export function compileDateFormat(format: string, zone: string | undefined): DateParser & FormatShape {
  if (format === 'epoch_ms' || format === 'epoch_s') return Object.assign(epochParser(format === 'epoch_s' ? 1000 : 1), { hasOffset: true });
  if (format === 'iso') return Object.assign(isoParser(zone), { hasOffset: true });
  const { regex, setters, seen } = tokenize(format);
  for (const need of ['yyyy', 'M', 'd'] as const) {
    if (!seen.has(need)) throw new DateFormatError(`format ${JSON.stringify(format)} has no ${need === 'yyyy' ? 'year (yyyy)' : need === 'M' ? 'month (MM or M)' : 'day (dd or d)'}`);
  }
  const hasOffset = seen.has('X');
  if (!hasOffset && zone === undefined) {
    throw new DateFormatError(`format ${JSON.stringify(format)} has no offset (XXX): give the source's zone, e.g. zone: Europe/Paris (UTC for UTC)`);
  }
  const re = new RegExp(`^${regex}$`);
  const parse = (text: string): string => {
    const m = re.exec(text.trim());
    if (!m) throw new DateFormatError(`${JSON.stringify(text)} does not match the format ${JSON.stringify(format)}`);
    const p: Parts = {};
    setters.forEach((set, i) => set(p, m[i + 1]!));
    return instant(p, zone, text);
  };
  return Object.assign(parse, { hasOffset });
}

function tokenize(format: string): { regex: string; setters: Array<(p: Parts, v: string) => void>; seen: Set<string> } {
  let regex = '';
  const setters: Array<(p: Parts, v: string) => void> = [];
  const seen = new Set<string>();
  const mark = (kind: string) => {
    if (seen.has(kind)) throw new DateFormatError(`format ${JSON.stringify(format)} reads the ${KIND_NAMES[kind] ?? kind} twice`);
    seen.add(kind);
  };
  for (let i = 0; i < format.length; ) {
    const c = format[i]!;
    if (c === "'") {
      const end = format.indexOf("'", i + 1);
      if (end === -1) throw new DateFormatError(`format ${JSON.stringify(format)} has an unclosed quote`);
      regex += end === i + 1 ? "'" : escapeRe(format.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    if (!/[A-Za-z]/.test(c)) {
      regex += escapeRe(c);
      i++;
      continue;
    }
    let run = 1;
    while (format[i + run] === c) run++;
    const letters = c.repeat(run);
    if (c === 'S') {
      if (run > 9) throw new DateFormatError(`format ${JSON.stringify(format)} reads more than 9 fraction digits`);
      mark('S');
      regex += `(\\d{${run}})`;
      setters.push((p, v) => (p.frac = v));
    } else {
      const token = TOKENS[letters];
      if (!token) throw new DateFormatError(`format ${JSON.stringify(format)}: unknown pattern ${JSON.stringify(letters)} (yyyy MM M dd d HH H mm ss S… XXX XX; put text in quotes, e.g. 'T')`);
      mark(letters === 'MM' ? 'M' : letters === 'dd' ? 'd' : letters === 'HH' ? 'H' : letters.startsWith('X') ? 'X' : letters);
      regex += token.re;
      setters.push(token.set!);
    }
    i += run;
  }
  return { regex, setters, seen };
}

const KIND_NAMES: Record<string, string> = { yyyy: 'year', M: 'month', d: 'day', H: 'hour', mm: 'minute', ss: 'second', S: 'fraction', X: 'offset' };

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function offsetMinutes(v: string): number {
  if (v === 'Z') return 0;
  const digits = v.slice(1).replace(':', '');
  return (v[0] === '-' ? -1 : 1) * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function instant(p: Parts, zone: string | undefined, text: string): string {
  const { y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0, frac = '' } = p;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const bad = (what: string) => new DateFormatError(`${JSON.stringify(text)} has no such ${what}`);
  if (mo < 1 || mo > 12) throw bad('month');
  if (d < 1 || d > DAYS_IN_MONTH[mo - 1]! || (mo === 2 && d === 29 && !leap)) throw bad('day');
  if (h > 23) throw bad('hour');
  if (mi > 59) throw bad('minute');
  if (s > 59) throw bad('second'); // no leap seconds: Date has none
  if (p.offset !== undefined && Math.abs(p.offset) > 18 * 60) throw bad('offset');
  const wall = utcMs(y, mo, d, h, mi, s);
  const ms = p.offset !== undefined ? wall - p.offset * 60_000 : zonedWallToUtc(wall, zone!);
  return isoUtc(ms, frac);
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

function isoParser(zone: string | undefined): DateParser {
  return (text) => {
    const m = ISO.exec(text.trim());
    if (!m) throw new DateFormatError(`${JSON.stringify(text)} is not an ISO 8601 date-time`);
    const offset = m[8] === undefined ? undefined : offsetMinutes(m[8].length === 5 ? `${m[8].slice(0, 3)}:${m[8].slice(3)}` : m[8]);
    if (offset === undefined && zone === undefined) throw new DateFormatError(`${JSON.stringify(text)} has no UTC offset and the step has no zone`);
    const parts: Parts = { y: Number(m[1]), mo: Number(m[2]), d: Number(m[3]), h: Number(m[4] ?? 0), mi: Number(m[5] ?? 0), s: Number(m[6] ?? 0), frac: m[7] ?? '' };
    if (offset !== undefined) parts.offset = offset;
    return instant(parts, zone, text);
  };
}

function epochParser(unitMs: number): DateParser {
  const unit = unitMs === 1 ? 'milliseconds' : 'seconds';
  return (text) => {
    const t = String(text).trim();
    if (!/^-?\d{1,16}$/.test(t)) throw new DateFormatError(`${JSON.stringify(text)} is not a whole number of ${unit} since 1970`);
    const ms = Number(t) * unitMs;
    if (!Number.isSafeInteger(ms) || Math.abs(ms) > 8.64e15) throw new DateFormatError(`${JSON.stringify(text)} is out of the range of dates`);
    return new Date(ms).toISOString();
  };
}
