import { isErpEdgeError } from '../../../common/errors.js';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import type { Writer } from '../../host/writer.js';
import type { CronSchedule } from './cron.js';
import { checkpointKey, runId, writeRun, type JobCheckpoint } from './run.js';
import type { JobConfig } from './schema.js';
import type { JobSource } from './source.js';

export interface JobDeps {
  writer: Writer;
  logger: Logger;
  /** Aborted when the collector instance stops. */
  signal: AbortSignal;
  source: JobSource;
  cron: CronSchedule;
}

/** A job's figures for `edge-agent status` (as `<job>.<figure>` counters). */
export interface JobFigures {
  runs: number;
  ok: number;
  failed: number;
  /** Fire times skipped because the previous run was still going. */
  overlapped: number;
  /** Runs made at start for a fire time missed while the agent was down. */
  catch_up_runs: number;
  running: boolean;
  /** `ok`, `error`, or `none` before the first run. */
  last_outcome: 'none' | 'ok' | 'error';
  last_run_id: string;
  last_rows: number;
  last_duration_ms: number;
  /** `<code>: <message>` of the last failed run; '' after a run that succeeded. */
  last_error: string;
  last_started_at: string;
  last_finished_at: string;
  /** Rows of the last run moved to the dead-letter table (each too large for a record). */
  last_dead_lettered: number;
}

/**
 * One scheduled job: fires on its cron, never overlaps itself (a fire while its run is still going
 * is skipped and counted), runs once at start for the latest fire time missed while the agent was
 * down when `catch_up` is on, and keeps each run's outcome. A run that fails (the database down, a
 * bad query, too many rows) is an outcome, not a failure of the collector: the next fire runs.
 *
 * A run cut short by a crash (records begun, no end marker) is not run again by itself: with
 * `catch_up: true` its fire time is the latest missed one at start and it runs again as attempt 2
 * (run id `…#2`); with `catch_up: false` the next fire time runs. Either way the cut run stays
 * recognisable at the relay as a `snapshot_start` without its `snapshot_end`.
 */
export class ScheduledJob {
  private current: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly throttle = new LogThrottle(60_000);
  private readonly figures: JobFigures = {
    runs: 0,
    ok: 0,
    failed: 0,
    overlapped: 0,
    catch_up_runs: 0,
    running: false,
    last_outcome: 'none',
    last_run_id: '',
    last_rows: 0,
    last_duration_ms: 0,
    last_error: '',
    last_started_at: '',
    last_finished_at: '',
    last_dead_lettered: 0,
  };

  constructor(
    private readonly cfg: JobConfig,
    private readonly sourceId: string,
    private readonly deps: JobDeps,
  ) {
    this.log = deps.logger.child({ job: cfg.name });
  }

  get name(): string {
    return this.cfg.name;
  }

  /** Arms the cron; with catch_up, starts the run of the latest missed fire time first. */
  start(): void {
    const now = Date.now();
    let cp = this.checkpoint();
    if (!cp) {
      cp = { since: now };
      this.deps.writer.setCheckpoints({ key: checkpointKey(this.cfg.name), value: cp });
    }
    if (this.cfg.catch_up) {
      const missed = this.deps.cron.latestSlot(Math.max(cp.last_run ?? cp.since, cp.since), now);
      if (missed !== undefined) {
        this.log.info({ slot: new Date(missed).toISOString() }, 'scheduled job: catching up the latest fire time missed while the agent was down');
        this.figures.catch_up_runs++;
        this.fire(missed);
      }
    }
    this.deps.cron.start((slot) => this.fire(slot));
  }

  /** Disarms the cron and waits for a run in progress (its appends give up with the stop signal). */
  async stop(): Promise<void> {
    this.deps.cron.stop();
    await this.current;
    await this.deps.source.close();
  }

  stats(): JobFigures & { next_run: string } {
    const next = this.deps.cron.nextRun();
    return { ...this.figures, next_run: next === null ? '' : new Date(next).toISOString() };
  }

  /** Resolves when no run is in progress (tests, and stop). */
  idle(): Promise<void> {
    return this.current ?? Promise.resolve();
  }

  private fire(slot: number): void {
    if (this.deps.signal.aborted) return;
    if (this.current) {
      this.figures.overlapped++;
      const t = this.throttle.take('overlap');
      if (t) this.log.warn({ slot: new Date(slot).toISOString(), overlapped: t.count, running: this.figures.last_run_id }, 'scheduled job: fire time skipped, the previous run is still going');
      return;
    }
    this.current = this.run(slot).finally(() => {
      this.current = undefined;
    });
  }

  private async run(slot: number): Promise<void> {
    const { writer, source, signal } = this.deps;
    const before = this.checkpoint() ?? { since: Date.now() };
    const attempt = before.started?.slot === slot ? before.started.attempt + 1 : 1;
    const id = runId(this.cfg.name, slot, attempt);
    const f = this.figures;
    const readAt = Date.now();
    f.runs++;
    f.running = true;
    f.last_run_id = id;
    f.last_started_at = new Date(readAt).toISOString();
    let writing = false;
    try {
      const result = await source.read(this.cfg.max_rows);
      signal.throwIfAborted();
      writing = true;
      f.last_dead_lettered = await writeRun(writer, { sourceId: this.sourceId, job: this.cfg.name, stream: this.cfg.stream, slot, attempt, readAt, result, before });
      f.ok++;
      f.last_outcome = 'ok';
      f.last_rows = result.rows.length;
      f.last_error = '';
      this.throttle.reset('error');
      this.log.info({ run: id, rows: result.rows.length, ms: Date.now() - readAt }, 'scheduled job: run emitted');
    } catch (err) {
      if (signal.aborted) return; // stopped mid-run: not an outcome; the run is cut short as by a crash
      f.failed++;
      f.last_outcome = 'error';
      f.last_rows = 0;
      f.last_error = describe(err);
      // It ran: catch-up does not repeat a failed fire time (the next one runs as usual).
      writer.setCheckpoints({ key: checkpointKey(this.cfg.name), value: { since: before.since, last_run: slot } satisfies JobCheckpoint });
      const t = this.throttle.take('error');
      // Failed while writing (the outbox refused an append): a start marker without its end is out.
      const emitted = writing ? 'cut short: snapshot_start without snapshot_end' : 'nothing';
      if (t) this.log.warn({ run: id, err, failures: t.count, emitted }, 'scheduled job: run failed; the next fire time runs as usual');
    } finally {
      f.running = false;
      f.last_duration_ms = Date.now() - readAt;
      f.last_finished_at = new Date().toISOString();
    }
  }

  private checkpoint(): JobCheckpoint | undefined {
    return this.deps.writer.getCheckpoint<JobCheckpoint>(checkpointKey(this.cfg.name));
  }
}

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (isErpEdgeError(err)) return `${err.code}: ${message}`;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? `${code}: ${message}` : message;
}
