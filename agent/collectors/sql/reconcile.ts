import { ErpEdgeError } from '../../../common/errors.js';
import type { CaptureInput } from '../../host/writer.js';
import type { Writer } from '../../host/writer.js';
import type { SqlSource } from '../../databases/dialect.js';
import { recordId } from './record.js';

/** What reconciliation needs of a table's capture (an incremental TableCapture is one; SQL Server's rowversion capture makes one). */
export interface ReconcileTarget {
  table: { table: string; key: readonly string[] };
  source: Pick<SqlSource, 'existingKeys' | 'inspectTable' | 'driver'>;
  writer: Writer;
  sourceId: string;
  stream: string;
}

/** Captured keys checked per query. */
const CHUNK = 500;

/**
 * Deletes for a mode that cannot see them (incremental): every key captured for the table (the
 * outbox's key store) is checked against the table in chunks; a key with no row any more becomes
 * a `delete` record, and is forgotten in the same transaction (a row inserted again under it later
 * is an insert). Runs between polls, so no poll of the same table interleaves. Returns the deletes.
 */
export async function reconcileDeletes(c: ReconcileTarget, signal: AbortSignal): Promise<number> {
  const t = c.table;
  const unsafe = await unmatchableKeyColumns(c);
  if (unsafe.length > 0) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `deletes cannot be looked for in ${t.table}: key column(s) ${unsafe.join(', ')} cannot be matched back as captured; set reconcile_interval: 0 for this table`, { table: t.table, columns: unsafe });
  let after = '';
  let deleted = 0;
  for (;;) {
    signal.throwIfAborted();
    const stored = c.writer.capturedKeys(t.table, after, CHUNK);
    if (stored.length === 0) return deleted;
    const values = stored.map((s) => (s.values ? (JSON.parse(s.values) as unknown[]) : decodeKey(s.key)));
    const present = await c.source.existingKeys(t.table, t.key, values);
    const gone = stored.filter((_, i) => !present.has(i));
    if (gone.length > 0) {
      const at = new Date().toISOString();
      const records = gone.map((s) => tombstone(c, s.key, values[stored.indexOf(s)]!, at));
      await c.writer.append(records, undefined, { stream: c.stream, keyVersions: { scope: t.table, set: [], delete: gone.map((s) => s.key) } });
      deleted += gone.length;
    }
    after = stored.at(-1)!.key;
  }
}

/**
 * Key columns whose captured value the server cannot take back to find the row: bytes (captured
 * base64) and MySQL TIMESTAMP (captured with a `Z`). Probing with them would find nothing and
 * report rows deleted that are there, so reconciliation refuses such a table instead.
 */
async function unmatchableKeyColumns(c: ReconcileTarget): Promise<string[]> {
  if (!c.source.inspectTable) return [];
  const info = await c.source.inspectTable(c.table.table);
  const types = new Map(info.columns.map((col) => [col.name.toLowerCase(), col.type.toLowerCase()]));
  // PostgreSQL's `timestamp` is captured as written and matches back; MySQL's TIMESTAMP gets a `Z`.
  const unmatchable = c.source.driver === 'mysql' ? /^(binary|varbinary|blob|tinyblob|mediumblob|longblob|timestamp)$/ : /^bytea$/;
  return c.table.key.filter((k) => unmatchable.test(types.get(k.toLowerCase()) ?? ''));
}

/** The key columns' values as text, from a record key (record.ts: parts percent-encoded, joined by `|`). */
export function decodeKey(key: string): string[] {
  return key.split('|').map((part) => decodeURIComponent(part));
}

/** `values`: the key as captured (typed, as the insert carried it); the decoded text for keys stored without. */
function tombstone(c: ReconcileTarget, key: string, values: readonly unknown[], at: string): CaptureInput {
  const t = c.table;
  // No row version to tell deletes apart: the time it was found gone stands in (a key deleted,
  // inserted and deleted again yields two deletes with different ids).
  const version = `deleted@${at}`;
  return {
    id: recordId(c.sourceId, t.table, values, version),
    key: `${t.table}/${key}`,
    data: { op: 'delete', table: t.table, key: Object.fromEntries(t.key.map((col, i) => [col, values[i]])), version, detected_at: at },
  };
}
