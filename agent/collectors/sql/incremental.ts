import { recordId, recordKey } from './record.js';
import type { CaptureInput, Writer } from '../../host/writer.js';
import type { SourceRow, SqlSource } from './dialect.js';
import type { TableConfig } from './schema.js';

/**
 * `mode: incremental`: rows read in (version column, key) order from the highest version read so
 * far minus the look-back, page by page; each page's records go into the outbox with the table's
 * checkpoint in one transaction. The checkpoint holds the highest version read and, for the rows
 * inside the look-back window, the version last emitted per key: a row read again unchanged is not
 * emitted again, a late commit (a version below the highest, inside the window) is.
 */
export interface IncrementalCheckpoint {
  /** Highest version read (fixed-width text, see SourceRow.version); null before the first row. */
  hw: string | null;
  /** Key (joined) → version last emitted, for rows within the look-back of `hw`. */
  recent: Record<string, string>;
  /** Present while the initial snapshot runs (see snapshot.ts). */
  snapshot?: SnapshotProgress | undefined;
}

export interface SnapshotProgress {
  /** Key of the last row committed; null before the first page. */
  after: unknown[] | null;
  rows: number;
  startedAt: number;
}

/**
 * Most keys remembered per table (the checkpoint is rewritten with every page). A bulk update can
 * put far more rows inside the look-back; beyond this the newest versions are kept, and a row
 * read again whose key was let go is emitted again with the same id (source/table/key/version),
 * which the relay stores once.
 */
export const RECENT_MAX = 10_000;

export interface TableCapture {
  table: TableConfig;
  source: SqlSource;
  writer: Writer;
  /** The collector's source (`sql:<name>`), first segment of every record id. */
  sourceId: string;
  stream: string;
  batchSize: number;
}

export function checkpointKey(table: string): string {
  return `table:${table}`;
}

/** One poll of one table: reads until caught up. Returns the records emitted. */
export async function pollIncremental(c: TableCapture, signal: AbortSignal, from?: IncrementalCheckpoint): Promise<number> {
  const t = c.table;
  const key = checkpointKey(t.table);
  const start = from ?? c.writer.getCheckpoint<IncrementalCheckpoint>(key) ?? { hw: null, recent: {} };
  let hw = start.hw;
  let recent = { ...start.recent };
  let after: { version: string; key: unknown[] } | undefined;
  let emitted = 0;
  for (;;) {
    signal.throwIfAborted();
    const rows = await c.source.readIncremental({ table: t.table, key: t.key, versionColumn: t.version_column, from: start.hw, lookbackMs: t.lookback, after, limit: c.batchSize });
    const records: CaptureInput[] = [];
    for (const row of rows) {
      const k = recordKey(t.key.map((col) => row.values[col]));
      const before = recent[k];
      if (before === row.version) continue; // read again inside the look-back, unchanged
      recent[k] = row.version;
      if (hw === null || row.version > hw) hw = row.version;
      records.push(changeRecord(c, row, k, before === undefined ? 'upsert' : 'update'));
    }
    recent = withinLookback(recent, hw, t.lookback);
    await c.writer.append(records, { key, value: { hw, recent } satisfies IncrementalCheckpoint }, { stream: c.stream });
    emitted += records.length;
    const last = rows.at(-1);
    if (!last || rows.length < c.batchSize) return emitted;
    after = { version: last.version, key: t.key.map((col) => last.values[col]) };
  }
}

export function changeRecord(c: TableCapture, row: SourceRow, key: string, op: 'snapshot' | 'upsert' | 'update'): CaptureInput {
  return {
    id: recordId(c.sourceId, c.table.table, c.table.key.map((col) => row.values[col]), row.version),
    key: `${c.table.table}/${key}`,
    data: { op, table: c.table.table, key: Object.fromEntries(c.table.key.map((col) => [col, row.values[col]])), version: row.version, values: row.values },
  };
}

/**
 * The entries a later poll can read again: versions at or after `hw - lookback`. Computed on the
 * version text (its first 23 characters are an ISO time to the ms); rounding down keeps a few more.
 */
export function withinLookback(recent: Record<string, string>, hw: string | null, lookbackMs: number): Record<string, string> {
  if (hw === null) return recent; // an empty table at the start: only the rows written since
  const hwMs = Date.parse(`${hw.slice(0, 23)}Z`);
  if (Number.isNaN(hwMs)) return recent;
  const cutoff = new Date(hwMs - lookbackMs).toISOString().slice(0, 23);
  let kept = Object.entries(recent).filter(([, v]) => v.slice(0, 23) >= cutoff);
  if (kept.length > RECENT_MAX) kept = kept.sort(([, a], [, b]) => (a < b ? 1 : a > b ? -1 : 0)).slice(0, RECENT_MAX);
  return Object.fromEntries(kept);
}
