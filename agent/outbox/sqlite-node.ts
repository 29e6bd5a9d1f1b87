import { existsSync } from 'node:fs';
import { ErpEdgeError } from '../../common/errors.js';
import type { OpenOptions, RunResult, SqliteDb, Statement } from './sqlite-db.js';

/**
 * The `node:sqlite` binding of the storage seam (sqlite.ts): Node's built-in SQLite (>= 22.13
 * without a flag), no native addon, so it runs where none can be shipped (the Windows executable).
 * It differs from better-sqlite3 in four ways this file evens out: errors carry the numeric
 * result code (`errcode`), not the SQLITE_* name the outbox matches on (disk full); transactions
 * are plain BEGIN/COMMIT (better-sqlite3's transaction(fn) is built here, savepoints when nested);
 * PRAGMA is a statement like any other; a connection does not wait for a lock (busy timeout 0).
 */
interface NodeStatementSync {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
}

interface NodeDatabaseSync {
  prepare(sql: string): NodeStatementSync;
  exec(sql: string): void;
  close(): void;
  readonly isTransaction: boolean;
}

interface NodeSqlite {
  DatabaseSync: new (path: string, opts?: { readOnly?: boolean }) => NodeDatabaseSync;
}

let loaded: NodeSqlite | undefined;

/** better-sqlite3's default busy timeout (its `timeout` option), so both bindings wait alike. */
const BUSY_TIMEOUT_MS = 5_000;

/** node:sqlite, loaded on first use (this file is imported on every Node, opened only on ≥ 22.13). */
function nodeSqlite(): NodeSqlite {
  if (loaded) return loaded;
  // Loading it warns "SQLite is an experimental feature" (Node 22/24): at every start of a service
  // that line would read as a fault. Only that warning is held back, and only during the load.
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (!String(typeof warning === 'string' ? warning : warning.message).startsWith('SQLite is an experimental feature')) {
      (emitWarning as (...a: unknown[]) => void).call(process, warning, ...rest);
    }
  }) as typeof process.emitWarning;
  try {
    loaded = process.getBuiltinModule?.('node:sqlite') as NodeSqlite | undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
  if (!loaded?.DatabaseSync) {
    throw new ErpEdgeError('ERP_OUTBOX_SQLITE', `the node:sqlite binding needs Node 22.13 or newer (this is ${process.version}); use ERP_EDGE_SQLITE=better-sqlite3`, {
      node: process.version,
    });
  }
  return loaded;
}

/** SQLite's primary result codes by number (sqlite3.h), as better-sqlite3 names them in `code`. */
const PRIMARY = [
  'SQLITE_OK', 'SQLITE_ERROR', 'SQLITE_INTERNAL', 'SQLITE_PERM', 'SQLITE_ABORT', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_NOMEM',
  'SQLITE_READONLY', 'SQLITE_INTERRUPT', 'SQLITE_IOERR', 'SQLITE_CORRUPT', 'SQLITE_NOTFOUND', 'SQLITE_FULL', 'SQLITE_CANTOPEN',
  'SQLITE_PROTOCOL', 'SQLITE_EMPTY', 'SQLITE_SCHEMA', 'SQLITE_TOOBIG', 'SQLITE_CONSTRAINT', 'SQLITE_MISMATCH', 'SQLITE_MISUSE',
  'SQLITE_NOLFS', 'SQLITE_AUTH', 'SQLITE_FORMAT', 'SQLITE_RANGE', 'SQLITE_NOTADB',
];

/** Extended codes worth their own name (write errors on a full disk; constraint kinds). */
const EXTENDED: Record<number, string> = {
  [10 | (3 << 8)]: 'SQLITE_IOERR_WRITE',
  [10 | (4 << 8)]: 'SQLITE_IOERR_FSYNC',
  [10 | (6 << 8)]: 'SQLITE_IOERR_TRUNCATE',
  [10 | (13 << 8)]: 'SQLITE_IOERR_FSTAT',
  [10 | (24 << 8)]: 'SQLITE_IOERR_SHMSIZE',
  [19 | (6 << 8)]: 'SQLITE_CONSTRAINT_PRIMARYKEY',
  [19 | (8 << 8)]: 'SQLITE_CONSTRAINT_UNIQUE',
  [19 | (5 << 8)]: 'SQLITE_CONSTRAINT_NOTNULL',
  [19 | (3 << 8)]: 'SQLITE_CONSTRAINT_FOREIGNKEY',
  [19 | (1 << 8)]: 'SQLITE_CONSTRAINT_CHECK',
};

/** node:sqlite's error with `code` set to the SQLITE_* name (its numeric code stays in `errcode`). */
function named(err: unknown): unknown {
  const e = err as { code?: unknown; errcode?: unknown } | null;
  if (e && e.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') {
    const code = EXTENDED[e.errcode] ?? PRIMARY[e.errcode & 0xff] ?? `SQLITE_${e.errcode}`;
    Object.defineProperty(e, 'code', { value: code, configurable: true, writable: true, enumerable: true });
  }
  return err;
}

class NodeStatement<P extends unknown[], R> implements Statement<P, R> {
  constructor(private readonly s: NodeStatementSync) {}

  run(...params: P): RunResult {
    try {
      return this.s.run(...params);
    } catch (err) {
      throw named(err);
    }
  }

  get(...params: P): R | undefined {
    try {
      return this.s.get(...params) as R | undefined;
    } catch (err) {
      throw named(err);
    }
  }

  all(...params: P): R[] {
    try {
      return this.s.all(...params) as R[];
    } catch (err) {
      throw named(err);
    }
  }

  *iterate(...params: P): IterableIterator<R> {
    try {
      yield* this.s.iterate(...params) as IterableIterator<R>;
    } catch (err) {
      throw named(err);
    }
  }
}

export function openNodeSqlite(path: string, opts: OpenOptions): SqliteDb {
  const { DatabaseSync } = nodeSqlite();
  if (opts.fileMustExist && path !== ':memory:' && !existsSync(path)) {
    throw Object.assign(new Error(`unable to open database file ${path}: it does not exist`), { code: 'SQLITE_CANTOPEN' });
  }
  let db: NodeDatabaseSync;
  try {
    db = new DatabaseSync(path, opts.readonly ? { readOnly: true } : {});
  } catch (err) {
    throw named(err);
  }
  let savepoints = 0;
  const exec = (sql: string) => {
    try {
      db.exec(sql);
    } catch (err) {
      throw named(err);
    }
  };
  // better-sqlite3 opens with a 5 s busy timeout, node:sqlite with none: without this a connection
  // that meets a lock held by another (`edge-agent status` or `outbox verify` beside the running
  // agent) fails at once with SQLITE_BUSY instead of waiting as it does on the other binding.
  exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const prepare = <P extends unknown[] = unknown[], R = unknown>(sql: string): Statement<P, R> => {
    try {
      return new NodeStatement<P, R>(db.prepare(sql));
    } catch (err) {
      throw named(err);
    }
  };
  return {
    prepare,
    exec,
    // As better-sqlite3's: BEGIN (deferred) … COMMIT, rolled back when fn throws or COMMIT fails.
    transaction: (fn) => () => {
      if (db.isTransaction) {
        const name = `erp_edge_sp${++savepoints}`;
        exec(`SAVEPOINT ${name}`);
        try {
          const result = fn();
          exec(`RELEASE ${name}`);
          return result;
        } catch (err) {
          exec(`ROLLBACK TO ${name}`);
          exec(`RELEASE ${name}`);
          throw err;
        } finally {
          savepoints--;
        }
      }
      exec('BEGIN');
      try {
        const result = fn();
        exec('COMMIT');
        return result;
      } catch (err) {
        if (db.isTransaction) exec('ROLLBACK');
        throw err;
      }
    },
    pragma: (source, o) => {
      const stmt = prepare<[], Record<string, unknown>>(`PRAGMA ${source}`);
      if (!o?.simple) return stmt.all();
      const row = stmt.get();
      return row === undefined ? undefined : Object.values(row)[0];
    },
    close: () => db.close(),
  };
}
