import { openSqlite, type SqliteDb } from '../../agent/outbox/sqlite.js';

/**
 * Reads an outbox file with its own SQLite connection, independently of the Outbox class: what
 * the tests compare the Outbox's own view against.
 */
export function withFile<T>(path: string, fn: (db: SqliteDb) => T, opts: { readonly?: boolean } = {}): T {
  const db = openSqlite(path, { readonly: opts.readonly ?? true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Usage as the file has it: records are one JSON line each in chunks, bytes without the newlines. */
export function fileUsage(path: string): { bytes: number; events: number; dropped: number } {
  return withFile(path, (db) => {
    const u = db
      .prepare(
        'SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS events, coalesce(sum(length(CAST(payload AS BLOB)) - (last_seq - first_seq)), 0) AS bytes FROM chunks',
      )
      .get() as { events: number; bytes: number };
    const d = db.prepare('SELECT coalesce(sum(dropped_count), 0) AS dropped FROM streams').get() as { dropped: number };
    return { bytes: u.bytes, events: u.events, dropped: d.dropped };
  });
}

export interface FileChunk {
  stream: string;
  first: number;
  last: number;
  bytes: number;
  lines: string[];
}

/** A stream's chunk rows as stored, in seq order (the file's own view, not readPending's). */
export function fileChunks(path: string, stream: string): FileChunk[] {
  return withFile(path, (db) =>
    (
      db.prepare('SELECT stream, first_seq, last_seq, bytes, payload FROM chunks WHERE stream = ? ORDER BY first_seq').all(stream) as {
        stream: string;
        first_seq: number;
        last_seq: number;
        bytes: number;
        payload: string;
      }[]
    ).map((r) => ({ stream: r.stream, first: r.first_seq, last: r.last_seq, bytes: r.bytes, lines: r.payload.split('\n') })),
  );
}

/** Every stored record line of a stream with the seq its chunk position gives it, from the file. */
export function fileRecords(path: string, stream: string): { seq: number; line: string }[] {
  return fileChunks(path, stream).flatMap((c) => c.lines.map((line, i) => ({ seq: c.first + i, line })));
}

/** Row counts per table, for "nothing else changed" checks. */
export function fileTable<T>(path: string, sql: string, ...params: unknown[]): T[] {
  return withFile(path, (db) => db.prepare(sql).all(...params) as T[]);
}
