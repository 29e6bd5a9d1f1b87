import { ErpEdgeError } from '../../common/errors.js';
import { isoUtc, utcMs, zonedWallToUtc } from '../../common/time-zone.js';

export { checkTimeZone, isoUtc, pad, utcMs, wallClock, zonedWallToUtc } from '../../common/time-zone.js';

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
