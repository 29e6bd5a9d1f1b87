import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse } from 'csv-parse/sync';
import { ErpEdgeError } from '../../../common/errors.js';
import { tooManyRows, type QueryResult } from '../../databases/dialect.js';
import { schemaVersion } from '../../databases/schema-version.js';
import type { FileJobSource } from './schema.js';
import type { JobSource } from './source.js';

/**
 * A job's file, read whole at each run: CSV with a header row (every value text), or JSON Lines
 * (one object per line). UTF-8 (a BOM is dropped). The file is read as it is at the fire time; an
 * exporter that writes it in place should finish before the cron fires (file-drop is the collector
 * for files that arrive). `path` is already resolved against the config's folder.
 */
export function fileJobSource(cfg: FileJobSource, path: string): JobSource {
  const format = cfg.format ?? (/^\.(jsonl|ndjson)$/i.test(extname(path)) ? 'jsonl' : 'csv');
  return {
    async read(maxRows) {
      const text = (await readFile(path, 'utf8')).replace(/^\uFEFF/, '');
      return format === 'csv' ? csvResult(text, cfg.delimiter, maxRows) : jsonlResult(text, path, maxRows);
    },
    close: async () => undefined,
  };
}

function csvResult(text: string, delimiter: string, maxRows: number): QueryResult {
  let columns: string[] = [];
  // `to`: csv-parse stops after maxRows + 1 records, so an oversized file is not parsed whole.
  const rows = parse(text, {
    delimiter,
    skip_empty_lines: true,
    to: maxRows + 1,
    columns: (header: string[]) => (columns = header),
  }) as Record<string, unknown>[];
  if (rows.length > maxRows) throw tooManyRows(maxRows);
  return { columns, schema: schemaVersion(columns.map((c) => `${c}:text`)), rows };
}

function jsonlResult(text: string, path: string, maxRows: number): QueryResult {
  const rows: Record<string, unknown>[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    if (rows.length === maxRows) throw tooManyRows(maxRows);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new ErpEdgeError('ERP_FILE_MALFORMED', `${path} line ${i + 1}: not JSON (${(err as Error).message})`, { path, line: i + 1 });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ErpEdgeError('ERP_FILE_MALFORMED', `${path} line ${i + 1}: not a JSON object`, { path, line: i + 1 });
    rows.push(value as Record<string, unknown>);
  }
  const columns = rows[0] ? Object.keys(rows[0]) : [];
  return { columns, schema: schemaVersion(columns), rows };
}
