import type pg from 'pg';
import { ErpEdgeError } from '../../common/errors.js';

/**
 * Versioned schema migrations of the relay's PostgreSQL store, tracked in `schema_version` inside
 * the store's schema. Append new steps; never edit a released one. The same tables as the SQLite
 * store (migrations.ts) in PostgreSQL's terms, with two differences: the record-id and key indexes
 * keep a `seen_at` per row instead of two generation tables (several relays share them, and a
 * row-level time needs no coordinated rotation), and seqs and times are BIGINT.
 *
 * Several relay instances may start at once: migrations run under a session advisory lock.
 */
const MIGRATIONS: readonly string[] = [
  // 1: everything the SQLite store holds at its version 7.
  `
  CREATE TABLE stream_keys (
    key BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL,
    UNIQUE (site, agent, stream)
  );
  CREATE TABLE streams (
    id BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL, epoch TEXT NOT NULL,
    stream_key BIGINT NOT NULL REFERENCES stream_keys (key),
    last_seq BIGINT NOT NULL DEFAULT 0,
    stored BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0,
    dead_lettered BIGINT NOT NULL DEFAULT 0,
    skipped_other BIGINT NOT NULL DEFAULT 0,
    pruned BIGINT NOT NULL DEFAULT 0,
    duplicate_ids BIGINT NOT NULL DEFAULT 0,
    conflicts BIGINT NOT NULL DEFAULT 0,
    rejected_records BIGINT NOT NULL DEFAULT 0,
    rejected_too_large BIGINT NOT NULL DEFAULT 0,
    forked_from BIGINT,
    first_seen BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    UNIQUE (site, agent, stream, epoch)
  );
  -- One row per stored run of records; records are the JSON array as ingest encoded it (TEXT, not
  -- JSONB: stored as received, never parsed again by the database).
  CREATE TABLE segments (
    id BIGSERIAL PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams (id),
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    records TEXT NOT NULL,
    UNIQUE (stream_id, last_seq)
  );
  CREATE TABLE held_ids (
    stream_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (stream_id, seq)
  );
  CREATE TABLE skipped_ranges (
    stream_id BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (stream_id, first_seq)
  );
  -- Record ids seen within dedupe.window, per stream key; a lookup ignores rows older than the window,
  -- a periodic delete removes them.
  CREATE TABLE record_ids (
    stream_key BIGINT NOT NULL,
    id TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (stream_key, id)
  );
  CREATE INDEX record_ids_by_age ON record_ids (seen_at);
  -- Records with a business key: the id last stored per key.
  CREATE TABLE key_latest (
    stream_key BIGINT NOT NULL,
    key TEXT NOT NULL,
    id TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (stream_key, key)
  );
  CREATE INDEX key_latest_by_age ON key_latest (seen_at);
  CREATE TABLE agents (
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    online BOOLEAN,
    boot TEXT,
    birth TEXT,
    presence_at BIGINT,
    last_seen BIGINT NOT NULL,
    health TEXT,
    health_at BIGINT,
    stale_wills BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site, agent)
  );
  CREATE TABLE agent_history (
    id BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    at BIGINT NOT NULL,
    pending BIGINT NOT NULL,
    oldest_pending_age_ms BIGINT,
    capture_rate DOUBLE PRECISION,
    forward_rate DOUBLE PRECISION,
    collectors_in_error BIGINT NOT NULL,
    rss BIGINT
  );
  CREATE INDEX agent_history_by_agent ON agent_history (site, agent, id);
  CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    labels TEXT NOT NULL,
    value TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    fired_at BIGINT NOT NULL,
    resolved_at BIGINT,
    firing_sent BOOLEAN NOT NULL DEFAULT false,
    resolved_sent BOOLEAN NOT NULL DEFAULT false
  );
  CREATE UNIQUE INDEX alerts_active ON alerts (key) WHERE resolved_at IS NULL;
  `,
  // 2: sinks (store/delivery.ts), as the SQLite store's version 8: delivery cursors with their
  // lease, the dead-letter table, segments by age for retention.
  `
  CREATE TABLE sink_cursors (
    sink TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    delivered_seq BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sink, stream_id)
  );
  CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    sink TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'dead',
    attempts BIGINT NOT NULL,
    error TEXT NOT NULL,
    field TEXT,
    dead_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (sink, stream_id, seq)
  );
  CREATE INDEX dead_letters_by_stream ON dead_letters (stream_id, seq);
  CREATE INDEX segments_by_age ON segments (received_at);
  `,
];

export const PG_STORE_SCHEMA_VERSION = MIGRATIONS.length;

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Brings the store's schema to PG_STORE_SCHEMA_VERSION, one transaction per step; refuses a newer one. */
export async function migratePostgres(client: pg.PoolClient, schema: string): Promise<void> {
  const s = quoteIdent(schema);
  // Instances starting together: one migrates, the others wait and then find nothing to do.
  await client.query('SELECT pg_advisory_lock(hashtext($1))', [`erp-edge-relay-migrate:${schema}`]);
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${s}.schema_version (version INTEGER NOT NULL)`);
    const r = await client.query<{ version: number }>(`SELECT version FROM ${s}.schema_version`);
    let current = r.rows[0]?.version ?? 0;
    if (r.rows.length === 0) await client.query(`INSERT INTO ${s}.schema_version (version) VALUES (0)`);
    if (current > PG_STORE_SCHEMA_VERSION) {
      throw new ErpEdgeError(
        'ERP_STORE_SCHEMA',
        `relay store schema version ${current} (PostgreSQL schema ${schema}) is newer than this relay supports (${PG_STORE_SCHEMA_VERSION}); upgrade the relay`,
        { current, supported: PG_STORE_SCHEMA_VERSION },
      );
    }
    for (; current < PG_STORE_SCHEMA_VERSION; current++) {
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL search_path TO ${s}`);
        await client.query(MIGRATIONS[current]!);
        await client.query(`UPDATE ${s}.schema_version SET version = $1`, [current + 1]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`erp-edge-relay-migrate:${schema}`]);
  }
}
