import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { EventBatch, WireRecord } from '../common/wire-v1.js';
import type { Logger } from '../common/logger.js';

export interface BatchResult {
  /** Highest seq stored contiguously for the batch's (site, agent, stream, epoch). */
  upto: number;
  status: 'ok' | 'gap';
  stored: number;
  duplicates: number;
  /**
   * Resent seqs whose record id differs from the one stored: the agent's outbox went back in
   * time under the same epoch (VM snapshot or backup restored), so seqs were reused for other
   * records. They are skipped like duplicates; this count makes the loss visible.
   */
  conflicts: number;
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
  id INTEGER PRIMARY KEY,
  site TEXT NOT NULL, agent TEXT NOT NULL, stream TEXT NOT NULL, epoch TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  UNIQUE (site, agent, stream, epoch)
);
-- One row per stored run of consecutive records (a segment): inserting a batch costs one row, not
-- one per record, which is most of the relay's per-event cost. Records are the v1 JSON array.
CREATE TABLE IF NOT EXISTS segments (
  id INTEGER PRIMARY KEY,
  stream_id INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  records TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_seq ON segments (stream_id, last_seq);
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
      getStream: db.prepare<[string, string, string, string], { id: number; last_seq: number }>(
        'SELECT id, last_seq FROM streams WHERE site = ? AND agent = ? AND stream = ? AND epoch = ?',
      ),
      otherEpochs: db.prepare<[string, string, string], { epoch: string; last_seq: number }>(
        'SELECT epoch, last_seq FROM streams WHERE site = ? AND agent = ? AND stream = ?',
      ),
      insertStream: db.prepare(
        'INSERT INTO streams (site, agent, stream, epoch, first_seen, last_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      updateStream: db.prepare('UPDATE streams SET last_seq = ?, dropped = dropped + ?, last_at = ? WHERE id = ?'),
      insertSegment: db.prepare('INSERT INTO segments (stream_id, first_seq, last_seq, received_at, records) VALUES (?, ?, ?, ?, ?)'),
      listStreams: db.prepare<[], Omit<StreamRow, 'current'>>(
        'SELECT site, agent, stream, epoch, last_seq, dropped, first_seen, last_at FROM streams ORDER BY site, agent, stream, first_seen',
      ),
      currentEpoch: db.prepare<[string, string, string], { epoch: string }>(
        'SELECT epoch FROM streams WHERE site = ? AND agent = ? AND stream = ? ORDER BY first_seen DESC, id DESC LIMIT 1',
      ),
      streamId: db.prepare<[string, string, string, string], { id: number }>(
        'SELECT id FROM streams WHERE site = ? AND agent = ? AND stream = ? AND epoch = ?',
      ),
      segmentsAfter: db.prepare<[number, number], { received_at: number; records: string }>(
        'SELECT received_at, records FROM segments WHERE stream_id = ? AND last_seq > ? ORDER BY last_seq',
      ),
    };
  }

  /** Stores the part of a batch that follows what is stored; one transaction. */
  applyBatch(b: EventBatch): BatchResult {
    return this.db.transaction(() => this.apply(b))();
  }

  /** Several batches in one transaction (one fsync); results in the same order. */
  applyBatches(batches: readonly EventBatch[]): BatchResult[] {
    return this.db.transaction(() => batches.map((b) => this.apply(b)))();
  }

  private apply(b: EventBatch): BatchResult {
    const now = Date.now();
    let newEpoch = false;
    const found = this.stmts.getStream.get(b.site, b.agent, b.stream, b.epoch);
    let streamId = found?.id;
    let last = found?.last_seq;
    if (streamId === undefined || last === undefined) {
      const others = this.stmts.otherEpochs.all(b.site, b.agent, b.stream);
      newEpoch = others.length > 0;
      if (newEpoch) {
        this.log.warn(
          { site: b.site, agent: b.agent, stream: b.stream, epoch: b.epoch, previous: others.map((o) => o.epoch) },
          'new outbox epoch for a known stream: the agent outbox was wiped or re-created; its sequence starts apart',
        );
      }
      streamId = Number(this.stmts.insertStream.run(b.site, b.agent, b.stream, b.epoch, now, now).lastInsertRowid);
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
      if (droppedAtAgent > 0) this.stmts.updateStream.run(last, droppedAtAgent, now, streamId);
      return { upto: last, status: 'gap', stored: 0, duplicates: 0, conflicts: 0, droppedAtAgent, newEpoch };
    }
    // Records up to `last` are already stored (a resend): keep only the new tail.
    const duplicates = Math.max(0, Math.min(b.records.length, last - first + 1));
    const conflicts = duplicates > 0 ? this.countConflicts(streamId, b.records.slice(0, duplicates)) : 0;
    if (conflicts > 0) {
      this.log.error(
        { site: b.site, agent: b.agent, stream: b.stream, epoch: b.epoch, from: first, conflicts },
        'resent seqs carry other records than those stored: the agent outbox was rolled back (snapshot or backup restore?); those records are not stored',
      );
    }
    const tail = duplicates > 0 ? b.records.slice(duplicates) : b.records;
    const stored = tail.length;
    if (stored > 0) {
      const lastSeq = tail[tail.length - 1]!.seq;
      this.stmts.insertSegment.run(streamId, tail[0]!.seq, lastSeq, now, JSON.stringify(tail.map(normalizeRecord)));
      last = lastSeq;
    }
    if (stored > 0 || droppedAtAgent > 0) this.stmts.updateStream.run(last, droppedAtAgent, now, streamId);
    return { upto: last, status: 'ok', stored, duplicates, conflicts, droppedAtAgent, newEpoch };
  }

  /** How many of these already-stored seqs were stored with a different record id. */
  private countConflicts(streamId: number, resent: readonly WireRecord[]): number {
    const want = new Map(resent.map((r) => [r.seq, r.id]));
    let conflicts = 0;
    let checked = 0;
    for (const seg of this.stmts.segmentsAfter.iterate(streamId, resent[0]!.seq - 1)) {
      for (const r of JSON.parse(seg.records) as WireRecord[]) {
        const id = want.get(r.seq);
        if (id === undefined) continue;
        if (id !== r.id) conflicts++;
        if (++checked === want.size) return conflicts;
      }
    }
    return conflicts;
  }

  listStreams(): StreamRow[] {
    const rows = this.stmts.listStreams.all();
    return rows.map((r) => ({ ...r, current: this.stmts.currentEpoch.get(r.site, r.agent, r.stream)?.epoch === r.epoch }));
  }

  /** Events of a stream in seq order; without `epoch`, the stream's current (newest) epoch. */
  listEvents(q: EventQuery): { epoch: string | null; events: StoredEvent[] } {
    const epoch = q.epoch ?? this.stmts.currentEpoch.get(q.site, q.agent, q.stream)?.epoch;
    if (!epoch) return { epoch: null, events: [] };
    const id = this.stmts.streamId.get(q.site, q.agent, q.stream, epoch)?.id;
    const events: StoredEvent[] = [];
    if (id === undefined) return { epoch, events };
    // Segments are read lazily (iterate) so a small page does not load the whole stream.
    for (const seg of this.stmts.segmentsAfter.iterate(id, q.after)) {
      for (const r of JSON.parse(seg.records) as WireRecord[]) {
        if (r.seq <= q.after) continue;
        events.push({ seq: r.seq, id: r.id, ts: r.ts, source: r.source, correlation_id: r.correlation_id, data: r.data, received_at: seg.received_at });
        if (events.length >= q.limit) return { epoch, events };
      }
    }
    return { epoch, events };
  }

  close(): void {
    this.db.close();
  }
}

/** Stored records always carry every field, `data` included (null when absent). */
function normalizeRecord(r: WireRecord): WireRecord {
  return { seq: r.seq, id: r.id, ts: r.ts, source: r.source, correlation_id: r.correlation_id, data: r.data ?? null };
}
