import { ErpEdgeError } from '../../common/errors.js';
import { openBetterSqlite3 } from './sqlite-better.js';
import { openNodeSqlite } from './sqlite-node.js';

/**
 * The storage seam: what the outbox needs of SQLite, and nothing more. Two bindings implement it:
 * better-sqlite3 (a native addon: the default, and what the Linux executable carries) and Node's
 * built-in `node:sqlite` (Node >= 22.13, no native module: the Windows executable, since no
 * Windows addon can be built where the executables are made). The shape is better-sqlite3's own
 * (prepare → run/get/all/iterate, transaction(fn)(), pragma), so the outbox's SQL and call sites
 * are the same whichever binding runs; both bind a JS number as SQLite does a double.
 *
 * Only agent/outbox/ opens SQLite on the agent, through `openSqlite`.
 */
export interface RunResult {
  changes: number | bigint;
  lastInsertRowid: number | bigint;
}

export interface Statement<P extends unknown[] = unknown[], R = unknown> {
  run(...params: P): RunResult;
  get(...params: P): R | undefined;
  all(...params: P): R[];
  iterate(...params: P): IterableIterator<R>;
}

export interface SqliteDb {
  prepare<P extends unknown[] = unknown[], R = unknown>(sql: string): Statement<P, R>;
  exec(sql: string): void;
  /** `fn` wrapped in BEGIN … COMMIT (ROLLBACK when it throws); nested, a savepoint. Call the result to run it. */
  transaction<T>(fn: () => T): () => T;
  /** `PRAGMA <source>`: its rows, or with `simple` the first column of the first row. */
  pragma(source: string, opts?: { simple?: boolean }): unknown;
  close(): void;
}

export interface OpenOptions {
  readonly?: boolean;
  /** Refuse to create the file (SQLITE_CANTOPEN when it is missing). */
  fileMustExist?: boolean;
}

export type SqliteBinding = 'better-sqlite3' | 'node:sqlite';
export const SQLITE_BINDINGS: readonly SqliteBinding[] = ['better-sqlite3', 'node:sqlite'];

// Set by scripts/bundle.ts for a target that carries only one binding (the Windows executable).
declare const __ERP_EDGE_SQLITE__: string | undefined;
const BUNDLED: string | undefined = typeof __ERP_EDGE_SQLITE__ === 'string' ? __ERP_EDGE_SQLITE__ : undefined;

/**
 * The binding this process uses: ERP_EDGE_SQLITE when set (tests, bench, or an operator trying the
 * other one), else the one the bundle was built with, else node:sqlite on Windows (no addon there)
 * and better-sqlite3 everywhere else. `only` is the one binding a bundle carries (the Windows
 * executable: node:sqlite); asking it for the other is refused here, at the first open, with the
 * setting named, rather than with the bundle stub's plain Error.
 */
export function sqliteBinding(env: NodeJS.ProcessEnv = process.env, only: string | undefined = BUNDLED): SqliteBinding {
  const asked = env['ERP_EDGE_SQLITE'] || only;
  if (asked === undefined) return process.platform === 'win32' ? 'node:sqlite' : 'better-sqlite3';
  if (!(SQLITE_BINDINGS as readonly string[]).includes(asked)) {
    throw new ErpEdgeError('ERP_OUTBOX_SQLITE', `ERP_EDGE_SQLITE=${asked} is not a SQLite binding this agent has (${SQLITE_BINDINGS.join(', ')})`, { asked });
  }
  if (only !== undefined && asked !== only) {
    throw new ErpEdgeError(
      'ERP_OUTBOX_SQLITE',
      `ERP_EDGE_SQLITE=${asked}: this executable carries only ${only} (the Windows build has no native addon, so no better-sqlite3); unset ERP_EDGE_SQLITE or set it to ${only}`,
      { asked, carried: only },
    );
  }
  return asked as SqliteBinding;
}

/** Opens (or creates) a SQLite file with the process's binding. */
export function openSqlite(path: string, opts: OpenOptions = {}): SqliteDb {
  return sqliteBinding() === 'node:sqlite' ? openNodeSqlite(path, opts) : openBetterSqlite3(path, opts);
}
