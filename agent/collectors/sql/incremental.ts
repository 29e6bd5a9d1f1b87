import type { CaptureInput, Writer } from '../../host/writer.js';
import type { SourceRow, SqlSource } from '../../databases/dialect.js';
import { recordKey, rowRecord } from './record.js';
import type { CaptureTarget } from './capture-target.js';
import { noteSchema } from '../../databases/schema-version.js';
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
  /** Schema version of the last page captured (schema-version.ts); absent in checkpoints of 0.3.0. */
  schema?: string | undefined;
}

export interface SnapshotProgress {
  /** Key of the last row committed; null before the first page. */
  after: unknown[] | null;
  rows: number;
  startedAt: number;
}

export interface TableCapture extends CaptureTarget {
  table: TableConfig;
  source: SqlSource;
}

export type ChangeOp = 'snapshot' | 'insert' | 'update' | 'upsert';

export function checkpointKey(table: string): string {
  return `table:${table}`;
}

/** One poll of one table: reads until caught up. Returns the records emitted. */
export async function pollIncremental(c: TableCapture, signal: AbortSignal): Promise<number> {
  const t = c.table;
  const key = checkpointKey(t.table);
  const saved = c.writer.getCheckpoint<IncrementalCheckpoint>(key);
  const from = saved?.hw ?? null;
  let hw = from;
  let schema = saved?.schema;
  let after: { version: string; key: unknown[] } | undefined;
  let emitted = 0;
  for (;;) {
    signal.throwIfAborted();
    const rows = await c.source.readIncremental({ table: t.table, key: t.key, versionColumn: t.version_column, from, lookbackMs: t.lookback, after, limit: c.batchSize });
    const keys = rows.map((row) => recordKey(keyValues(t, row)));
    const known = c.writer.keyVersions(t.table, keys);
    // Noted with the first record emitted: rows read again unchanged say nothing of what was captured.
    let changed: boolean | undefined;
    const records: CaptureInput[] = [];
    const captured: [string, string, string][] = [];
    rows.forEach((row, i) => {
      const before = known.get(keys[i]!);
      if (before === row.version) return; // read again inside the look-back, unchanged
      captured.push([keys[i]!, row.version, JSON.stringify(keyValues(t, row))]);
      if (hw === null || row.version > hw) hw = row.version;
      changed ??= noteSchema(t.table, schema, row.schema, c.onSchemaChange);
      records.push(changeRecord(c, row, before !== undefined ? 'update' : t.initial === 'snapshot' ? 'insert' : 'upsert', changed));
    });
    if (records.length > 0) schema = rows[0]!.schema;
    await c.writer.append(records, { key, value: { hw, schema } satisfies IncrementalCheckpoint }, { stream: c.stream, keyVersions: { scope: t.table, set: captured } });
    emitted += records.length;
    const last = rows.at(-1);
    if (!last || rows.length < c.batchSize) return emitted;
    after = { version: last.version, key: keyValues(t, last) };
  }
}

export function keyValues(t: TableConfig, row: SourceRow): unknown[] {
  return t.key.map((col) => row.values[col]);
}

/**
 * `upsert`: a key not seen before when capture began without a snapshot (insert or update, unknown).
 * `schemaChanged`: the row is among the first read with a new schema version (schema-version.ts).
 */
export function changeRecord(c: TableCapture, row: SourceRow, op: ChangeOp, schemaChanged = false): CaptureInput {
  return rowRecord(c.sourceId, c.table.table, c.table.key, keyValues(c.table, row), row, op, schemaChanged);
}

