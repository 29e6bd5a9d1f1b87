import { describe, expect, it } from 'vitest';
import { existingKeysStatement, keysPerStatement, unmatchableKeyColumns } from '../../../../agent/databases/dialects/mssql-keys.js';
import type { MssqlTable } from '../../../../agent/databases/dialects/mssql-statements.js';
import { isErpEdgeError } from '../../../../common/errors.js';

const lines: MssqlTable = {
  name: 'dbo.Order Lines',
  key: ['OrderNo', 'Qty', 'Day'],
  columns: [
    { name: 'OrderNo', type: 'nvarchar', length: 20 },
    { name: 'Qty', type: 'decimal', precision: 10, scale: 3 },
    { name: 'Day', type: 'date' },
    { name: 'At', type: 'datetime2', scale: 7 },
    { name: 'Blob', type: 'varbinary', length: -1 },
  ],
};

describe('SQL Server delete reconciliation statement', () => {
  it('probes each key by position, comparing in the columns own types', () => {
    expect(existingKeysStatement(lines, [['A-1', '1.500', '2026-01-02'], ['B', '2.000', '2026-01-03']])).toEqual({
      sql:
        'SELECT 0 AS i WHERE EXISTS (SELECT 1 FROM [dbo].[Order Lines] AS t WHERE t.[OrderNo] = @p0_0 AND t.[Qty] = CONVERT(decimal(10,3), @p0_1) AND t.[Day] = CONVERT(date, @p0_2, 23)) UNION ALL ' +
        'SELECT 1 AS i WHERE EXISTS (SELECT 1 FROM [dbo].[Order Lines] AS t WHERE t.[OrderNo] = @p1_0 AND t.[Qty] = CONVERT(decimal(10,3), @p1_1) AND t.[Day] = CONVERT(date, @p1_2, 23))',
      params: [
        { name: 'p0_0', type: 'nvarchar(20)', value: 'A-1' },
        { name: 'p0_1', type: 'varchar(41)', value: '1.500' },
        { name: 'p0_2', type: 'char(10)', value: '2026-01-02' },
        { name: 'p1_0', type: 'nvarchar(20)', value: 'B' },
        { name: 'p1_1', type: 'varchar(41)', value: '2.000' },
        { name: 'p1_2', type: 'char(10)', value: '2026-01-03' },
      ],
    });
  });

  it('refuses key columns whose captured value cannot be bound back, and more keys than parameters allow', () => {
    expect(unmatchableKeyColumns(lines)).toEqual([]);
    expect(unmatchableKeyColumns({ ...lines, key: ['OrderNo', 'At', 'Blob'] })).toEqual(['At', 'Blob']);
    expect(() => existingKeysStatement({ ...lines, key: ['At'] }, [['2026-01-01T00:00:00.000Z']])).toThrow(/key column At .* cannot be matched back/);
    expect(keysPerStatement(3)).toBe(666);
    const tooMany = Array.from({ length: 667 }, () => ['A', '1', '2026-01-01']);
    try {
      existingKeysStatement(lines, tooMany);
      expect.unreachable();
    } catch (err) {
      expect(isErpEdgeError(err, 'ERP_COLLECTOR_FAILED')).toBe(true);
    }
  });
});
