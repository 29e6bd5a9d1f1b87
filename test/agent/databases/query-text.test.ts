import { describe, expect, it } from 'vitest';
import { bindLast, queryProblem, snapshotQueryProblem, withoutClosingSemicolon } from '../../../agent/databases/query-text.js';

describe('mode query: the statement text', () => {
  const pg = (sql: string) => bindLast(sql, () => '$1');

  it('binds every :last, and only where SQL reads a placeholder', () => {
    expect(pg('SELECT * FROM v WHERE a >= :last OR b > :last')).toEqual({ sql: 'SELECT * FROM v WHERE a >= $1 OR b > $1', count: 2 });
    expect(pg(`SELECT ':last', ":last", \`:last\`, 'it''s :last' FROM v WHERE x = :last`)).toEqual({ sql: `SELECT ':last', ":last", \`:last\`, 'it''s :last' FROM v WHERE x = $1`, count: 1 });
    expect(pg('SELECT 1 -- :last\nFROM v /* :last */ WHERE x > :last')).toEqual({ sql: 'SELECT 1 -- :last\nFROM v /* :last */ WHERE x > $1', count: 1 });
    expect(pg('SELECT x::last, :lastname, :last_seen, $$ :last $$ FROM v WHERE y > :last')).toEqual({ sql: 'SELECT x::last, :lastname, :last_seen, $$ :last $$ FROM v WHERE y > $1', count: 1 });
    expect(pg(`SELECT 'a\\' :last' FROM v WHERE y > :last`).count).toBe(1); // MySQL's backslash escape inside a string
    const markers: number[] = [];
    bindLast('a > :last AND b < :last', (i) => String(markers.push(i)));
    expect(markers).toEqual([0, 1]);
  });

  it('accepts one SELECT or WITH that uses :last; refuses anything else with the reason', () => {
    expect(queryProblem('SELECT * FROM v WHERE t >= :last')).toBeUndefined();
    expect(queryProblem('  -- open orders\n WITH o AS (SELECT * FROM orders) SELECT * FROM o WHERE t > :last')).toBeUndefined();
    expect(queryProblem('(SELECT * FROM v WHERE t > :last)')).toBeUndefined();
    expect(queryProblem("SELECT * FROM v WHERE note = 'a;b' AND t > :last;")).toBeUndefined();
    expect(queryProblem('CALL open_orders(:last)')).toMatch(/must be a SELECT.*view or a set-returning function/);
    expect(queryProblem('SELECT * FROM v')).toMatch(/does not use :last/);
    expect(queryProblem("SELECT * FROM v WHERE note = ':last'")).toMatch(/does not use :last/);
    expect(queryProblem('SELECT * FROM v WHERE t > :last; DELETE FROM v')).toMatch(/one statement/);
  });
});

describe('a scheduled snapshot: the statement text', () => {
  it('accepts one SELECT or WITH, :last or not; refuses anything else with the reason', () => {
    expect(snapshotQueryProblem('SELECT sku, qty FROM onhand ORDER BY sku;')).toBeUndefined();
    expect(snapshotQueryProblem('/* nightly */ WITH o AS (SELECT 1 AS n) SELECT n FROM o')).toBeUndefined();
    expect(snapshotQueryProblem('EXEC dbo.OnHand')).toMatch(/must be a SELECT/);
    expect(snapshotQueryProblem("SELECT 'a;b' AS x; DELETE FROM onhand")).toMatch(/one statement/);
  });

  it('drops a closing ; (a cursor or a derived table cannot end in one), never one inside a string or comment', () => {
    expect(withoutClosingSemicolon('SELECT 1 ;  \n')).toBe('SELECT 1');
    expect(withoutClosingSemicolon('SELECT 1; -- done')).toBe('SELECT 1');
    expect(withoutClosingSemicolon("SELECT ';'")).toBe("SELECT ';'");
    expect(withoutClosingSemicolon('SELECT 1 -- no;')).toBe('SELECT 1 -- no;');
  });
});
