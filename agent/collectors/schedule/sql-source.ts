import { isErpEdgeError } from '../../../common/errors.js';
import { connectOptions } from '../../databases/connection-schema.js';
import type { DialectModule, QueryResult } from '../../databases/dialect.js';
import type { SqlJobSource } from './schema.js';
import type { JobSource } from './source.js';

/** Drivers load lazily, at a job's first run: a schedule on one database never loads another's driver. */
const DIALECTS: Record<Exclude<SqlJobSource['driver'], 'mssql'>, () => Promise<DialectModule>> = {
  pg: () => import('../../databases/dialects/pg.js'),
  mysql: () => import('../../databases/dialects/mysql.js'),
};

interface Connection {
  run(sql: string, maxRows: number): Promise<QueryResult>;
  close(): Promise<void>;
}

async function connect(cfg: SqlJobSource): Promise<Connection> {
  const opts = connectOptions(cfg, undefined);
  if (cfg.driver === 'mssql') {
    const [{ connect: connectMssql }, { runMssqlQuery }] = await Promise.all([import('../../databases/dialects/mssql.js'), import('../../databases/mssql-query.js')]);
    const runner = await connectMssql(opts);
    return { run: (sql, maxRows) => runMssqlQuery(runner, sql, maxRows), close: () => runner.close() };
  }
  const source = await (await DIALECTS[cfg.driver]()).connect(opts);
  const runQuery = source.runQuery?.bind(source);
  if (!runQuery) throw new Error(`the ${cfg.driver} dialect cannot run a snapshot query`);
  return { run: runQuery, close: () => source.close() };
}

/**
 * A job's query, through the dialect of its driver (agent/databases/, shared with the sql
 * collector). The connection is made at the first run, not at start, so a database that is down
 * fails that job's runs (each an error outcome) and not the collector or its other jobs; it is
 * kept between runs and made anew after a run that failed on it.
 */
export function sqlJobSource(cfg: SqlJobSource): JobSource {
  let conn: Promise<Connection> | undefined;
  const drop = async () => {
    const c = conn;
    conn = undefined;
    const open = await c?.catch(() => undefined);
    await open?.close().catch(() => undefined);
  };
  return {
    async read(maxRows) {
      conn ??= connect(cfg);
      try {
        return await (await conn).run(cfg.query, maxRows);
      } catch (err) {
        // Too many rows says nothing about the connection; anything else may have broken it.
        if (!isErpEdgeError(err, 'ERP_QUERY_TOO_MANY_ROWS')) await drop();
        throw err;
      }
    },
    close: drop,
  };
}
