import { quoteTable, type MssqlColumn, type Statement } from './mssql-statements.js';

/**
 * The metadata statements the SQL Server capture reads (pure, like mssql-statements.ts): a
 * table's columns and its primary key, by OBJECT_ID of the quoted name given as a parameter.
 */

/**
 * Columns in ordinal order with their base type: TYPE_NAME(system_type_id) names a user-defined
 * alias type's underlying type (and `timestamp` for rowversion). max_length is bytes: halved for
 * nchar/nvarchar (MssqlColumn.length counts characters), -1 for max.
 */
export function columnsStatement(table: string): Statement {
  return {
    sql:
      'SELECT c.name AS name, TYPE_NAME(c.system_type_id) AS type, ' +
      "CASE WHEN TYPE_NAME(c.system_type_id) IN ('nchar', 'nvarchar') AND c.max_length > 0 THEN c.max_length / 2 ELSE c.max_length END AS length, " +
      'c.precision AS precision, c.scale AS scale ' +
      'FROM sys.columns AS c WHERE c.object_id = OBJECT_ID(@table) ORDER BY c.column_id',
    params: [{ name: 'table', type: 'nvarchar(517)', value: quoteTable(table) }],
  };
}

/** The primary key's columns in key order. */
export function primaryKeyStatement(table: string): Statement {
  return {
    sql:
      'SELECT c.name AS name FROM sys.indexes AS i ' +
      'JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id ' +
      'JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id ' +
      'WHERE i.object_id = OBJECT_ID(@table) AND i.is_primary_key = 1 ORDER BY ic.key_ordinal',
    params: [{ name: 'table', type: 'nvarchar(517)', value: quoteTable(table) }],
  };
}

/** A sys.columns row (columnsStatement) as MssqlColumn. */
export function columnFromRow(row: Record<string, unknown>): MssqlColumn {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return { name: String(row.name), type: String(row.type), length: num(row.length), precision: num(row.precision), scale: num(row.scale) };
}
