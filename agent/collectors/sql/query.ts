import type { CaptureInput, Writer } from '../../host/writer.js';
import type { SqlSource } from '../../databases/dialect.js';
import { recordKey, rowRecord } from './record.js';
import type { QueryConfig } from './schema.js';
import type { CaptureTarget } from './capture-target.js';
import { noteSchema } from '../../databases/schema-version.js';
import { ErpEdgeError } from '../../../common/errors.js';

/**
 * `mode: query`: a custom SELECT (a view, a join, a set-returning function) whose `:last` is bound
 * to the highest `version_column` value captured by the previous poll (`start` before the first).
 * The statement is read as a derived table page by page in (version column, key) order, each page
 * committed with its records and the poll's keyset position, so a crash resumes inside the poll
 * where it stopped; `:last` moves on only when the poll has read everything. A row whose key was
 * captured at the same version is not emitted again, so a statement may read back over a margin
 * (`>= :last`, or `>= :last - interval '5 minutes'` for late commits) without duplicates.
 */
export interface QueryCheckpoint {
  /** What `:last` is bound to in the poll under way (and the next, when `after` is absent). */
  last: unknown;
  /** Highest version read in the poll under way; becomes `last` when the poll ends. */
  hw?: unknown;
  /** Keyset position of the poll under way after its last committed page. */
  after?: { version: unknown; key: unknown[] } | undefined;
  schema?: string | undefined;
}

export interface QueryCapture extends CaptureTarget {
  query: QueryConfig;
  source: SqlSource;
}

export function queryCheckpointKey(name: string): string {
  return `query:${name}`;
}

/** One poll: reads the statement until caught up. Returns the records emitted. */
export async function pollQuery(c: QueryCapture, signal: AbortSignal): Promise<number> {
  const q = c.query;
  const key = queryCheckpointKey(q.name);
  let cp: QueryCheckpoint = c.writer.getCheckpoint<QueryCheckpoint>(key) ?? { last: q.start };
  let emitted = 0;
  for (;;) {
    signal.throwIfAborted();
    const rows = await c.source.readQuery({ sql: q.query, last: cp.last, key: q.key, versionColumn: q.version_column, after: cp.after, limit: c.batchSize });
    for (const row of rows) if (row.values[q.version_column] == null) throw nullVersion(q);
    const keyValues = rows.map((row) => q.key.map((k) => row.values[k]));
    const keys = keyValues.map((k) => recordKey(k));
    const known = c.writer.keyVersions(q.name, keys);
    const records: CaptureInput[] = [];
    const captured: [string, string, string][] = [];
    let changed: boolean | undefined;
    rows.forEach((row, i) => {
      const before = known.get(keys[i]!);
      if (before === row.version) return; // read again (a margin before :last), unchanged
      changed ??= noteSchema(q.name, cp.schema, row.schema, c.onSchemaChange);
      captured.push([keys[i]!, row.version, JSON.stringify(keyValues[i])]);
      // `upsert`: a key this statement never returned (it may start mid-history: insert and update cannot be told apart).
      records.push(rowRecord(c.sourceId, q.name, q.key, keyValues[i]!, row, before === undefined ? 'upsert' : 'update', changed));
    });
    const last = rows.at(-1);
    const done = rows.length < c.batchSize;
    const schema = records.length > 0 ? rows[0]!.schema : cp.schema;
    // Rows come in version order: the page's last row holds the poll's highest version so far, as
    // the database holds it (its value in `values` may be shown in UTC under time_zone).
    const hw = last ? last.versionValue : cp.hw;
    cp = done
      ? { last: hw ?? cp.last, schema }
      : { last: cp.last, hw, after: { version: hw, key: keyValues.at(-1)! }, schema };
    await c.writer.append(records, { key, value: cp }, { stream: c.stream, keyVersions: { scope: q.name, set: captured } });
    emitted += records.length;
    if (done) return emitted;
  }
}


function nullVersion(q: QueryConfig): ErpEdgeError {
  return new ErpEdgeError('ERP_COLLECTOR_FAILED', `query ${q.name}: a row has no ${q.version_column} (NULL): it cannot be placed after :last; filter such rows out (WHERE ${q.version_column} IS NOT NULL) or COALESCE the column in the statement`, { query: q.name, column: q.version_column });
}
