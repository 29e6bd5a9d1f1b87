import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../common/logger.js';
import type { RelayMetrics, TrafficCounters } from './metrics.js';

interface Saved {
  v: 1;
  counted_since: number;
  counters: TrafficCounters;
}

/**
 * Keeps the relay's traffic counters (batches, gaps, duplicates, acks, messages, rejections: what
 * the store does not hold) across restarts in a small JSON file beside the store, written every
 * `intervalMs` when they changed (temp file + rename, never half a file) and at a graceful stop.
 * After a kill -9 they go on from the last save: at most `intervalMs` of counting is missing.
 * The store-backed counters (records stored, duplicate ids, conflicts, skips, rejected records)
 * come from the store itself (RelayMetrics.seed) and are exact.
 */
export class CountersFile {
  private timer: NodeJS.Timeout | undefined;
  private lastWritten = '';

  constructor(
    private readonly path: string,
    private readonly metrics: RelayMetrics,
    private readonly log: Logger,
    private readonly intervalMs = 1_000,
  ) {}

  /** Adds what an earlier run saved; a missing file is a first start, an unreadable one is said and ignored. */
  load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ path: this.path, err: { message: (err as Error).message } }, 'could not read the saved relay counters; traffic counters start from 0');
      return;
    }
    try {
      const saved = JSON.parse(text) as Saved;
      if (saved.v !== 1 || typeof saved.counted_since !== 'number' || typeof saved.counters !== 'object') throw new Error('not a counters file of this relay');
      this.metrics.restoreTraffic(saved.counters, saved.counted_since);
      this.lastWritten = text;
    } catch (err) {
      this.log.warn({ path: this.path, err: { message: (err as Error).message } }, 'the saved relay counters are unreadable; traffic counters start from 0');
    }
  }

  start(): void {
    this.timer = setInterval(() => this.save(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.save();
  }

  save(): void {
    const text = JSON.stringify({ v: 1, counted_since: this.metrics.countedSince, counters: this.metrics.traffic() } satisfies Saved);
    if (text === this.lastWritten) return;
    try {
      writeFileSync(`${this.path}.tmp`, text);
      renameSync(`${this.path}.tmp`, this.path);
      this.lastWritten = text;
    } catch (err) {
      this.log.warn({ path: this.path, err: { message: (err as Error).message } }, 'could not save the relay counters; retrying');
    }
  }
}
