import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { EventBatch } from '../common/wire-v1.js';
import type { Logger } from '../common/logger.js';

export interface BatchResult {
  /** Highest seq stored contiguously for the batch's (site, agent, stream, epoch). */
  upto: number;
  status: 'ok' | 'gap';
  stored: number;
  duplicates: number;
  droppedAtAgent: number;
  newEpoch: boolean;
}

export interface StreamRow {
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  last_seq: number;
  dropped: number;
  first_seen: number;
  last_at: number;
  current: boolean;
}

export interface StoredEvent {
  seq: number;
  id: string;
  ts: number;
  source: string;
  correlation_id: string | null;
  data: unknown;
  received_at: number;
}

export interface EventQuery {
  site: string;
  agent: string;
  stream: string;
  epoch?: string;
  after: number;
  limit: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS streams (
  site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL, epoch TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  PRIMARY KEY (site, agent, stream, epoch)
);
CREATE TABLE IF NOT EXISTS events (
  site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL, epoch TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  source TEXT NOT NULL,
  correlation_id TEXT,
  data TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (site, agent, stream, epoch, seq)
) WITHOUT ROWID;
`;

/**
 * The relay's durable store. It accepts only the next seq of a (site, agent, stream, epoch):
 * duplicates are skipped (and re-acked), a batch that skips seqs is refused as a gap.
 * Each batch is one transaction; the caller acks only after it returns.
 */
export class RelayStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string, private readonly log: Logger, synchronous: 'FULL' | 'NORMAL' = 'FULL') {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmts = {
      getStream: db.prepare<[string, string, string, string], { last_seq: number }>(
        'SELECT last_seq FROM streams WHERE site = ? AND agent = ? AND stream = ? AND epoch = ?',
      ),
      otherEpochs: db.prepare<[string, string, string], { epoch: string; last_seq: number }>(
        'SELECT epoch, last_seq FROM streams WHERE site = ? AND agent = ? AND stream = ?',
      ),
      insertStream: db.prepare(
        'INSERT INTO streams (site, agent, stream, epoch, first_seen, last_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      updateStream: db.prepare(
        'UPDATE streams SET last_seq = ?, dropped = dropped + ?, last_at = ? WHERE site = ? AND agent = ? AND stream = ? AND epoch = ?',
      ),
      insertEvent: db.prepare(
        `INSERT INTO events (site, agent, stream, epoch, seq, id, ts, source, correlation_id, data, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      listStreams: db.prepare<[], Omit<StreamRow, 'current'>>(
        'SELECT * FROM streams ORDER BY site, agent, stream, first_seen',
      ),
      currentEpoch: db.prepare<[string, string, string], { epoch: string }>(
        'SELECT epoch FROM streams WHERE site = ? AND agent = ? AND stream = ? ORDER BY first_seen DESC, rowid DESC LIMIT 1',
      ),
      events: db.prepare<[string, string, string, string, number, number], Omit<StoredEvent, 'data'> & { data: string }>(
        `SELECT seq, id, ts, source, correlation_id, data, received_at FROM events
         WHERE site = ? AND agent = ? AND stream = ? AND epoch = ? AND seq > ? ORDER BY seq LIMIT ?`,
      ),
    };
  }

  /** Stores the part of a batch that follows what is stored; one transaction. */
  applyBatch(b: EventBatch): BatchResult {
    return this.db.transaction((): BatchResult => {
      const now = Date.now();
      let newEpoch = false;
      let last = this.stmts.getStream.get(b.site, b.agent, b.stream, b.epoch)?.last_seq;
      if (last === undefined) {
        const others = this.stmts.otherEpochs.all(b.site, b.agent, b.stream);
        newEpoch = others.length > 0;
        if (newEpoch) {
          this.log.warn(
            { site: b.site, agent: b.agent, stream: b.stream, epoch: b.epoch, previous: others.map((o) => o.epoch) },
            'new outbox epoch for a known stream: the agent outbox was wiped or re-created; its sequence starts apart',
          );
        }
        this.stmts.insertStream.run(b.site, b.agent, b.stream, b.epoch, now, now);
        last = 0;
      }
      let droppedAtAgent = 0;
      if (b.dropped_upto !== undefined && b.dropped_upto > last) {
        // The agent's cap policy dropped these seqs for good: move past them, and count them.
        droppedAtAgent = b.dropped_upto - last;
        this.log.warn({ site: b.site, agent: b.agent, stream: b.stream, from: last + 1, to: b.dropped_upto }, 'agent dropped events (drop_oldest)');
        last = b.dropped_upto;
      }
      const first = b.records[0]!.seq;
      if (first > last + 1) {
        if (droppedAtAgent > 0) this.stmts.updateStream.run(last, droppedAtAgent, now, b.site, b.agent, b.stream, b.epoch);
        return { upto: last, status: 'gap', stored: 0, duplicates: 0, droppedAtAgent, newEpoch };
      }
      let stored = 0;
      let duplicates = 0;
      for (const r of b.records) {
        if (r.seq <= last) {
          duplicates++;
          continue;
        }
        this.stmts.insertEvent.run(
          b.site, b.agent, b.stream, b.epoch, r.seq, r.id, r.ts, r.source, r.correlation_id, JSON.stringify(r.data ?? null), now,
        );
        last = r.seq;
        stored++;
      }
      if (stored > 0 || droppedAtAgent > 0) this.stmts.updateStream.run(last, droppedAtAgent, now, b.site, b.agent, b.stream, b.epoch);
      return { upto: last, status: 'ok', stored, duplicates, droppedAtAgent, newEpoch };
    })();
  }

  listStreams(): StreamRow[] {
    const rows = this.stmts.listStreams.all();
    return rows.map((r) => ({ ...r, current: this.stmts.currentEpoch.get(r.site, r.agent, r.stream)?.epoch === r.epoch }));
  }

  /** Events of a stream in seq order; without `epoch`, the stream's current (newest) epoch. */
  listEvents(q: EventQuery): { epoch: string | null; events: StoredEvent[] } {
    const epoch = q.epoch ?? this.stmts.currentEpoch.get(q.site, q.agent, q.stream)?.epoch;
    if (!epoch) return { epoch: null, events: [] };
    const rows = this.stmts.events.all(q.site, q.agent, q.stream, epoch, q.after, q.limit);
    return { epoch, events: rows.map((r) => ({ ...r, data: JSON.parse(r.data) as unknown })) };
  }

  close(): void {
    this.db.close();
  }
}
