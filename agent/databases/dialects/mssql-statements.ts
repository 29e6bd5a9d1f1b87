import { createHash } from 'node:crypto';
import { ErpEdgeError } from '../../../common/errors.js';
import { isoUtc, localDateTimeToIso, pad, parseWall, utcMs, wallFromDate } from '../time-zone.js';

/**
 * SQL Server (#8): the T-SQL each capture mode runs, the decisions taken on what it returns, and the
 * mapping of the `mssql` package's (tedious') values into the wire's typed values. Everything here
 * is pure, so it is pinned by unit tests: SQL Server cannot run on the machines the tests run on.
 * The dialect module that owns the connection only binds the parameters and streams the rows.
 *
 * Rules every statement follows:
 * - Values are never put into the text: they are parameters (`@name`) with a T-SQL type spec the
 *   dialect maps onto the driver's types (`bigint`, `int`, `binary(8)`, `binary(10)`, `nvarchar(n)`,
 *   `varchar(n)`, or a key column's own declared spec such as `nvarchar(50)` or `uniqueidentifier`).
 * - Identifiers are bracket-quoted with `]` doubled; `dbo.OrderLines` is split on the dot.
 * - Column lists come from the table's column metadata, so the select list can cast the types the
 *   driver would otherwise return lossily (see `columnExpr`).
 */

// ---------------------------------------------------------------------------------------------
// Statements and identifiers

/** A parameter: `type` is a T-SQL type spec the dialect maps to the driver's type. */
export interface SqlParam {
  name: string;
  type: string;
  value: string | number | boolean | Buffer | null;
}

export interface Statement {
  readonly sql: string;
  readonly params: readonly SqlParam[];
}

/** Column metadata, as sys.columns / INFORMATION_SCHEMA.COLUMNS report it (base type names). */
export interface MssqlColumn {
  name: string;
  /** Base type name, e.g. `int`, `nvarchar`, `decimal`, `datetime2`, `rowversion` (case-insensitive). */
  type: string;
  /** Characters (CHARACTER_MAXIMUM_LENGTH) for char types, bytes for binary types; -1 = max. */
  length?: number | null;
  precision?: number | null;
  scale?: number | null;
}

export interface MssqlTable {
  /** `OrderLines`, `dbo.OrderLines`, or the parts already split (for names that contain a dot). */
  name: string | readonly string[];
  /** Primary key (or unique, not-null key) columns, in index order. */
  key: readonly string[];
  /** Columns to capture in ordinal order; must include the key columns. */
  columns: readonly MssqlColumn[];
}

/** sysname is nvarchar(128). */
const MAX_IDENTIFIER = 128;
/** A capture instance is sysname too, but SQL Server limits it to 100 characters. */
const MAX_CAPTURE_INSTANCE = 100;

function invalid(message: string, context: Record<string, unknown> = {}): ErpEdgeError {
  return new ErpEdgeError('ERP_CONFIG_INVALID', message, context);
}

/**
 * `[name]` with `]` doubled: inside brackets that is the only character with a meaning, so any
 * name (spaces, dots, quotes, `a]b`) is safe. Refused: empty names, names SQL Server cannot hold
 * (over 128 characters, control characters) and leading/trailing blanks, which SQL Server would
 * trim or keep depending on context: in a config they are a typo, not a table.
 */
export function quoteIdent(name: string, max = MAX_IDENTIFIER): string {
  if (typeof name !== 'string' || name.length === 0) throw invalid('empty SQL Server identifier', { name });
  if (name.length > max) throw invalid(`SQL Server identifier longer than ${max} characters: ${name.slice(0, 40)}…`, { name });
  if (/[\u0000-\u001f\u007f]/.test(name)) throw invalid(`SQL Server identifier with a control character: ${JSON.stringify(name)}`, { name });
  if (name.trim() !== name) throw invalid(`SQL Server identifier with leading or trailing blanks: ${JSON.stringify(name)}`, { name });
  return `[${name.replaceAll(']', ']]')}]`;
}

/**
 * A table name as `[schema].[table]` or `[table]`. A string is split on dots (so `dbo.Order Lines`
 * works); a name that itself contains a dot is given as an array of parts. Three-part names are
 * refused: CHANGETABLE and the CDC functions work in the current database only.
 */
export function quoteTable(name: string | readonly string[]): string {
  const parts = typeof name === 'string' ? name.split('.') : [...name];
  if (parts.length < 1 || parts.length > 2) {
    throw invalid(`SQL Server table name must be "table" or "schema.table": ${JSON.stringify(name)}`, { name });
  }
  return parts.map((p) => quoteIdent(p)).join('.');
}

/** Type names are put into CONVERT(...) and parameter specs: only plain words pass. */
function baseType(column: MssqlColumn): string {
  const t = column.type.trim().toLowerCase();
  if (!/^[a-z][a-z0-9_]*$/.test(t)) throw invalid(`unexpected SQL Server type name ${JSON.stringify(column.type)} for column ${column.name}`, { column: column.name });
  return t;
}

function intOr(v: number | null | undefined, fallback: number, what: string, column: MssqlColumn): number {
  if (v === null || v === undefined) return fallback;
  if (!Number.isInteger(v) || v < -1) throw invalid(`invalid ${what} ${v} for column ${column.name}`, { column: column.name });
  return v;
}

/** The column's declared type as T-SQL, e.g. `decimal(18,2)`, `nvarchar(50)`, `varbinary(max)`. */
export function typeSpec(column: MssqlColumn): string {
  const t = baseType(column);
  switch (t) {
    case 'decimal':
    case 'numeric':
      return `${t}(${intOr(column.precision, 18, 'precision', column)},${intOr(column.scale, 0, 'scale', column)})`;
    case 'char':
    case 'varchar':
    case 'nchar':
    case 'nvarchar':
    case 'binary':
    case 'varbinary': {
      if (column.length === null || column.length === undefined) return t;
      const n = intOr(column.length, 0, 'length', column);
      return `${t}(${n === -1 ? 'max' : n})`;
    }
    case 'datetime2':
    case 'datetimeoffset':
    case 'time':
      return `${t}(${intOr(column.scale, 7, 'scale', column)})`;
    default:
      return t;
  }
}

// ---------------------------------------------------------------------------------------------
// Select list: what the driver would return lossily is cast to text in the SELECT

/**
 * How a column is read. tedious returns decimal/numeric/money as JS numbers (a decimal(38,10) or a
 * money beyond 2^53/10^4 loses digits), and datetime/datetime2 as JS Dates: milliseconds only
 * (datetime2 holds 100 ns) and read in the zone of tedious' `useUTC` option. So those columns are
 * converted to text in the SELECT, exactly, with a fixed style that does not depend on the
 * session's language or DATEFORMAT:
 * - decimal/numeric: `CONVERT(varchar(41), x)`: 38 digits, sign, point, leading 0 when p = s.
 * - money/smallmoney: style 2, all four decimals (style 0, the default, rounds to two).
 * - datetime, datetime2, smalldatetime, datetimeoffset, time: style 121 (ODBC canonical,
 *   `yyyy-mm-dd hh:mi:ss.fffffff[ +hh:mi]`), every fraction digit the type holds.
 * - date: style 23 (`yyyy-mm-dd`).
 * The same text is what a keyset checkpoint stores, and `CONVERT(<type>, @k, <style>)` turns it
 * back into the column's type for the comparison (see `snapshotChunk`).
 */
interface TextCast {
  /** Parameter type for the text (varchar is enough: only digits, signs, separators). */
  text: string;
  style: number | null;
}

function textCast(column: MssqlColumn): TextCast | null {
  switch (baseType(column)) {
    case 'decimal':
    case 'numeric':
      return { text: 'varchar(41)', style: null };
    case 'money':
    case 'smallmoney':
      return { text: 'varchar(24)', style: 2 };
    case 'datetime':
    case 'datetime2':
    case 'smalldatetime':
    case 'time':
      return { text: 'varchar(27)', style: 121 };
    case 'datetimeoffset':
      return { text: 'varchar(34)', style: 121 };
    case 'date':
      return { text: 'char(10)', style: 23 };
    default:
      return null;
  }
}

function convertText(cast: TextCast, expr: string): string {
  return cast.style === null ? `CONVERT(${cast.text}, ${expr})` : `CONVERT(${cast.text}, ${expr}, ${cast.style})`;
}

/** `alias.[col]`, cast to text when the driver would lose precision, always `AS [col]`. */
export function columnExpr(column: MssqlColumn, alias: string): string {
  const ref = `${alias}.${quoteIdent(column.name)}`;
  const cast = textCast(column);
  return `${cast ? convertText(cast, ref) : ref} AS ${quoteIdent(column.name)}`;
}

/** The select list for a table's columns; `aliasFor` says which table alias each column is read from. */
export function selectList(columns: readonly MssqlColumn[], aliasFor: (column: MssqlColumn) => string = () => 't'): string {
  return columns.map((c) => columnExpr(c, aliasFor(c))).join(', ');
}

interface CheckedTable {
  table: string;
  key: MssqlColumn[];
  columns: readonly MssqlColumn[];
}

function checkTable(t: MssqlTable): CheckedTable {
  const table = quoteTable(t.name);
  if (t.key.length === 0) throw invalid(`table ${table} has no key columns`, { table });
  const names = new Set<string>();
  for (const c of t.columns) {
    quoteIdent(c.name);
    baseType(c);
    // SQL Server compares identifiers case-insensitively under the usual collations.
    const folded = c.name.toLowerCase();
    if (names.has(folded)) throw invalid(`column ${c.name} listed twice for ${table}`, { table, column: c.name });
    names.add(folded);
  }
  const key = t.key.map((k) => {
    const c = t.columns.find((col) => col.name === k);
    if (!c) throw invalid(`key column ${k} is not among the columns of ${table}`, { table, column: k });
    return c;
  });
  if (new Set(t.key).size !== t.key.length) throw invalid(`key column listed twice for ${table}`, { table });
  return { table, key, columns: t.columns };
}

function keyOrder(key: readonly MssqlColumn[], alias: string): string {
  return key.map((k) => `${alias}.${quoteIdent(k.name)}`).join(', ');
}

function limitParam(limit: number): SqlParam {
  if (!Number.isSafeInteger(limit) || limit < 1) throw invalid(`batch limit must be a positive integer, got ${limit}`);
  return { name: 'limit', type: 'int', value: limit };
}

// ---------------------------------------------------------------------------------------------
// Versions: bigint as decimal strings, binary as 0x + upper-case hex

const DECIMAL_BIGINT = /^-?\d+$/;

function toBigInt(v: string, what: string): bigint {
  if (typeof v !== 'string' || !DECIMAL_BIGINT.test(v)) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `${what} is not an integer: ${JSON.stringify(v)}`);
  return BigInt(v);
}

/** `0x` + upper-case hex of the bytes. */
export function binaryHex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').toUpperCase()}`;
}

/** A binary value given as `0x…` hex (any case) with exactly `bytes` bytes, normalised to upper case. */
export function normaliseHex(hex: string, bytes: number, what: string): string {
  const m = /^0x([0-9a-fA-F]*)$/.exec(typeof hex === 'string' ? hex : '');
  if (!m || m[1]!.length !== bytes * 2) {
    throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `${what} must be 0x followed by ${bytes * 2} hex digits, got ${JSON.stringify(hex)}`);
  }
  return `0x${m[1]!.toUpperCase()}`;
}

function hexBuffer(hex: string): Buffer {
  return Buffer.from(hex.slice(2), 'hex');
}

// ---------------------------------------------------------------------------------------------
// Mode change_tracking

/**
 * Change Tracking reads run in one snapshot-isolation transaction, on one connection (an `mssql`
 * Transaction, or these statements sent on one pooled connection in order):
 *
 *   begin      SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION
 *   versions   changeTrackingVersions(): current and min valid version
 *   (decide)   decideChangeTracking(saved, min valid, current)
 *   poll       changeTrackingPoll(table, from = saved, to = current), streamed
 *   commit     COMMIT TRANSACTION; SET TRANSACTION ISOLATION LEVEL READ COMMITTED
 *
 * Why snapshot: the min-valid check and the CHANGETABLE read then see the same database state, so
 * the automatic cleanup cannot remove change rows between the check and the read (Microsoft's
 * documented pattern), and the join back to the table sees each row as of the version the poll
 * stops at. Why `to` is the current version of the same transaction: changes committed after the
 * transaction began are invisible to it, so their versions (> to) are left for the next poll, which
 * starts from the saved `to`. The isolation level is set back because it is a session setting and
 * the connection returns to a pool. Needs `ALTER DATABASE … SET ALLOW_SNAPSHOT_ISOLATION ON`
 * (error 3952 otherwise). On failure: `rollback`.
 */
export const SNAPSHOT_TRANSACTION = {
  begin: [{ sql: 'SET TRANSACTION ISOLATION LEVEL SNAPSHOT', params: [] }, { sql: 'BEGIN TRANSACTION', params: [] }],
  commit: [{ sql: 'COMMIT TRANSACTION', params: [] }, { sql: 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED', params: [] }],
  rollback: [{ sql: 'IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION', params: [] }, { sql: 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED', params: [] }],
} as const satisfies Record<string, readonly Statement[]>;

/**
 * Current and min valid version in one row (`current_version`, `min_valid_version`, both bigint,
 * which tedious returns as decimal strings). NULLs mean change tracking is not enabled on the
 * database, or on the table / the table does not exist: `decideChangeTracking` says which.
 * The table name is a parameter (its quoted form) for OBJECT_ID, never text.
 */
export function changeTrackingVersions(table: string | readonly string[]): Statement {
  return {
    sql: 'SELECT CHANGE_TRACKING_CURRENT_VERSION() AS current_version, CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@table)) AS min_valid_version',
    params: [{ name: 'table', type: 'nvarchar(517)', value: quoteTable(table) }],
  };
}

/**
 * The changes after `from` up to and including `to`: one row per changed key (Change Tracking
 * keeps the net change), with SYS_CHANGE_VERSION, SYS_CHANGE_OPERATION (I/U/D), the key columns
 * from `ct` (a deleted row has no row in `t`) and the other columns from `t` (NULL for a delete).
 * The `<= @to` bound keeps the poll exact under any isolation level; under snapshot it is a no-op.
 * No TOP: rows of one version (one transaction) must not be split across polls, as CHANGETABLE can
 * only resume after a whole version; the dialect streams the rows instead.
 * Checkpoint after the poll: `to`.
 */
export function changeTrackingPoll(t: MssqlTable, from: string, to: string): Statement {
  const { table, key, columns } = checkTable(t);
  toBigInt(from, 'from version');
  toBigInt(to, 'to version');
  const keyNames = new Set(key.map((k) => k.name));
  const list = selectList(columns, (c) => (keyNames.has(c.name) ? 'ct' : 't'));
  const join = key.map((k) => `t.${quoteIdent(k.name)} = ct.${quoteIdent(k.name)}`).join(' AND ');
  return {
    sql:
      `SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ${list} ` +
      `FROM CHANGETABLE(CHANGES ${table}, @last) AS ct ` +
      `LEFT OUTER JOIN ${table} AS t ON ${join} ` +
      `WHERE ct.SYS_CHANGE_VERSION <= @to ` +
      `ORDER BY ct.SYS_CHANGE_VERSION, ${keyOrder(key, 'ct')}`,
    params: [
      { name: 'last', type: 'bigint', value: from },
      { name: 'to', type: 'bigint', value: to },
    ],
  };
}

/** SYS_CHANGE_OPERATION → op. */
export function changeTrackingOperation(op: string): 'insert' | 'update' | 'delete' {
  switch (op?.trim()) {
    case 'I':
      return 'insert';
    case 'U':
      return 'update';
    case 'D':
      return 'delete';
    default:
      throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `unknown SYS_CHANGE_OPERATION ${JSON.stringify(op)}`);
  }
}

export type CaptureDecision<V> =
  /** No checkpoint: load the table (snapshot mode), then hand over to the change mode. */
  | { kind: 'snapshot' }
  /** The checkpoint cannot be continued from: emit a `gap` event for the table, then re-snapshot it. Never skip silently. */
  | { kind: 'gap'; reason: 'below_min_valid' | 'ahead_of_database'; saved: V; min: V; current: V }
  /** Read the changes in (from, to]; `to` is the checkpoint afterwards. */
  | { kind: 'poll'; from: V; to: V }
  /** Nothing new since the checkpoint. */
  | { kind: 'idle' };

/**
 * What to do before a Change Tracking poll. `saved` is the `to` of the last poll (all changes up to
 * and including it are emitted); CHANGETABLE(CHANGES t, @last) returns versions > @last and is
 * valid only when @last >= CHANGE_TRACKING_MIN_VALID_VERSION: equal is still complete. A saved
 * version below it fell out of retention (or tracking was disabled and enabled again); one above
 * the current version means the database went back in time (restore): both are gaps. Versions are
 * bigint: compared as BigInt, never as Number.
 */
export function decideChangeTracking(saved: string | null, minValid: string | null, current: string | null): CaptureDecision<string> {
  if (current === null) {
    throw new ErpEdgeError('ERP_COLLECTOR_FAILED', 'change tracking is not enabled on the database: ALTER DATABASE <db> SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON)');
  }
  if (minValid === null) {
    throw new ErpEdgeError('ERP_COLLECTOR_FAILED', 'change tracking is not enabled on the table, or the table does not exist: ALTER TABLE <table> ENABLE CHANGE_TRACKING');
  }
  const cur = toBigInt(current, 'CHANGE_TRACKING_CURRENT_VERSION()');
  const min = toBigInt(minValid, 'CHANGE_TRACKING_MIN_VALID_VERSION()');
  if (saved === null) return { kind: 'snapshot' };
  const s = toBigInt(saved, 'saved change tracking version');
  if (s < min) return { kind: 'gap', reason: 'below_min_valid', saved, min: minValid, current };
  if (s > cur) return { kind: 'gap', reason: 'ahead_of_database', saved, min: minValid, current };
  if (s === cur) return { kind: 'idle' };
  return { kind: 'poll', from: saved, to: current };
}

// ---------------------------------------------------------------------------------------------
// Mode rowversion

const ROWVERSION_BYTES = 8;
/** Lower bound before anything was read: every rowversion is above it. */
export const ROWVERSION_START = '0x0000000000000000';

/**
 * The rowversion right after `hex`, i.e. the checkpoint stored after emitting a row with that
 * rowversion. Checkpoint semantics of this mode: the checkpoint is the LOWEST rowversion NOT yet
 * read (last emitted + 1), and the poll reads `rv >= @lo`. Rowversions are unique in a database
 * and a row gets a new, higher one on every change, so a row with rv = last emitted is that very
 * row unchanged: storing `last` with `>=` would repeat it every poll, `last` with `>` is the same
 * range as `last + 1` with `>=`; the +1 form lets the initial bound be the plain `0x00…00` and
 * a bound taken from MIN_ACTIVE_ROWVERSION() (itself "lowest not yet committed") be stored as is.
 */
export function nextRowversion(hex: string): string {
  const v = BigInt(normaliseHex(hex, ROWVERSION_BYTES, 'rowversion')) + 1n;
  if (v >= 1n << 64n) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', 'rowversion overflow');
  return `0x${v.toString(16).toUpperCase().padStart(16, '0')}`;
}

/**
 * Up to `limit` rows with a rowversion in [lo, MIN_ACTIVE_ROWVERSION()), oldest first.
 * MIN_ACTIVE_ROWVERSION() is the lowest rowversion of a transaction still open (or the next one to
 * be given out): everything below it is committed, so a transaction that took its rowversion
 * early and commits late is waited for, never passed over. Checkpoint after a batch:
 * `nextRowversion(last row's rv)`; a batch shorter than `limit` means caught up. This mode cannot
 * see deletes (delete reconciliation does). The rowversion column is read even when not listed.
 */
export function rowversionPoll(t: MssqlTable, rowversionColumn: string, lo: string, limit: number): Statement {
  const { table, columns } = checkTable(t);
  const rv = `t.${quoteIdent(rowversionColumn)}`;
  const listed = columns.some((c) => c.name === rowversionColumn);
  const list = (listed ? '' : `${rv} AS ${quoteIdent(rowversionColumn)}, `) + selectList(columns);
  return {
    sql: `SELECT TOP (@limit) ${list} FROM ${table} AS t WHERE ${rv} >= @lo AND ${rv} < MIN_ACTIVE_ROWVERSION() ORDER BY ${rv}`,
    params: [limitParam(limit), { name: 'lo', type: 'binary(8)', value: hexBuffer(normaliseHex(lo, ROWVERSION_BYTES, 'rowversion lower bound')) }],
  };
}

/** The bound to store before a snapshot of a rowversion table, so the change mode starts where the snapshot's view began. */
export function rowversionBaseline(): Statement {
  return { sql: 'SELECT MIN_ACTIVE_ROWVERSION() AS min_active_rowversion', params: [] };
}

// ---------------------------------------------------------------------------------------------
// Mode cdc

const LSN_BYTES = 10;
const ZERO_LSN = `0x${'0'.repeat(LSN_BYTES * 2)}`;

/**
 * Compare two LSNs (binary(10), as `0x` + 20 hex digits in any case): equal-length hex compares
 * like the bytes, which is how SQL Server orders binary values.
 */
export function compareLsn(a: string, b: string): -1 | 0 | 1 {
  const x = normaliseHex(a, LSN_BYTES, 'LSN');
  const y = normaliseHex(b, LSN_BYTES, 'LSN');
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * `cdc.fn_cdc_get_all_changes_<instance>`: the instance name is part of a function name, so it is
 * checked as an identifier (at most 100 characters, as SQL Server allows) and the whole function
 * name is bracket-quoted.
 */
export function cdcFunctionName(captureInstance: string): string {
  quoteIdent(captureInstance, MAX_CAPTURE_INSTANCE);
  return `[cdc].${quoteIdent(`fn_cdc_get_all_changes_${captureInstance}`)}`;
}

/**
 * The capture instance's min LSN, the database's max LSN and, when there is a checkpoint, the LSN
 * right after it (the next poll's lower bound: the functions' range is inclusive at both ends).
 * One row: `min_lsn`, `max_lsn`, `next_lsn` (binary(10), NULL next when `saved` is null). The
 * capture instance is a parameter here (a value, not a name).
 */
export function cdcBounds(captureInstance: string, saved: string | null): Statement {
  quoteIdent(captureInstance, MAX_CAPTURE_INSTANCE);
  return {
    sql: 'SELECT sys.fn_cdc_get_min_lsn(@instance) AS min_lsn, sys.fn_cdc_get_max_lsn() AS max_lsn, sys.fn_cdc_increment_lsn(@lsn) AS next_lsn',
    params: [
      { name: 'instance', type: 'nvarchar(100)', value: captureInstance },
      { name: 'lsn', type: 'binary(10)', value: saved === null ? null : hexBuffer(normaliseHex(saved, LSN_BYTES, 'saved LSN')) },
    ],
  };
}

/**
 * What to do before a CDC poll. `saved` is the `to` (max LSN) of the last poll; `next` the
 * fn_cdc_increment_lsn of it from `cdcBounds`. The changes after `saved` are complete only if
 * cleanup has not passed it: `saved >= min` (equal: the next LSN is above min). Below min is a gap
 * (fn_cdc_get_all_changes would also refuse the range with error 313); above max means the
 * database went back in time. A min LSN of zero means the capture instance does not exist or the
 * login may not read it; a NULL/zero max LSN that CDC is not enabled (or the capture job never ran).
 * If cleanup passes `next` between this decision and the poll, the poll fails with 313 and the
 * next decision reports the gap: nothing is skipped silently.
 */
export function decideCdc(
  saved: string | null,
  bounds: { min: string | null; max: string | null; next: string | null },
): CaptureDecision<string> {
  if (bounds.max === null || compareLsn(bounds.max, ZERO_LSN) === 0) {
    throw new ErpEdgeError('ERP_COLLECTOR_FAILED', 'CDC has no max LSN: it is not enabled on the database (EXEC sys.sp_cdc_enable_db) or SQL Server Agent has not run its capture job');
  }
  if (bounds.min === null || compareLsn(bounds.min, ZERO_LSN) === 0) {
    throw new ErpEdgeError('ERP_COLLECTOR_FAILED', 'the CDC capture instance does not exist or this login may not read it: EXEC sys.sp_cdc_enable_table … / grant the gating role');
  }
  if (saved === null) return { kind: 'snapshot' };
  const min = normaliseHex(bounds.min, LSN_BYTES, 'min LSN');
  const max = normaliseHex(bounds.max, LSN_BYTES, 'max LSN');
  const s = normaliseHex(saved, LSN_BYTES, 'saved LSN');
  if (compareLsn(s, min) < 0) return { kind: 'gap', reason: 'below_min_valid', saved: s, min, current: max };
  if (compareLsn(s, max) > 0) return { kind: 'gap', reason: 'ahead_of_database', saved: s, min, current: max };
  if (compareLsn(s, max) === 0) return { kind: 'idle' };
  if (bounds.next === null) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', 'fn_cdc_increment_lsn returned NULL for a saved LSN');
  return { kind: 'poll', from: normaliseHex(bounds.next, LSN_BYTES, 'next LSN'), to: max };
}

/**
 * The changes in [from, to] (both inclusive: `from` is the increment of the saved LSN), in commit
 * order, with `__$start_lsn`, `__$seqval`, `__$operation` and the captured columns. `N'all'`
 * returns one row per insert/delete and the after image of an update. Checkpoint after the poll: `to`.
 */
export function cdcPoll(captureInstance: string, columns: readonly MssqlColumn[], from: string, to: string): Statement {
  const fn = cdcFunctionName(captureInstance);
  for (const c of columns) quoteIdent(c.name);
  const list = selectList(columns, () => 'c');
  return {
    sql:
      `SELECT c.[__$start_lsn], c.[__$seqval], c.[__$operation], ${list} ` +
      `FROM ${fn}(@from_lsn, @to_lsn, N'all') AS c ` +
      `ORDER BY c.[__$start_lsn], c.[__$seqval], c.[__$operation]`,
    params: [
      { name: 'from_lsn', type: 'binary(10)', value: hexBuffer(normaliseHex(from, LSN_BYTES, 'from LSN')) },
      { name: 'to_lsn', type: 'binary(10)', value: hexBuffer(normaliseHex(to, LSN_BYTES, 'to LSN')) },
    ],
  };
}

/** `__$operation` → op; 3 (update, before image) → null: skipped (only `all update old` returns it). */
export function cdcOperation(code: number): 'insert' | 'update' | 'delete' | null {
  switch (code) {
    case 1:
      return 'delete';
    case 2:
      return 'insert';
    case 3:
      return null;
    case 4:
      return 'update';
    default:
      throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `unknown CDC __$operation ${code}`);
  }
}

/** The version of a CDC change in record ids: one transaction (start LSN) can change a key twice, the seqval tells them apart. */
export function cdcVersion(startLsn: Uint8Array | string, seqval: Uint8Array | string): string {
  const hex = (v: Uint8Array | string) => normaliseHex(typeof v === 'string' ? v : binaryHex(v), LSN_BYTES, 'LSN');
  return `${hex(startLsn)}:${hex(seqval)}`;
}

// ---------------------------------------------------------------------------------------------
// Mode snapshot: keyset pagination by key

/**
 * One chunk of the initial load, resumable: `after` is the key of the last row of the previous
 * chunk as `keysetCheckpoint` stored it (null for the first chunk, which has no WHERE). SQL Server
 * has no row-value comparison, so `(a, b) > (@k0, @k1)` is expanded to
 * `(a > @k0) OR (a = @k0 AND b > @k1)`. Comparison and ORDER BY both run on the server under the
 * column's collation, so the pages neither overlap nor leave holes. Key columns read as text
 * (decimal, dates) are compared through `CONVERT(<type>, @k, <style>)`; the others bind with the
 * column's own type (a varchar column bound as nvarchar would be converted and lose its index seek).
 *
 * `changeTrackingVersion`: also read each row's last change version
 * (`CHANGETABLE(VERSION …)` → `SYS_CHANGE_VERSION`, NULL when unknown), so a row loaded by the
 * snapshot and replayed by the first poll after it carries the same version, hence the same id.
 */
export function snapshotChunk(
  t: MssqlTable,
  after: readonly (string | number | boolean | null)[] | null,
  limit: number,
  options: { changeTrackingVersion?: boolean } = {},
): Statement {
  const { table, key, columns } = checkTable(t);
  const params: SqlParam[] = [limitParam(limit)];
  let where = '';
  if (after !== null) {
    if (after.length !== key.length) throw invalid(`snapshot checkpoint has ${after.length} key values, ${table} has ${key.length} key columns`, { table });
    const operand = key.map((k, i) => {
      const p = keysetParam(k, after[i] ?? null, `k${i}`);
      params.push(p);
      const cast = textCast(k);
      if (!cast) return `@${p.name}`;
      return cast.style === null || cast.style === 2 ? `CONVERT(${typeSpec(k)}, @${p.name})` : `CONVERT(${typeSpec(k)}, @${p.name}, ${cast.style})`;
    });
    const disjuncts = key.map((k, i) => {
      const eq = key.slice(0, i).map((e, j) => `t.${quoteIdent(e.name)} = ${operand[j]}`);
      return `(${[...eq, `t.${quoteIdent(k.name)} > ${operand[i]}`].join(' AND ')})`;
    });
    where = ` WHERE ${disjuncts.join(' OR ')}`;
  }
  let list = selectList(columns);
  let from = `${table} AS t`;
  if (options.changeTrackingVersion) {
    const cols = key.map((k) => quoteIdent(k.name)).join(', ');
    const vals = keyOrder(key, 't');
    list = `v.SYS_CHANGE_VERSION, ${list}`;
    from += ` CROSS APPLY CHANGETABLE(VERSION ${table}, (${cols}), (${vals})) AS v`;
  }
  return { sql: `SELECT TOP (@limit) ${list} FROM ${from}${where} ORDER BY ${keyOrder(key, 't')}`, params };
}

/**
 * The key of a row as the SELECT returned it, made JSON-safe for the checkpoint: text-cast columns
 * are already strings, binary keys become `0x…` hex, bigint stays a string (tedious' form).
 */
export function keysetCheckpoint(t: MssqlTable, row: Readonly<Record<string, unknown>>): (string | number | boolean | null)[] {
  const { key } = checkTable(t);
  return key.map((k) => {
    const v = row[k.name];
    if (v === null || v === undefined) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `key column ${k.name} is NULL: snapshot needs a not-null unique key`);
    if (v instanceof Uint8Array) return binaryHex(v);
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `key column ${k.name} returned an unexpected ${Object.prototype.toString.call(v)}: read it through selectList()`);
  });
}

function keysetParam(k: MssqlColumn, v: string | number | boolean | null, name: string): SqlParam {
  const cast = textCast(k);
  if (cast) return { name, type: cast.text, value: v === null ? null : String(v) };
  const t = baseType(k);
  if ((t === 'binary' || t === 'varbinary' || t === 'rowversion' || t === 'timestamp') && typeof v === 'string') {
    const m = /^0x((?:[0-9a-fA-F]{2})*)$/.exec(v);
    if (!m) throw invalid(`snapshot checkpoint for ${k.name} is not 0x hex`, { column: k.name });
    return { name, type: t === 'rowversion' || t === 'timestamp' ? 'binary(8)' : typeSpec(k), value: Buffer.from(m[1]!, 'hex') };
  }
  return { name, type: typeSpec(k), value: v };
}

// ---------------------------------------------------------------------------------------------
// Row mapping: tedious values → wire values

export type WireValue = string | number | boolean | null;

function badValue(column: MssqlColumn, value: unknown, expected: string): ErpEdgeError {
  return new ErpEdgeError('ERP_RECORD_INVALID', `column ${column.name} (${column.type}): expected ${expected}, got ${value instanceof Date ? 'Date' : typeof value}${typeof value === 'number' ? ` ${value}` : ''}`, {
    column: column.name,
    type: column.type,
  });
}

export interface RowMappingOptions {
  /** IANA zone of the ERP server's clock, for datetime/datetime2/smalldatetime (which carry none). */
  timeZone: string;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const DECIMAL_TEXT = /^-?(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * One value as the wire carries it (docs/wire.md, #8): decimals as exact strings, date-times as
 * ISO-8601 UTC, dates as YYYY-MM-DD, binary as base64, rowversion as 0x + 16 upper-case hex digits,
 * uniqueidentifier lower case, bit as boolean, bigint as a number while exact (|v| ≤ 2^53 - 1),
 * else as its decimal string. A decimal arriving as a JS number was already rounded by the driver:
 * refused, so a select list that forgot the cast is a loud error, not a silent wrong amount.
 */
export function mapMssqlValue(column: MssqlColumn, value: unknown, options: RowMappingOptions): WireValue {
  if (value === null || value === undefined) return null;
  const t = baseType(column);
  switch (t) {
    case 'bit':
      if (typeof value === 'boolean') return value;
      if (value === 0 || value === 1) return value === 1;
      throw badValue(column, value, 'boolean');
    case 'tinyint':
    case 'smallint':
    case 'int':
    case 'real':
    case 'float':
      if (typeof value === 'number') return value;
      if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
      throw badValue(column, value, 'number');
    case 'bigint': {
      let b: bigint;
      if (typeof value === 'bigint') b = value;
      else if (typeof value === 'string' && DECIMAL_BIGINT.test(value.trim())) b = BigInt(value.trim());
      else if (typeof value === 'number' && Number.isSafeInteger(value)) b = BigInt(value);
      else throw badValue(column, value, 'bigint (string)');
      return b <= MAX_SAFE && b >= -MAX_SAFE ? Number(b) : b.toString();
    }
    case 'decimal':
    case 'numeric':
    case 'money':
    case 'smallmoney': {
      if (typeof value !== 'string') throw badValue(column, value, 'text (read decimals through selectList(), which converts them in the SELECT)');
      const s = value.trim();
      if (!DECIMAL_TEXT.test(s)) throw badValue(column, value, 'decimal text');
      return s;
    }
    case 'uniqueidentifier':
      if (typeof value === 'string') return value.toLowerCase();
      throw badValue(column, value, 'string');
    case 'date': {
      const w = typeof value === 'string' ? parseWall(value) : value instanceof Date ? wallFromDate(value) : null;
      if (!w) throw badValue(column, value, 'date');
      return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}`;
    }
    case 'datetime':
    case 'datetime2':
    case 'smalldatetime':
      if (typeof value === 'string' || value instanceof Date) return localDateTimeToIso(value, options.timeZone);
      throw badValue(column, value, 'date-time');
    case 'datetimeoffset': {
      if (value instanceof Date) return value.toISOString();
      const w = typeof value === 'string' ? parseWall(value) : null;
      if (!w || w.offset === null) throw badValue(column, value, 'date-time with offset');
      return isoUtc(utcMs(w.y, w.mo, w.d, w.h, w.mi, w.s) - w.offset * 60_000, w.frac);
    }
    case 'rowversion':
    case 'timestamp':
      if (value instanceof Uint8Array && value.byteLength === ROWVERSION_BYTES) return binaryHex(value);
      throw badValue(column, value, '8 bytes');
    default:
      // binary, varbinary, image, and the CLR types tedious hands as bytes (geography, hierarchyid).
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      if (typeof value === 'string' || typeof value === 'boolean') return value;
      if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
      if (typeof value === 'bigint') return value.toString();
      if (value instanceof Date) return value.toISOString();
      throw badValue(column, value, 'a scalar');
  }
}

/** A row (column name → tedious value) as a wire object, columns in the given order. */
export function mapMssqlRow(columns: readonly MssqlColumn[], row: Readonly<Record<string, unknown>>, options: RowMappingOptions): Record<string, WireValue> {
  const out: Record<string, WireValue> = {};
  for (const c of columns) out[c.name] = mapMssqlValue(c, row[c.name], options);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Record identity and schema version

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Schema version of a table as read: 16 hex digits of the SHA-256 of the ordered `name:type` list
 * (type with its length/precision/scale, since they change the values). A column added, dropped,
 * renamed, retyped or reordered changes it; the engine logs and flags the change.
 */
export function schemaVersion(columns: readonly MssqlColumn[]): string {
  return sha256(JSON.stringify(columns.map((c) => `${c.name}:${typeSpec(c)}`))).slice(0, 16);
}
