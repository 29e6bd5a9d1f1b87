import { EventEmitter } from 'node:events';
import sql from 'mssql';
import { describe, expect, it } from 'vitest';
import { mssqlType, streamPages, type StreamingRequest } from '../../../../agent/databases/dialects/mssql.js';
import { cdcBounds, cdcPoll, changeTrackingPoll, changeTrackingVersions, rowversionPoll, snapshotChunk, type MssqlColumn } from '../../../../agent/databases/dialects/mssql-statements.js';
import { columnsStatement, primaryKeyStatement } from '../../../../agent/databases/dialects/mssql-metadata.js';

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

/** A stand-in for an mssql Request in stream mode: rows are emitted by the test, pause/resume/cancel recorded. */
class FakeRequest extends EventEmitter {
  stream = false;
  readonly calls: string[] = [];
  readonly inputs: [string, unknown, unknown][] = [];
  input(name: string, type: unknown, value: unknown) {
    this.inputs.push([name, type, value]);
    return this;
  }
  pause() {
    this.calls.push('pause');
  }
  resume() {
    this.calls.push('resume');
  }
  cancel() {
    this.calls.push('cancel');
    this.emit('error', Object.assign(new Error('Canceled.'), { code: 'ECANCEL' }));
    this.emit('done');
  }
  query(sqlText: string) {
    this.calls.push(`query ${sqlText}`);
  }
}

describe('mssql runner streaming (streamPages)', () => {
  const stmt = changeTrackingPoll({ name: 'dbo.T', key: ['id'], columns: [{ name: 'id', type: 'int' }] }, '1', '9');
  const flush = () => new Promise((r) => setImmediate(r));

  it('hands rows over in pages, paused while each is handled, the short last page when the server is done', async () => {
    const req = new FakeRequest();
    const pages: number[][] = [];
    const done = streamPages(req as unknown as StreamingRequest, stmt, 2, async (rows) => {
      pages.push(rows.map((r) => r.id as number));
    });
    expect(req.stream).toBe(true);
    expect(req.inputs).toEqual([['last', sql.BigInt(), '1'], ['to', sql.BigInt(), '9']]);
    for (const id of [1, 2, 3, 4, 5]) req.emit('row', { id });
    await flush();
    req.emit('done');
    await done;
    expect(pages).toEqual([[1, 2], [3, 4], [5]]);
    expect(req.calls.filter((c) => !c.startsWith('query'))).toEqual(['pause', 'pause', 'resume', 'resume']);
  });

  it('a page that fails cancels the statement and its error is the one passed on', async () => {
    const req = new FakeRequest();
    const done = streamPages(req as unknown as StreamingRequest, stmt, 1, async () => {
      throw new Error('outbox refused');
    });
    req.emit('row', { id: 1 });
    await expect(done).rejects.toThrow('outbox refused');
    expect(req.calls).toContain('cancel');
  });

  it('a server error is passed on; no page is handed over after it', async () => {
    const req = new FakeRequest();
    const pages: unknown[] = [];
    const done = streamPages(req as unknown as StreamingRequest, stmt, 10, async (rows) => {
      pages.push(rows);
    });
    req.emit('row', { id: 1 });
    req.emit('error', new Error('Transaction failed because this DDL statement is not allowed inside a snapshot isolation transaction'));
    req.emit('done');
    await expect(done).rejects.toThrow(/snapshot isolation/);
    expect(pages).toEqual([]);
  });
});
