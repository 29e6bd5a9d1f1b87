import type { CheckResult } from './check.js';
import type { SqlConfig } from './schema.js';

/**
 * `edge-agent sql test` for one collector: SQL Server's checks (mssql-check.ts) or PostgreSQL's and
 * MySQL's (check.ts). Loaded lazily, as the drivers are: checking a PostgreSQL collector never loads
 * the SQL Server client.
 */
export async function testCollector(cfg: SqlConfig): Promise<CheckResult[]> {
  if (cfg.driver === 'mssql') return (await import('./mssql-check.js')).testMssqlCollector(cfg);
  return (await import('./check.js')).testSqlCollector(cfg);
}
