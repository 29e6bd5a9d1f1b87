import type { CaptureInput, Writer } from '../../host/writer.js';
import type { QueryResult } from '../../databases/dialect.js';

/**
 * One run of a job as records: `snapshot_start`, one record per row, `snapshot_end` with the row
 * count, all sharing the run id as correlation id, written in appends of RUN_CHUNK records with
 * the end marker in the last. The job's checkpoint travels with them: `started` with the first
 * append, `last_run` with the last (the one with the end marker), so a run cut short by a crash
 * has a start and no end at the relay and no `last_run` at the agent, and never looks complete.
 */

/** Records per append of a run: one outbox transaction each. */
export const RUN_CHUNK = 1_000;

/** What the outbox keeps of a job (checkpoint `job/<name>`), written with its records. */
export interface JobCheckpoint {
  /** When the job was first seen (epoch ms): catch-up never reaches back before it. */
  since: number;
  /** The fire time (epoch ms) of the last run that finished, whether it emitted or failed. */
  last_run?: number | undefined;
  /** A run whose records began to be written and whose end marker was not (yet): its fire time and attempt. */
  started?: { slot: number; attempt: number } | undefined;
}

export function checkpointKey(job: string): string {
  return `job/${job}`;
}

/**
 * The run id: the job and its fire time (UTC, whole seconds), so the run of one slot is the same
 * id whether it ran on time or as a catch-up; `#<attempt>` from the second attempt at a slot (a
 * run cut short by a crash and run again as catch-up), whose records are then a snapshot of their
 * own rather than ids the relay would take for the first attempt's.
 */
export function runId(job: string, slot: number, attempt: number): string {
  const at = new Date(slot).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return attempt > 1 ? `${job}@${at}#${attempt}` : `${job}@${at}`;
}

export interface RunInput {
  /** The writer's source (`schedule:<name>`): ids begin with it. */
  sourceId: string;
  job: string;
  stream?: string | undefined;
  slot: number;
  attempt: number;
  /** When the read began: every record's source_ts (the time of the snapshot). */
  readAt: number;
  result: QueryResult;
  /** The checkpoint before this run (its `since` is kept). */
  before: JobCheckpoint;
}

/** Writes the run; resolves with the rows that went to the dead-letter table (a row too large for a record). */
export async function writeRun(writer: Writer, run: RunInput): Promise<number> {
  const records = runRecords(run);
  const key = checkpointKey(run.job);
  const started: JobCheckpoint = { since: run.before.since, last_run: run.before.last_run, started: { slot: run.slot, attempt: run.attempt } };
  const finished: JobCheckpoint = { since: run.before.since, last_run: run.slot };
  let deadLettered = 0;
  for (let i = 0; i < records.length; i += RUN_CHUNK) {
    const last = i + RUN_CHUNK >= records.length;
    const r = await writer.append(records.slice(i, i + RUN_CHUNK), { key, value: last ? finished : started }, { invalid: 'dead_letter', ...(run.stream ? { stream: run.stream } : {}) });
    deadLettered += r.deadLettered;
  }
  return deadLettered;
}

export function runRecords(run: RunInput): CaptureInput[] {
  const id = runId(run.job, run.slot, run.attempt);
  const base = `${run.sourceId}/${run.job}/${id}`;
  const common = { correlation_id: id, source_ts: run.readAt };
  const marker = (op: 'snapshot_start' | 'snapshot_end', extra: Record<string, unknown>): CaptureInput => ({
    id: `${base}/${op}`,
    ...common,
    data: { op, job: run.job, run: id, scheduled_at: new Date(run.slot).toISOString(), ...extra },
  });
  const records: CaptureInput[] = [marker('snapshot_start', { read_at: new Date(run.readAt).toISOString() })];
  run.result.rows.forEach((values, i) => {
    const n = i + 1;
    records.push({ id: `${base}/${n}`, ...common, data: { job: run.job, run: id, row: n, values } });
  });
  records.push(marker('snapshot_end', { rows: run.result.rows.length, columns: run.result.columns, schema_version: run.result.schema }));
  return records;
}
