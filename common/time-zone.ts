import { ErpEdgeError } from './errors.js';

/**
 * Wall-clock time in an IANA zone ↔ UTC instants, through Intl (no tz database of our own). Shared by
 * the agent (zone-less SQL date-times, cron) and the relay (mapping's date format). Pure: pinned by
 * unit tests.
 */

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

