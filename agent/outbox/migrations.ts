import type Database from 'better-sqlite3';
import { ErpEdgeError } from '../../common/errors.js';

/**
 * Versioned schema migrations, tracked in SQLite's `user_version`.
 * Append new steps; never edit a released one.
 */
const MIGRATIONS: readonly string[] = [
  // v1
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE streams (
    stream        TEXT PRIMARY KEY,
    next_seq      INTEGER NOT NULL,
    acked_seq     INTEGER NOT NULL DEFAULT 0,
    acked_at      INTEGER,
    dropped_upto  INTEGER NOT NULL DEFAULT 0,
    dropped_count INTEGER NOT NULL DEFAULT 0
  );
  -- One row per run of consecutive records (a chunk, see chunk.ts), not per record: the
  -- append cost is per transaction. gid orders chunks globally (oldest first) for drop_oldest.
  CREATE TABLE chunks (
    gid       INTEGER PRIMARY KEY,
    stream    TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    min_ts    INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    payload   TEXT NOT NULL
  );
  CREATE UNIQUE INDEX chunks_by_seq ON chunks (stream, last_seq);
  -- Acks mark ranges (seq <= upto), not rows: one row per ack instead of one update per event.
  CREATE TABLE ack_log (
    id       INTEGER PRIMARY KEY,
    stream   TEXT NOT NULL,
    upto     INTEGER NOT NULL,
    acked_at INTEGER NOT NULL
  );
  CREATE INDEX ack_log_at ON ack_log (acked_at);
  CREATE TABLE checkpoints (
    collector  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (collector, key)
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new ErpEdgeError(
      'ERP_OUTBOX_SCHEMA',
      `outbox schema version ${current} is newer than this agent supports (${SCHEMA_VERSION}); upgrade the agent`,
      { current, supported: SCHEMA_VERSION },
    );
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
