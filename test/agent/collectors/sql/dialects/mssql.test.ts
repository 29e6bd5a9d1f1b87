import sql from 'mssql';
import { describe, expect, it } from 'vitest';
import { mssqlType } from '../../../../../agent/collectors/sql/dialects/mssql.js';
import { cdcBounds, cdcPoll, changeTrackingPoll, changeTrackingVersions, rowversionPoll, snapshotChunk, type MssqlColumn } from '../../../../../agent/collectors/sql/dialects/mssql-statements.js';
import { columnsStatement, primaryKeyStatement } from '../../../../../agent/collectors/sql/dialects/mssql-metadata.js';

/** binary(n) takes a length at run time; @types/mssql declares none. */
const binary = (n: number) => (sql.Binary as unknown as (length: number) => sql.ISqlType)(n);

/** The thin driver part: Statement parameter type specs onto the mssql package's types (no server, no network). */
describe('mssql runner parameter types', () => {
  it.each([
    ['bigint', sql.BigInt()],
    ['int', sql.Int()],
    ['bit', sql.Bit()],
    ['binary(8)', binary(8)],
    ['binary(10)', binary(10)],
    ['rowversion', binary(8)],
    ['varbinary(max)', sql.VarBinary(sql.MAX)],
    ['nvarchar(517)', sql.NVarChar(517)],
    ['nvarchar(max)', sql.NVarChar(sql.MAX)],
    ['varchar(41)', sql.VarChar(41)],
    ['char(10)', sql.Char(10)],
    ['decimal(18,2)', sql.Decimal(18, 2)],
    ['numeric(38,10)', sql.Numeric(38, 10)],
    ['uniqueidentifier', sql.UniqueIdentifier()],
    ['datetime2(7)', sql.DateTime2(7)],
    ['datetimeoffset(3)', sql.DateTimeOffset(3)],
    ['time(0)', sql.Time(0)],
    ['date', sql.Date()],
    ['datetime', sql.DateTime()],
    ['money', sql.Money()],
  ])('%s', (spec, expected) => {
    expect(mssqlType(spec)).toEqual(expected);
  });

  it('refuses a spec it does not know, rather than guess', () => {
    expect(() => mssqlType('geography')).toThrow(/unknown SQL Server parameter type "geography"/);
    expect(() => mssqlType('nvarchar(')).toThrow(/unknown SQL Server parameter type/);
  });

  it('maps every parameter the capture statements send', () => {
    const columns: MssqlColumn[] = [
      { name: 'id', type: 'bigint' },
      { name: 'code', type: 'varchar', length: 20 },
      { name: 'at', type: 'datetime2', scale: 7 },
      { name: 'amount', type: 'decimal', precision: 18, scale: 2 },
      { name: 'rv', type: 'timestamp' },
      { name: 'guid', type: 'uniqueidentifier' },
    ];
    const t = { name: 'dbo.T', key: ['id', 'code', 'at', 'amount', 'guid'], columns };
    const lsn = `0x${'0'.repeat(19)}1`;
    const statements = [
      changeTrackingVersions('dbo.T'),
      changeTrackingPoll(t, '1', '2'),
      rowversionPoll(t, 'rv', '0x0000000000000001', 10),
      cdcBounds('dbo_T', lsn),
      cdcPoll('dbo_T', columns, lsn, lsn),
      snapshotChunk(t, ['1', 'a', '2026-01-01 00:00:00.0000000', '1.50', 'x'], 10),
      columnsStatement('dbo.T'),
      primaryKeyStatement('dbo.T'),
    ];
    for (const s of statements) for (const p of s.params) expect(() => mssqlType(p.type), `${p.name}: ${p.type}`).not.toThrow();
  });
});
