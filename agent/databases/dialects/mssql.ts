import sql from 'mssql';
import { ErpEdgeError } from '../../../common/errors.js';
import type { MssqlConnectOptions, MssqlRows, MssqlRunner, MssqlSession } from '../mssql-runner.js';
import { columnFromRow, columnsStatement, primaryKeyStatement } from './mssql-metadata.js';
import type { Statement } from './mssql-statements.js';

/**
 * The only module that touches the `mssql` package (loaded lazily by sql.ts and check.ts, so
 * `validate` never loads it): a pool, parameters bound with the type each Statement names, and a
 * snapshot-isolation transaction. Everything else is in mssql-statements.ts (what to run) and
 * mssql-capture.ts (what to do with it), which the tests drive with a fake runner.
 */

type SqlType = sql.ISqlType | (() => sql.ISqlType);
type Types = Pick<
  typeof sql,
  | 'BigInt' | 'Int' | 'SmallInt' | 'TinyInt' | 'Bit' | 'Float' | 'Real' | 'Decimal' | 'Numeric' | 'Money' | 'SmallMoney'
  | 'Char' | 'VarChar' | 'NChar' | 'NVarChar' | 'Binary' | 'VarBinary' | 'UniqueIdentifier'
  | 'Date' | 'DateTime' | 'SmallDateTime' | 'DateTime2' | 'DateTimeOffset' | 'Time' | 'MAX'
>;

const SPEC = /^([a-z0-9_]+)(?:\((max|\d+)(?:,\s*(\d+))?\))?$/;

/**
 * The driver type for a Statement parameter's T-SQL spec (`bigint`, `binary(8)`, `nvarchar(517)`,
 * `decimal(18,2)`, a key column's own spec). A spec it does not know is an error, not a guess: a
 * wrongly typed parameter would compare through a conversion and lose the index seek, or the value.
 * `types` is the `mssql` module (a parameter so the mapping is tested without loading a pool).
 */
export function mssqlType(spec: string, types: Types = sql): sql.ISqlType {
  const m = SPEC.exec(spec.trim().toLowerCase());
  if (!m) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `unknown SQL Server parameter type ${JSON.stringify(spec)}`, { spec });
  const [, base, arg, scaleArg] = m;
  const length = arg === undefined ? undefined : arg === 'max' ? types.MAX : Number(arg);
  const n = arg === undefined ? undefined : Number(arg);
  const scale = scaleArg === undefined ? undefined : Number(scaleArg);
  const t = ((): SqlType | undefined => {
    switch (base) {
      case 'bigint': return types.BigInt();
      case 'int': return types.Int();
      case 'smallint': return types.SmallInt();
      case 'tinyint': return types.TinyInt();
      case 'bit': return types.Bit();
      case 'float': return types.Float();
      case 'real': return types.Real();
      case 'money': return types.Money();
      case 'smallmoney': return types.SmallMoney();
      case 'decimal': return types.Decimal(n ?? 18, scale ?? 0);
      case 'numeric': return types.Numeric(n ?? 18, scale ?? 0);
      case 'char': return types.Char(length ?? 1);
      case 'varchar': return types.VarChar(length ?? 1);
      case 'nchar': return types.NChar(length ?? 1);
      case 'nvarchar': return types.NVarChar(length ?? 1);
      // binary(n) takes a length at run time although @types/mssql declares none.
      case 'binary': return (types.Binary as unknown as (l?: number) => sql.ISqlType)(length ?? 1);
      case 'varbinary': return types.VarBinary(length ?? 1);
      case 'rowversion':
      case 'timestamp': return (types.Binary as unknown as (l?: number) => sql.ISqlType)(8);
      case 'uniqueidentifier': return types.UniqueIdentifier();
      case 'date': return types.Date();
      case 'datetime': return types.DateTime();
      case 'smalldatetime': return types.SmallDateTime();
      case 'datetime2': return types.DateTime2(n ?? 7);
      case 'datetimeoffset': return types.DateTimeOffset(n ?? 7);
      case 'time': return types.Time(n ?? 7);
      default: return undefined;
    }
  })();
  if (!t) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `unknown SQL Server parameter type ${JSON.stringify(spec)}`, { spec });
  return typeof t === 'function' ? t() : t;
}

async function run(request: sql.Request, stmt: Statement): Promise<MssqlRows> {
  for (const p of stmt.params) request.input(p.name, mssqlType(p.type), p.value);
  const r = await request.query<Record<string, unknown>>(stmt.sql);
  return r.recordset ?? [];
}

/** What streamPages uses of an mssql Request (an interface so it is tested with an emitter). */
export interface StreamingRequest {
  stream: boolean;
  input(name: string, type: sql.ISqlType, value: unknown): unknown;
  on(event: 'row', listener: (row: Record<string, unknown>) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'done', listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
  cancel(): unknown;
  query(command: string): unknown;
}

/**
 * The rows of `stmt` in pages (MssqlStream): the request is paused while a page is handed over,
 * so at most one page is held. A failing `onPage` cancels the request; its error is the one passed
 * on (the cancel's own error is not). The last, shorter page is handed over once the server is done.
 */
export function streamPages(request: StreamingRequest, stmt: Statement, pageSize: number, onPage: (rows: MssqlRows) => Promise<void>): Promise<void> {
  for (const p of stmt.params) request.input(p.name, mssqlType(p.type), p.value);
  request.stream = true;
  return new Promise((resolve, reject) => {
    let page: MssqlRows = [];
    let failed: unknown;
    let handing: Promise<void> = Promise.resolve();
    request.on('row', (row) => {
      if (failed !== undefined) return;
      page.push(row);
      if (page.length < pageSize) return;
      const full = page;
      page = [];
      request.pause();
      handing = handing
        .then(() => onPage(full))
        .then(
          () => {
            request.resume();
          },
          (err: unknown) => {
            failed = err;
            request.cancel();
          },
        );
    });
    request.on('error', (err) => {
      failed ??= err;
    });
    request.on('done', () => {
      handing
        .then(async () => {
          if (failed !== undefined) throw failed;
          if (page.length > 0) await onPage(page);
        })
        .then(resolve, reject);
    });
    request.query(stmt.sql);
  });
}

function session(request: () => sql.Request): MssqlSession {
  return {
    query: (stmt) => run(request(), stmt),
    stream: (stmt, pageSize, onPage) => streamPages(request() as unknown as StreamingRequest, stmt, pageSize, onPage),
  };
}

export async function connect(opts: MssqlConnectOptions): Promise<MssqlRunner> {
  const pool = new sql.ConnectionPool({
    server: opts.host,
    ...(opts.port === undefined ? {} : { port: opts.port }),
    database: opts.database,
    user: opts.user,
    password: opts.password,
    connectionTimeout: opts.connectTimeoutMs,
    pool: { min: 0, max: opts.poolSize },
    // useUTC: zone-less datetime values arrive with the wall clock in the UTC fields, which
    // mapMssqlRow reads (the select lists cast them to text anyway).
    options: { encrypt: opts.encrypt, trustServerCertificate: opts.trustServerCertificate, useUTC: true, appName: 'erp-edge' },
  });
  // A pool error event without a listener would crash the process; failures reach the caller as rejected queries.
  pool.on('error', () => undefined);
  await pool.connect();
  const onPool = session(() => pool.request());
  const { query } = onPool;
  return {
    ...onPool,
    async inSnapshotTransaction<T>(fn: (s: MssqlSession) => Promise<T>): Promise<T> {
      const tx = new sql.Transaction(pool);
      await tx.begin(sql.ISOLATION_LEVEL.SNAPSHOT);
      const onTx = session(() => new sql.Request(tx));
      const inTx = onTx.query;
      // The isolation level is a session setting and the connection goes back to the pool: set
      // back to READ COMMITTED (SNAPSHOT_TRANSACTION.commit) before the transaction ends.
      const reset = { sql: 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED', params: [] };
      let result: T;
      try {
        result = await fn(onTx);
        await inTx(reset);
      } catch (err) {
        await inTx(reset).catch(() => undefined); // the connection may be gone: the rollback says so
        await tx.rollback().catch(() => undefined); // the error that matters is err
        throw err;
      }
      await tx.commit();
      return result;
    },
    async columns(table) {
      return (await query(columnsStatement(table))).map(columnFromRow);
    },
    async primaryKey(table) {
      return (await query(primaryKeyStatement(table))).map((r) => String(r.name));
    },
    close: () => pool.close(),
  };
}
