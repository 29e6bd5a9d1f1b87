import { createHash } from 'node:crypto';
import { joinKey } from '../../../common/record-key.js';
import type { CaptureInput } from '../../host/writer.js';
import type { SourceRow } from '../../databases/dialect.js';

/**
 * Record identity for every SQL dialect and mode (docs/wire.md: source + table + primary key +
 * row version), so a change read twice (a replay after a crash, a snapshot row the first poll
 * re-reads) gets the same id and the relay stores it once.
 */

/** Longest id this collector produces (the wire allows MAX_ID_LENGTH = 512; 200 leaves room and keeps ids readable in logs). */
export const SQL_MAX_ID_LENGTH = 200;

/** The key columns' values, each part with `%`, `/`, `|` and `~` percent-encoded, joined by `|`. */
export function recordKey(keyValues: readonly unknown[]): string {
  return joinKey(keyValues, { slash: true });
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * `${source}/${table}/${key}/${version}`. When that is longer than SQL_MAX_ID_LENGTH, the key part
 * becomes `~` + the first 32 hex digits (128 bits) of its SHA-256 (`~` cannot start an encoded
 * key); if source and table alone are still too long, the whole id is `~` + the SHA-256 of the
 * long form. Both are stable for the same input.
 */
export function recordId(source: string, table: string, keyValues: readonly unknown[], version: string): string {
  const key = recordKey(keyValues);
  const plain = `${source}/${table}/${key}/${version}`;
  if (plain.length <= SQL_MAX_ID_LENGTH) return plain;
  const hashed = `${source}/${table}/~${sha256(key).slice(0, 32)}/${version}`;
  if (hashed.length <= SQL_MAX_ID_LENGTH) return hashed;
  return `~${sha256(plain)}`;
}

/**
 * A row's record, as every polled mode writes it: op, table, key, version, schema version (with
 * `schema_changed` on the first records read with a new one) and the typed values.
 */
export function rowRecord(sourceId: string, table: string, keyColumns: readonly string[], keyValues: readonly unknown[], row: SourceRow, op: string, schemaChanged = false): CaptureInput {
  return {
    id: recordId(sourceId, table, keyValues, row.version),
    key: `${table}/${recordKey(keyValues)}`,
    data: {
      op,
      table,
      key: Object.fromEntries(keyColumns.map((col, i) => [col, keyValues[i]])),
      version: row.version,
      schema_version: row.schema,
      ...(schemaChanged ? { schema_changed: true } : {}),
      values: row.values,
    },
  };
}
