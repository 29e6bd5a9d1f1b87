import type { Logger } from '../../common/logger.js';
import { LogThrottle } from '../../common/log-throttle.js';
import { RETRY_LEASE_STREAM, type DeadLetterInput, type DeadLetterRow, type DeliveryStore, type PendingStream } from '../store/delivery.js';
import { backoffDelay } from '../../common/backoff.js';
import { sleep } from './sleep.js';
import type { DeliverySettings } from './delivery-settings.js';
import type { SinkMetrics } from './metrics.js';
import type { StoredEvent } from '../store/store.js';
import type { OutgoingEvent, Sink, SinkEvent, SinkHooks, StreamRef, TransformResult } from './sink.js';

/** Events read per store read at least: a stored segment (a batch from an agent, often 250) is parsed once, not once per sink batch. */
const READ_AHEAD = 500;

/** How long a wake waits for more wakes to join it (ingest commits in bursts). */
const WAKE_MS = 20;

export interface SinkDeliveryOptions {
  sink: Sink;
  hooks: SinkHooks;
  settings: DeliverySettings;
  store: DeliveryStore;
  /** This relay instance, as lease owner (unique among instances sharing the store). */
  owner: string;
  metrics: SinkMetrics;
  log: Logger;
  clock?: () => number;
  random?: () => number;
}

/** A batch built from the stream after the cursor: what to deliver, what the transform refused, where the cursor goes. */
interface Batch {
  from: number;
  to: number;
  outgoing: OutgoingEvent[];
  dead: DeadLetterInput[];
}

/** What this instance remembers of a stream between attempts (the store keeps the cursor). */
interface StreamRetry {
  attempts: number;
  /** Not before this time (back-off, or another instance's lease). */
  retryAt: number;
  /** The batch that failed, retried as it was (same events, same Idempotency-Key). */
  batch?: Batch;
}

/**
 * The delivery loop of one sink: for each stream epoch with stored seqs past the sink's cursor, one
 * worker at a time (the store's lease keeps it one across relay instances) reads a batch after the
 * cursor, applies `match` and `transform`, delivers, and moves the cursor in the store. Delivery is
 * at least once: a crash between the receiver's answer and the cursor move delivers the batch again
 * (receivers de-duplicate by site, agent, stream and event id).
 *
 * A failing batch is retried with exponential back-off and jitter; its stream waits alone (its
 * slot is free meanwhile), the others go on. After `max_attempts` failures its events go to the
 * dead-letter table with the last error and the stream moves on. Rows marked for retry
 * (`cloud-relay dlq retry`) are delivered one event at a time, out of stream order.
 */
export class SinkDelivery {
  private readonly active = new Map<number, Promise<void>>();
  private readonly retries = new Map<number, StreamRetry>();
  private readonly abort = new AbortController();
  private readonly clock: () => number;
  private readonly random: () => number;
  private readonly errors = new LogThrottle(60_000);
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescan = false;
  /** A wake's scan is scheduled. */
  private wakeDue = false;
  private retrying: Promise<void> | undefined;
  private lastRetryCheck = 0;
  private stopped = false;

  constructor(private readonly o: SinkDeliveryOptions) {
    this.clock = o.clock ?? Date.now;
    this.random = o.random ?? Math.random;
  }

  get name(): string {
    return this.o.sink.name;
  }

  start(): void {
    this.schedule(0);
  }

  /**
   * New events were stored: look soon rather than at the next poll. Ingest calls this per group
   * commit; one scan (one store query) serves every wake within WAKE_MS.
   */
  wake(): void {
    if (this.scanning) this.rescan = true;
    else if (!this.wakeDue) {
      this.wakeDue = true;
      this.schedule(WAKE_MS);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
    await this.scanning;
    await Promise.all([...this.active.values(), this.retrying]);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.scan(), ms);
  }

  private scan(): void {
    if (this.scanning || this.stopped) return;
    this.rescan = false;
    this.wakeDue = false;
    this.scanning = this.startWorkers()
      .catch((err: Error) => this.logError('scan', err, 'sink: listing streams to deliver failed; will retry'))
      .finally(() => {
        this.scanning = undefined;
        this.schedule(this.rescan ? WAKE_MS : this.nextScanIn());
      });
  }

  /** The poll interval, or sooner when a stream's back-off ends before it (one already due waits for a slot: a finishing worker wakes the loop). */
  private nextScanIn(): number {
    const now = this.clock();
    let next = this.o.settings.poll;
    for (const r of this.retries.values()) if (r.retryAt > now) next = Math.min(next, r.retryAt - now);
    return next;
  }

  private async startWorkers(): Promise<void> {
    const s = this.o.settings;
    if (this.active.size < s.concurrency) {
      const limit = Math.max(1_000, s.concurrency * 4);
      const pending = await this.o.store.pendingStreams(this.name, limit);
      const now = this.clock();
      // A stream no longer pending (another instance delivered it) has nothing to retry here.
      if (pending.length < limit) {
        const ids = new Set(pending.map((p) => p.id));
        for (const id of this.retries.keys()) if (!ids.has(id)) this.retries.delete(id);
      }
      for (const p of pending) {
        if (this.active.size >= s.concurrency || this.stopped) break;
        if (this.active.has(p.id) || (this.retries.get(p.id)?.retryAt ?? 0) > now) continue;
        const worker = this.deliverStream(p)
          .catch((err: Error) => {
            // A store error: the stream waits a poll before its next try (never a hot loop).
            this.retries.set(p.id, { ...(this.retries.get(p.id) ?? { attempts: 0 }), retryAt: this.clock() + s.poll });
            this.logError(`stream:${p.id}`, err, 'sink: stream delivery failed; will retry', p);
          })
          .finally(() => {
            this.active.delete(p.id);
            this.wake();
          });
        this.active.set(p.id, worker);
      }
    }
    // Marked rows are looked for once per poll (not on every wake).
    if (!this.retrying && this.clock() - this.lastRetryCheck >= s.poll) {
      this.lastRetryCheck = this.clock();
      this.retrying = this.deliverRetries()
        .catch((err: Error) => this.logError('retry', err, 'sink: dead-letter retry failed; will retry'))
        .finally(() => (this.retrying = undefined));
    }
  }

  /** Delivers one stream from its cursor until it is caught up, a batch fails, or the lease is lost. */
  private async deliverStream(p: PendingStream): Promise<void> {
    const { store, settings: s, owner } = this.o;
    const claimed = await store.claim(this.name, p.id, owner, this.clock(), s.lease);
    if (claimed === null) {
      // Another instance delivers it: look again after a poll.
      this.retries.set(p.id, { ...(this.retries.get(p.id) ?? { attempts: 0 }), retryAt: this.clock() + s.poll });
      return;
    }
    let cursor: number = claimed;
    const ref: StreamRef = { site: p.site, agent: p.agent, stream: p.stream, epoch: p.epoch };
    const ahead = new ReadAhead(store, p.id, Math.max(s.batch_size, READ_AHEAD));
    try {
      while (!this.stopped) {
        const retry = this.retries.get(p.id);
        // A failed batch is retried unchanged, unless another instance moved the cursor meanwhile.
        const batch: Batch | undefined = retry?.batch && retry.batch.from === cursor ? retry.batch : await this.build(p, ref, cursor, ahead);
        if (!batch) return;
        if (batch.outgoing.length > 0) {
          const failure = await this.attempt(ref, batch.outgoing);
          if (this.stopped) return;
          if (failure !== undefined) {
            const attempts = (retry?.attempts ?? 0) + 1;
            this.o.metrics.failures.inc({ sink: this.name });
            if (attempts < s.max_attempts) {
              const delay = backoffDelay(attempts, s.retry.initial, s.retry.max, this.random);
              this.retries.set(p.id, { attempts, retryAt: this.clock() + delay, batch });
              this.logWarn(`fail:${p.id}`, { ...ref, seqs: [batch.outgoing[0]!.seq, batch.outgoing.at(-1)!.seq], attempt: attempts, of: s.max_attempts, retry_in_ms: delay, err: failure }, 'sink: delivery failed; will retry');
              return;
            }
            this.o.log.error({ sink: this.name, ...ref, events: batch.outgoing.length, attempts, err: failure }, 'sink: delivery failed too often: events dead-lettered, the stream moves on');
            batch.dead.push(...batch.outgoing.map((e) => ({ seq: e.seq, event_id: e.id, attempts, error: failure, field: null })));
            batch.outgoing = [];
          }
        }
        if (!(await store.advance(this.name, p.id, owner, batch.to, batch.dead, this.clock(), s.lease))) {
          this.o.log.warn({ sink: this.name, ...ref }, 'sink: lease of the stream taken over by another instance; leaving it');
          this.retries.delete(p.id);
          return;
        }
        this.retries.delete(p.id);
        this.errors.reset(`fail:${p.id}`);
        if (batch.outgoing.length > 0) this.o.metrics.delivered.inc({ sink: this.name }, batch.outgoing.length);
        if (batch.dead.length > 0) this.o.metrics.deadLettered.inc({ sink: this.name }, batch.dead.length);
        cursor = batch.to;
      }
    } finally {
      await store.release(this.name, p.id, owner);
    }
  }

  /** The next batch after `cursor`, or undefined when the sink has passed everything stored. */
  private async build(p: PendingStream, ref: StreamRef, cursor: number, ahead: ReadAhead): Promise<Batch | undefined> {
    const limit = this.o.settings.batch_size;
    const events = await ahead.take(cursor, limit);
    // Seqs up to the listed last_seq were committed before this read: those not read are holes
    // (duplicates, skipped by the agent) and passed with the batch.
    const to = events.length < limit ? Math.max(p.last_seq, events.at(-1)?.seq ?? 0) : events.at(-1)!.seq;
    if (to <= cursor) return undefined;
    const batch: Batch = { from: cursor, to, outgoing: [], dead: [] };
    for (const stored of events) {
      const e: SinkEvent = { ...stored, ...ref };
      if (!this.matches(e)) continue;
      const t = this.transform(e);
      if (t.ok) batch.outgoing.push({ id: e.id, seq: e.seq, correlation_id: e.correlation_id, value: t.value });
      else batch.dead.push({ seq: e.seq, event_id: e.id, attempts: 0, error: `transform refused ${t.field}: ${t.reason}`, field: t.field });
    }
    return batch;
  }

  private matches(e: SinkEvent): boolean {
    try {
      return this.o.hooks.match(e);
    } catch (err) {
      // A match that throws is a bug in it: the event is offered (delivered or refused by the transform), not lost.
      this.logWarn('match', { seq: e.seq, err: (err as Error).message }, 'sink: match threw; event offered');
      return true;
    }
  }

  private transform(e: SinkEvent): TransformResult {
    try {
      return this.o.hooks.transform(e);
    } catch (err) {
      return { ok: false, field: '(transform)', reason: (err as Error).message };
    }
  }

  /** undefined when delivered, else why not. */
  private async attempt(stream: StreamRef, events: OutgoingEvent[]): Promise<string | undefined> {
    try {
      await this.o.sink.deliver({ sink: this.name, stream, events }, this.abort.signal);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /**
   * Rows `dlq retry` marked: each event the sink still matches delivered alone, with the sink's
   * retries, then gone or dead again. One instance at a time per sink (the retry lease, taken
   * before the rows are listed so that a list is never one another instance has since worked
   * through, and renewed before each attempt: back-off sleeps can outlast it).
   */
  private async deliverRetries(): Promise<void> {
    const { store, settings: s, owner } = this.o;
    const marked = { sink: this.name, status: 'retry' } as const;
    // A look first (a read): most polls find nothing, and a lease is a write.
    if ((await store.listDeadLetters(marked, 1)).length === 0) return;
    if ((await store.claim(this.name, RETRY_LEASE_STREAM, owner, this.clock(), s.lease)) === null) return;
    try {
      const rows = await store.listDeadLetters(marked, s.batch_size);
      for (const row of rows) {
        if (this.stopped || !(await this.retryOne(row))) return;
      }
    } finally {
      await store.release(this.name, RETRY_LEASE_STREAM, owner);
    }
    this.wake();
  }

  /** Renews the retry lease; false (logged) when another instance took it over. */
  private async holdRetryLease(row: DeadLetterRow): Promise<boolean> {
    const { store, settings: s, owner } = this.o;
    if ((await store.claim(this.name, RETRY_LEASE_STREAM, owner, this.clock(), s.lease)) !== null) return true;
    this.o.log.warn({ sink: this.name, site: row.site, agent: row.agent, stream: row.stream, seq: row.seq }, 'sink: dead-letter retries taken over by another instance; leaving them');
    return false;
  }

  /** Settles one marked row; false when the retry lease was lost (the row stays marked). */
  private async retryOne(row: DeadLetterRow): Promise<boolean> {
    const { store, settings: s } = this.o;
    const ref: StreamRef = { site: row.site, agent: row.agent, stream: row.stream, epoch: row.epoch };
    const [stored] = await store.read(row.stream_id, row.seq - 1, 1);
    if (!stored || stored.seq !== row.seq) {
      await store.settleRetry(row.id, false, { attempts: 0, error: 'the event is no longer stored', field: null }, this.clock());
      return true;
    }
    const e: SinkEvent = { ...stored, ...ref };
    // The sink's routes may have changed since the event was dead-lettered: one that no longer
    // takes it must not get it (routing's transform would pass it as stored, not mapped).
    if (!this.matches(e)) {
      await store.settleRetry(row.id, false, { attempts: 0, error: 'the sink no longer takes this event (its match refuses it: were its routes changed?); discard it or route it again', field: null }, this.clock());
      return true;
    }
    const t = this.transform(e);
    if (!t.ok) {
      await store.settleRetry(row.id, false, { attempts: 0, error: `transform refused ${t.field}: ${t.reason}`, field: t.field }, this.clock());
      return true;
    }
    const out: OutgoingEvent = { id: stored.id, seq: stored.seq, correlation_id: stored.correlation_id, value: t.value };
    for (let attempts = 1; ; attempts++) {
      if (!(await this.holdRetryLease(row))) return false;
      const failure = await this.attempt(ref, [out]);
      if (this.stopped) return false; // still marked retry: the next start takes it up
      if (failure === undefined) {
        await store.settleRetry(row.id, true, null, this.clock());
        this.o.metrics.redelivered.inc({ sink: this.name });
        this.o.log.info({ sink: this.name, ...ref, seq: row.seq, id: row.event_id }, 'sink: dead-lettered event delivered on retry');
        return true;
      }
      this.o.metrics.failures.inc({ sink: this.name });
      if (attempts >= s.max_attempts) {
        await store.settleRetry(row.id, false, { attempts, error: failure, field: null }, this.clock());
        this.o.log.error({ sink: this.name, ...ref, seq: row.seq, attempts, err: failure }, 'sink: dead-letter retry failed; the event is dead again');
        return true;
      }
      await sleep(backoffDelay(attempts, s.retry.initial, s.retry.max, this.random), this.abort.signal);
    }
  }

  private logWarn(key: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.errors.take(key);
    if (t) this.o.log.warn({ sink: this.name, ...fields, suppressed: t.suppressed }, msg);
  }

  private logError(key: string, err: Error, msg: string, ref?: StreamRef): void {
    if (this.stopped) return;
    const t = this.errors.take(`error:${key}`);
    if (t) this.o.log.error({ sink: this.name, ...(ref ? { site: ref.site, agent: ref.agent, stream: ref.stream, epoch: ref.epoch } : {}), err: { message: err.message, code: (err as { code?: unknown }).code }, suppressed: t.suppressed }, msg);
  }
}

/**
 * One stream's events read ahead of the cursor while a worker delivers it (it holds the stream's
 * lease: only it moves the cursor). `take` answers fewer than `limit` only when the store held no
 * more at that moment.
 */
class ReadAhead {
  private buf: StoredEvent[] = [];

  constructor(
    private readonly store: DeliveryStore,
    private readonly streamId: number,
    private readonly readSize: number,
  ) {}

  async take(after: number, limit: number): Promise<StoredEvent[]> {
    let passed = 0;
    while (passed < this.buf.length && this.buf[passed]!.seq <= after) passed++;
    if (passed > 0) this.buf = this.buf.slice(passed);
    if (this.buf.length < limit) {
      const from = this.buf.length > 0 ? this.buf[this.buf.length - 1]!.seq : after;
      this.buf.push(...(await this.store.read(this.streamId, from, Math.max(this.readSize, limit - this.buf.length))));
    }
    return this.buf.slice(0, limit);
  }
}
