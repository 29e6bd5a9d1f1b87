import { ErpEdgeError } from '../../common/errors.js';

/**
 * Zone-less date-times (SQL Server datetime/datetime2, PostgreSQL timestamp, MySQL DATETIME) are the
 * ERP server's wall clock; the wire carries UTC. These turn a wall time read in a configured IANA
 * zone into the instant, with a fixed rule for the hour a year the wall clock cannot tell, so that
 * reading a row again gives the same instant. Pure: pinned by unit tests.
 */

/** Wall-clock date-time parts parsed from style 121 / ISO text (fraction kept as its digits). */
interface WallTime {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  frac: string;
  /** Offset in minutes east of UTC when the text had one. */
  offset: number | null;
}

const WALL_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(?:(Z)|([+-])(\d{2}):(\d{2}))?$/;

export function parseWall(text: string): WallTime | null {
  const m = WALL_TIME.exec(text.trim());
  if (!m) return null;
  const offset = m[8] ? 0 : m[9] ? (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11])) : null;
  return { y: Number(m[1]), mo: Number(m[2]), d: Number(m[3]), h: Number(m[4] ?? 0), mi: Number(m[5] ?? 0), s: Number(m[6] ?? 0), frac: m[7] ?? '', offset };
}

/** tedious (useUTC, its default) hands zone-less values as a Date whose UTC fields are the wall clock. */
export function wallFromDate(d: Date): WallTime {
  return {
    y: d.getUTCFullYear(),
    mo: d.getUTCMonth() + 1,
    d: d.getUTCDate(),
    h: d.getUTCHours(),
    mi: d.getUTCMinutes(),
    s: d.getUTCSeconds(),
    frac: String(d.getUTCMilliseconds()).padStart(3, '0'),
    offset: null,
  };
}

/** Epoch ms of a UTC date-time; setUTCFullYear because Date.UTC maps years 0–99 to 1900–1999. */
export function utcMs(y: number, mo: number, d: number, h: number, mi: number, s: number): number {
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  return date.getTime();
}

export const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * ISO-8601 UTC with at least millisecond digits and every finer digit the source had
 * (`.000`, `.500`, `.1234567`): equal to Date#toISOString for millisecond values, exact otherwise.
 */
export function isoUtc(ms: number, frac: string): string {
  const d = new Date(ms);
  const f = (frac + '000').slice(0, Math.max(3, frac.replace(/0+$/, '').length));
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${f}Z`;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch (err) {
      throw new ErpEdgeError('ERP_CONFIG_INVALID', `unknown IANA time zone ${JSON.stringify(timeZone)}`, { timeZone }, { cause: err });
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/** Offset of `timeZone` at instant `ms` (whole seconds), in ms east of UTC. */
function zoneOffset(timeZone: string, ms: number): number {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = utcMs(parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second!);
  return wall - (ms - (((ms % 1000) + 1000) % 1000));
}

/** The wall clock `timeZone` shows at instant `ms` (whole seconds; month 1–12). */
export function wallClock(ms: number, timeZone: string): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
  const p: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return { y: p.year!, mo: p.month!, d: p.day!, h: p.hour!, mi: p.minute!, s: p.second! };
}

/** Throws ERP_CONFIG_INVALID for a zone Intl does not know, so a config is refused at load. */
export function checkTimeZone(timeZone: string): void {
  formatter(timeZone);
}

/**
 * The instant a wall-clock time (whole seconds, as epoch ms of the same fields in UTC) had in
 * `timeZone`. Offsets in force a day before and a day after are the candidates (zones change
 * offset at most once in 48 h); a candidate is valid if the zone really has that offset then.
 * Rule for the two hours a year the wall clock cannot tell (the same as java.time's default and
 * Temporal's `compatible`), fixed so re-reading a row gives the same instant:
 * - overlap (autumn, the hour exists twice): the earlier instant, i.e. the offset before the change;
 * - gap (spring, the hour does not exist, the ERP's clock never showed it): read with the offset
 *   before the change, i.e. moved forward by the gap's length (Berlin 02:30 → 03:30 CEST).
 */
export function zonedWallToUtc(wallMs: number, timeZone: string): number {
  const DAY = 86_400_000;
  const before = zoneOffset(timeZone, wallMs - DAY);
  const after = zoneOffset(timeZone, wallMs + DAY);
  const valid = [before, after].filter((o, i, all) => all.indexOf(o) === i && zoneOffset(timeZone, wallMs - o) === o).map((o) => wallMs - o);
  if (valid.length > 0) return Math.min(...valid);
  return wallMs - before;
}

/** A zone-less date-time (the ERP server's local time in `timeZone`) as ISO-8601 UTC. */
export function localDateTimeToIso(value: string | Date, timeZone: string): string {
  const w = typeof value === 'string' ? parseWall(value) : wallFromDate(value);
  if (!w || w.offset !== null) throw new ErpEdgeError('ERP_RECORD_INVALID', `not a zone-less date-time: ${JSON.stringify(String(value))}`);
  return isoUtc(zonedWallToUtc(utcMs(w.y, w.mo, w.d, w.h, w.mi, w.s), timeZone), w.frac);
}

/**
 * As localDateTimeToIso, with six fraction digits always (`2026-07-01T10:00:00.000000Z`): how the
 * PostgreSQL and MySQL dialects write every other time value, so one column reads the same
 * whether or not a zone is configured.
 */
export function zonedMicros(wall: string, timeZone: string): string {
  return localDateTimeToIso(wall, timeZone).replace(/\.(\d{1,6})Z$/, (_, f: string) => `.${f.padEnd(6, '0')}Z`);
}
