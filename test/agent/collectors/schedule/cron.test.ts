/**
 * cron.ts's latestSlot (catch-up's question, which node-cron does not answer) against node-cron's
 * own next-run answers: the latest fire time in (after, now], in the job's zone, across DST, with
 * day-of-month and day-of-week rules, bounded to LOOK_BACK_DAYS.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cronSchedule, LOOK_BACK_DAYS } from '../../../../agent/collectors/schedule/cron.js';
import { createLogger } from '../../../../common/logger.js';

const log = createLogger({ level: 'silent' });
const ms = (iso: string) => Date.parse(iso);
const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());

afterEach(() => vi.useRealTimers());

describe('latestSlot', () => {
  it('0 2 * * * in America/Chicago: 08:00 UTC in winter, 07:00 UTC in summer', () => {
    const c = cronSchedule('0 2 * * *', 'America/Chicago', log);
    expect(iso(c.latestSlot(ms('2026-01-01T00:00:00Z'), ms('2026-01-15T12:00:00Z')))).toBe('2026-01-15T08:00:00.000Z');
    expect(iso(c.latestSlot(ms('2026-01-01T00:00:00Z'), ms('2026-01-15T07:59:59Z')))).toBe('2026-01-14T08:00:00.000Z');
    expect(iso(c.latestSlot(ms('2026-07-01T00:00:00Z'), ms('2026-07-15T12:00:00Z')))).toBe('2026-07-15T07:00:00.000Z');
  });

  it('02:00 on the spring-forward day does not exist in Chicago: no slot that day, as node-cron reads it', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const c = cronSchedule('0 2 * * *', 'America/Chicago', log);
    expect(iso(c.latestSlot(ms('2026-03-01T00:00:00Z'), ms('2026-03-09T06:00:00Z')))).toBe('2026-03-07T08:00:00.000Z');
    c.start(() => undefined);
    vi.setSystemTime(ms('2026-03-07T09:00:00Z'));
    expect(iso(c.nextRun()!)).toBe('2026-03-09T07:00:00.000Z'); // node-cron skips the 8th too
    c.stop();
  });

  it('nothing in (after, now] is undefined; a slot equal to after is not missed, one equal to now is', () => {
    const c = cronSchedule('0 2 * * *', 'UTC', log);
    expect(c.latestSlot(ms('2026-02-01T02:00:00Z'), ms('2026-02-02T01:59:59Z'))).toBeUndefined();
    expect(iso(c.latestSlot(ms('2026-02-01T02:00:00Z'), ms('2026-02-02T02:00:00Z')))).toBe('2026-02-02T02:00:00.000Z');
  });

  it('day-of-week, day-of-month, last day and seconds read as node-cron reads them', () => {
    const mondays = cronSchedule('30 6 * * 1', 'Europe/Berlin', log); // 2026-02-09 is a Monday
    expect(iso(mondays.latestSlot(ms('2026-01-01T00:00:00Z'), ms('2026-02-12T00:00:00Z')))).toBe('2026-02-09T05:30:00.000Z');
    const lastDay = cronSchedule('0 23 L * *', 'UTC', log);
    expect(iso(lastDay.latestSlot(ms('2026-01-01T00:00:00Z'), ms('2026-03-15T00:00:00Z')))).toBe('2026-02-28T23:00:00.000Z');
    const seconds = cronSchedule('*/20 * * * * *', 'UTC', log);
    expect(iso(seconds.latestSlot(ms('2026-01-01T00:00:00Z'), ms('2026-02-01T10:00:59.500Z')))).toBe('2026-02-01T10:00:40.000Z');
  });

  it('a yearly job finds last year\'s slot; beyond LOOK_BACK_DAYS nothing is found', () => {
    const yearly = cronSchedule('0 0 1 1 *', 'UTC', log);
    expect(iso(yearly.latestSlot(ms('2025-06-01T00:00:00Z'), ms('2026-12-31T00:00:00Z')))).toBe('2026-01-01T00:00:00.000Z');
    const feb29 = cronSchedule('0 0 29 2 *', 'UTC', log); // last on 2024-02-29, more than 366 days before 2026-06
    expect(feb29.latestSlot(ms('2020-01-01T00:00:00Z'), ms('2026-06-01T00:00:00Z'))).toBeUndefined();
    expect(LOOK_BACK_DAYS).toBe(366);
  });

  it('agrees with node-cron: each slot found is the one node-cron fires after the slot before it', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    for (const [expr, zone] of [['15 3 * * 2-5', 'America/New_York'], ['0 */6 * * *', 'Asia/Kolkata'], ['45 1 1,15 * *', 'Australia/Lord_Howe']] as const) {
      const c = cronSchedule(expr, zone, log);
      c.start(() => undefined);
      let now = ms('2026-03-01T00:00:00Z');
      for (let i = 0; i < 20; i++) {
        vi.setSystemTime(now);
        const next = c.nextRun()!; // node-cron's own answer
        expect(iso(c.latestSlot(now - 40 * 86_400_000, next))).toBe(iso(next));
        expect(c.latestSlot(now, next - 1000)).toBeUndefined();
        now = next;
      }
      c.stop();
    }
  });
});
