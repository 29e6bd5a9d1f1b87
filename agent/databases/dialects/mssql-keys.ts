import { ErpEdgeError } from '../../../common/errors.js';
import { quoteIdent, quoteTable, typeSpec, type MssqlColumn, type MssqlTable, type SqlParam, type Statement } from './mssql-statements.js';

/**
 * Delete reconciliation on SQL Server (rowversion mode cannot see deletes): which captured keys
 * still have a row. Keys come back from the outbox as the wire carried them (mapMssqlRow), so only
 * key types whose wire value binds back to the same value are matched; the others are refused,
 * never guessed (a probe that finds nothing would report a row deleted that is there).
 */

/** Parameters SQL Server takes in one request is 2100; some room left. */
const MAX_PARAMS = 2000;

/** How a key column's wire value binds back: the parameter type, and the SQL that turns it into the column's type. */
function binding(column: MssqlColumn): { type: string; expr: (param: string) => string } | null {
  const t = column.type.trim().toLowerCase();
  switch (t) {
    case 'int':
    case 'smallint':
    case 'tinyint':
    case 'bigint':
    case 'bit':
    case 'char':
    case 'varchar':
    case 'nchar':
    case 'nvarchar':
    case 'uniqueidentifier':
      return { type: typeSpec(column), expr: (p) => p };
    case 'decimal':
    case 'numeric':
      // The wire carries exact decimal text: converted on the server, never through a JS number.
      return { type: 'varchar(41)', expr: (p) => `CONVERT(${typeSpec(column)}, ${p})` };
    case 'date':
      return { type: 'char(10)', expr: (p) => `CONVERT(date, ${p}, 23)` };
    default:
      // datetime* (captured in UTC from the configured zone), binary (base64), money, …
      return null;
  }
}

/** The key columns whose captured values cannot be matched back (empty: all can). */
export function unmatchableKeyColumns(t: MssqlTable): string[] {
  return t.key.filter((k) => {
    const c = t.columns.find((col) => col.name === k);
    return !c || binding(c) === null;
  });
}

/** Keys per statement for a key of `width` columns. */
export function keysPerStatement(width: number): number {
  return Math.max(1, Math.floor(MAX_PARAMS / Math.max(1, width)));
}

/**
 * `SELECT <i> AS i WHERE EXISTS (SELECT 1 FROM t WHERE k0 = @p<i>_0 AND …) UNION ALL …`: the
 * positions (in `keys`) of the keys that have a row, compared by the server in the columns' own
 * types and collation. At most keysPerStatement(key width) keys.
 */
export function existingKeysStatement(t: MssqlTable, keys: readonly (readonly unknown[])[]): Statement {
  const table = quoteTable(t.name);
  const cols = t.key.map((k) => {
    const c = t.columns.find((col) => col.name === k);
    const b = c && binding(c);
    if (!b) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `key column ${k} of ${table} cannot be matched back as captured`, { table, column: k });
    return { name: quoteIdent(k), ...b };
  });
  if (keys.length === 0 || keys.length > keysPerStatement(cols.length)) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `between 1 and ${keysPerStatement(cols.length)} keys per statement, got ${keys.length}`);
  const params: SqlParam[] = [];
  const probes = keys.map((key, i) => {
    if (key.length !== cols.length) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `a captured key of ${table} has ${key.length} values, the key has ${cols.length} columns`, { table });
    const conds = cols.map((c, j) => {
      const name = `p${i}_${j}`;
      const v = key[j];
      params.push({ name, type: c.type, value: v === null || v === undefined ? null : typeof v === 'number' || typeof v === 'boolean' ? v : String(v) });
      return `t.${c.name} = ${c.expr(`@${name}`)}`;
    });
    return `SELECT ${i} AS i WHERE EXISTS (SELECT 1 FROM ${table} AS t WHERE ${conds.join(' AND ')})`;
  });
  return { sql: probes.join(' UNION ALL '), params };
}
