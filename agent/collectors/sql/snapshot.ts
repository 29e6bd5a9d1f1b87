import type { CaptureInput } from '../../host/writer.js';
import { changeRecord, checkpointKey, keyValues, type IncrementalCheckpoint, type TableCapture } from './incremental.js';
import { recordKey } from './record.js';
import { noteSchema } from '../../databases/schema-version.js';

/**
 * The initial load of a table: every row in key order, page by page (keyset pagination: constant
 * memory, constant cost per page), each page committed with the table's progress and the
 * versions captured per key, so a crash resumes after the last committed key. The stream marks
 * the start and the end (with the row count): a snapshot cut short never looks complete.
 *
 * Hand-over to the changes: the highest version at the start is the first high watermark. The
 * first polls read again what changed inside the look-back of it: a row the snapshot read at that
 * same version is known and skipped, a row changed after it was read is an update, a new row an
 * insert. Nothing is missed and nothing is sent twice.
 */
export async function initialLoad(c: TableCapture, signal: AbortSignal): Promise<number> {
  const key = checkpointKey(c.table.table);
  let cp = c.writer.getCheckpoint<IncrementalCheckpoint>(key);
  if (cp && !cp.snapshot) return 0;
  if (!cp && c.table.initial === 'none') {
    const hw = await c.source.maxVersion(c.table.table, c.table.version_column);
    await c.writer.append([], { key, value: { hw } satisfies IncrementalCheckpoint });
    return 0;
  }
  cp ??= await begin(c);
  let emitted = 0;
  while (cp.snapshot) {
    signal.throwIfAborted();
    const progress = cp.snapshot;
    const rows = await c.source.readSnapshot({ table: c.table.table, key: c.table.key, versionColumn: c.table.version_column, after: progress.after ?? undefined, limit: c.batchSize });
    const records: CaptureInput[] = [];
    const captured: [string, string, string][] = [];
    const changed = noteSchema(c.table.table, cp.schema, rows[0]?.schema, c.onSchemaChange);
    const schema = rows[0]?.schema ?? cp.schema;
    for (const row of rows) {
      const k = recordKey(keyValues(c.table, row));
      records.push(changeRecord(c, row, 'snapshot', changed));
      captured.push([k, row.version, JSON.stringify(keyValues(c.table, row))]);
    }
    const last = rows.at(-1);
    const done = rows.length < c.batchSize;
    const counted = progress.rows + rows.length;
    const next: IncrementalCheckpoint = { hw: cp.hw, schema, snapshot: done ? undefined : { after: keyValues(c.table, last!), rows: counted, startedAt: progress.startedAt } };
    if (done) records.push(marker(c, 'snapshot_end', progress.startedAt, counted));
    await c.writer.append(records, { key, value: next }, { stream: c.stream, keyVersions: { scope: c.table.table, set: captured } });
    emitted += records.length;
    cp = next;
  }
  return emitted;
}

/** First start: the watermark to hand over at, and the start marker, committed together. */
async function begin(c: TableCapture): Promise<IncrementalCheckpoint> {
  const startedAt = Date.now();
  const cp: IncrementalCheckpoint = { hw: await c.source.maxVersion(c.table.table, c.table.version_column), snapshot: { after: null, rows: 0, startedAt } };
  await c.writer.append([marker(c, 'snapshot_start', startedAt)], { key: checkpointKey(c.table.table), value: cp }, { stream: c.stream });
  return cp;
}

function marker(c: TableCapture, op: 'snapshot_start' | 'snapshot_end', startedAt: number, rows?: number): CaptureInput {
  return snapshotMarker(c.sourceId, c.table.table, op, startedAt, rows);
}

/** The record that marks a table's snapshot start or end (every mode's snapshot: mssql-capture.ts too). */
export function snapshotMarker(sourceId: string, table: string, op: 'snapshot_start' | 'snapshot_end', startedAt: number, rows?: number): CaptureInput {
  return { id: `${sourceId}/${table}/${op}/${startedAt}`, key: `${table}/${op}`, data: { op, table, started_at: new Date(startedAt).toISOString(), ...(rows === undefined ? {} : { rows }) } };
}
