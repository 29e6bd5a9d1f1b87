import type pg from 'pg';
import { deadLetterWhere, type CursorRow, type DeadLetterFilter, type DeadLetterInput, type DeadLetterRow, type DeadLetterStats, type DeliveryStore, type PendingStream, type PruneResult } from './delivery.js';
import { segmentEvents, type StoredEvent } from './store.js';

/**
 * The sinks' cursors, dead letters and retention in the PostgreSQL store (see delivery.ts). Several
 * relay instances share these rows: a lease row per (sink, stream) says which one delivers it (a
 * lease, not an advisory lock: a session lock would pin one pooled connection per stream), and each
 * cursor move checks the owner in the same statement.
 */
export class PostgresDelivery implements DeliveryStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly withClient: <T>(fn: (c: pg.PoolClient) => Promise<T>) => Promise<T>,
  ) {}

  async pendingStreams(sink: string, limit: number): Promise<PendingStream[]> {
    const r = await this.pool.query<PendingStream>(
      `SELECT s.id, s.site, s.agent, s.stream, s.epoch, s.last_seq, coalesce(c.delivered_seq, 0) AS delivered_seq
       FROM streams s LEFT JOIN sink_cursors c ON c.sink = $1 AND c.stream_id = s.id
       WHERE s.last_seq > coalesce(c.delivered_seq, 0)
         -- A stream's epochs in the order they began: a later one waits while an earlier one is pending.
         AND NOT EXISTS (SELECT 1 FROM streams o LEFT JOIN sink_cursors oc ON oc.sink = $1 AND oc.stream_id = o.id
                         WHERE o.site = s.site AND o.agent = s.agent AND o.stream = s.stream AND o.id < s.id AND o.last_seq > coalesce(oc.delivered_seq, 0))
       ORDER BY s.last_at, s.id LIMIT $2`,
      [sink, limit],
    );
    return r.rows;
  }

  async claim(sink: string, streamId: number, owner: string, now: number, leaseMs: number): Promise<number | null> {
    const r = await this.pool.query<{ delivered_seq: number }>(
      `INSERT INTO sink_cursors (sink, stream_id, delivered_seq, owner, lease_until, updated_at) VALUES ($1, $2, 0, $3, $4, $5)
       ON CONFLICT (sink, stream_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
         WHERE sink_cursors.owner = excluded.owner OR sink_cursors.owner IS NULL OR sink_cursors.lease_until < $5
       RETURNING delivered_seq`,
      [sink, streamId, owner, now + leaseMs, now],
    );
    return r.rows[0]?.delivered_seq ?? null;
  }

  async release(sink: string, streamId: number, owner: string): Promise<void> {
    await this.pool.query('UPDATE sink_cursors SET owner = NULL, lease_until = 0 WHERE sink = $1 AND stream_id = $2 AND owner = $3', [sink, streamId, owner]);
  }

  async read(streamId: number, after: number, limit: number): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let from = after;
    // A few segments at a time until the page is full (a segment holds up to a batch).
    while (out.length < limit) {
      const segs = await this.pool.query<{ last_seq: number; received_at: number; records: string }>(
        'SELECT last_seq, received_at, records FROM segments WHERE stream_id = $1 AND last_seq > $2 ORDER BY last_seq LIMIT 16',
        [streamId, from],
      );
      for (const seg of segs.rows) {
        for (const e of segmentEvents(seg.records, seg.received_at, after)) {
          out.push(e);
          if (out.length >= limit) return out;
        }
        from = seg.last_seq;
      }
      if (segs.rows.length < 16) break;
    }
    return out;
  }

  advance(sink: string, streamId: number, owner: string, deliveredSeq: number, dead: readonly DeadLetterInput[], now: number, leaseMs: number): Promise<boolean> {
    return this.withClient(async (c) => {
      const moved = await c.query(
        `UPDATE sink_cursors SET delivered_seq = GREATEST(delivered_seq, $1), lease_until = $2, updated_at = $3
         WHERE sink = $4 AND stream_id = $5 AND owner = $6`,
        [deliveredSeq, now + leaseMs, now, sink, streamId, owner],
      );
      if (moved.rowCount === 0) return false;
      if (dead.length > 0) {
        await c.query(
          `INSERT INTO dead_letters (sink, stream_id, seq, event_id, status, attempts, error, field, dead_at, updated_at)
           SELECT $1, $2, q, i, 'dead', a, e, f, $8, $8 FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[]) AS t (q, i, a, e, f)
           ON CONFLICT (sink, stream_id, seq) DO UPDATE SET status = 'dead', attempts = dead_letters.attempts + excluded.attempts,
             error = excluded.error, field = excluded.field, dead_at = excluded.dead_at, updated_at = excluded.updated_at`,
          [sink, streamId, dead.map((d) => d.seq), dead.map((d) => d.event_id), dead.map((d) => d.attempts), dead.map((d) => d.error), dead.map((d) => d.field), now],
        );
      }
      return true;
    });
  }

  async cursors(): Promise<CursorRow[]> {
    const r = await this.pool.query<CursorRow>(
      `SELECT c.sink, s.site, s.agent, s.stream, s.epoch, s.last_seq, c.delivered_seq, c.updated_at
       FROM sink_cursors c JOIN streams s ON s.id = c.stream_id ORDER BY c.sink, s.site, s.agent, s.stream, s.first_seen, s.id`,
    );
    return r.rows;
  }

  async listDeadLetters(f: DeadLetterFilter, limit: number): Promise<DeadLetterRow[]> {
    const w = deadLetterWhere(f, (n) => `$${n}`);
    const r = await this.pool.query<DeadLetterRow>(
      `SELECT d.id, d.sink, d.stream_id, s.site, s.agent, s.stream, s.epoch, d.seq, d.event_id, d.status, d.attempts, d.error, d.field, d.dead_at, d.updated_at
       FROM dead_letters d JOIN streams s ON s.id = d.stream_id WHERE ${w.sql} ORDER BY d.sink, d.stream_id, d.seq LIMIT $${w.params.length + 1}`,
      [...w.params, limit],
    );
    return r.rows;
  }

  async retryDeadLetters(f: DeadLetterFilter, now: number): Promise<number> {
    const w = deadLetterWhere({ ...f, status: 'dead' }, (n) => `$${n}`, 2);
    const r = await this.pool.query(
      `UPDATE dead_letters SET status = 'retry', updated_at = $1 WHERE id IN (SELECT d.id FROM dead_letters d JOIN streams s ON s.id = d.stream_id WHERE ${w.sql})`,
      [now, ...w.params],
    );
    return r.rowCount ?? 0;
  }

  async discardDeadLetters(f: DeadLetterFilter): Promise<number> {
    const w = deadLetterWhere(f, (n) => `$${n}`);
    const r = await this.pool.query(`DELETE FROM dead_letters WHERE id IN (SELECT d.id FROM dead_letters d JOIN streams s ON s.id = d.stream_id WHERE ${w.sql})`, w.params);
    return r.rowCount ?? 0;
  }

  async settleRetry(id: number, delivered: boolean, failure: { attempts: number; error: string; field: string | null } | null, now: number): Promise<void> {
    if (delivered || !failure) await this.pool.query('DELETE FROM dead_letters WHERE id = $1', [id]);
    else {
      await this.pool.query(`UPDATE dead_letters SET status = 'dead', attempts = attempts + $1, error = $2, field = $3, dead_at = $4, updated_at = $4 WHERE id = $5`, [
        failure.attempts,
        failure.error,
        failure.field,
        now,
        id,
      ]);
    }
  }

  async deadLetterStats(): Promise<DeadLetterStats[]> {
    const r = await this.pool.query<DeadLetterStats>(
      `SELECT sink, count(*) AS count, count(*) FILTER (WHERE status = 'retry') AS retrying, min(dead_at) AS oldest_at FROM dead_letters GROUP BY sink ORDER BY sink`,
    );
    return r.rows;
  }

  async prune(before: number, sinks: readonly string[], limit: number): Promise<PruneResult> {
    const r = await this.pool.query<{ records: number }>(
      `DELETE FROM segments WHERE id IN (
         SELECT g.id FROM segments g
         WHERE g.received_at < $1
           AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS k (sink)
                           WHERE coalesce((SELECT c.delivered_seq FROM sink_cursors c WHERE c.sink = k.sink AND c.stream_id = g.stream_id), 0) < g.last_seq)
           AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.stream_id = g.stream_id AND d.seq BETWEEN g.first_seq AND g.last_seq)
         ORDER BY g.received_at LIMIT $3)
       RETURNING json_array_length(records::json) AS records`,
      [before, sinks, limit],
    );
    return { segments: r.rows.length, records: r.rows.reduce((n, x) => n + x.records, 0) };
  }
}
