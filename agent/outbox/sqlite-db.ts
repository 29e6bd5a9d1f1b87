/**
 * The storage seam: what the outbox needs of SQLite, and nothing more. Two bindings implement it:
 * better-sqlite3 (a native addon: the default, and what the Linux executable carries) and Node's
 * built-in `node:sqlite` (Node >= 22.13, no native module: the Windows executable, since no
 * Windows addon can be built where the executables are made). The shape is better-sqlite3's own
 * (prepare → run/get/all/iterate, transaction(fn)(), pragma), so the outbox's SQL and call sites
 * are the same whichever binding runs; both bind a JS number as SQLite does a double.
 * Only agent/outbox/ opens SQLite on the agent, through `openSqlite` (sqlite.ts), which picks the
 * binding.
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
