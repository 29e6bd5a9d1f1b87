import { describe, expect, it } from 'vitest';
import { captureInstanceOf, mssqlTables, sqlSchema } from '../../../../agent/collectors/sql/schema.js';

/** driver: mssql in the sql collector's config: which modes go with which driver, and the defaults. */
const base = { type: 'sql', name: 'erp', connection: { database: 'erp', user: 'edge' } };
const issues = (cfg: Record<string, unknown>) => {
  const r = sqlSchema.safeParse({ ...base, ...cfg });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('sql collector config, driver: mssql', () => {
  it('accepts the three SQL Server modes with their defaults', () => {
    const cfg = sqlSchema.parse({
      ...base,
      driver: 'mssql',
      tables: [
        { table: 'dbo.OrderLines', mode: 'change_tracking' },
        { table: 'dbo.Orders', mode: 'rowversion', rowversion_column: 'rv', key: ['OrderId'], time_zone: 'Europe/Berlin', initial: 'none', poll_interval: '2s' },
        { table: 'Customers', mode: 'cdc' },
        { table: 'sales.Invoices', mode: 'cdc', capture_instance: 'sales_Invoices_v2' },
      ],
    });
    expect(cfg.connection).toMatchObject({ encrypt: true, trust_server_certificate: false });
    const [ct, rv, cdc, cdc2] = mssqlTables(cfg);
    expect(ct).toEqual({ table: 'dbo.OrderLines', mode: 'change_tracking', initial: 'snapshot' }); // time_zone: the collector's, else UTC (mssql-capture)
    expect(rv).toMatchObject({ key: ['OrderId'], rowversion_column: 'rv', time_zone: 'Europe/Berlin', initial: 'none', poll_interval: 2000 });
    expect(captureInstanceOf(cdc as Extract<typeof cdc, { mode: 'cdc' }>)).toBe('dbo_Customers');
    expect(captureInstanceOf(cdc2 as Extract<typeof cdc2, { mode: 'cdc' }>)).toBe('sales_Invoices_v2');
  });

  it('refuses a mode the driver cannot run, naming the key', () => {
    expect(issues({ driver: 'mssql', tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] })).toEqual([
      'tables.0.mode: mode incremental is not available with driver: mssql; SQL Server tables use mode: change_tracking, rowversion, cdc',
    ]);
    expect(issues({ driver: 'pg', tables: [{ table: 'orders', mode: 'change_tracking' }] })).toEqual(['tables.0.mode: mode change_tracking needs driver: mssql (SQL Server); driver pg supports mode: incremental or query']);
    expect(issues({ driver: 'mssql', tables: [{ table: 'orders', mode: 'logminer' }] })).toEqual(['tables.0.mode: mode must be incremental or query (driver pg or mysql), or change_tracking, rowversion, cdc (driver mssql)']);
    expect(issues({ driver: 'mssql', tables: [{ mode: 'query', name: 'v', query: 'SELECT * FROM v WHERE t > :last', key: ['id'], version_column: 't', start: 0 }] })).toEqual([
      'tables.0.mode: mode query is not available with driver: mssql; SQL Server tables use mode: change_tracking, rowversion, cdc',
    ]);
  });

  it('refuses missing or misplaced fields', () => {
    expect(issues({ driver: 'mssql', tables: [{ table: 'orders', mode: 'rowversion' }] })).toEqual([expect.stringMatching(/^tables\.0\.rowversion_column: /)]);
    expect(issues({ driver: 'mssql', tables: [{ table: 'orders', mode: 'change_tracking', version_column: 'x' }] })).toEqual([expect.stringMatching(/^tables\.0: .*version_column/)]);
    expect(issues({ driver: 'mssql', tables: [{ table: 'orders', mode: 'change_tracking', time_zone: 'Mars/Olympus' }] })).toEqual(['tables.0.time_zone: unknown IANA time zone "Mars/Olympus" (e.g. Europe/Berlin, UTC)']);
    expect(issues({ driver: 'mssql', tables: [{ table: 'orders', mode: 'change_tracking' }, { table: 'orders', mode: 'cdc' }] })).toEqual(['tables.1: orders is listed twice (each table or query name once: it names the checkpoint)']);
    expect(issues({ driver: 'pg', connection: { database: 'd', user: 'u', trust_server_certificate: true }, tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] })).toEqual([
      'connection.trust_server_certificate: connection.trust_server_certificate is a SQL Server setting (driver: mssql)',
    ]);
  });

  it('leaves pg and mysql configs as they were', () => {
    const cfg = sqlSchema.parse({ ...base, driver: 'mysql', tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] });
    expect(cfg.tables[0]).toEqual({ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at', lookback: 60_000, initial: 'snapshot', reconcile_interval: 3_600_000 });
  });
});
