import { createTask, parse, type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import type { Logger } from '../../../common/logger.js';
import { utcMs, wallClock, zonedWallToUtc } from '../../databases/time-zone.js';

/**
 * When a job fires: node-cron 4's task for the live schedule (its own timer, in the job's zone, on
 * the global clock so vitest's fake timers drive it), and the one question node-cron does not
 * answer, the latest fire time before now (catch-up after downtime).
 */
export interface CronSchedule {
  /** Calls `onFire` with each fire time (the scheduled instant, whole seconds), until stop. */
  start(onFire: (slot: number) => void): void;
  stop(): void;
  /** The next fire time after now; null when stopped. */
  nextRun(): number | null;
  /** The latest fire time in (after, now]; undefined when there is none within LOOK_BACK_DAYS. */
  latestSlot(after: number, now: number): number | undefined;
}

/** How far back latestSlot looks: a yearly job's slot is within a year (and a leap day). */
export const LOOK_BACK_DAYS = 366;

const DAY_MS = 86_400_000;
/** A zone's wall clock runs back at most this much (an autumn change): instants below `after` by more cannot come later. */
const OVERLAP_MS = 2 * 3_600_000;

export function cronSchedule(expression: string, timeZone: string, logger: Logger): CronSchedule {
  return new NodeCronSchedule(expression, timeZone, logger);
}

class NodeCronSchedule implements CronSchedule {
  private readonly task: ScheduledTask;
  private readonly fields: { seconds: number[]; minutes: number[]; hours: number[]; months: number[] };
  private onFire: ((slot: number) => void) | undefined;

  constructor(
    expression: string,
    private readonly timeZone: string,
    logger: Logger,
  ) {
    // node-cron logs to the console by default: its warnings (a fire missed because the event
    // loop was blocked) go to the agent's log instead.
    const cronLogger: CronLogger = {
      info: (m) => logger.debug({ cron: expression }, m),
      warn: (m) => logger.warn({ cron: expression }, m),
      error: (m, err) => logger.error({ cron: expression, err: err ?? m }, typeof m === 'string' ? m : 'node-cron error'),
      debug: (m) => logger.debug({ cron: expression }, String(m)),
    };
    // The task only signals the fire time and returns at once: overlap and outcome are the job's
    // (node-cron would count an overlap of its own and warn on the console).
    this.task = createTask(expression, (ctx) => this.onFire?.(Math.floor(ctx.date.getTime() / 1000) * 1000), { timezone: timeZone, logger: cronLogger });
    const p = parse(expression);
    const desc = (v: readonly number[]) => [...v].sort((a, b) => b - a);
    this.fields = { seconds: desc(p.second), minutes: desc(p.minute), hours: desc(p.hour), months: p.month };
  }

  start(onFire: (slot: number) => void): void {
    this.onFire = onFire;
    void this.task.start();
  }

  stop(): void {
    this.onFire = undefined;
    void this.task.destroy();
  }

  nextRun(): number | null {
    return this.task.getNextRun()?.getTime() ?? null;
  }

  /**
   * Walks the zone's calendar days back from now's, and each day's candidate times (the cron's
   * hours × minutes × seconds) from the latest; a candidate is a fire time when node-cron's own
   * matcher says so at that instant (so day-of-month/day-of-week rules, `L`, `#` and DST gaps read
   * exactly as node-cron reads them). A day is skipped unless its first or last candidate matches:
   * a day that matches has every candidate matching but one in a DST gap (at most an hour), so one
   * of the two does. Cost: two matches per day, 366 days at most.
   */
  latestSlot(after: number, now: number): number | undefined {
    const { seconds, minutes, hours, months } = this.fields;
    const today = wallClock(now, this.timeZone);
    let day = utcMs(today.y, today.mo, today.d, 0, 0, 0);
    for (let i = 0; i <= LOOK_BACK_DAYS; i++, day -= DAY_MS) {
      const d = new Date(day);
      const [y, mo, dd] = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()];
      const at = (h: number, mi: number, s: number) => zonedWallToUtc(utcMs(y, mo, dd, h, mi, s), this.timeZone);
      if (at(23, 59, 59) <= after - OVERLAP_MS) return undefined;
      if (!months.includes(mo)) continue;
      const first = at(hours.at(-1)!, minutes.at(-1)!, seconds.at(-1)!);
      const last = at(hours[0]!, minutes[0]!, seconds[0]!);
      if (!this.task.match(new Date(first)) && !this.task.match(new Date(last))) continue;
      for (const h of hours)
        for (const mi of minutes)
          for (const s of seconds) {
            const t = at(h, mi, s);
            if (t > now) continue;
            if (t <= after - OVERLAP_MS) return undefined;
            if (t > after && this.task.match(new Date(t))) return t;
          }
    }
    return undefined;
  }
}
