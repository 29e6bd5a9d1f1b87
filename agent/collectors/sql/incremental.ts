import type { CaptureInput, Writer } from '../../host/writer.js';
import type { SourceRow, SqlSource } from './dialect.js';
import { recordId, recordKey } from './record.js';
import type { TableConfig } from './schema.js';

/**
 * `mode: incremental`: rows read in (version column, key) order from the highest version read so
 * far minus the look-back, page by page; each page's records go into the outbox with the table's
 * checkpoint and the versions captured per key, in one transaction. A row whose key was captured
 * at the same version is not emitted again (a re-read inside the look-back); a late commit (a
 * version below the highest, inside the look-back) is; a key never captured is an insert, a new
 * version of a known key an update.
 */
export interface IncrementalCheckpoint {
  /** Highest version read (fixed-width text, see SourceRow.version); null before the first row. */
  hw: string | null;
  /** Present while the initial snapshot runs (see snapshot.ts). */
  snapshot?: SnapshotProgress | undefined;
}

export interface SnapshotProgress {
  /** Key of the last row committed; null before the first page. */
  after: unknown[] | null;
  rows: number;
  startedAt: number;
}

export interface TableCapture {
  table: TableConfig;
  source: SqlSource;
  writer: Writer;
  /** The collector's source (`sql:<name>`), first segment of every record id. */
  sourceId: string;
  stream: string;
  batchSize: number;
}

export type ChangeOp = 'snapshot' | 'insert' | 'update' | 'upsert';

export function checkpointKey(table: string): string {
  return `table:${table}`;
}

/** One poll of one table: reads until caught up. Returns the records emitted. */
export async function pollIncremental(c: TableCapture, signal: AbortSignal): Promise<number> {
  const t = c.table;
  const key = checkpointKey(t.table);
  const from = c.writer.getCheckpoint<IncrementalCheckpoint>(key)?.hw ?? null;
  let hw = from;
  let after: { version: string; key: unknown[] } | undefined;
  let emitted = 0;
  for (;;) {
    signal.throwIfAborted();
    const rows = await c.source.readIncremental({ table: t.table, key: t.key, versionColumn: t.version_column, from, lookbackMs: t.lookback, after, limit: c.batchSize });
    const keys = rows.map((row) => recordKey(keyValues(t, row)));
    const known = c.writer.keyVersions(t.table, keys);
    const records: CaptureInput[] = [];
    const captured: [string, string, string][] = [];
    rows.forEach((row, i) => {
      const before = known.get(keys[i]!);
      if (before === row.version) return; // read again inside the look-back, unchanged
      captured.push([keys[i]!, row.version, JSON.stringify(keyValues(t, row))]);
      if (hw === null || row.version > hw) hw = row.version;
      records.push(changeRecord(c, row, keys[i]!, before !== undefined ? 'update' : t.initial === 'snapshot' ? 'insert' : 'upsert'));
    });
    await c.writer.append(records, { key, value: { hw } satisfies IncrementalCheckpoint }, { stream: c.stream, keyVersions: { scope: t.table, set: captured } });
    emitted += records.length;
    const last = rows.at(-1);
    if (!last || rows.length < c.batchSize) return emitted;
    after = { version: last.version, key: keyValues(t, last) };
  }
}

export function keyValues(t: TableConfig, row: SourceRow): unknown[] {
  return t.key.map((col) => row.values[col]);
}

/** `upsert`: a key not seen before when capture began without a snapshot (insert or update, unknown). */
export function changeRecord(c: TableCapture, row: SourceRow, key: string, op: ChangeOp): CaptureInput {
  const t = c.table;
  return {
    id: recordId(c.sourceId, t.table, keyValues(t, row), row.version),
    key: `${t.table}/${key}`,
    data: { op, table: t.table, key: Object.fromEntries(t.key.map((col) => [col, row.values[col]])), version: row.version, values: row.values },
  };
}
