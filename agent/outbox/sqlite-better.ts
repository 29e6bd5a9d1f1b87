import Database from 'better-sqlite3';
import type { OpenOptions, SqliteDb, Statement } from './sqlite-db.js';

/**
 * The better-sqlite3 binding of the storage seam (sqlite.ts): its API is the seam's shape, so this
 * only narrows the types; statements are better-sqlite3's own (nothing added on the hot path).
 * Its native addon loads on the first open, not on import: a bundle that never opens one (the
 * Windows executable, which uses node:sqlite) needs no better_sqlite3.node.
 */
export function openBetterSqlite3(path: string, opts: OpenOptions): SqliteDb {
  const db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.fileMustExist ?? false });
  return {
    prepare: <P extends unknown[] = unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql) as unknown as Statement<P, R>,
    exec: (sql) => void db.exec(sql),
    transaction: (fn) => db.transaction(fn),
    pragma: (source, o) => db.pragma(source, o),
    close: () => void db.close(),
  };
}
