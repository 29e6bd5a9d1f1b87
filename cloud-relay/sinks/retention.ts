import type { Logger } from '../../common/logger.js';
import type { DeliveryStore } from '../store/delivery.js';
import type { RetentionConfig } from './config.js';
import type { SinkMetrics } from './metrics.js';

export interface RetentionOptions {
  config: RetentionConfig;
  store: DeliveryStore;
  /** Every configured sink: an event goes only once all of them passed it. */
  sinks: readonly string[];
  metrics: SinkMetrics;
  log: Logger;
  clock?: () => number;
}

/**
 * Prunes stored events older than `retention.max_age` once every sink has passed them (store/
 * delivery.ts says exactly what may go), every `retention.every`, `batch` segments per delete so
 * that a large backlog never holds the store in one long transaction. Does nothing without max_age.
 */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<{ segments: number; records: number }> | undefined;
  private stopped = false;
  private readonly clock: () => number;

  constructor(private readonly o: RetentionOptions) {
    this.clock = o.clock ?? Date.now;
  }

  start(): void {
    if (this.o.config.max_age === undefined) return;
    this.timer = setInterval(() => void this.runOnce(), this.o.config.every);
    void this.runOnce();
  }

  /** One pruning pass (also the tests' way in); a pass already running is awaited, not doubled. */
  runOnce(): Promise<{ segments: number; records: number }> {
    this.running ??= this.prune()
      .catch((err: Error) => {
        this.o.log.error({ err: { message: err.message } }, 'retention: pruning failed; will retry at the next run');
        return { segments: 0, records: 0 };
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async prune(): Promise<{ segments: number; records: number }> {
    const { config, store, sinks, metrics } = this.o;
    if (config.max_age === undefined) return { segments: 0, records: 0 };
    const before = this.clock() - config.max_age;
    const total = { segments: 0, records: 0 };
    while (!this.stopped) {
      const r = await store.prune(before, sinks, config.batch);
      total.segments += r.segments;
      total.records += r.records;
      metrics.prunedSegments.inc(r.segments);
      metrics.prunedEvents.inc(r.records);
      if (r.segments < config.batch) break;
    }
    if (total.segments > 0) this.o.log.info({ max_age_ms: config.max_age, segments: total.segments, events: total.records }, 'retention: stored events pruned');
    return total;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
