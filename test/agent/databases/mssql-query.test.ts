/** runMssqlQuery on a scripted session (SQL Server cannot run here): pages, values as the wire carries them, the max_rows stop. */
import { describe, expect, it } from 'vitest';
import type { MssqlRows, MssqlSession } from '../../../agent/databases/mssql-runner.js';
import { runMssqlQuery } from '../../../agent/databases/mssql-query.js';

/** A session streaming `rows` in pages as the driver does; records the statement and how many pages it handed over. */
function session(rows: MssqlRows) {
  const seen = { sql: '', pages: 0 };
  const s: MssqlSession = {
    query: async () => rows,
    async stream(stmt, pageSize, onPage) {
      seen.sql = stmt.sql;
      for (let i = 0; i < rows.length; i += pageSize) {
        seen.pages++;
        await onPage(rows.slice(i, i + pageSize));
      }
    },
  };
  return { s, seen };
}

describe('runMssqlQuery', () => {
  it('returns every row with wire values; the closing ; is dropped', async () => {
    const { s, seen } = session([{ Sku: 'A', Qty: '1.50', At: new Date('2026-01-01T02:00:00Z'), Img: Buffer.from('hi') }]);
    const r = await runMssqlQuery(s, 'SELECT Sku, Qty, At, Img FROM dbo.OnHand ;', 10);
    expect(seen.sql).toBe('SELECT Sku, Qty, At, Img FROM dbo.OnHand');
    expect(r.columns).toEqual(['Sku', 'Qty', 'At', 'Img']);
    expect(r.rows).toEqual([{ Sku: 'A', Qty: '1.50', At: '2026-01-01T02:00:00.000Z', Img: 'aGk=' }]);
  });

  it('over max_rows: ERP_QUERY_TOO_MANY_ROWS at the first page past it, the rest not read', async () => {
    const { s, seen } = session(Array.from({ length: 5_000 }, (_, i) => ({ n: i })));
    await expect(runMssqlQuery(s, 'SELECT n FROM t', 1_500)).rejects.toMatchObject({ code: 'ERP_QUERY_TOO_MANY_ROWS' });
    expect(seen.pages).toBe(2);
    expect((await runMssqlQuery(session(Array.from({ length: 1_500 }, (_, i) => ({ n: i }))).s, 'SELECT n FROM t', 1_500)).rows).toHaveLength(1_500);
  });
});
