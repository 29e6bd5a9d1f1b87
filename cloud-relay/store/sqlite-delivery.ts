import type Database from 'better-sqlite3';
import { deadLetterWhere, type CursorRow, type DeadLetterFilter, type DeadLetterInput, type DeadLetterRow, type DeadLetterStats, type DeliveryStore, type PendingStream, type PruneResult } from './delivery.js';
import { segmentEvents, type StoredEvent } from './store.js';

/**
 * The sinks' cursors, dead letters and retention in the SQLite store (see delivery.ts). `serial`
 * runs a function between the store's ingest transactions: a sink's write must never land inside
 * one (a rolled-back group commit would take it along).
 */
export class SqliteDelivery implements DeliveryStore {
  private readonly stmts;

  constructor(
    private readonly db: Database.Database,
    private readonly serial: <T>(fn: () => T) => Promise<T>,
  ) {
    this.stmts = {
      pending: db.prepare<[string, string, number], PendingStream>(
        `SELECT s.id, s.site, s.agent, s.stream, s.epoch, s.last_seq, coalesce(c.delivered_seq, 0) AS delivered_seq
         FROM streams s LEFT JOIN sink_cursors c ON c.sink = ? AND c.stream_id = s.id
         WHERE s.last_seq > coalesce(c.delivered_seq, 0)
           -- A stream's epochs in the order they began: a later one waits while an earlier one is pending.
           AND NOT EXISTS (SELECT 1 FROM streams o LEFT JOIN sink_cursors oc ON oc.sink = ? AND oc.stream_id = o.id
                           WHERE o.site = s.site AND o.agent = s.agent AND o.stream = s.stream AND o.id < s.id AND o.last_seq > coalesce(oc.delivered_seq, 0))
         ORDER BY s.last_at, s.id LIMIT ?`,
      ),
      claim: db.prepare<[string, number, string, number, number, number], { delivered_seq: number }>(
        `INSERT INTO sink_cursors (sink, stream_id, delivered_seq, owner, lease_until, updated_at) VALUES (?, ?, 0, ?, ?, ?)
         ON CONFLICT (sink, stream_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
           WHERE sink_cursors.owner = excluded.owner OR sink_cursors.owner IS NULL OR sink_cursors.lease_until < ?
         RETURNING delivered_seq`,
      ),
      release: db.prepare<[string, number, string]>('UPDATE sink_cursors SET owner = NULL, lease_until = 0 WHERE sink = ? AND stream_id = ? AND owner = ?'),
      segments: db.prepare<[number, number], { received_at: number; records: string }>(
        'SELECT received_at, records FROM segments WHERE stream_id = ? AND last_seq > ? ORDER BY last_seq',
      ),
      advance: db.prepare<[number, number, number, string, number, string]>(
        `UPDATE sink_cursors SET delivered_seq = max(delivered_seq, ?), lease_until = ?, updated_at = ?
         WHERE sink = ? AND stream_id = ? AND owner = ?`,
      ),
      dead: db.prepare<[string, number, number, string, number, string, string | null, number, number]>(
        `INSERT INTO dead_letters (sink, stream_id, seq, event_id, status, attempts, error, field, dead_at, updated_at) VALUES (?, ?, ?, ?, 'dead', ?, ?, ?, ?, ?)
         ON CONFLICT (sink, stream_id, seq) DO UPDATE SET status = 'dead', attempts = dead_letters.attempts + excluded.attempts,
           error = excluded.error, field = excluded.field, dead_at = excluded.dead_at, updated_at = excluded.updated_at`,
      ),
      cursors: db.prepare<[], CursorRow>(
        `SELECT c.sink, s.site, s.agent, s.stream, s.epoch, s.last_seq, c.delivered_seq, c.updated_at
         FROM sink_cursors c JOIN streams s ON s.id = c.stream_id ORDER BY c.sink, s.site, s.agent, s.stream, s.first_seen, s.id`,
      ),
      settled: db.prepare<[number]>('DELETE FROM dead_letters WHERE id = ?'),
      deadAgain: db.prepare<[number, string, string | null, number, number, number]>(
        `UPDATE dead_letters SET status = 'dead', attempts = attempts + ?, error = ?, field = ?, dead_at = ?, updated_at = ? WHERE id = ?`,
      ),
      stats: db.prepare<[], DeadLetterStats>(
        `SELECT sink, count(*) AS count, sum(status = 'retry') AS retrying, min(dead_at) AS oldest_at FROM dead_letters GROUP BY sink ORDER BY sink`,
      ),
      prunable: db.prepare<[number, string, number], { id: number; records: number }>(
        `SELECT g.id, json_array_length(g.records) AS records FROM segments g
         WHERE g.received_at < ?
           AND NOT EXISTS (SELECT 1 FROM json_each(?) k
                           WHERE coalesce((SELECT c.delivered_seq FROM sink_cursors c WHERE c.sink = k.value AND c.stream_id = g.stream_id), 0) < g.last_seq)
           AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.stream_id = g.stream_id AND d.seq BETWEEN g.first_seq AND g.last_seq)
         ORDER BY g.received_at LIMIT ?`,
      ),
      deleteSegment: db.prepare<[number]>('DELETE FROM segments WHERE id = ?'),
    };
  }

  async pendingStreams(sink: string, limit: number): Promise<PendingStream[]> {
    return this.stmts.pending.all(sink, sink, limit);
  }

  claim(sink: string, streamId: number, owner: string, now: number, leaseMs: number): Promise<number | null> {
    return this.serial(() => this.stmts.claim.get(sink, streamId, owner, now + leaseMs, now, now)?.delivered_seq ?? null);
  }

  release(sink: string, streamId: number, owner: string): Promise<void> {
    return this.serial(() => void this.stmts.release.run(sink, streamId, owner));
  }

  async read(streamId: number, after: number, limit: number): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    if (limit <= 0) return out;
    for (const seg of this.stmts.segments.iterate(streamId, after)) {
      for (const e of segmentEvents(seg.records, seg.received_at, after)) {
        out.push(e);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  advance(sink: string, streamId: number, owner: string, deliveredSeq: number, dead: readonly DeadLetterInput[], now: number, leaseMs: number): Promise<boolean> {
    return this.serial(() =>
      this.db.transaction(() => {
        if (this.stmts.advance.run(deliveredSeq, now + leaseMs, now, sink, streamId, owner).changes === 0) return false;
        for (const d of dead) this.stmts.dead.run(sink, streamId, d.seq, d.event_id, d.attempts, d.error, d.field, now, now);
        return true;
      })(),
    );
  }

  async cursors(): Promise<CursorRow[]> {
    return this.stmts.cursors.all();
  }

  async listDeadLetters(f: DeadLetterFilter, limit: number): Promise<DeadLetterRow[]> {
    const w = deadLetterWhere(f, () => '?');
    return this.db
      .prepare<unknown[], DeadLetterRow>(
        `SELECT d.id, d.sink, d.stream_id, s.site, s.agent, s.stream, s.epoch, d.seq, d.event_id, d.status, d.attempts, d.error, d.field, d.dead_at, d.updated_at
         FROM dead_letters d JOIN streams s ON s.id = d.stream_id WHERE ${w.sql} ORDER BY d.sink, d.stream_id, d.seq LIMIT ?`,
      )
      .all(...w.params, limit);
  }

  retryDeadLetters(f: DeadLetterFilter, now: number): Promise<number> {
    const w = deadLetterWhere({ ...f, status: 'dead' }, () => '?');
    return this.serial(
      () =>
        this.db
          .prepare(`UPDATE dead_letters SET status = 'retry', updated_at = ? WHERE id IN (SELECT d.id FROM dead_letters d JOIN streams s ON s.id = d.stream_id WHERE ${w.sql})`)
          .run(now, ...w.params).changes,
    );
  }

  discardDeadLetters(f: DeadLetterFilter): Promise<number> {
    const w = deadLetterWhere(f, () => '?');
    return this.serial(
      () => this.db.prepare(`DELETE FROM dead_letters WHERE id IN (SELECT d.id FROM dead_letters d JOIN streams s ON s.id = d.stream_id WHERE ${w.sql})`).run(...w.params).changes,
    );
  }

  settleRetry(id: number, delivered: boolean, failure: { attempts: number; error: string; field: string | null } | null, now: number): Promise<void> {
    return this.serial(() => {
      if (delivered || !failure) this.stmts.settled.run(id);
      else this.stmts.deadAgain.run(failure.attempts, failure.error, failure.field, now, now, id);
    });
  }

  async deadLetterStats(): Promise<DeadLetterStats[]> {
    return this.stmts.stats.all();
  }

  prune(before: number, sinks: readonly string[], limit: number): Promise<PruneResult> {
    return this.serial(() =>
      this.db.transaction(() => {
        const doomed = this.stmts.prunable.all(before, JSON.stringify(sinks), limit);
        let records = 0;
        for (const g of doomed) {
          this.stmts.deleteSegment.run(g.id);
          records += g.records;
        }
        return { segments: doomed.length, records };
      })(),
    );
  }
}
