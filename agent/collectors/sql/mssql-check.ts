import type { CheckResult } from './check.js';
import type { SqlConfig } from './schema.js';

/** `edge-agent sql test` for driver: mssql. The prerequisite checks are not written yet: says so, as a FAIL, rather than pass silently. */
export async function testMssqlCollector(cfg: SqlConfig): Promise<CheckResult[]> {
  return [{ level: 'FAIL', collector: cfg.name, subject: 'mssql', message: 'the SQL Server prerequisite checks are not implemented yet' }];
}
