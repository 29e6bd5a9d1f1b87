import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../../common/logger.js';
import { IdIndex } from './id-index.js';
import { SqliteDelivery } from './sqlite-delivery.js';
import { migrate } from './migrations.js';
import { agentColumns, segmentEvents, withAgentJson, type AgentRecord, type AlertRecord, type EventQuery, type HistoryRow, type RelayStore, type SegmentRecord, type StoredEvent, type StoreTx, type StreamRow, type StreamState, type StreamTotals, type StreamUpdate } from './store.js';

export interface SqliteStoreOptions {
  path: string;
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a stored record id is remembered for de-duplication; 0 turns it off. */
  dedupeWindowMs: number;
  /** The store's clock (received_at, id-index generations); injectable for tests. */
  clock?: () => number;
  log: Logger;
}


type StreamUpdateParams = Omit<StreamUpdate, 'forkedFrom'> & { forkedFrom: number | null; now: number; id: number };

type AlertRowDb = Omit<AlertRecord, 'labels' | 'value' | 'firing_sent' | 'resolved_sent'> & { labels: string; value: string; firing_sent: number; resolved_sent: number };

type StreamRowDb = Omit<StreamRow, 'current'> & { current: number };

/** The relay's durable store in one SQLite file (WAL); see store.ts for the contract. */
export class SqliteRelayStore implements RelayStore {
  readonly kind = 'sqlite';
  /** Transactions one after another (each spans microtasks only, but callers may overlap). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly db: Database.Database;
  private readonly ids: IdIndex;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly stmts;
  readonly delivery: SqliteDelivery;

  constructor(opts: SqliteStoreOptions) {
    const path = opts.path;
    this.clock = opts.clock ?? Date.now;
    this.log = opts.log;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    this.db = db;
    try {
      db.pragma('busy_timeout = 5000');
      // First: a file of a newer relay is refused before anything (journal mode included) changes it.
      migrate(db);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
      this.ids = new IdIndex(db, opts.dedupeWindowMs);
      this.ids.open(this.clock());
    } catch (err) {
      // A refused open (e.g. ERP_STORE_SCHEMA) must not leave the file handle open.
      db.close();
      throw err;
    }
    this.stmts = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      getStream: db.prepare<[string, string, string, string], { id: number; last_seq: number; forked_from: number | null; stream_key: number | null }>(
        'SELECT id, last_seq, forked_from, stream_key FROM streams WHERE site = ? AND agent = ? AND stream = ? AND epoch = ?',
      ),
      otherEpochs: db.prepare<[string, string, string], string>('SELECT epoch FROM streams WHERE site = ? AND agent = ? AND stream = ? ORDER BY first_seen, id').pluck(),
      getKey: db.prepare<[string, string, string], number>('SELECT key FROM stream_keys WHERE site = ? AND agent = ? AND stream = ?').pluck(),
      insertKey: db.prepare<[string, string, string]>('INSERT INTO stream_keys (site, agent, stream) VALUES (?, ?, ?)'),
      setKey: db.prepare<[number, number]>('UPDATE streams SET stream_key = ? WHERE id = ?'),
      insertStream: db.prepare<[string, string, string, string, number, number, number]>(
        'INSERT INTO streams (site, agent, stream, epoch, first_seen, last_at, stream_key) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      updateStream: db.prepare<[StreamUpdateParams]>(
        `UPDATE streams SET last_seq = @last, stored = stored + @stored, dropped = dropped + @dropped, dead_lettered = dead_lettered + @deadLettered,
           skipped_other = skipped_other + @skippedOther, pruned = pruned + @pruned, duplicate_ids = duplicate_ids + @duplicateIds, conflicts = conflicts + @conflicts,
           rejected_records = rejected_records + @rejectedRecords, rejected_too_large = rejected_too_large + @rejectedTooLarge, forked_from = coalesce(min(forked_from, @forkedFrom), forked_from, @forkedFrom),
           last_at = @now WHERE id = @id`,
      ),
      heldIds: db.prepare<[number, number, number], { seq: number; id: string }>('SELECT seq, id FROM held_ids WHERE stream_id = ? AND seq BETWEEN ? AND ?'),
      holdId: db.prepare<[number, number, string]>('INSERT OR REPLACE INTO held_ids (stream_id, seq, id) VALUES (?, ?, ?)'),
      skippedOver: db.prepare<[number, number, number], { from: number; to: number }>(
        'SELECT first_seq AS "from", last_seq AS "to" FROM skipped_ranges WHERE stream_id = ? AND first_seq <= ? AND last_seq >= ? ORDER BY first_seq',
      ),
      holdSkipped: db.prepare<[number, number, number, string]>('INSERT OR REPLACE INTO skipped_ranges (stream_id, first_seq, last_seq, reason) VALUES (?, ?, ?, ?)'),
      insertSegment: db.prepare<[number, number, number, number, string]>(
        'INSERT INTO segments (stream_id, first_seq, last_seq, received_at, records) VALUES (?, ?, ?, ?, ?)',
      ),
      segmentsOver: db.prepare<[number, number], { first_seq: number; received_at: number; records: string }>(
        'SELECT first_seq, received_at, records FROM segments WHERE stream_id = ? AND last_seq >= ? ORDER BY last_seq',
      ),
      listStreams: db.prepare<[], StreamRowDb>(
        `SELECT s.site, s.agent, s.stream, s.epoch, s.last_seq, s.stored, s.dropped, s.dead_lettered, s.skipped_other, s.duplicate_ids, s.conflicts,
                s.rejected_records, s.forked_from, s.first_seen, s.last_at,
                s.id = (SELECT c.id FROM streams c WHERE c.site = s.site AND c.agent = s.agent AND c.stream = s.stream
                        ORDER BY c.first_seen DESC, c.id DESC LIMIT 1) AS current
         FROM streams s ORDER BY s.site, s.agent, s.stream, s.first_seen, s.id`,
      ),
      streamTotals: db.prepare<[], StreamTotals>(
        `SELECT site, agent, stream, sum(stored) AS stored, sum(dropped) AS dropped, sum(dead_lettered) AS dead_lettered,
                sum(skipped_other) AS skipped_other, sum(pruned) AS pruned, sum(duplicate_ids) AS duplicate_ids, sum(conflicts) AS conflicts,
                sum(rejected_records) AS rejected_records, sum(rejected_too_large) AS rejected_too_large
         FROM streams GROUP BY site, agent, stream ORDER BY site, agent, stream`,
      ),
      currentEpoch: db.prepare<[string, string, string], string>(
        'SELECT epoch FROM streams WHERE site = ? AND agent = ? AND stream = ? ORDER BY first_seen DESC, id DESC LIMIT 1',
      ).pluck(),
      streamId: db.prepare<[string, string, string, string], number>('SELECT id FROM streams WHERE site = ? AND agent = ? AND stream = ? AND epoch = ?').pluck(),
      loadAgents: db.prepare<[], { site: string; agent: string; online: number | null; boot: string | null; birth: string | null; presence_at: number | null; last_seen: number; health: string | null; health_at: number | null; stale_wills: number }>(
        'SELECT site, agent, online, boot, birth, presence_at, last_seen, health, health_at, stale_wills FROM agents ORDER BY site, agent',
      ),
      saveAgent: db.prepare<[string, string, number | null, string | null, string | null, number | null, number, string | null, number | null, number]>(
        `INSERT INTO agents (site, agent, online, boot, birth, presence_at, last_seen, health, health_at, stale_wills) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (site, agent) DO UPDATE SET online = excluded.online, boot = excluded.boot, birth = excluded.birth,
           presence_at = excluded.presence_at, last_seen = excluded.last_seen, health = excluded.health, health_at = excluded.health_at,
           stale_wills = excluded.stale_wills`,
      ),
      loadHistory: db.prepare<[number], HistoryRow['sample'] & { site: string; agent: string }>(
        `SELECT site, agent, at, pending, oldest_pending_age_ms, capture_rate, forward_rate, collectors_in_error, rss FROM (
           SELECT *, row_number() OVER (PARTITION BY site, agent ORDER BY id DESC) AS rn FROM agent_history
         ) WHERE rn <= ? ORDER BY site, agent, id`,
      ),
      insertHistory: db.prepare<[string, string, number, number, number | null, number | null, number | null, number, number | null]>(
        `INSERT INTO agent_history (site, agent, at, pending, oldest_pending_age_ms, capture_rate, forward_rate, collectors_in_error, rss)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      // The (keep+1)-th newest row of the agent and everything older goes.
      trimHistory: db.prepare<[string, string, string, string, number]>(
        `DELETE FROM agent_history WHERE site = ? AND agent = ? AND id <= (
           SELECT id FROM agent_history WHERE site = ? AND agent = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      ),
      loadAlerts: db.prepare<[number], AlertRowDb>(
        `SELECT * FROM alerts WHERE resolved_at IS NULL
         UNION ALL SELECT * FROM (SELECT * FROM alerts WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT ?) ORDER BY id`,
      ),
      insertAlert: db.prepare<[string, string, string, string, string, string, string, number, number, number | null, number, number]>(
        `INSERT INTO alerts (key, rule, kind, site, agent, labels, value, started_at, fired_at, resolved_at, firing_sent, resolved_sent)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      resolveAlert: db.prepare<[number, string, number, number]>('UPDATE alerts SET resolved_at = ?, value = ?, resolved_sent = ? WHERE id = ?'),
      // The (keep+1)-th newest resolved alert and older ones go; active ones always stay.
      trimAlerts: db.prepare<[number]>(
        `DELETE FROM alerts WHERE resolved_at IS NOT NULL AND id <= (
           SELECT id FROM alerts WHERE resolved_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?)`,
      ),
      firingSent: db.prepare<[number]>('UPDATE alerts SET firing_sent = 1 WHERE id = ?'),
      resolvedSent: db.prepare<[number]>('UPDATE alerts SET resolved_sent = 1 WHERE id = ?'),
    };
    this.delivery = new SqliteDelivery(db, (fn) => this.serial(fn));
  }

  /** Runs `fn` between transactions (after the ones queued so far), never inside one. */
  private serial<T>(fn: () => T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async loadAlerts(resolvedKept: number): Promise<AlertRecord[]> {
    return this.stmts.loadAlerts.all(resolvedKept).map((r) => ({
      ...r,
      labels: JSON.parse(r.labels) as Record<string, string>,
      value: JSON.parse(r.value) as number | string,
      firing_sent: r.firing_sent === 1,
      resolved_sent: r.resolved_sent === 1,
    }));
  }

  async insertAlert(a: Omit<AlertRecord, 'id'>): Promise<number> {
    const r = this.stmts.insertAlert.run(a.key, a.rule, a.kind, a.site, a.agent, JSON.stringify(a.labels), JSON.stringify(a.value), a.started_at, a.fired_at, a.resolved_at, a.firing_sent ? 1 : 0, a.resolved_sent ? 1 : 0);
    return Number(r.lastInsertRowid);
  }

  async resolveAlert(id: number, resolvedAt: number, value: number | string, resolvedSent: boolean, resolvedKept: number): Promise<void> {
    this.db.transaction(() => {
      this.stmts.resolveAlert.run(resolvedAt, JSON.stringify(value), resolvedSent ? 1 : 0, id);
      this.stmts.trimAlerts.run(resolvedKept);
    })();
  }

  async markAlertSent(id: number, status: 'firing' | 'resolved'): Promise<void> {
    (status === 'firing' ? this.stmts.firingSent : this.stmts.resolvedSent).run(id);
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const run = this.queue.then(
      () => this.runTransaction(fn),
      () => this.runTransaction(fn),
    );
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * BEGIN … COMMIT around an async `fn`: every StoreTx operation answers with a settled Promise, so
   * the transaction spans microtasks only (no timer or I/O callback runs inside it).
   */
  private async runTransaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    const now = this.clock();
    let rotated = false;
    let result: T;
    this.stmts.begin.run();
    try {
      rotated = this.ids.rotateIfDue(now);
      result = await fn(this.txAt(now));
      this.stmts.commit.run();
    } catch (err) {
      if (this.db.inTransaction) this.stmts.rollback.run();
      // Rolled back: the generation state in memory may be ahead of the file.
      this.ids.reload();
      throw err;
    }
    if (rotated) this.log.info({ window_ms: this.ids.windowMs, state: this.ids.state() }, 'record-id index rotated: ids older than the de-duplication window forgotten');
    return result;
  }

  async watermark(site: string, agent: string, stream: string, epoch: string): Promise<number> {
    return this.stmts.getStream.get(site, agent, stream, epoch)?.last_seq ?? 0;
  }

  private txAt(now: number): StoreTx {
    return {
      now,
      openStream: async (site, agent, stream, epoch) => this.openStream(site, agent, stream, epoch, now),
      storedIds: async (streamId, from, to) => this.storedIds(streamId, from, to),
      skippedRanges: async (streamId, from, to) => this.stmts.skippedOver.all(streamId, to, from),
      holdIds: async (streamId, held) => {
        for (const h of held) this.stmts.holdId.run(streamId, h.seq, h.id);
      },
      holdSkipped: async (streamId, from, to, reason) => {
        this.stmts.holdSkipped.run(streamId, from, to, reason);
      },
      rememberIds: async (key, ids) => this.ids.rememberAll(key, ids),
      rememberLatest: async (key, records) => this.ids.rememberLatest(key, records),
      insertSegment: async (streamId, firstSeq, lastSeq, recordsJson) => {
        this.stmts.insertSegment.run(streamId, firstSeq, lastSeq, now, recordsJson);
      },
      updateStream: async (streamId, u) => this.updateStream(streamId, u, now),
    };
  }

  private streamKey(site: string, agent: string, stream: string): number {
    return this.stmts.getKey.get(site, agent, stream) ?? Number(this.stmts.insertKey.run(site, agent, stream).lastInsertRowid);
  }

  private openStream(site: string, agent: string, stream: string, epoch: string, now: number): StreamState {
    const found = this.stmts.getStream.get(site, agent, stream, epoch);
    if (found) {
      let key = found.stream_key;
      if (key === null) {
        key = this.streamKey(site, agent, stream);
        this.stmts.setKey.run(key, found.id);
      }
      return { id: found.id, key, last: found.last_seq, forkedFrom: found.forked_from, created: false, otherEpochs: [] };
    }
    const otherEpochs = this.stmts.otherEpochs.all(site, agent, stream);
    const key = this.streamKey(site, agent, stream);
    const id = Number(this.stmts.insertStream.run(site, agent, stream, epoch, now, now, key).lastInsertRowid);
    return { id, key, last: 0, forkedFrom: null, created: true, otherEpochs };
  }

  private storedIds(streamId: number, from: number, to: number): Map<number, string> {
    const out = new Map<number, string>();
    for (const h of this.stmts.heldIds.iterate(streamId, from, to)) out.set(h.seq, h.id);
    for (const seg of this.stmts.segmentsOver.iterate(streamId, from)) {
      if (seg.first_seq > to) break;
      for (const r of JSON.parse(seg.records) as SegmentRecord[]) {
        if (r.seq >= from && r.seq <= to) out.set(r.seq, r.id);
      }
    }
    return out;
  }

  private updateStream(streamId: number, u: StreamUpdate, now: number): void {
    this.stmts.updateStream.run({ ...u, forkedFrom: u.forkedFrom ?? null, now, id: streamId });
  }

  async listStreams(): Promise<StreamRow[]> {
    return this.stmts.listStreams.all().map((r) => ({ ...r, current: r.current === 1 }));
  }

  async streamTotals(): Promise<StreamTotals[]> {
    return this.stmts.streamTotals.all();
  }

  async listEvents(q: EventQuery): Promise<{ epoch: string | null; events: StoredEvent[] }> {
    const epoch = q.epoch ?? this.stmts.currentEpoch.get(q.site, q.agent, q.stream);
    if (!epoch) return { epoch: null, events: [] };
    const id = this.stmts.streamId.get(q.site, q.agent, q.stream, epoch);
    const events: StoredEvent[] = [];
    if (id === undefined) return { epoch, events };
    // Segments are read lazily (iterate) so a small page does not load the whole stream; segments
    // may have holes (records recognised as duplicate ids are not stored).
    for (const seg of this.stmts.segmentsOver.iterate(id, q.after + 1)) {
      for (const e of segmentEvents(seg.records, seg.received_at, q.after)) {
        events.push(e);
        if (events.length >= q.limit) return { epoch, events };
      }
    }
    return { epoch, events };
  }

  async loadAgents(): Promise<AgentRecord[]> {
    return this.stmts.loadAgents.all().map((r) => ({ ...withAgentJson(r), online: r.online === null ? null : r.online === 1 }));
  }

  async saveAgents(rows: readonly AgentRecord[]): Promise<void> {
    this.db.transaction(() => {
      for (const r of rows) {
        this.stmts.saveAgent.run(...agentColumns(r, r.online === null ? null : r.online ? 1 : 0));
      }
    })();
  }

  async loadHistory(keep: number): Promise<HistoryRow[]> {
    return this.stmts.loadHistory.all(keep).map(({ site, agent, ...sample }) => ({ site, agent, sample }));
  }

  async saveHistory(rows: readonly HistoryRow[], keep: number): Promise<void> {
    if (rows.length === 0) return;
    this.db.transaction(() => {
      const touched = new Map<string, { site: string; agent: string }>();
      for (const { site, agent, sample: s } of rows) {
        this.stmts.insertHistory.run(site, agent, s.at, s.pending, s.oldest_pending_age_ms, s.capture_rate, s.forward_rate, s.collectors_in_error, s.rss);
        touched.set(`${site}/${agent}`, { site, agent });
      }
      for (const { site, agent } of touched.values()) this.stmts.trimHistory.run(site, agent, site, agent, keep);
    })();
  }

  /** Id-index generation state (tests, diagnostics). */
  idIndexState(): { current: 0 | 1; startedAt: number; previousEmpty: boolean } {
    return this.ids.state();
  }

  async close(): Promise<void> {
    await this.queue;
    this.db.close();
  }
}
