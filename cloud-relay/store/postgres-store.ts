import pg from 'pg';
import type { Logger } from '../../common/logger.js';
import { ErpEdgeError } from '../../common/errors.js';
import { migratePostgres } from './postgres-migrations.js';
import { PostgresDelivery } from './postgres-delivery.js';
import { agentColumns, segmentEvents, withAgentJson, type AgentRecord, type AlertRecord, type EventQuery, type HistoryRow, type RelayStore, type SegmentRecord, type StoredEvent, type StoreTx, type StreamRow, type StreamState, type StreamTotals, type StreamUpdate } from './store.js';

export interface PostgresStoreOptions {
  /** postgres:// URL, or the fields below. */
  url?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  database?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
  poolSize: number;
  /** Tables live in this schema (created when missing). */
  schema: string;
  statementTimeoutMs: number;
  /** How long a stored record id is remembered for de-duplication; 0 turns it off. */
  dedupeWindowMs: number;
  clock?: () => number;
  log: Logger;
}


/** BIGINT and sums as numbers: seqs, counts and epoch-ms times all fit in 2^53. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/** Where the store is, without the password (errors and logs). */
function describe(o: PostgresStoreOptions): string {
  if (o.url) {
    try {
      const u = new URL(o.url);
      return `${u.hostname}:${u.port || 5432}${u.pathname}`;
    } catch {
      return 'store.url (unparsable)';
    }
  }
  return `${o.host ?? 'localhost'}:${o.port ?? 5432}/${o.database ?? o.user ?? ''}`;
}

/**
 * The relay's store in PostgreSQL (see store.ts for the contract), for one relay or several sharing
 * the database. Each group commit is one transaction on one pooled connection; `openStream` locks
 * the stream epoch's row (`SELECT … FOR UPDATE`), so instances applying batches of one stream take
 * turns and each reads the cursor its predecessor committed: the next-seq check, the de-duplication
 * by id and the cursor update are decided by the database.
 */
export class PostgresRelayStore implements RelayStore {
  readonly kind = 'postgres';
  private readonly clock: () => number;
  private lastPrune = 0;
  private pruning: Promise<void> | undefined;
  readonly delivery: PostgresDelivery;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly o: PostgresStoreOptions,
  ) {
    this.clock = o.clock ?? Date.now;
    this.delivery = new PostgresDelivery(pool, (fn) => this.withClient(fn));
  }

  /** Connects, migrates, and answers once the store is usable; a store that cannot be reached is ERP_STORE_UNAVAILABLE. */
  static async open(o: PostgresStoreOptions): Promise<PostgresRelayStore> {
    const schema = o.schema;
    const pool = new pg.Pool({
      ...(o.url ? { connectionString: o.url } : {}),
      ...(o.host !== undefined ? { host: o.host } : {}),
      ...(o.port !== undefined ? { port: o.port } : {}),
      ...(o.database !== undefined ? { database: o.database } : {}),
      ...(o.user !== undefined ? { user: o.user } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      max: o.poolSize,
      types,
      options: `-c search_path=${schema} -c statement_timeout=${Math.round(o.statementTimeoutMs)}`,
      application_name: 'erp-edge-relay',
    });
    // An idle connection the server closed: logged; the pool replaces it.
    pool.on('error', (err) => o.log.error({ err: { message: err.message, code: (err as { code?: string }).code } }, 'relay store: idle PostgreSQL connection failed'));
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => undefined);
      const e = err as Error & { code?: string };
      throw new ErpEdgeError('ERP_STORE_UNAVAILABLE', `relay store: cannot connect to PostgreSQL at ${describe(o)}: ${e.message}`, { where: describe(o), code: e.code });
    }
    try {
      await migratePostgres(client, schema);
    } catch (err) {
      client.release();
      await pool.end().catch(() => undefined);
      throw err;
    }
    client.release();
    const store = new PostgresRelayStore(pool, o);
    o.log.info({ store: describe(o), schema, pool_size: o.poolSize }, 'relay store: PostgreSQL');
    return store;
  }

  async loadAlerts(resolvedKept: number): Promise<AlertRecord[]> {
    const r = await this.pool.query(
      `SELECT * FROM alerts WHERE resolved_at IS NULL
       UNION ALL SELECT * FROM (SELECT * FROM alerts WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT $1) r ORDER BY id`,
      [resolvedKept],
    );
    return r.rows.map((row: Record<string, unknown>) => ({
      ...(row as unknown as AlertRecord),
      labels: JSON.parse(row.labels as string) as Record<string, string>,
      value: JSON.parse(row.value as string) as number | string,
    }));
  }

  async insertAlert(a: Omit<AlertRecord, 'id'>): Promise<number> {
    const r = await this.pool.query<{ id: number }>(
      `INSERT INTO alerts (key, rule, kind, site, agent, labels, value, started_at, fired_at, resolved_at, firing_sent, resolved_sent)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
      [a.key, a.rule, a.kind, a.site, a.agent, JSON.stringify(a.labels), JSON.stringify(a.value), a.started_at, a.fired_at, a.resolved_at, a.firing_sent, a.resolved_sent],
    );
    return r.rows[0]!.id;
  }

  async resolveAlert(id: number, resolvedAt: number, value: number | string, resolvedSent: boolean, resolvedKept: number): Promise<void> {
    await this.withClient(async (c) => {
      await c.query('UPDATE alerts SET resolved_at = $1, value = $2, resolved_sent = $3 WHERE id = $4', [resolvedAt, JSON.stringify(value), resolvedSent, id]);
      await c.query(
        `DELETE FROM alerts WHERE resolved_at IS NOT NULL AND id <= (
           SELECT id FROM alerts WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET $1)`,
        [resolvedKept],
      );
    });
  }

  async markAlertSent(id: number, status: 'firing' | 'resolved'): Promise<void> {
    await this.pool.query(status === 'firing' ? 'UPDATE alerts SET firing_sent = true WHERE id = $1' : 'UPDATE alerts SET resolved_sent = true WHERE id = $1', [id]);
  }

  /** BEGIN … COMMIT on one pooled connection. */
  private async withClient<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true; // the connection itself failed: the pool drops it
      }
      throw err;
    } finally {
      c.release(broken);
    }
  }

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const now = this.clock();
    const result = await this.withClient((c) => fn(this.txOn(c, now)));
    this.pruneIfDue(now);
    return result;
  }

  /** Ids and keys older than the window are ignored by lookups; deleting them (every half window, out of the ingest transaction) only frees space. */
  private pruneIfDue(now: number): void {
    const w = this.o.dedupeWindowMs;
    if (w <= 0 || this.pruning || now - this.lastPrune < w / 2) return;
    this.lastPrune = now;
    this.pruning = (async () => {
      const a = await this.pool.query('DELETE FROM record_ids WHERE seen_at < $1', [now - w]);
      const b = await this.pool.query('DELETE FROM key_latest WHERE seen_at < $1', [now - w]);
      if ((a.rowCount ?? 0) + (b.rowCount ?? 0) > 0) this.o.log.info({ window_ms: w, ids: a.rowCount, keys: b.rowCount }, 'record-id index pruned: ids older than the de-duplication window forgotten');
    })()
      .catch((err: Error) => this.o.log.error({ err: { message: err.message } }, 'record-id index prune failed; will retry'))
      .finally(() => (this.pruning = undefined));
  }

  private txOn(c: pg.PoolClient, now: number): StoreTx {
    const window = this.o.dedupeWindowMs;
    return {
      now,
      openStream: (site, agent, stream, epoch) => this.openStream(c, site, agent, stream, epoch, now),
      storedIds: async (streamId, from, to) => {
        const out = new Map<number, string>();
        const held = await c.query<{ seq: number; id: string }>('SELECT seq, id FROM held_ids WHERE stream_id = $1 AND seq BETWEEN $2 AND $3', [streamId, from, to]);
        for (const h of held.rows) out.set(h.seq, h.id);
        const segs = await c.query<{ records: string }>('SELECT records FROM segments WHERE stream_id = $1 AND last_seq >= $2 AND first_seq <= $3 ORDER BY last_seq', [
          streamId,
          from,
          to,
        ]);
        for (const seg of segs.rows) {
          for (const r of JSON.parse(seg.records) as SegmentRecord[]) if (r.seq >= from && r.seq <= to) out.set(r.seq, r.id);
        }
        return out;
      },
      skippedRanges: async (streamId, from, to) => {
        const r = await c.query<{ from: number; to: number }>(
          'SELECT first_seq AS "from", last_seq AS "to" FROM skipped_ranges WHERE stream_id = $1 AND first_seq <= $2 AND last_seq >= $3 ORDER BY first_seq',
          [streamId, to, from],
        );
        return r.rows;
      },
      holdIds: async (streamId, held) => {
        if (held.length === 0) return;
        await c.query(
          `INSERT INTO held_ids (stream_id, seq, id) SELECT $1, s, i FROM unnest($2::bigint[], $3::text[]) AS t (s, i)
           ON CONFLICT (stream_id, seq) DO UPDATE SET id = excluded.id`,
          [streamId, held.map((h) => h.seq), held.map((h) => h.id)],
        );
      },
      holdSkipped: async (streamId, from, to, reason) => {
        await c.query(
          `INSERT INTO skipped_ranges (stream_id, first_seq, last_seq, reason) VALUES ($1, $2, $3, $4)
           ON CONFLICT (stream_id, first_seq) DO UPDATE SET last_seq = excluded.last_seq, reason = excluded.reason`,
          [streamId, from, to, reason],
        );
      },
      rememberIds: async (key, ids) => {
        const out = new Array<boolean>(ids.length);
        if (window <= 0) return out.fill(true);
        // Seen within the window (by any relay: the stream's lock is held, its ids cannot change under us).
        const seen = await c.query<{ id: string }>('SELECT id FROM record_ids WHERE stream_key = $1 AND id = ANY($2::text[]) AND seen_at >= $3', [key, ids, now - window]);
        const known = new Set(seen.rows.map((r) => r.id));
        for (let i = 0; i < ids.length; i++) {
          out[i] = !known.has(ids[i]!);
          known.add(ids[i]!);
        }
        // Every id (re)remembered now: one seen again stays remembered while it keeps coming. Sorted:
        // two transactions touching the same ids lock them in one order.
        const unique = [...new Set(ids)].sort();
        await c.query(
          `INSERT INTO record_ids (stream_key, id, seen_at) SELECT $1, i, $3 FROM unnest($2::text[]) AS t (i)
           ON CONFLICT (stream_key, id) DO UPDATE SET seen_at = excluded.seen_at`,
          [key, unique, now],
        );
        return out;
      },
      rememberLatest: async (key, records) => {
        if (window <= 0) return records.map(() => true);
        const keys = [...new Set(records.map((r) => r.key))];
        const found = await c.query<{ key: string; id: string }>('SELECT key, id FROM key_latest WHERE stream_key = $1 AND key = ANY($2::text[]) AND seen_at >= $3', [
          key,
          keys,
          now - window,
        ]);
        const latest = new Map(found.rows.map((r) => [r.key, r.id] as const));
        const out = records.map((r) => {
          const was = latest.get(r.key);
          latest.set(r.key, r.id);
          return was !== r.id;
        });
        const ks = [...latest.keys()].sort();
        await c.query(
          `INSERT INTO key_latest (stream_key, key, id, seen_at) SELECT $1, k, i, $4 FROM unnest($2::text[], $3::text[]) AS t (k, i)
           ON CONFLICT (stream_key, key) DO UPDATE SET id = excluded.id, seen_at = excluded.seen_at`,
          [key, ks, ks.map((k) => latest.get(k)!), now],
        );
        return out;
      },
      insertSegment: async (streamId, firstSeq, lastSeq, recordsJson) => {
        await c.query('INSERT INTO segments (stream_id, first_seq, last_seq, received_at, records) VALUES ($1, $2, $3, $4, $5)', [streamId, firstSeq, lastSeq, now, recordsJson]);
      },
      updateStream: async (streamId, u: StreamUpdate) => {
        await c.query(
          `UPDATE streams SET last_seq = $1, stored = stored + $2, dropped = dropped + $3, dead_lettered = dead_lettered + $4,
             skipped_other = skipped_other + $5, pruned = pruned + $6, duplicate_ids = duplicate_ids + $7, conflicts = conflicts + $8,
             rejected_records = rejected_records + $9, rejected_too_large = rejected_too_large + $10,
             forked_from = CASE WHEN $11::bigint IS NULL THEN forked_from ELSE LEAST(coalesce(forked_from, $11::bigint), $11::bigint) END,
             last_at = $12 WHERE id = $13`,
          [u.last, u.stored, u.dropped, u.deadLettered, u.skippedOther, u.pruned, u.duplicateIds, u.conflicts, u.rejectedRecords, u.rejectedTooLarge, u.forkedFrom ?? null, now, streamId],
        );
      },
    };
  }

  /** The epoch's row, locked for the rest of the transaction; created (cursor 0) when new. */
  private async openStream(c: pg.PoolClient, site: string, agent: string, stream: string, epoch: string, now: number): Promise<StreamState> {
    const lock = () =>
      c.query<{ id: number; last_seq: number; forked_from: number | null; stream_key: number }>(
        'SELECT id, last_seq, forked_from, stream_key FROM streams WHERE site = $1 AND agent = $2 AND stream = $3 AND epoch = $4 FOR UPDATE',
        [site, agent, stream, epoch],
      );
    const found = (await lock()).rows[0];
    if (found) return { id: found.id, key: found.stream_key, last: found.last_seq, forkedFrom: found.forked_from, created: false, otherEpochs: [] };
    await c.query('INSERT INTO stream_keys (site, agent, stream) VALUES ($1, $2, $3) ON CONFLICT (site, agent, stream) DO NOTHING', [site, agent, stream]);
    const key = (await c.query<{ key: number }>('SELECT key FROM stream_keys WHERE site = $1 AND agent = $2 AND stream = $3', [site, agent, stream])).rows[0]!.key;
    const others = await c.query<{ epoch: string }>('SELECT epoch FROM streams WHERE site = $1 AND agent = $2 AND stream = $3 ORDER BY first_seen, id', [site, agent, stream]);
    // Another relay may be creating the same epoch: the unique key makes this wait for it, then do nothing.
    const ins = await c.query<{ id: number }>(
      `INSERT INTO streams (site, agent, stream, epoch, first_seen, last_at, stream_key) VALUES ($1, $2, $3, $4, $5, $5, $6)
       ON CONFLICT (site, agent, stream, epoch) DO NOTHING RETURNING id`,
      [site, agent, stream, epoch, now, key],
    );
    if (ins.rows[0]) return { id: ins.rows[0].id, key, last: 0, forkedFrom: null, created: true, otherEpochs: others.rows.map((r) => r.epoch) };
    const raced = (await lock()).rows[0]!;
    return { id: raced.id, key: raced.stream_key, last: raced.last_seq, forkedFrom: raced.forked_from, created: false, otherEpochs: [] };
  }

  async watermark(site: string, agent: string, stream: string, epoch: string): Promise<number> {
    const r = await this.pool.query<{ last_seq: number }>('SELECT last_seq FROM streams WHERE site = $1 AND agent = $2 AND stream = $3 AND epoch = $4', [site, agent, stream, epoch]);
    return r.rows[0]?.last_seq ?? 0;
  }

  async listStreams(): Promise<StreamRow[]> {
    const r = await this.pool.query<StreamRow>(
      `SELECT s.site, s.agent, s.stream, s.epoch, s.last_seq, s.stored, s.dropped, s.dead_lettered, s.skipped_other, s.duplicate_ids, s.conflicts,
              s.rejected_records, s.forked_from, s.first_seen, s.last_at,
              s.id = (SELECT c.id FROM streams c WHERE c.site = s.site AND c.agent = s.agent AND c.stream = s.stream
                      ORDER BY c.first_seen DESC, c.id DESC LIMIT 1) AS current
       FROM streams s ORDER BY s.site, s.agent, s.stream, s.first_seen, s.id`,
    );
    return r.rows;
  }

  async streamTotals(): Promise<StreamTotals[]> {
    const r = await this.pool.query<StreamTotals>(
      `SELECT site, agent, stream, sum(stored) AS stored, sum(dropped) AS dropped, sum(dead_lettered) AS dead_lettered,
              sum(skipped_other) AS skipped_other, sum(pruned) AS pruned, sum(duplicate_ids) AS duplicate_ids, sum(conflicts) AS conflicts,
              sum(rejected_records) AS rejected_records, sum(rejected_too_large) AS rejected_too_large
       FROM streams GROUP BY site, agent, stream ORDER BY site, agent, stream`,
    );
    return r.rows;
  }

  async listEvents(q: EventQuery): Promise<{ epoch: string | null; events: StoredEvent[] }> {
    let epoch = q.epoch;
    if (epoch === undefined) {
      const cur = await this.pool.query<{ epoch: string }>('SELECT epoch FROM streams WHERE site = $1 AND agent = $2 AND stream = $3 ORDER BY first_seen DESC, id DESC LIMIT 1', [
        q.site,
        q.agent,
        q.stream,
      ]);
      epoch = cur.rows[0]?.epoch;
    }
    if (!epoch) return { epoch: null, events: [] };
    const events: StoredEvent[] = [];
    const id = (await this.pool.query<{ id: number }>('SELECT id FROM streams WHERE site = $1 AND agent = $2 AND stream = $3 AND epoch = $4', [q.site, q.agent, q.stream, epoch])).rows[0]?.id;
    if (id === undefined) return { epoch, events };
    // A page at a time: segments hold up to a batch each; read a few until the page is full.
    let after = q.after;
    for (;;) {
      const segs = await this.pool.query<{ last_seq: number; received_at: number; records: string }>(
        'SELECT last_seq, received_at, records FROM segments WHERE stream_id = $1 AND last_seq > $2 ORDER BY last_seq LIMIT 16',
        [id, after],
      );
      for (const seg of segs.rows) {
        for (const e of segmentEvents(seg.records, seg.received_at, q.after)) {
          events.push(e);
          if (events.length >= q.limit) return { epoch, events };
        }
        after = seg.last_seq;
      }
      if (segs.rows.length < 16) return { epoch, events };
    }
  }

  async loadAgents(): Promise<AgentRecord[]> {
    const r = await this.pool.query<Omit<AgentRecord, 'birth' | 'health'> & { birth: string | null; health: string | null }>(
      'SELECT site, agent, online, boot, birth, presence_at, last_seen, health, health_at, stale_wills FROM agents ORDER BY site, agent',
    );
    return r.rows.map(withAgentJson);
  }

  async saveAgents(rows: readonly AgentRecord[]): Promise<void> {
    if (rows.length === 0) return;
    await this.withClient(async (c) => {
      for (const r of rows) {
        await c.query(
          `INSERT INTO agents (site, agent, online, boot, birth, presence_at, last_seen, health, health_at, stale_wills) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (site, agent) DO UPDATE SET online = excluded.online, boot = excluded.boot, birth = excluded.birth,
             presence_at = excluded.presence_at, last_seen = excluded.last_seen, health = excluded.health, health_at = excluded.health_at,
             stale_wills = excluded.stale_wills`,
          [...agentColumns(r, r.online)],
        );
      }
    });
  }

  async loadHistory(keep: number): Promise<HistoryRow[]> {
    const r = await this.pool.query<HistoryRow['sample'] & { site: string; agent: string }>(
      `SELECT site, agent, at, pending, oldest_pending_age_ms, capture_rate, forward_rate, collectors_in_error, rss FROM (
         SELECT *, row_number() OVER (PARTITION BY site, agent ORDER BY id DESC) AS rn FROM agent_history
       ) h WHERE rn <= $1 ORDER BY site, agent, id`,
      [keep],
    );
    return r.rows.map(({ site, agent, ...sample }) => ({ site, agent, sample }));
  }

  async saveHistory(rows: readonly HistoryRow[], keep: number): Promise<void> {
    if (rows.length === 0) return;
    await this.withClient(async (c) => {
      const touched = new Map<string, { site: string; agent: string }>();
      for (const { site, agent, sample: s } of rows) {
        await c.query(
          `INSERT INTO agent_history (site, agent, at, pending, oldest_pending_age_ms, capture_rate, forward_rate, collectors_in_error, rss)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [site, agent, s.at, s.pending, s.oldest_pending_age_ms, s.capture_rate, s.forward_rate, s.collectors_in_error, s.rss],
        );
        touched.set(`${site}/${agent}`, { site, agent });
      }
      for (const { site, agent } of touched.values()) {
        await c.query(
          `DELETE FROM agent_history WHERE site = $1 AND agent = $2 AND id <= (
             SELECT id FROM agent_history WHERE site = $1 AND agent = $2 ORDER BY id DESC LIMIT 1 OFFSET $3)`,
          [site, agent, keep],
        );
      }
    });
  }

  async close(): Promise<void> {
    await this.pruning;
    await this.pool.end();
  }
}
