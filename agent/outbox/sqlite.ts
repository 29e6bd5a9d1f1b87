import { ErpEdgeError } from '../../common/errors.js';
import { openBetterSqlite3 } from './sqlite-better.js';
import { openNodeSqlite } from './sqlite-node.js';
import type { OpenOptions, SqliteDb } from './sqlite-db.js';

/**
 * Opens the outbox's SQLite through one of the storage seam's two bindings (sqlite-db.ts says what
 * the seam is). Only agent/outbox/ opens SQLite on the agent, through `openSqlite`.
 */
export type { OpenOptions, RunResult, SqliteDb, Statement } from './sqlite-db.js';

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
