import { LogThrottle } from '../../common/log-throttle.js';
import type { Logger } from '../../common/logger.js';
import type { WireVersion } from '../../common/wire-v2.js';
import type { RelayMetrics } from '../metrics.js';
import type { RelayStore } from '../store/store.js';
import { ackFor } from './acks.js';
import { applyBatches, type BatchOutcome } from './apply.js';
import { decodeEventBatch, type DecodedBatch, type DecodedRecord, type EventsTopic, type MessageRejectReason } from './decode.js';

export interface IngestOptions {
  store: RelayStore;
  metrics: RelayMetrics;
  log: Logger;
  /** `wire_versions`: batches of other versions are refused (unsupported_version), never acked. */
  wireVersions: readonly WireVersion[];
  /** `limits.max_record_bytes`. */
  maxRecordBytes: number;
  /** `limits.max_message_bytes` (absent: no limit here). */
  maxMessageBytes?: number;
  /** Called after each commit with the records it stored and the store time (the capture→store lag histogram). */
  onStored?: (records: readonly DecodedRecord[], storedAt: number, site: string, agent: string) => void;
  /** Publishes an ack (QoS 1). */
  publish: (topic: string, payload: string) => void;
  /**
   * Several relays on a shared subscription: how long a batch ahead of the stored cursor waits for
   * another instance to commit its predecessor before `gap` is answered (0: answer at once).
   */
  gapWaitMs?: number;
  /** How often the stream's watermark is read while waiting. */
  gapPollMs?: number;
}

/** A batch waiting for its group commit; `deadline` once it has gapped and waits for a predecessor. */
interface Queued {
  batch: DecodedBatch;
  deadline?: number;
}

/** One line per minute and key for what can repeat per message (rejects, gaps, skips). */
const LOG_INTERVAL_MS = 60_000;

/**
 * The one ingest path, for v1 and v2 alike: decode → validate → order / de-duplicate → store →
 * ack. Batches that arrive together (one socket read often carries several) are applied in one
 * store transaction, so they share one fsync (group commit); each is acked after that commit.
 */
export class Ingest {
  private pending: Queued[] = [];
  private closed = false;
  /** The group commit under way: one at a time, so batches of one stream are applied in arrival order. */
  private inFlight: Promise<void> | undefined;
  /** Gapped batches waiting for another instance's commit. */
  private readonly waiting = new Set<Promise<void>>();
  private readonly accepted: ReadonlySet<number>;
  private readonly throttle = new LogThrottle(LOG_INTERVAL_MS);

  constructor(private readonly o: IngestOptions) {
    this.accepted = new Set(o.wireVersions);
  }

  /** A message on an events topic (already parsed by the relay's router). */
  onEvents(topic: EventsTopic, rawTopic: string, payload: Buffer): void {
    if (!this.accepted.has(topic.version)) {
      return this.reject('unsupported_version', rawTopic, `wire v${topic.version} is not in wire_versions [${[...this.accepted].join(', ')}]`);
    }
    const r = decodeEventBatch(topic, payload, { maxRecordBytes: this.o.maxRecordBytes, ...(this.o.maxMessageBytes !== undefined ? { maxMessageBytes: this.o.maxMessageBytes } : {}) });
    if (!r.ok) return this.reject(r.reason, rawTopic, r.detail);
    this.enqueue({ batch: r.batch });
  }

  private enqueue(q: Queued): void {
    this.pending.push(q);
    if (this.pending.length === 1 && !this.inFlight) setImmediate(() => this.kick());
  }

  /** Starts a group commit of what is pending unless one is under way (which kicks again when done). */
  private kick(): void {
    if (this.inFlight || this.pending.length === 0) return;
    this.inFlight = this.flush().finally(() => {
      this.inFlight = undefined;
      if (this.pending.length > 0) setImmediate(() => this.kick());
    });
  }

  /** Resolves once nothing is pending, in flight or waiting (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight || this.pending.length > 0 || this.waiting.size > 0) {
      if (this.inFlight) await this.inFlight;
      else if (this.waiting.size > 0) await Promise.race(this.waiting);
      else await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** A message refused whole: counted by reason, logged (throttled), not acked. */
  reject(reason: MessageRejectReason, topic: string, detail: string): void {
    this.o.metrics.rejected[reason]++;
    const t = this.throttle.take(`reject:${reason}:${topic}`);
    if (t) this.o.log.warn({ topic, reason, detail: detail.slice(0, 500), count: t.count, suppressed: t.suppressed }, 'rejected message');
  }

  /**
   * After this, batches still waiting for their group commit are dropped unacked (their agents resend
   * them); resolves once the commit under way has finished (its acks are not sent).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.pending = [];
    await this.inFlight;
    await Promise.all(this.waiting);
  }

  private async flush(): Promise<void> {
    const queued = this.pending;
    this.pending = [];
    if (this.closed || queued.length === 0) return;
    let outcomes: BatchOutcome[];
    try {
      outcomes = await applyBatches(
        this.o.store,
        queued.map((q) => q.batch),
      );
    } catch (err) {
      // One batch the store cannot take must not hold up the others of its group: each on its own.
      if (queued.length > 1) for (const q of queued) await this.applyAlone(q);
      else this.storeFailed([queued[0]!.batch], err);
      return;
    }
    for (let i = 0; i < queued.length; i++) this.settle(queued[i]!, outcomes[i]!);
  }

  private async applyAlone(q: Queued): Promise<void> {
    let outcome: BatchOutcome;
    try {
      outcome = (await applyBatches(this.o.store, [q.batch]))[0]!;
    } catch (err) {
      this.storeFailed([q.batch], err);
      return;
    }
    this.settle(q, outcome);
  }

  /**
   * Acks the outcome; but a gap, with gap_wait on (several relays), first waits for the stream's
   * committed watermark to reach the seq before the batch (another instance holding the predecessor),
   * then applies the batch again. Only a gap still there at the deadline is answered.
   */
  private settle(q: Queued, o: BatchOutcome): void {
    const waitMs = this.o.gapWaitMs ?? 0;
    if (o.status !== 'gap' || waitMs <= 0 || this.closed || o.gapAt === undefined) return this.acknowledge(q.batch, o);
    const deadline = q.deadline ?? Date.now() + waitMs;
    if (Date.now() >= deadline) return this.acknowledge(q.batch, o);
    const b = q.batch;
    const need = o.gapAt - 1;
    // What this pass stored (a prefix before the gap) is counted now; the batch is answered later.
    this.count(b, o, true);
    const p = (async () => {
      const poll = this.o.gapPollMs ?? 10;
      for (;;) {
        await new Promise((r) => setTimeout(r, Math.max(1, Math.min(poll, deadline - Date.now()))));
        if (this.closed) return;
        let mark: number;
        try {
          mark = await this.o.store.watermark(b.site, b.agent, b.stream, b.epoch);
        } catch (err) {
          this.o.log.warn({ err: { message: (err as Error).message } }, 'could not read a stream watermark while waiting for a predecessor batch');
          mark = -1;
        }
        if (mark >= need) {
          this.o.metrics.gapWaitsResolved++;
          return this.enqueue({ batch: b, deadline });
        }
        if (Date.now() >= deadline) {
          this.o.metrics.batches++;
          if (b.version === 1) this.o.metrics.batchesByWire.v1++;
          else this.o.metrics.batchesByWire.v2++;
          return this.answer(b, o);
        }
      }
    })();
    this.waiting.add(p);
    void p.finally(() => this.waiting.delete(p));
  }

  /** Not acked: the agents resend after their ack timeout. */
  private storeFailed(batches: readonly DecodedBatch[], err: unknown): void {
    this.o.metrics.storeErrors += batches.length;
    const streams = batches.map((b) => `${b.site}/${b.agent}/${b.stream}`);
    this.o.log.error({ batches: batches.length, streams, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'store failed; batches not acked');
  }

  private acknowledge(b: DecodedBatch, o: BatchOutcome): void {
    this.count(b, o);
    this.answer(b, o);
  }

  private answer(b: DecodedBatch, o: BatchOutcome): void {
    if (o.status === 'gap') this.o.metrics.gaps++;
    // Stopping: what was committed is counted, but the connection is closing; the agent resends and
    // the resend is answered as a duplicate.
    if (this.closed) return;
    this.logOutcome(b, o);
    const { topic, ack } = ackFor(b, o);
    this.o.publish(topic, JSON.stringify(ack));
  }

  /** `partial`: a gapped pass whose batch waits and will be applied again (the batch is counted then). */
  private count(b: DecodedBatch, o: BatchOutcome, partial = false): void {
    const m = this.o.metrics;
    if (!partial) {
      m.batches++;
      if (b.version === 1) m.batchesByWire.v1++;
      else m.batchesByWire.v2++;
    }
    m.recordsStored += o.stored;
    if (o.stored > 0) {
      m.countStored(b.site, b.agent, b.stream, o.stored);
      this.o.onStored?.(o.storedRecords, o.storedAt, b.site, b.agent);
    }
    m.duplicates += o.duplicates;
    m.duplicateIds += o.duplicateIds;
    m.conflicts += o.conflicts;
    m.droppedAtAgents += o.skipped.dropped;
    m.skipped.dropped += o.skipped.dropped;
    m.skipped.dead_letter += o.skipped.dead_letter;
    m.skipped.pruned += o.skipped.pruned;
    m.skipped.other += o.skipped.other;
    m.rejectedRecords.invalid_record += o.rejectedRecords.invalid_record;
    m.rejectedRecords.record_too_large += o.rejectedRecords.record_too_large;
    if (o.newEpoch) m.newEpochs++;
    if (o.status === 'rejected') m.rejectedAcks++;
    else if (o.status === 'conflict') m.conflictAcks++;
  }

  private logOutcome(b: DecodedBatch, o: BatchOutcome): void {
    const log = this.o.log;
    const where = { site: b.site, agent: b.agent, stream: b.stream, epoch: b.epoch, wire: b.version };
    const key = `${b.site}/${b.agent}/${b.stream}`;
    if (o.newEpoch) {
      log.warn({ ...where, previous: o.previousEpochs }, 'new outbox epoch for a known stream: the agent outbox was wiped or re-created; its sequence starts apart');
    }
    const skipped = o.skipped.dropped + o.skipped.dead_letter + o.skipped.pruned + o.skipped.other;
    if (skipped > 0) {
      const t = this.throttle.take(`skip:${key}`, skipped);
      if (t) log.warn({ ...where, skipped: o.skipped, upto: o.upto, count: t.count, suppressed: t.suppressed }, 'agent skipped seqs (dropped, dead-lettered or pruned at the agent); moved past them');
    }
    if (o.status === 'gap') {
      const t = this.throttle.take(`gap:${key}`);
      if (t) log.info({ ...where, expected: o.upto + 1, got: o.gapAt, count: t.count, suppressed: t.suppressed }, 'gap: asking the agent to resend');
    } else if (o.status === 'rejected') {
      log.warn({ ...where, upto: o.upto, ranges: o.ranges?.slice(0, 20), ids: o.ids?.slice(0, 20), reason: o.reason }, 'records refused: rejected ack sent');
    } else if (o.status === 'conflict') {
      const t = this.throttle.take(`conflict:${key}:${b.epoch}`);
      if (t) {
        log.error(
          { ...where, boot: b.boot, forked_from: o.forkedFrom, conflicts: o.conflicts, ranges: o.ranges?.slice(0, 20), count: t.count, suppressed: t.suppressed },
          'epoch went back in time (seqs held with other record ids; VM snapshot or backup restore?): conflict ack sent, nothing stored',
        );
      }
    } else if (o.conflicts > 0) {
      log.error(
        { ...where, conflicts: o.conflicts },
        'resent seqs carry other records than those stored: the agent outbox was rolled back (snapshot or backup restore?); those records are not stored',
      );
    }
  }
}
