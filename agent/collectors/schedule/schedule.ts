import type { Logger } from '../../../common/logger.js';
import { sourceOf, type Collector, type CollectorContext, type CollectorStats } from '../../host/collector.js';
import { cronSchedule, type CronSchedule } from './cron.js';
import { fileJobSource } from './file-source.js';
import { ScheduledJob } from './job.js';
import type { JobConfig, ScheduleConfig } from './schema.js';
import type { JobSource } from './source.js';
import { sqlJobSource } from './sql-source.js';

/** Test seams: the clock-driven parts are node-cron's (fake timers drive it); a source can be scripted (a slow query). */
export interface ScheduleDeps {
  cron?: ((job: JobConfig, logger: Logger) => CronSchedule) | undefined;
  source?: ((job: JobConfig) => JobSource | undefined) | undefined;
}

export function create(cfg: ScheduleConfig, ctx: CollectorContext, deps: ScheduleDeps = {}): ScheduleCollector {
  return new ScheduleCollector(cfg, ctx, deps);
}

/**
 * Snapshots on a cron schedule: each job reads a SQL query (through the dialects of
 * agent/databases/) or a file whole and emits it as one batch tagged with a run id (run.ts).
 * The jobs run independently of each other; a failed run is counted, never a collector failure.
 */
export class ScheduleCollector implements Collector {
  readonly jobs: ScheduledJob[];

  constructor(cfg: ScheduleConfig, ctx: CollectorContext, deps: ScheduleDeps = {}) {
    const sourceId = sourceOf(cfg);
    this.jobs = cfg.jobs.map((job) => {
      const source = deps.source?.(job) ?? (job.sql ? sqlJobSource(job.sql) : fileJobSource(job.file!, ctx.resolvePath(job.file!.path)));
      const cron = deps.cron?.(job, ctx.logger) ?? cronSchedule(job.cron, job.time_zone, ctx.logger);
      return new ScheduledJob(job, sourceId, { writer: ctx.writer, logger: ctx.logger, signal: ctx.signal, source, cron });
    });
  }

  async start(): Promise<void> {
    for (const job of this.jobs) job.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.jobs.map((j) => j.stop()));
  }

  /** Each job's figures as `<job>.<figure>` (status shows them per collector). */
  stats(): CollectorStats {
    const counters: Record<string, number | string | boolean> = {};
    this.jobs.forEach((job) => {
      for (const [k, v] of Object.entries(job.stats())) counters[`${job.name}.${k}`] = v;
    });
    return { counters };
  }
}
