import { tooManyRows, wireValue, type QueryResult } from './dialect.js';
import type { MssqlSession } from './mssql-runner.js';
import { withoutClosingSemicolon } from './query-text.js';
import { schemaVersion } from './schema-version.js';

/** Rows a runMssqlQuery stream hands over at a time. */
const PAGE_ROWS = 1_000;

/**
 * SqlSource.runQuery for SQL Server, on the runner's stream (mssql-runner.ts: the `mssql` driver
 * in production, the scripted fake in tests): a result past `maxRows` cancels the statement at
 * the first page over it. Values as the wire carries them (wireValue: a zone-less datetime comes
 * as its wall clock marked UTC, as the driver's useUTC hands it). The driver's rows carry no
 * column types, so the schema version is of the column names only; an empty result names none.
 */
export async function runMssqlQuery(session: MssqlSession, sql: string, maxRows: number): Promise<QueryResult> {
  const rows: Record<string, unknown>[] = [];
  await session.stream({ sql: withoutClosingSemicolon(sql), params: [] }, PAGE_ROWS, async (page) => {
    if (rows.length + page.length > maxRows) throw tooManyRows(maxRows);
    for (const row of page) {
      const values: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(row)) values[k] = wireValue(v);
      rows.push(values);
    }
  });
  const columns = rows[0] ? Object.keys(rows[0]) : [];
  return { columns, schema: schemaVersion(columns), rows };
}
