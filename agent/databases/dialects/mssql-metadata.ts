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

// ---------------------------------------------------------------------------------------------
// What `edge-agent sql test` reads (mssql-check.ts)

/**
 * Who the login is and the database-wide prerequisites, one row: `login`, `db_user`, `db`,
 * `server`, `snapshot_isolation` (sys.databases.snapshot_isolation_state: 1 on), `ct_enabled`
 * (a row in sys.change_tracking_databases), `cdc_enabled` (sys.databases.is_cdc_enabled).
 */
export function prerequisitesStatement(): Statement {
  return {
    sql:
      'SELECT SUSER_SNAME() AS login, USER_NAME() AS db_user, DB_NAME() AS db, CAST(SERVERPROPERTY(\'ProductVersion\') AS nvarchar(128)) AS server, ' +
      'd.snapshot_isolation_state AS snapshot_isolation, d.is_cdc_enabled AS cdc_enabled, ' +
      'CASE WHEN EXISTS (SELECT 1 FROM sys.change_tracking_databases AS c WHERE c.database_id = DB_ID()) THEN 1 ELSE 0 END AS ct_enabled ' +
      'FROM sys.databases AS d WHERE d.database_id = DB_ID()',
    params: [],
  };
}

/**
 * One table's access, one row: `object_id` (NULL: no such table, or not visible to the login),
 * `can_select`, `can_view_ct` (HAS_PERMS_BY_NAME: 1/0), `ct_enabled` (a row in
 * sys.change_tracking_tables).
 */
export function tableAccessStatement(table: string): Statement {
  return {
    sql:
      "SELECT OBJECT_ID(@table) AS object_id, HAS_PERMS_BY_NAME(@table, 'OBJECT', 'SELECT') AS can_select, " +
      "HAS_PERMS_BY_NAME(@table, 'OBJECT', 'VIEW CHANGE TRACKING') AS can_view_ct, " +
      'CASE WHEN EXISTS (SELECT 1 FROM sys.change_tracking_tables AS c WHERE c.object_id = OBJECT_ID(@table)) THEN 1 ELSE 0 END AS ct_enabled',
    params: [{ name: 'table', type: 'nvarchar(517)', value: quoteTable(table) }],
  };
}

/**
 * A CDC capture instance as this login sees it, one row: `min_lsn` (all zeros when the instance
 * does not exist or the login may not read it: the documented answer of fn_cdc_get_min_lsn).
 */
export function captureInstanceStatement(instance: string): Statement {
  return { sql: 'SELECT sys.fn_cdc_get_min_lsn(@instance) AS min_lsn', params: [{ name: 'instance', type: 'nvarchar(100)', value: instance }] };
}
