import type { SqliteDb } from './sqlite.js';
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
  // v2 (release 0.2): wire version per chunk, per-stream epochs (a stream moves to a new epoch when
  // the relay reports a conflict), dead-letter table, skipped seq ranges, dead-letter counts.
  `
  ALTER TABLE chunks ADD COLUMN wire INTEGER NOT NULL DEFAULT 1;
  -- NULL: the outbox epoch (meta.epoch). Set when the stream was rebased onto a new epoch.
  ALTER TABLE streams ADD COLUMN epoch TEXT;
  ALTER TABLE streams ADD COLUMN dead_lettered INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN rebased_at INTEGER;
  -- Records refused by the relay (origin 'relay', with the seq they had) or at capture (origin
  -- 'capture', no seq), with the reason. Nothing leaves this table without an operator's action.
  CREATE TABLE dead_letters (
    id        INTEGER PRIMARY KEY,
    stream    TEXT NOT NULL,
    epoch     TEXT,
    seq       INTEGER,
    record_id TEXT,
    source    TEXT,
    origin    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    bytes     INTEGER NOT NULL,
    payload   TEXT NOT NULL
  );
  CREATE INDEX dead_letters_by_stream ON dead_letters (stream, id);
  -- Seqs of a stream that carry no record any more and never will (moved to dead-letter): the
  -- forwarder declares them to the relay as skipped until they are acked past.
  CREATE TABLE skips (
    stream    TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (stream, first_seq)
  );
  `,
  // v3 (release 0.3): the version last captured per source key (key-versions.ts), for the SQL
  // collector: new, changed or already sent, insert or update.
  `
  CREATE TABLE key_versions (
    collector TEXT NOT NULL,
    scope     TEXT NOT NULL,
    key       TEXT NOT NULL,
    version   TEXT NOT NULL,
    -- The key's values as captured (JSON), typed as the source gave them: a delete found later
    -- carries the same key as the insert did.
    key_values TEXT,
    PRIMARY KEY (collector, scope, key)
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Migrates to `target` (the newest by default; tests stop earlier to write a previous release's file). */
export function migrate(db: SqliteDb, target = SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new ErpEdgeError(
      'ERP_OUTBOX_SCHEMA',
      `outbox schema version ${current} is newer than this agent supports (${SCHEMA_VERSION}); upgrade the agent`,
      { current, supported: SCHEMA_VERSION },
    );
  }
  for (let v = current; v < target; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
