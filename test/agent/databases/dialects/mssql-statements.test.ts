/**
 * SQL Server cannot run here (#8): the T-SQL each mssql mode generates, the gap decisions and the
 * row mapping are pinned by these tests. Expected strings and values are written out by hand.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  binaryHex,
  cdcBounds,
  cdcFunctionName,
  cdcOperation,
  cdcPoll,
  cdcVersion,
  changeTrackingOperation,
  changeTrackingPoll,
  changeTrackingVersions,
  compareLsn,
  decideCdc,
  decideChangeTracking,
  keysetCheckpoint,
  mapMssqlRow,
  mapMssqlValue,
  nextRowversion,
  quoteIdent,
  quoteTable,
  rowversionBaseline,
  rowversionPoll,
  schemaVersion,
  snapshotChunk,
  SNAPSHOT_TRANSACTION,
  type MssqlColumn,
  type MssqlTable,
} from '../../../../agent/databases/dialects/mssql-statements.js';
import { isErpEdgeError } from '../../../../common/errors.js';
import { MAX_ID_LENGTH } from '../../../../common/wire-v2.js';

const orders: MssqlTable = {
  name: 'dbo.Orders',
  key: ['OrderId'],
  columns: [
    { name: 'OrderId', type: 'int' },
    { name: 'Customer', type: 'nvarchar', length: 40 },
    { name: 'Amount', type: 'decimal', precision: 18, scale: 2 },
    { name: 'Placed', type: 'datetime' },
  ],
};

const lines: MssqlTable = {
  name: 'dbo.OrderLines',
  key: ['OrderId', 'LineNo'],
  columns: [
    { name: 'OrderId', type: 'int' },
    { name: 'LineNo', type: 'smallint' },
    { name: 'Sku', type: 'varchar', length: 20 },
    { name: 'Qty', type: 'numeric', precision: 12, scale: 3 },
    { name: 'Price', type: 'money' },
    { name: 'RowVer', type: 'rowversion' },
  ],
};

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isErpEdgeError(err) ? err.code : `not an ErpEdgeError: ${String(err)}`;
  }
  return undefined;
}

describe('identifiers', () => {
  it('brackets names, doubles ], splits schema-qualified names', () => {
    expect(quoteIdent('Orders')).toBe('[Orders]');
    expect(quoteIdent('Order Lines')).toBe('[Order Lines]');
    expect(quoteIdent('a]b')).toBe('[a]]b]');
    expect(quoteIdent('x[y')).toBe('[x[y]');
    expect(quoteIdent("it's")).toBe("[it's]");
    expect(quoteTable('dbo.OrderLines')).toBe('[dbo].[OrderLines]');
    expect(quoteTable('Sales.Order Lines')).toBe('[Sales].[Order Lines]');
    expect(quoteTable('OrderLines')).toBe('[OrderLines]');
    expect(quoteTable(['dbo', 'a.b'])).toBe('[dbo].[a.b]');
    expect(quoteTable('dbo.a]b')).toBe('[dbo].[a]]b]');
  });

  it('refuses empty, too long, control characters, blanks and three-part names with ERP_CONFIG_INVALID', () => {
    expect(code(() => quoteIdent(''))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteIdent('x'.repeat(129)))).toBe('ERP_CONFIG_INVALID');
    expect(quoteIdent('x'.repeat(128))).toHaveLength(130);
    expect(code(() => quoteIdent('a\u0000b'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteIdent('a\nb'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteIdent(' Orders'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteTable('dbo.'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteTable('.Orders'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteTable('erp.dbo.Orders'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => quoteTable(''))).toBe('ERP_CONFIG_INVALID');
  });

  it('refuses a key column that is not a column, and a type name that is not a plain word', () => {
    expect(code(() => changeTrackingPoll({ ...orders, key: ['Nope'] }, '1', '2'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => changeTrackingPoll({ ...orders, key: [] }, '1', '2'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => changeTrackingPoll({ ...orders, columns: [...orders.columns, { name: 'X', type: 'int); DROP TABLE t;--' }] }, '1', '2'))).toBe(
      'ERP_CONFIG_INVALID',
    );
  });
});

describe('change_tracking', () => {
  it('poll, one-column key', () => {
    const s = changeTrackingPoll(orders, '41', '57');
    expect(s.sql).toBe(
      'SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ct.[OrderId] AS [OrderId], t.[Customer] AS [Customer], ' +
        'CONVERT(varchar(41), t.[Amount]) AS [Amount], CONVERT(varchar(27), t.[Placed], 121) AS [Placed] ' +
        'FROM CHANGETABLE(CHANGES [dbo].[Orders], @last) AS ct ' +
        'LEFT OUTER JOIN [dbo].[Orders] AS t ON t.[OrderId] = ct.[OrderId] ' +
        'WHERE ct.SYS_CHANGE_VERSION <= @to ' +
        'ORDER BY ct.SYS_CHANGE_VERSION, ct.[OrderId]',
    );
    expect(s.params).toEqual([
      { name: 'last', type: 'bigint', value: '41' },
      { name: 'to', type: 'bigint', value: '57' },
    ]);
  });

  it('poll, composite key: keys from ct, the rest from t, join and order on every key column', () => {
    const s = changeTrackingPoll(lines, '9007199254740993', '9007199254740999');
    expect(s.sql).toBe(
      'SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ct.[OrderId] AS [OrderId], ct.[LineNo] AS [LineNo], t.[Sku] AS [Sku], ' +
        'CONVERT(varchar(41), t.[Qty]) AS [Qty], CONVERT(varchar(24), t.[Price], 2) AS [Price], t.[RowVer] AS [RowVer] ' +
        'FROM CHANGETABLE(CHANGES [dbo].[OrderLines], @last) AS ct ' +
        'LEFT OUTER JOIN [dbo].[OrderLines] AS t ON t.[OrderId] = ct.[OrderId] AND t.[LineNo] = ct.[LineNo] ' +
        'WHERE ct.SYS_CHANGE_VERSION <= @to ' +
        'ORDER BY ct.SYS_CHANGE_VERSION, ct.[OrderId], ct.[LineNo]',
    );
    // Beyond 2^53: the version travels as the exact decimal string.
    expect(s.params[0]!.value).toBe('9007199254740993');
  });

  it('odd identifiers are quoted everywhere they appear', () => {
    const t: MssqlTable = { name: 'Sales.Order Lines', key: ['a]b'], columns: [{ name: 'a]b', type: 'int' }, { name: 'Line Text', type: 'nvarchar', length: -1 }] };
    expect(changeTrackingPoll(t, '1', '2').sql).toBe(
      'SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ct.[a]]b] AS [a]]b], t.[Line Text] AS [Line Text] ' +
        'FROM CHANGETABLE(CHANGES [Sales].[Order Lines], @last) AS ct ' +
        'LEFT OUTER JOIN [Sales].[Order Lines] AS t ON t.[a]]b] = ct.[a]]b] ' +
        'WHERE ct.SYS_CHANGE_VERSION <= @to ORDER BY ct.SYS_CHANGE_VERSION, ct.[a]]b]',
    );
  });

  it('versions statement takes the table as a parameter; the transaction sequence is snapshot and restores the level', () => {
    const s = changeTrackingVersions('Sales.Order Lines');
    expect(s.sql).toBe(
      'SELECT CHANGE_TRACKING_CURRENT_VERSION() AS current_version, CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@table)) AS min_valid_version',
    );
    expect(s.params).toEqual([{ name: 'table', type: 'nvarchar(517)', value: '[Sales].[Order Lines]' }]);
    expect(SNAPSHOT_TRANSACTION.begin.map((x) => x.sql)).toEqual(['SET TRANSACTION ISOLATION LEVEL SNAPSHOT', 'BEGIN TRANSACTION']);
    expect(SNAPSHOT_TRANSACTION.commit.map((x) => x.sql)).toEqual(['COMMIT TRANSACTION', 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED']);
    expect(SNAPSHOT_TRANSACTION.rollback[0]!.sql).toBe('IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION');
  });

  it('gap decision', () => {
    // No checkpoint: snapshot first.
    expect(decideChangeTracking(null, '10', '50')).toEqual({ kind: 'snapshot' });
    // Equal to min valid: CHANGES @last is still complete.
    expect(decideChangeTracking('10', '10', '50')).toEqual({ kind: 'poll', from: '10', to: '50' });
    // Below min valid: gap + re-snapshot, never a poll.
    expect(decideChangeTracking('9', '10', '50')).toEqual({ kind: 'gap', reason: 'below_min_valid', saved: '9', min: '10', current: '50' });
    // Nothing new.
    expect(decideChangeTracking('50', '10', '50')).toEqual({ kind: 'idle' });
    // Checkpoint ahead of the database (restored backup): gap too.
    expect(decideChangeTracking('51', '10', '50')).toMatchObject({ kind: 'gap', reason: 'ahead_of_database' });
    // bigint, compared exactly: as Numbers 2^53 and 2^53 + 1 are the same value.
    expect(decideChangeTracking('9007199254740992', '9007199254740993', '9007199254740999')).toMatchObject({ kind: 'gap' });
    expect(decideChangeTracking('9007199254740993', '9007199254740993', '9007199254740994')).toEqual({
      kind: 'poll',
      from: '9007199254740993',
      to: '9007199254740994',
    });
    // Compared as numbers, not text ('9' > '10' as strings).
    expect(decideChangeTracking('9', '2', '10')).toEqual({ kind: 'poll', from: '9', to: '10' });
  });

  it('tracking not enabled is an error that says how to enable it', () => {
    expect(() => decideChangeTracking('5', null, '50')).toThrow(/ENABLE CHANGE_TRACKING/);
    expect(() => decideChangeTracking('5', '1', null)).toThrow(/SET CHANGE_TRACKING = ON/);
    expect(code(() => decideChangeTracking('5x', '1', '9'))).toBe('ERP_COLLECTOR_FAILED');
  });

  it('operations', () => {
    expect(['I', 'U', 'D'].map(changeTrackingOperation)).toEqual(['insert', 'update', 'delete']);
    expect(code(() => changeTrackingOperation('X'))).toBe('ERP_COLLECTOR_FAILED');
  });
});

describe('rowversion', () => {
  it('poll with batch limit, >= the stored next value, < MIN_ACTIVE_ROWVERSION()', () => {
    const s = rowversionPoll(lines, 'RowVer', '0x00000000000007d1', 500);
    expect(s.sql).toBe(
      'SELECT TOP (@limit) t.[OrderId] AS [OrderId], t.[LineNo] AS [LineNo], t.[Sku] AS [Sku], CONVERT(varchar(41), t.[Qty]) AS [Qty], ' +
        'CONVERT(varchar(24), t.[Price], 2) AS [Price], t.[RowVer] AS [RowVer] ' +
        'FROM [dbo].[OrderLines] AS t WHERE t.[RowVer] >= @lo AND t.[RowVer] < MIN_ACTIVE_ROWVERSION() ORDER BY t.[RowVer]',
    );
    expect(s.params).toEqual([
      { name: 'limit', type: 'int', value: 500 },
      { name: 'lo', type: 'binary(8)', value: Buffer.from([0, 0, 0, 0, 0, 0, 0x07, 0xd1]) },
    ]);
  });

  it('reads the rowversion column even when it is not listed', () => {
    const t: MssqlTable = { name: 'Stock', key: ['Item'], columns: [{ name: 'Item', type: 'nvarchar', length: 20 }] };
    expect(rowversionPoll(t, 'rv', '0x0000000000000000', 1).sql).toBe(
      'SELECT TOP (@limit) t.[rv] AS [rv], t.[Item] AS [Item] FROM [Stock] AS t WHERE t.[rv] >= @lo AND t.[rv] < MIN_ACTIVE_ROWVERSION() ORDER BY t.[rv]',
    );
    expect(rowversionBaseline().sql).toBe('SELECT MIN_ACTIVE_ROWVERSION() AS min_active_rowversion');
  });

  it('checkpoint is the next rowversion after the last row emitted (carries across bytes)', () => {
    expect(nextRowversion('0x00000000000007D1')).toBe('0x00000000000007D2');
    expect(nextRowversion('0x00000000000000ff')).toBe('0x0000000000000100');
    expect(nextRowversion('0x00FFFFFFFFFFFFFF')).toBe('0x0100000000000000');
    expect(code(() => nextRowversion('0xFFFFFFFFFFFFFFFF'))).toBe('ERP_COLLECTOR_FAILED');
    expect(code(() => nextRowversion('0x07D1'))).toBe('ERP_COLLECTOR_FAILED');
    expect(code(() => rowversionPoll(lines, 'RowVer', '0x00', 10))).toBe('ERP_COLLECTOR_FAILED');
    expect(code(() => rowversionPoll(lines, 'RowVer', '0x0000000000000000', 0))).toBe('ERP_CONFIG_INVALID');
  });
});

describe('cdc', () => {
  const MIN = '0x0000002A000001F00003';
  const MAX = '0x0000002B000000100001';

  it('function name validated and quoted as an identifier', () => {
    expect(cdcFunctionName('dbo_OrderLines')).toBe('[cdc].[fn_cdc_get_all_changes_dbo_OrderLines]');
    expect(cdcFunctionName('x]y')).toBe('[cdc].[fn_cdc_get_all_changes_x]]y]');
    expect(code(() => cdcFunctionName(''))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => cdcFunctionName('a'.repeat(101)))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => cdcFunctionName('a\u0007'))).toBe('ERP_CONFIG_INVALID');
  });

  it('poll and bounds statements', () => {
    const s = cdcPoll('dbo_OrderLines', lines.columns, '0x0000002A000001F00004', MAX);
    expect(s.sql).toBe(
      'SELECT c.[__$start_lsn], c.[__$seqval], c.[__$operation], c.[OrderId] AS [OrderId], c.[LineNo] AS [LineNo], c.[Sku] AS [Sku], ' +
        'CONVERT(varchar(41), c.[Qty]) AS [Qty], CONVERT(varchar(24), c.[Price], 2) AS [Price], c.[RowVer] AS [RowVer] ' +
        "FROM [cdc].[fn_cdc_get_all_changes_dbo_OrderLines](@from_lsn, @to_lsn, N'all') AS c " +
        'ORDER BY c.[__$start_lsn], c.[__$seqval], c.[__$operation]',
    );
    expect(s.params).toEqual([
      { name: 'from_lsn', type: 'binary(10)', value: Buffer.from('0000002A000001F00004', 'hex') },
      { name: 'to_lsn', type: 'binary(10)', value: Buffer.from('0000002B000000100001', 'hex') },
    ]);
    const b = cdcBounds('dbo_OrderLines', MIN);
    expect(b.sql).toBe(
      'SELECT sys.fn_cdc_get_min_lsn(@instance) AS min_lsn, sys.fn_cdc_get_max_lsn() AS max_lsn, sys.fn_cdc_increment_lsn(@lsn) AS next_lsn',
    );
    expect(b.params).toEqual([
      { name: 'instance', type: 'nvarchar(100)', value: 'dbo_OrderLines' },
      { name: 'lsn', type: 'binary(10)', value: Buffer.from('0000002A000001F00003', 'hex') },
    ]);
    expect(cdcBounds('dbo_OrderLines', null).params[1]!.value).toBeNull();
  });

  it('LSNs compare as equal-length hex, case-insensitive', () => {
    expect(compareLsn(MIN, MAX)).toBe(-1);
    expect(compareLsn(MAX, MIN)).toBe(1);
    expect(compareLsn('0x0000002a000001f00003', MIN)).toBe(0);
    // Byte order, not numeric value of a shorter string: 0x..0A > 0x..09.
    expect(compareLsn('0x0000000000000000000A', '0x00000000000000000009')).toBe(1);
    expect(compareLsn('0x10000000000000000000', '0x0FFFFFFFFFFFFFFFFFFF')).toBe(1);
    expect(code(() => compareLsn('0x2A', MIN))).toBe('ERP_COLLECTOR_FAILED');
    expect(code(() => compareLsn('0000002A000001F00003', MIN))).toBe('ERP_COLLECTOR_FAILED');
  });

  it('gap decision against the min LSN', () => {
    const next = '0x0000002A000001F00004';
    expect(decideCdc(null, { min: MIN, max: MAX, next: null })).toEqual({ kind: 'snapshot' });
    expect(decideCdc(MIN, { min: MIN, max: MAX, next })).toEqual({ kind: 'poll', from: next, to: MAX });
    expect(decideCdc('0x0000002A000001F00002', { min: MIN, max: MAX, next })).toEqual({
      kind: 'gap',
      reason: 'below_min_valid',
      saved: '0x0000002A000001F00002',
      min: MIN,
      current: MAX,
    });
    expect(decideCdc(MAX.toLowerCase(), { min: MIN, max: MAX, next })).toEqual({ kind: 'idle' });
    expect(decideCdc('0x0000002C000000000000', { min: MIN, max: MAX, next })).toMatchObject({ kind: 'gap', reason: 'ahead_of_database' });
    expect(() => decideCdc(MIN, { min: '0x00000000000000000000', max: MAX, next })).toThrow(/capture instance/);
    expect(() => decideCdc(MIN, { min: MIN, max: null, next })).toThrow(/not enabled/);
  });

  it('operation codes: 3 (update before image) is skipped', () => {
    expect([1, 2, 3, 4].map(cdcOperation)).toEqual(['delete', 'insert', null, 'update']);
    expect(code(() => cdcOperation(5))).toBe('ERP_COLLECTOR_FAILED');
    expect(cdcVersion(Buffer.from('0000002A000001F00003', 'hex'), '0x0000002a000001f00005')).toBe('0x0000002A000001F00003:0x0000002A000001F00005');
  });
});

describe('snapshot chunk', () => {
  it('first chunk has no WHERE', () => {
    const s = snapshotChunk(orders, null, 1000);
    expect(s.sql).toBe(
      'SELECT TOP (@limit) t.[OrderId] AS [OrderId], t.[Customer] AS [Customer], CONVERT(varchar(41), t.[Amount]) AS [Amount], ' +
        'CONVERT(varchar(27), t.[Placed], 121) AS [Placed] FROM [dbo].[Orders] AS t ORDER BY t.[OrderId]',
    );
    expect(s.params).toEqual([{ name: 'limit', type: 'int', value: 1000 }]);
  });

  it('one-column key resumes after the last key', () => {
    const s = snapshotChunk(orders, [1041], 1000);
    expect(s.sql).toMatch(/ FROM \[dbo\]\.\[Orders\] AS t WHERE \(t\.\[OrderId\] > @k0\) ORDER BY t\.\[OrderId\]$/);
    expect(s.params).toEqual([
      { name: 'limit', type: 'int', value: 1000 },
      { name: 'k0', type: 'int', value: 1041 },
    ]);
  });

  it('composite key: the row comparison expanded, params typed as the key columns', () => {
    const s = snapshotChunk(lines, [1041, 3], 250);
    expect(s.sql).toBe(
      'SELECT TOP (@limit) t.[OrderId] AS [OrderId], t.[LineNo] AS [LineNo], t.[Sku] AS [Sku], CONVERT(varchar(41), t.[Qty]) AS [Qty], ' +
        'CONVERT(varchar(24), t.[Price], 2) AS [Price], t.[RowVer] AS [RowVer] FROM [dbo].[OrderLines] AS t ' +
        'WHERE (t.[OrderId] > @k0) OR (t.[OrderId] = @k0 AND t.[LineNo] > @k1) ORDER BY t.[OrderId], t.[LineNo]',
    );
    expect(s.params).toEqual([
      { name: 'limit', type: 'int', value: 250 },
      { name: 'k0', type: 'int', value: 1041 },
      { name: 'k1', type: 'smallint', value: 3 },
    ]);
  });

  it('three key columns, text-read key types converted back, varchar bound as varchar', () => {
    const t: MssqlTable = {
      name: 'ledger',
      key: ['Item', 'Posted', 'Amt'],
      columns: [
        { name: 'Item', type: 'varchar', length: 20 },
        { name: 'Posted', type: 'datetime2', scale: 3 },
        { name: 'Amt', type: 'decimal', precision: 9, scale: 2 },
      ],
    };
    const s = snapshotChunk(t, ['A-1', '2026-03-29 02:30:00.000', '12.50'], 10);
    expect(s.sql).toBe(
      'SELECT TOP (@limit) t.[Item] AS [Item], CONVERT(varchar(27), t.[Posted], 121) AS [Posted], CONVERT(varchar(41), t.[Amt]) AS [Amt] FROM [ledger] AS t ' +
        'WHERE (t.[Item] > @k0) ' +
        'OR (t.[Item] = @k0 AND t.[Posted] > CONVERT(datetime2(3), @k1, 121)) ' +
        'OR (t.[Item] = @k0 AND t.[Posted] = CONVERT(datetime2(3), @k1, 121) AND t.[Amt] > CONVERT(decimal(9,2), @k2)) ' +
        'ORDER BY t.[Item], t.[Posted], t.[Amt]',
    );
    expect(s.params.slice(1)).toEqual([
      { name: 'k0', type: 'varchar(20)', value: 'A-1' },
      { name: 'k1', type: 'varchar(27)', value: '2026-03-29 02:30:00.000' },
      { name: 'k2', type: 'varchar(41)', value: '12.50' },
    ]);
  });

  it('change tracking version read beside each row, for the hand-over', () => {
    expect(snapshotChunk(lines, null, 5, { changeTrackingVersion: true }).sql).toContain(
      'FROM [dbo].[OrderLines] AS t CROSS APPLY CHANGETABLE(VERSION [dbo].[OrderLines], ([OrderId], [LineNo]), (t.[OrderId], t.[LineNo])) AS v ORDER BY',
    );
  });

  it('checkpoint from a row is JSON-safe and binds back (binary key as hex → bytes)', () => {
    const t: MssqlTable = { name: 'blobs', key: ['Id', 'Hash'], columns: [{ name: 'Id', type: 'bigint' }, { name: 'Hash', type: 'binary', length: 4 }] };
    const cp = keysetCheckpoint(t, { Id: '9007199254740993', Hash: Buffer.from([0xde, 0xad, 0xbe, 0xef]) });
    expect(cp).toEqual(['9007199254740993', '0xDEADBEEF']);
    expect(snapshotChunk(t, JSON.parse(JSON.stringify(cp)) as typeof cp, 10).params.slice(1)).toEqual([
      { name: 'k0', type: 'bigint', value: '9007199254740993' },
      { name: 'k1', type: 'binary(4)', value: Buffer.from([0xde, 0xad, 0xbe, 0xef]) },
    ]);
    expect(code(() => keysetCheckpoint(t, { Id: null, Hash: Buffer.alloc(4) }))).toBe('ERP_COLLECTOR_FAILED');
    expect(code(() => snapshotChunk(t, ['1'], 10))).toBe('ERP_CONFIG_INVALID');
  });
});

describe('row mapping', () => {
  const tz = { timeZone: 'Europe/Berlin' };
  const col = (type: string, extra: Partial<MssqlColumn> = {}): MssqlColumn => ({ name: 'c', type, ...extra });

  it('decimals stay exact strings; a JS number (already rounded by the driver) is refused', () => {
    expect(mapMssqlValue(col('decimal', { precision: 38, scale: 10 }), '1234567890123456789012345678.0123456789', tz)).toBe(
      '1234567890123456789012345678.0123456789',
    );
    expect(mapMssqlValue(col('numeric'), '-0.50', tz)).toBe('-0.50');
    expect(mapMssqlValue(col('money'), '922337203685477.5807', tz)).toBe('922337203685477.5807');
    expect(code(() => mapMssqlValue(col('decimal'), 12.5, tz))).toBe('ERP_RECORD_INVALID');
    expect(code(() => mapMssqlValue(col('money'), '12,50', tz))).toBe('ERP_RECORD_INVALID');
  });

  it('binary as base64, rowversion as 0x + 16 upper-case hex digits', () => {
    expect(mapMssqlValue(col('varbinary'), Buffer.from('hello'), tz)).toBe('aGVsbG8=');
    expect(mapMssqlValue(col('image'), new Uint8Array([0xff, 0x00, 0x10]), tz)).toBe('/wAQ');
    expect(mapMssqlValue(col('rowversion'), Buffer.from([0, 0, 0, 0, 0, 0, 0x07, 0xd1]), tz)).toBe('0x00000000000007D1');
    expect(mapMssqlValue(col('timestamp'), Buffer.from([0xab, 0xcd, 0xef, 1, 2, 3, 4, 5]), tz)).toBe('0xABCDEF0102030405');
    expect(code(() => mapMssqlValue(col('rowversion'), Buffer.from([1, 2]), tz))).toBe('ERP_RECORD_INVALID');
    const sub = Buffer.from([9, 9, 0xab, 0xcd, 9]).subarray(2, 4);
    expect(binaryHex(sub)).toBe('0xABCD');
  });

  it('uniqueidentifier lower case, bit boolean, bigint a number while exact', () => {
    expect(mapMssqlValue(col('uniqueidentifier'), '6F9619FF-8B86-D011-B42D-00C04FC964FF', tz)).toBe('6f9619ff-8b86-d011-b42d-00c04fc964ff');
    expect(mapMssqlValue(col('bit'), true, tz)).toBe(true);
    expect(mapMssqlValue(col('bit'), 0, tz)).toBe(false);
    expect(mapMssqlValue(col('bigint'), '9007199254740991', tz)).toBe(9007199254740991);
    expect(mapMssqlValue(col('bigint'), '9007199254740992', tz)).toBe('9007199254740992');
    expect(mapMssqlValue(col('bigint'), '-9223372036854775808', tz)).toBe('-9223372036854775808');
    expect(mapMssqlValue(col('bigint'), '-42', tz)).toBe(-42);
    expect(mapMssqlValue(col('int'), 7, tz)).toBe(7);
    expect(mapMssqlValue(col('nvarchar'), 'Größe', tz)).toBe('Größe');
    expect(mapMssqlValue(col('int'), null, tz)).toBeNull();
  });

  it('dates and date-times with an offset', () => {
    expect(mapMssqlValue(col('date'), '2026-03-29', tz)).toBe('2026-03-29');
    expect(mapMssqlValue(col('date'), new Date(Date.UTC(2026, 2, 29)), tz)).toBe('2026-03-29');
    expect(mapMssqlValue(col('datetimeoffset'), '2026-03-29 02:30:00.1234567 +05:30', tz)).toBe('2026-03-28T21:00:00.1234567Z');
    expect(mapMssqlValue(col('datetimeoffset'), '2026-01-01 00:00:00 -08:00', tz)).toBe('2026-01-01T08:00:00.000Z');
    expect(mapMssqlValue(col('datetimeoffset'), new Date('2026-01-01T08:00:00.250Z'), tz)).toBe('2026-01-01T08:00:00.250Z');
    expect(code(() => mapMssqlValue(col('datetimeoffset'), '2026-01-01 00:00:00', tz))).toBe('ERP_RECORD_INVALID');
  });

  it('zone-less date-times in the ERP zone → UTC, outside DST transitions', () => {
    expect(mapMssqlValue(col('datetime'), '2026-01-15 12:00:00.000', tz)).toBe('2026-01-15T11:00:00.000Z');
    expect(mapMssqlValue(col('datetime2'), '2026-07-15 12:00:00.1234567', tz)).toBe('2026-07-15T10:00:00.1234567Z');
    expect(mapMssqlValue(col('datetime2'), '2026-07-15 12:00:00.1200000', tz)).toBe('2026-07-15T10:00:00.120Z');
    expect(mapMssqlValue(col('smalldatetime'), '2026-01-01 00:30:00', tz)).toBe('2025-12-31T23:30:00.000Z');
    // tedious' own Date (useUTC: UTC fields are the wall clock).
    expect(mapMssqlValue(col('datetime'), new Date(Date.UTC(2026, 0, 15, 12, 0, 0, 7)), tz)).toBe('2026-01-15T11:00:00.007Z');
  });

  it('a whole row, in column order', () => {
    const row = mapMssqlRow(
      lines.columns,
      { OrderId: 1041, LineNo: 3, Sku: 'A/7|x', Qty: '2.500', Price: '19.9900', RowVer: Buffer.from('00000000000007D1', 'hex'), extra: 1 },
      tz,
    );
    expect(row).toEqual({ OrderId: 1041, LineNo: 3, Sku: 'A/7|x', Qty: '2.500', Price: '19.9900', RowVer: '0x00000000000007D1' });
    expect(Object.keys(row)).toEqual(['OrderId', 'LineNo', 'Sku', 'Qty', 'Price', 'RowVer']);
  });
});

describe('schema version', () => {
  it('schema version: short hash of the ordered name:type list', () => {
    const v = schemaVersion(orders.columns);
    const expected = createHash('sha256')
      .update(JSON.stringify(['OrderId:int', 'Customer:nvarchar(40)', 'Amount:decimal(18,2)', 'Placed:datetime']))
      .digest('hex')
      .slice(0, 16);
    expect(v).toBe(expected);
    expect(schemaVersion([...orders.columns].reverse())).not.toBe(v);
    expect(schemaVersion(orders.columns.map((c) => (c.name === 'Amount' ? { ...c, scale: 4 } : c)))).not.toBe(v);
  });
});
