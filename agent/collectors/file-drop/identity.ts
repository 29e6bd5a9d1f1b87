import { createHash } from 'node:crypto';
import { joinKey } from '../../../common/record-key.js';
import type { CaptureInput } from '../../host/writer.js';
import type { FileRow } from './formats.js';

/**
 * Record identity for the rows of one file (docs/wire.md). Without key columns: the file's id
 * prefix (its content hash when first read, as in release 0.1, so a file being ingested across an
 * upgrade keeps its ids) and the row number. With them: source + key values + a hash of the row,
 * so the same row re-exported in another file gets the same id and the relay stores it once, while
 * a changed row gets a new id with the same key.
 */
export function rowIdentity(source: string, prefix: string, keyColumns: readonly string[] | undefined, mtimeMs: number) {
  const common = { correlation_id: `file:${prefix}`, source_ts: Math.round(mtimeMs) };
  if (!keyColumns) {
    return (_row: FileRow, n: number, data: unknown): CaptureInput => ({ id: `${prefix}:${n}`, data, ...common });
  }
  return (row: FileRow, _n: number, data: unknown): CaptureInput => {
    const key = joinKey(keyColumns.map((k) => String(row.fields[k])));
    const rowHash = createHash('sha256').update(JSON.stringify(row.fields)).digest('hex').slice(0, 16);
    return { id: `${source}/${key}/${rowHash}`, key, data, ...common };
  };
}

