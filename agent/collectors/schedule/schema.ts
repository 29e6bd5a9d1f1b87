import { validateDetailed } from 'node-cron';
import { z } from 'zod';
import { topicLevel } from '../../../common/wire-v1.js';
import { connectionFields, connectionIssues, ianaZone, sqlDriver } from '../../databases/connection-schema.js';
import { snapshotQueryProblem } from '../../databases/query-text.js';

/**
 * schedule config: jobs that take a snapshot on a cron schedule (nightly on-hand inventory, open
 * orders) and emit it as one batch. No driver imports here (`validate` loads schemas only); node-cron
 * is imported for its expression check alone, which starts nothing (no timer, no handle).
 *
 * One collector holds a list of jobs rather than one job per collector: the snapshots a site
 * reconciles with usually come as a set (inventory, open orders, open receipts), and a list keeps
 * them in one place of the YAML, on one stream, under one status entry; each job still runs, fails
 * and is counted on its own.
 */

/** A cron expression node-cron 4 accepts: 5 fields, or 6 with seconds first; `@daily` and the like. */
const cronExpression = z.string().min(1).superRefine((expr, ctx) => {
  const r = validateDetailed(expr);
  if (!r.valid) ctx.addIssue({ code: 'custom', message: `not a cron expression: ${r.errors.map((e) => e.message).join('; ') || 'invalid'} (e.g. "0 2 * * *": 02:00 every day)` });
});

/** A job name: it names the job's checkpoint, its counters and its records' ids. */
const jobName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ or -, at most 64');

/** The job reads one SELECT from a database, through the same dialects as the sql collector. */
const sqlSourceSchema = z.strictObject({
  driver: sqlDriver,
  ...connectionFields,
  /** One SELECT (or WITH … SELECT); its rows in its own order are the snapshot. */
  query: z.string().min(1).superRefine((sql, ctx) => {
    const problem = snapshotQueryProblem(sql);
    if (problem) ctx.addIssue({ code: 'custom', message: `the query ${problem}` });
  }),
});

/** The job reads one file whole (an export another system refreshes). */
const fileSourceSchema = z.strictObject({
  /** Relative to the config file's folder. */
  path: z.string().min(1),
  /** Default: by the file's extension (`.jsonl`/`.ndjson`: jsonl, anything else: csv). */
  format: z.enum(['csv', 'jsonl']).optional(),
  /** csv: the field delimiter. */
  delimiter: z.string().length(1).default(','),
});

const jobSchema = z
  .strictObject({
    name: jobName,
    /** When the job fires, read in `time_zone`. */
    cron: cronExpression,
    /** IANA zone the cron is read in (`0 2 * * *` in America/Chicago: 02:00 Chicago time, whatever the offset). */
    time_zone: ianaZone.default('UTC'),
    /**
     * After the agent was down over one or more fire times: `true` runs the job once at start for
     * the latest of them (never once per missed slot); `false` waits for the next fire time.
     */
    catch_up: z.boolean().default(false),
    /**
     * The most rows one run may return. The run is held whole before anything is written (a run
     * over the limit emits nothing), so this bounds its memory; past it the run fails with
     * ERP_QUERY_TOO_MANY_ROWS.
     */
    max_rows: z.number().int().min(1).max(10_000_000).default(100_000),
    /** Stream for this job's records; default: the collector's stream. */
    stream: topicLevel.optional(),
    sql: sqlSourceSchema.optional(),
    file: fileSourceSchema.optional(),
  })
  .superRefine((job, ctx) => {
    if (!job.sql === !job.file) ctx.addIssue({ code: 'custom', path: [], message: `job ${job.name}: give exactly one source, sql: or file:` });
    if (job.sql) connectionIssues(job.sql.driver, job.sql, ctx, ['sql']);
  });

export const scheduleSchema = z
  .strictObject({
    type: z.literal('schedule'),
    name: topicLevel,
    stream: topicLevel.optional(),
    jobs: z.array(jobSchema).min(1),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.jobs.forEach((j, i) => {
      if (seen.has(j.name)) ctx.addIssue({ code: 'custom', path: ['jobs', i, 'name'], message: `job ${j.name} is listed twice (a job name names its checkpoint)` });
      seen.add(j.name);
    });
  });

export type ScheduleConfig = z.output<typeof scheduleSchema>;
export type JobConfig = ScheduleConfig['jobs'][number];
export type SqlJobSource = NonNullable<JobConfig['sql']>;
export type FileJobSource = NonNullable<JobConfig['file']>;
