import type Database from 'better-sqlite3';
import { ErpEdgeError } from '../../common/errors.js';
import { moveNumberedIds } from './id-ranges.js';

/**
 * Versioned schema migrations of relay.db, tracked in SQLite's `user_version`.
 * Append new steps; never edit a released one. A step is SQL, or a function when it moves data
 * SQL alone cannot reshape.
 *
 * Release 0.1 created its tables with CREATE ... IF NOT EXISTS and left user_version at 0, so
 * migration 1 is that schema exactly, still idempotent: a 0.1 relay.db (version 0, tables present)
 * runs it as a no-op and then takes the later steps in place.
 */
type Migration = string | ((db: Database.Database) => void);

const MIGRATIONS: readonly Migration[] = [
  // 1: release 0.1
  `
  CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL, epoch TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    dropped INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    UNIQUE (site, agent, stream, epoch)
  );
  -- One row per stored run of records (a segment): inserting a batch costs one row, not one per
  -- record, which is most of the relay's per-event cost. Records are a JSON array.
  CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    records TEXT NOT NULL
  );
  CREATE UNIQUE INDEX IF NOT EXISTS segments_by_seq ON segments (stream_id, last_seq);
  `,
  // 2: wire v2 ingest: skip/duplicate/conflict/reject counts per stream, the fork point of an epoch
  // that went back in time, and the record-id index (by stream key, across epochs).
  `
  ALTER TABLE streams ADD COLUMN forked_from INTEGER;
  ALTER TABLE streams ADD COLUMN dead_lettered INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN skipped_other INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN duplicate_ids INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN rejected_records INTEGER NOT NULL DEFAULT 0;
  -- (site, agent, stream) across epochs, as a small integer: the prefix of every id-index key.
  CREATE TABLE stream_keys (
    key INTEGER PRIMARY KEY,
    site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL,
    UNIQUE (site, agent, stream)
  );
  INSERT INTO stream_keys (site, agent, stream) SELECT DISTINCT site, agent, stream FROM streams ORDER BY site, agent, stream;
  ALTER TABLE streams ADD COLUMN stream_key INTEGER;
  UPDATE streams SET stream_key = (SELECT k.key FROM stream_keys k WHERE k.site = streams.site AND k.agent = streams.agent AND k.stream = streams.stream);
  -- Record ids seen within dedupe.window, in two generations (see id-index.ts): lookups read both,
  -- a rotation empties the older one, so pruning never deletes row by row.
  CREATE TABLE id_gen_0 (stream_key INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (stream_key, id)) WITHOUT ROWID;
  CREATE TABLE id_gen_1 (stream_key INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (stream_key, id)) WITHOUT ROWID;
  CREATE TABLE relay_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  // 3: fleet registry: the latest presence and health of each agent.
  `
  CREATE TABLE agents (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    online INTEGER,
    boot TEXT,
    birth TEXT,
    presence_at INTEGER,
    last_seen INTEGER NOT NULL,
    health TEXT,
    health_at INTEGER,
    stale_wills INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, agent)
  );
  `,
  // 4: what a held seq without a stored record stood for, so a resend there can still be compared:
  // the id of a record recognised as a duplicate (not stored), and the ranges skipped by the agent.
  `
  CREATE TABLE held_ids (
    stream_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (stream_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE skipped_ranges (
    stream_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (stream_id, first_seq)
  ) WITHOUT ROWID;
  -- Records with a business key: the id last stored per key, in the same two generations as the
  -- id index. A keyed record is a duplicate when its id is its key's latest one (a row that changes
  -- and changes back is stored again: the relay's latest version of a key is the source's).
  CREATE TABLE key_gen_0 (stream_key INTEGER NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (stream_key, key)) WITHOUT ROWID;
  CREATE TABLE key_gen_1 (stream_key INTEGER NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (stream_key, key)) WITHOUT ROWID;
  `,
  // 5: fleet history: a sample of each health message per agent, for charts. Bounded per agent
  // (fleet.history_samples): each write deletes that agent's rows older than the last N, by id.
  `
  CREATE TABLE agent_history (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    at INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    oldest_pending_age_ms INTEGER,
    capture_rate REAL,
    forward_rate REAL,
    collectors_in_error INTEGER NOT NULL,
    rss INTEGER
  );
  CREATE INDEX agent_history_by_agent ON agent_history (site, agent, id);
  `,
  // 6: fleet alerts: each instance from firing to resolution, so a restarted relay neither fires
  // again what already fired nor forgets to resolve it; whether the webhook has each notification.
  `
  CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    labels TEXT NOT NULL,
    value TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    fired_at INTEGER NOT NULL,
    resolved_at INTEGER,
    firing_sent INTEGER NOT NULL DEFAULT 0,
    resolved_sent INTEGER NOT NULL DEFAULT 0
  );
  -- At most one active instance per key.
  CREATE UNIQUE INDEX alerts_active ON alerts (key) WHERE resolved_at IS NULL;
  `,
  // 7: records stored per stream epoch, and the two counts that were only kept summed (pruned within
  // skipped_other, record_too_large within rejected_records), so that a restarted relay's counters
  // (GET /api/stats, Prometheus) start from what its store holds instead of 0. A store written
  // before this step counts its earlier pruned seqs as other and its earlier refusals as invalid.
  `
  ALTER TABLE streams ADD COLUMN stored INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE streams ADD COLUMN rejected_too_large INTEGER NOT NULL DEFAULT 0;
  UPDATE streams SET stored = (SELECT coalesce(sum(json_array_length(g.records)), 0) FROM segments g WHERE g.stream_id = streams.id);
  `,
  // 8: sinks (store/delivery.ts): a delivery cursor and lease per (sink, stream epoch), the
  // dead-letter table, and segments by age for retention. A store written before this step has
  // no cursor: every sink starts from the first stored seq.
  `
  CREATE TABLE sink_cursors (
    sink TEXT NOT NULL,
    stream_id INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sink, stream_id)
  ) WITHOUT ROWID;
  CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    stream_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'dead',
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    field TEXT,
    dead_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (sink, stream_id, seq)
  );
  CREATE INDEX dead_letters_by_stream ON dead_letters (stream_id, seq);
  CREATE INDEX segments_by_age ON segments (received_at);
  `,
  // 9: numbered record ids (a prefix and a counter) as ranges, one row per run instead of one per
  // id (see id-ranges.ts), in the same two generations; the ids a 0.4 relay remembered move there.
  (db) => {
    db.exec(`
    CREATE TABLE id_range_gen_0 (stream_key INTEGER NOT NULL, prefix TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY (stream_key, prefix, lo)) WITHOUT ROWID;
    CREATE TABLE id_range_gen_1 (stream_key INTEGER NOT NULL, prefix TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY (stream_key, prefix, lo)) WITHOUT ROWID;
    `);
    moveNumberedIds(db);
  },
];

export const STORE_SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings relay.db to STORE_SCHEMA_VERSION (or `upto`, for tests that write a store as an older
 * release left it), one transaction per step; refuses a newer file.
 */
export function migrate(db: Database.Database, upto = STORE_SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > STORE_SCHEMA_VERSION) {
    throw new ErpEdgeError(
      'ERP_STORE_SCHEMA',
      `relay store schema version ${current} is newer than this relay supports (${STORE_SCHEMA_VERSION}); upgrade the relay`,
      { current, supported: STORE_SCHEMA_VERSION },
    );
  }
  for (let v = current; v < upto; v++) {
    db.transaction(() => {
      const step = MIGRATIONS[v]!;
      if (typeof step === 'string') db.exec(step);
      else step(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
