import type { MessageRejectReason, RecordProblem } from './ingest/decode.js';
import type { SkipCounts } from './ingest/apply.js';
import type { StreamTotals } from './store/store.js';

/** Why a message was refused: event batches (ingest) and agent presence / health (fleet). */
export type RejectReason = MessageRejectReason | 'invalid_presence' | 'invalid_health';

/**
 * The relay's counters; exposed on GET /api/stats and as Prometheus counters. Those the store keeps
 * per stream (records stored, duplicate ids, conflicts, skipped seqs by reason, rejected records by
 * reason) start from the store's totals (`seed`), so a restarted relay does not read 0 while it
 * holds events; the others (batches, gaps, acks, messages: `traffic()`) are saved beside the store
 * and go on from there (counters-file.ts), counted since `counted_since`.
 */
export class RelayMetrics {
  /** When the relay started: what the since-start counters count from. */
  readonly startedAt = Date.now();
  /** Since when the traffic counters count: the first start of this store's relay (restoreTraffic). */
  countedSince = this.startedAt;
  batches = 0;
  readonly batchesByWire = { v1: 0, v2: 0 };
  recordsStored = 0;
  /** Records resent at seqs already held. */
  duplicates = 0;
  /** Records not stored because their id was stored before. */
  duplicateIds = 0;
  conflicts = 0;
  /** `gap` answers (the agent rewinds and resends from the cursor). */
  gaps = 0;
  /** Gaps that did not need answering: another relay instance committed the predecessor within ingest.gap_wait. */
  gapWaitsResolved = 0;
  /** Seqs dropped at agents (`drop_oldest`), v1 dropped_upto and v2 skipped `dropped` alike. */
  droppedAtAgents = 0;
  readonly skipped: SkipCounts = { dropped: 0, dead_letter: 0, pruned: 0, other: 0 };
  readonly rejectedRecords: Record<RecordProblem, number> = { invalid_record: 0, record_too_large: 0 };
  rejectedAcks = 0;
  conflictAcks = 0;
  newEpochs = 0;
  storeErrors = 0;
  presenceMessages = 0;
  healthMessages = 0;
  staleWills = 0;
  /**
   * Records stored per (site, agent, stream), for Prometheus (`erp_edge_relay_events_stored_total`).
   * Bounded by the streams the relay holds; not in the /api/stats snapshot (GET /api/streams has them).
   */
  readonly storedByStream = new Map<string, { site: string; agent: string; stream: string; count: number }>();
  readonly rejected: Record<RejectReason, number> = {
    invalid_json: 0,
    invalid_schema: 0,
    topic_mismatch: 0,
    bad_topic: 0,
    unsupported_version: 0,
    too_large: 0,
    internal_error: 0,
    invalid_presence: 0,
    invalid_health: 0,
  };

  /** Starts the store-backed counters from what the store holds (once, before any batch is applied). */
  seed(totals: readonly StreamTotals[]): void {
    for (const t of totals) {
      if (t.stored > 0) this.countStored(t.site, t.agent, t.stream, t.stored);
      this.recordsStored += t.stored;
      this.duplicateIds += t.duplicate_ids;
      this.conflicts += t.conflicts;
      this.droppedAtAgents += t.dropped;
      this.skipped.dropped += t.dropped;
      this.skipped.dead_letter += t.dead_lettered;
      this.skipped.pruned += t.pruned;
      this.skipped.other += t.skipped_other - t.pruned;
      this.rejectedRecords.record_too_large += t.rejected_too_large;
      this.rejectedRecords.invalid_record += t.rejected_records - t.rejected_too_large;
    }
  }

  /** The counters the store does not hold, to be saved (counters-file.ts). */
  traffic(): TrafficCounters {
    return {
      batches: this.batches,
      batches_by_wire: { ...this.batchesByWire },
      duplicates: this.duplicates,
      gaps: this.gaps,
      rejected_acks: this.rejectedAcks,
      conflict_acks: this.conflictAcks,
      new_epochs: this.newEpochs,
      store_errors: this.storeErrors,
      presence_messages: this.presenceMessages,
      health_messages: this.healthMessages,
      stale_wills: this.staleWills,
      rejected: { ...this.rejected },
    };
  }

  /** Adds what an earlier run counted (once, at start); unknown or malformed entries are ignored. */
  restoreTraffic(t: Partial<TrafficCounters>, countedSince: number): void {
    const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
    this.batches += n(t.batches);
    this.batchesByWire.v1 += n(t.batches_by_wire?.v1);
    this.batchesByWire.v2 += n(t.batches_by_wire?.v2);
    this.duplicates += n(t.duplicates);
    this.gaps += n(t.gaps);
    this.rejectedAcks += n(t.rejected_acks);
    this.conflictAcks += n(t.conflict_acks);
    this.newEpochs += n(t.new_epochs);
    this.storeErrors += n(t.store_errors);
    this.presenceMessages += n(t.presence_messages);
    this.healthMessages += n(t.health_messages);
    this.staleWills += n(t.stale_wills);
    for (const k of Object.keys(this.rejected) as RejectReason[]) this.rejected[k] += n(t.rejected?.[k]);
    if (Number.isFinite(countedSince) && countedSince < this.countedSince) this.countedSince = countedSince;
  }

  countStored(site: string, agent: string, stream: string, n: number): void {
    const k = `${site}/${agent}/${stream}`;
    const c = this.storedByStream.get(k);
    if (c) c.count += n;
    else this.storedByStream.set(k, { site, agent, stream, count: n });
  }

  snapshot() {
    return {
      started_at: this.startedAt,
      counted_since: this.countedSince,
      ...this.traffic(),
      records_stored: this.recordsStored,
      duplicate_ids: this.duplicateIds,
      conflicts: this.conflicts,
      dropped_at_agents: this.droppedAtAgents,
      skipped: { ...this.skipped },
      rejected_records: { ...this.rejectedRecords },
    };
  }

}

export interface TrafficCounters {
  batches: number;
  batches_by_wire: { v1: number; v2: number };
  duplicates: number;
  gaps: number;
  rejected_acks: number;
  conflict_acks: number;
  new_epochs: number;
  store_errors: number;
  presence_messages: number;
  health_messages: number;
  stale_wills: number;
  rejected: Record<RejectReason, number>;
}

export type RelayStats = ReturnType<RelayMetrics['snapshot']>;
