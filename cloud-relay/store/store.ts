import type { DeliveryStore } from './delivery.js';
import type { StoredEvent } from './stored-event.js';
export type { SegmentRecord, StoredEvent } from './stored-event.js';
export { segmentEvents } from './stored-event.js';

/**
 * What the relay keeps, behind one interface: streams and their cursors, stored records (in
 * segments), the record-id index used to de-duplicate, the fleet registry, its history and alerts.
 * Two implementations: SQLite (sqlite-store.ts, embedded, the default) and PostgreSQL
 * (postgres-store.ts, for several relay instances on one database).
 *
 * Every operation returns a Promise: PostgreSQL answers over the network. The SQLite store runs
 * each one synchronously and returns a settled Promise (its transaction spans only microtasks, so
 * nothing else on the event loop runs inside it).
 *
 * Ordering and de-duplication rules live in ingest/apply.ts, which drives a StoreTx inside one
 * transaction per group commit; a store only persists and looks up. `openStream` takes the
 * stream's lock for the rest of the transaction (PostgreSQL: a row lock, so several relays may
 * apply batches of one stream concurrently and each sees the cursor its predecessor committed).
 */

/** A stream epoch as ingest sees it at the start of a batch. */
export interface StreamState {
  /** Row of (site, agent, stream, epoch). */
  id: number;
  /** (site, agent, stream) across epochs: the prefix of the id index. */
  key: number;
  /** Highest seq held contiguously (stored, recognised as a duplicate id, or skipped). */
  last: number;
  /** First seq found held with another record id (v2 conflict); the epoch is refused from there. */
  forkedFrom: number | null;
  /** Created by this call; `otherEpochs` then lists the stream's earlier epochs. */
  created: boolean;
  otherEpochs: string[];
}

/** Counts added to a stream row, with its new cursor. */
export interface StreamUpdate {
  last: number;
  /** Records stored (in the segment of this batch). */
  stored: number;
  dropped: number;
  deadLettered: number;
  /** Every reason other than dropped and dead_letter, `pruned` included. */
  skippedOther: number;
  /** Of skippedOther, the `pruned` seqs. */
  pruned: number;
  duplicateIds: number;
  conflicts: number;
  rejectedRecords: number;
  /** Of rejectedRecords, those over the size limit (record_too_large). */
  rejectedTooLarge: number;
  /** Set when a conflict is found (kept at the lowest seq ever set). */
  forkedFrom?: number;
}

/** Operations ingest needs inside one transaction. */
export interface StoreTx {
  /** Time of this transaction (the store's clock): received_at of what it stores. */
  readonly now: number;
  /** The epoch's row, created (cursor 0) when new. */
  openStream(site: string, agent: string, stream: string, epoch: string): Promise<StreamState>;
  /** Record ids held at seqs from..to: stored, or recognised as a duplicate id (skipped seqs are absent). */
  storedIds(streamId: number, from: number, to: number): Promise<Map<number, string>>;
  /** Seqs held as skipped, overlapping from..to. */
  skippedRanges(streamId: number, from: number, to: number): Promise<{ from: number; to: number }[]>;
  /** Remembers the ids of records recognised as duplicates at their seqs (they are not stored). */
  holdIds(streamId: number, held: readonly { seq: number; id: string }[]): Promise<void>;
  /** Remembers seqs skipped by the agent. */
  holdSkipped(streamId: number, from: number, to: number, reason: string): Promise<void>;
  /**
   * Remembers record ids for a stream key, in order: true where the id is new (now remembered),
   * false where it was remembered within the de-duplication window or earlier in the list
   * (always true when de-duplication is off).
   */
  rememberIds(streamKey: number, ids: readonly string[]): Promise<boolean[]>;
  /**
   * For records with a business key, in order: true where the id is not the one last stored for
   * its key within the window (it becomes it), false where it is.
   */
  rememberLatest(streamKey: number, records: readonly { key: string; id: string }[]): Promise<boolean[]>;
  /** One segment: a JSON array of records (each with its seq), in seq order, possibly with holes. */
  insertSegment(streamId: number, firstSeq: number, lastSeq: number, recordsJson: string): Promise<void>;
  updateStream(streamId: number, u: StreamUpdate): Promise<void>;
}

export interface StreamRow {
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  last_seq: number;
  /** Records stored (seqs held by a duplicate id or skipped are not). */
  stored: number;
  dropped: number;
  dead_lettered: number;
  skipped_other: number;
  duplicate_ids: number;
  conflicts: number;
  rejected_records: number;
  forked_from: number | null;
  first_seen: number;
  last_at: number;
  current: boolean;
}

/** What the store holds for one (site, agent, stream), over all its epochs: the relay's counters start from it. */
export interface StreamTotals {
  site: string;
  agent: string;
  stream: string;
  stored: number;
  dropped: number;
  dead_lettered: number;
  /** Skipped for other reasons than dropped and dead_letter, pruned included. */
  skipped_other: number;
  pruned: number;
  duplicate_ids: number;
  conflicts: number;
  rejected_records: number;
  rejected_too_large: number;
}

/**
 * An agent record as both stores write its row, in column order (site, agent, online, boot, birth,
 * presence_at, last_seen, health, health_at, stale_wills): birth and health as JSON text, null when
 * absent; `online` as the store keeps it (SQLite 0/1, PostgreSQL a boolean).
 */
export function agentColumns<O>(r: AgentRecord, online: O) {
  return [r.site, r.agent, online, r.boot, jsonColumn(r.birth), r.presence_at, r.last_seen, jsonColumn(r.health), r.health_at, r.stale_wills] as const;
}

/** An agent row's JSON columns (birth, health) parsed back, as both stores read them. */
export function withAgentJson<R extends { birth: string | null; health: string | null }>(row: R): Omit<R, 'birth' | 'health'> & { birth: unknown; health: unknown } {
  return { ...row, birth: row.birth === null ? null : (JSON.parse(row.birth) as unknown), health: row.health === null ? null : (JSON.parse(row.health) as unknown) };
}

function jsonColumn(v: unknown): string | null {
  return v === null || v === undefined ? null : JSON.stringify(v);
}

export interface EventQuery {
  site: string;
  agent: string;
  stream: string;
  epoch?: string;
  after: number;
  limit: number;
}

/** The fleet registry's row of one agent (fleet/fleet.ts decides what goes in). */
export interface AgentRecord {
  site: string;
  agent: string;
  /** Null until a presence message was seen. */
  online: boolean | null;
  boot: string | null;
  /** The latest birth message, whole (validated). */
  birth: unknown;
  /** Relay time of the latest presence message applied. */
  presence_at: number | null;
  /** Relay time of the latest presence or health message. */
  last_seen: number;
  /** The latest health message, whole (validated). */
  health: unknown;
  /** Relay time it arrived. */
  health_at: number | null;
  stale_wills: number;
}

/** An alert instance (fleet/alerts decides them; the store keeps them): one per (rule, site, agent[, collector or stream]), from firing to resolution. */
export interface AlertRecord {
  /** The store's row id (order of firing). */
  id: number;
  /** rule, site, agent and labels: what makes the instance one. */
  key: string;
  rule: string;
  kind: string;
  site: string;
  agent: string;
  labels: Record<string, string>;
  /** The measured value while it held (the latest seen), e.g. the age in ms or the free bytes. */
  value: number | string;
  /** When the condition began (relay clock, epoch ms). */
  started_at: number;
  fired_at: number;
  resolved_at: number | null;
  /** Whether the webhook has its firing / its resolution (true when no webhook is configured). */
  firing_sent: boolean;
  resolved_sent: boolean;
}

/** One health sample of an agent's history (fleet/history.ts decides what goes in). */
export interface HistoryRow {
  site: string;
  agent: string;
  sample: {
    /** Relay time the health arrived (one clock for every agent, so their charts line up). */
    at: number;
    pending: number;
    oldest_pending_age_ms: number | null;
    /** Events per second, as the agent's forwarder reports them; null when the health has no forwarder part. */
    capture_rate: number | null;
    forward_rate: number | null;
    collectors_in_error: number;
    /** Resident memory of the agent process in bytes; null when not reported. */
    rss: number | null;
  };
}

export interface RelayStore {
  /** `sqlite` or `postgres` (logs, bench). */
  readonly kind: string;
  /** The sinks' delivery cursors, dead letters and retention (store/delivery.ts). */
  readonly delivery: DeliveryStore;
  /** Active alerts and the newest `resolvedKept` resolved ones (fleet/alerts), by id. */
  loadAlerts(resolvedKept: number): Promise<AlertRecord[]>;
  /** Stores a firing alert; returns its id. */
  insertAlert(a: Omit<AlertRecord, 'id'>): Promise<number>;
  /** Marks it resolved (with its latest value), and drops resolved alerts past the newest `resolvedKept`. */
  resolveAlert(id: number, resolvedAt: number, value: number | string, resolvedSent: boolean, resolvedKept: number): Promise<void>;
  /** The webhook has (or will never get) this notification. */
  markAlertSent(id: number, status: 'firing' | 'resolved'): Promise<void>;
  /** Runs `fn` in one transaction (one commit, one fsync); a throw rolls all of it back. */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /**
   * The highest seq held contiguously for (site, agent, stream, epoch) as committed, or 0 (unknown
   * stream). Ingest polls it before answering `gap` when several relays share the stream's batches.
   */
  watermark(site: string, agent: string, stream: string, epoch: string): Promise<number>;
  listStreams(): Promise<StreamRow[]>;
  /** Per (site, agent, stream), summed over its epochs. */
  streamTotals(): Promise<StreamTotals[]>;
  /** Events of a stream in seq order; without `epoch`, the stream's current (newest) epoch. */
  listEvents(q: EventQuery): Promise<{ epoch: string | null; events: StoredEvent[] }>;
  loadAgents(): Promise<AgentRecord[]>;
  saveAgents(rows: readonly AgentRecord[]): Promise<void>;
  /** The last `keep` samples of each agent, oldest first, grouped by agent. */
  loadHistory(keep: number): Promise<HistoryRow[]>;
  /** Appends samples (in order) and deletes each agent's rows older than its last `keep`. */
  saveHistory(rows: readonly HistoryRow[], keep: number): Promise<void>;
  close(): Promise<void>;
}
