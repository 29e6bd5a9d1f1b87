import { describe, expect, it } from 'vitest';
import { formatResult } from '../../../../agent/collectors/sql/check.js';
import { testMssqlCollector } from '../../../../agent/collectors/sql/mssql-check.js';
import { sqlSchema } from '../../../../agent/collectors/sql/schema.js';
import { FakeSqlServer, TABLE } from '../../../helpers/mssql-fake.js';

/** `edge-agent sql test` for driver: mssql, against the fake server: each missing prerequisite, with the statement that fixes it. */
const config = (tables: Record<string, unknown>[]) => sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'mssql', connection: { host: 'erp-db', database: 'erp', user: 'edge', password: 'sup3r-secret-pw' }, tables });

async function check(db: FakeSqlServer, tables: Record<string, unknown>[]): Promise<string[]> {
  const results = await testMssqlCollector(config(tables), async () => db);
  expect(db.closed).toBe(true);
  return results.map((r) => formatResult(r));
}

describe('edge-agent sql test, driver: mssql (fake server)', () => {
  it('all prerequisites there: ok lines only', async () => {
    const lines = await check(new FakeSqlServer(), [{ table: TABLE, mode: 'change_tracking' }]);
    expect(lines).toEqual([
      'ok    erp  connect  edge@erp-db:1433/erp (mssql): SQL Server 16.0.4135.4, as edge (database user edge)',
      'ok    erp  database erp  change tracking is enabled',
      'ok    erp  database erp  snapshot isolation is allowed',
      `ok    erp  ${TABLE}  mode change_tracking: ready (key id)`,
    ]);
  });

  it('change_tracking: database and table not enabled, no snapshot isolation, no grants: each with its fix', async () => {
    const db = new FakeSqlServer();
    Object.assign(db.settings, { ctDatabase: false, snapshotIsolation: false, ctTable: false, canSelect: false, canViewCt: false });
    const lines = await check(db, [{ table: TABLE, mode: 'change_tracking' }]);
    expect(lines.slice(1)).toEqual([
      'FAIL  erp  database erp  change tracking is not enabled on the database (mode change_tracking needs it)  fix: ALTER DATABASE erp SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON);',
      'FAIL  erp  database erp  ALLOW_SNAPSHOT_ISOLATION is off: change tracking reads its versions and changes in one snapshot transaction  fix: ALTER DATABASE erp SET ALLOW_SNAPSHOT_ISOLATION ON;',
      `FAIL  erp  ${TABLE}  user edge cannot SELECT from it  fix: GRANT SELECT ON dbo.Orders TO edge;`,
      `FAIL  erp  ${TABLE}  change tracking is not enabled on the table  fix: ALTER TABLE dbo.Orders ENABLE CHANGE_TRACKING;`,
      `FAIL  erp  ${TABLE}  user edge has no VIEW CHANGE TRACKING on it  fix: GRANT VIEW CHANGE TRACKING ON dbo.Orders TO edge;`,
    ]);
  });

  it('cdc: database not enabled and capture instance missing; a table that does not exist; a wrong rowversion column', async () => {
    const db = new FakeSqlServer();
    Object.assign(db.settings, { cdcDatabase: false, cdcInstance: false });
    const lines = await check(db, [
      { table: TABLE, mode: 'cdc' },
      { table: 'dbo.OrderLines', mode: 'change_tracking' },
      { table: 'Orders', mode: 'rowversion', rowversion_column: 'status' },
    ]);
    expect(lines.filter((l) => l.startsWith('FAIL'))).toEqual([
      'FAIL  erp  database erp  CDC is not enabled on the database (mode cdc needs it, and SQL Server Agent running its capture job)  fix: as sysadmin: EXEC sys.sp_cdc_enable_db;',
      `FAIL  erp  ${TABLE}  CDC capture instance dbo_Orders does not exist, or user edge may not read it (not in its gating role)  fix: as db_owner: EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'Orders', @role_name = N'erp_edge_cdc', @capture_instance = N'dbo_Orders'; ALTER ROLE erp_edge_cdc ADD MEMBER edge; -- if it exists: add edge to its gating role`,
      'FAIL  erp  dbo.OrderLines  table not found, or this login cannot see it  fix: correct `table: dbo.OrderLines` in the config (schema-qualify it: dbo.OrderLines), or: GRANT SELECT ON dbo.OrderLines TO edge;',
      'FAIL  erp  Orders  table not found, or this login cannot see it  fix: correct `table: Orders` in the config (schema-qualify it: dbo.Orders), or: GRANT SELECT ON Orders TO edge;',
    ]);
  });

  it('change_tracking with a key other than the primary key names the fix', async () => {
    const lines = await check(new FakeSqlServer(), [{ table: TABLE, mode: 'change_tracking', key: ['status'] }]);
    expect(lines.at(-1)).toBe(`FAIL  erp  ${TABLE}  change tracking identifies rows by the primary key (id), not key: [status]  fix: remove key: from the config, or set key: [id]`);
  });

  it('a wrong rowversion column names the fix', async () => {
    const lines = await check(new FakeSqlServer(), [{ table: TABLE, mode: 'rowversion', rowversion_column: 'status' }]);
    expect(lines.at(-1)).toBe(`FAIL  erp  ${TABLE}  column status is nvarchar, not rowversion  fix: set rowversion_column: to the table's rowversion column, or: ALTER TABLE dbo.Orders ADD erp_rv rowversion;`);
  });

  it('a failed connect is one FAIL line, without the password', async () => {
    const results = await testMssqlCollector(config([{ table: TABLE, mode: 'change_tracking' }]), async () => {
      throw Object.assign(new Error("Login failed for user 'edge' (password sup3r-secret-pw)"), { code: 'ELOGIN' });
    });
    expect(results).toHaveLength(1);
    const line = formatResult(results[0]!);
    expect(line).toMatch(/^FAIL  erp  connect .*Login failed.*fix: wrong user or password/);
    expect(line).not.toContain('sup3r-secret-pw');
  });
});
