import { EventEmitter } from 'node:events';
import type { Writer } from '../../host/writer.js';
import type { ScanBook, ScanInput } from './scan.js';

export interface ScanQueueOptions {
  writer: Writer;
  book: ScanBook;
  /**
   * Outbox full under `block`: `wait` (TCP, serial: the queue grows, `pause` tells the collector to
   * stop reading, the sender's window fills) or `refuse` (WebSocket: the scan's promise rejects with
   * ERP_OUTBOX_FULL and the client is told to retry later).
   */
  whenFull: 'wait' | 'refuse';
  /** Scans per append at most. */
  maxBatch?: number;
  /** Queued scans at which `pause` is emitted; `resume` at half of it. */
  highWater?: number;
}

interface Pending {
  scan: ScanInput;
  resolve(r: { seq: number }): void;
  reject(err: unknown): void;
}

/**
 * Hands scans to the capture writer in arrival order, one append at a time: scans that arrive while
 * an append is in flight go together in the next one (group commit), so 50 connections do not
 * mean 50 transactions per tick, and order across the collector's devices is arrival order. A
 * scan's promise settles after its append committed. Events: `pause` / `resume` (back-pressure).
 */
export class ScanQueue extends EventEmitter {
  private readonly pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private isPaused = false;
  private readonly maxBatch: number;
  private readonly highWater: number;

  constructor(private readonly opts: ScanQueueOptions) {
    super();
    this.maxBatch = opts.maxBatch ?? 1_000;
    this.highWater = opts.highWater ?? 2_000;
  }

  /** Queues a scan; resolves with its per-device sequence once it is in the outbox. */
  push(scan: ScanInput): Promise<{ seq: number }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ scan, resolve, reject });
      if (!this.isPaused && this.pending.length >= this.highWater) {
        this.isPaused = true;
        this.emit('pause');
      }
      // Scans read in the same turn of the event loop (several sockets' data events) share one append.
      this.flushing ??= new Promise<void>((done) => setImmediate(done)).then(() => this.flush());
    });
  }

  get backlog(): number {
    return this.pending.length;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** Resolves when everything queued so far has been appended (or refused). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, this.maxBatch);
        await this.append(batch);
        if (this.isPaused && this.pending.length <= this.highWater / 2) {
          this.isPaused = false;
          this.emit('resume');
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async append(batch: Pending[]): Promise<void> {
    let stamped: ReturnType<ScanBook['stamp']>;
    try {
      // Inside the try: stamping reads the outbox's checkpoints, and a closed outbox must reject
      // these scans' promises, not escape as an unhandled rejection of the flush.
      stamped = this.opts.book.stamp(batch.map((p) => p.scan));
      // A record the wire would refuse (a device id too long for an id) is kept in the dead-letter
      // table with its reason: a scan that was read is never lost.
      await this.opts.writer.append(stamped.records, stamped.checkpoints, { invalid: 'dead_letter', whenFull: this.opts.whenFull });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    stamped.commit();
    batch.forEach((p, i) => p.resolve({ seq: stamped.seqs[i]! }));
  }
}
