import type { SqliteDb } from './sqlite.js';

/**
 * The outbox's dead-letter table: records the relay refused (origin `relay`, with the seq they
 * had), records refused at capture (origin `capture`, no seq) and damaged rows moved out of the
 * way by `outbox repair` or the forwarder's read (origin `repair`, with their seq), each with its
 * reason. Rows leave
 * only by an operator's `deadletter resend` (re-appended as new records) or `discard`.
 */
export type DeadLetterOrigin = 'relay' | 'capture' | 'repair';

export interface DeadLetterInput {
  stream: string;
  epoch?: string | null;
  seq?: number | null;
  origin: DeadLetterOrigin;
  reason: string;
  /** The record's JSON (with its seq when it had one). */
  payload: string;
}

export interface DeadLetter {
  id: number;
  stream: string;
  epoch: string | null;
  seq: number | null;
  recordId: string | null;
  source: string | null;
  origin: DeadLetterOrigin;
  reason: string;
  at: number;
  bytes: number;
  payload: string;
}

export interface DeadLetterQuery {
  stream?: string;
  /** Only these dead-letter row ids. */
  ids?: readonly number[];
  /** Rows after this id (paging). */
  afterId?: number;
  limit?: number;
}

interface Row {
  id: number;
  stream: string;
  epoch: string | null;
  seq: number | null;
  record_id: string | null;
  source: string | null;
  origin: DeadLetterOrigin;
  reason: string;
  at: number;
  bytes: number;
  payload: string;
}

export class DeadLetters {
  private readonly stmts;

  constructor(private readonly db: SqliteDb) {
    this.stmts = {
      insert: db.prepare(
        'INSERT INTO dead_letters (stream, epoch, seq, record_id, source, origin, reason, at, bytes, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      deleteId: db.prepare('DELETE FROM dead_letters WHERE id = ?'),
      summary: db.prepare<[], { stream: string; n: number; oldest: number }>(
        'SELECT stream, count(*) AS n, min(at) AS oldest FROM dead_letters GROUP BY stream ORDER BY stream',
      ),
    };
  }

  /** Inserts rows (the caller runs this inside its transaction). */
  insert(rows: readonly DeadLetterInput[], now: number): void {
    for (const r of rows) {
      const meta = recordMeta(r.payload);
      this.stmts.insert.run(r.stream, r.epoch ?? null, r.seq ?? null, meta.id, meta.source, r.origin, r.reason, now, Buffer.byteLength(r.payload), r.payload);
    }
  }

  /** Deletes rows by id (the caller runs this inside its transaction). */
  delete(ids: readonly number[]): void {
    for (const id of ids) this.stmts.deleteId.run(id);
  }

  list(q: DeadLetterQuery = {}): DeadLetter[] {
    const { sql, params } = where(q);
    const limit = q.limit ?? 1_000;
    const rows = this.db.prepare(`SELECT * FROM dead_letters ${sql} ORDER BY id LIMIT ?`).all(...params, limit) as Row[];
    return rows.map((r) => ({
      id: r.id,
      stream: r.stream,
      epoch: r.epoch,
      seq: r.seq,
      recordId: r.record_id,
      source: r.source,
      origin: r.origin,
      reason: r.reason,
      at: r.at,
      bytes: r.bytes,
      payload: r.payload,
    }));
  }

  /** Per stream: how many rows and when the oldest arrived. */
  summary(): { stream: string; count: number; oldestAt: number }[] {
    return this.stmts.summary.all().map((r) => ({ stream: r.stream, count: r.n, oldestAt: r.oldest }));
  }

  /** Deletes the rows a query selects, for good; returns what was deleted (the caller logs it). */
  discard(q: DeadLetterQuery): DeadLetter[] {
    return this.db.transaction(() => {
      const rows = this.list({ ...q, limit: q.limit ?? Number.MAX_SAFE_INTEGER });
      this.delete(rows.map((r) => r.id));
      return rows;
    })();
  }
}

function where(q: DeadLetterQuery): { sql: string; params: (string | number)[] } {
  const parts: string[] = [];
  const params: (string | number)[] = [];
  if (q.stream !== undefined) {
    parts.push('stream = ?');
    params.push(q.stream);
  }
  if (q.ids !== undefined) {
    parts.push(`id IN (${q.ids.map(() => '?').join(', ') || 'NULL'})`);
    params.push(...q.ids);
  }
  if (q.afterId !== undefined) {
    parts.push('id > ?');
    params.push(q.afterId);
  }
  return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

/** id and source of a stored record, when its JSON has them (a record refused at capture may not). */
function recordMeta(payload: string): { id: string | null; source: string | null } {
  try {
    const parsed = JSON.parse(payload) as { id?: unknown; source?: unknown; record?: { id?: unknown; source?: unknown } };
    const r = parsed.record ?? parsed; // a preview (see the capture writer) wraps the record
    return { id: typeof r.id === 'string' ? r.id : null, source: typeof r.source === 'string' ? r.source : null };
  } catch {
    return { id: null, source: null };
  }
}
