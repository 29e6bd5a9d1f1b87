import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../../common/logger.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import type { CaptureInput, Writer } from '../../host/writer.js';
import type { SyntheticConfig } from './schema.js';

/**
 * Generates warehouse-like records at a set rate: for load tests, benchmarks and trying a
 * deployment end to end before the real sources are wired. Its progress is a checkpoint,
 * so a restart continues the count instead of repeating it.
 */
export function create(cfg: SyntheticConfig, ctx: CollectorContext): Collector {
  return new SyntheticCollector(cfg, ctx);
}

interface Progress {
  n: number;
  /** Random per generator lineage: a wiped outbox starts a new run, so its ids are new records. */
  run?: string;
}

export class SyntheticCollector implements Collector {
  private readonly writer: Writer;
  private readonly log: Logger;
  private readonly signal: AbortSignal;
  private readonly fail: (err: unknown) => void;
  private running: Promise<void> | undefined;
  private n: number;
  private readonly run: string;

  constructor(
    private readonly cfg: SyntheticConfig,
    ctx: CollectorContext,
  ) {
    this.writer = ctx.writer;
    this.log = ctx.logger;
    this.signal = ctx.signal;
    this.fail = (err) => ctx.fail(err);
    const progress = this.writer.getCheckpoint<Progress>('progress');
    this.n = progress?.n ?? 0;
    // Kept with the progress: an outbox restored from a copy repeats the same ids (the relay
    // recognises them), a new outbox gets new ones.
    this.run = progress?.run ?? randomUUID().slice(0, 8);
  }

  async start(): Promise<void> {
    this.log.info({ rate: this.cfg.rate, total: this.cfg.total, from: this.n }, 'synthetic generator started');
    this.running = this.loop().catch((err: unknown) => {
      if (!this.signal.aborted) this.fail(err);
    });
  }

  async stop(): Promise<void> {
    await this.running;
  }

  stats(): CollectorStats {
    return { counters: { records: this.n } };
  }

  private async loop(): Promise<void> {
    const { rate, total, batch } = this.cfg;
    let startedAt = Date.now();
    let startN = this.n;
    while (!this.signal.aborted && (total === 0 || this.n < total)) {
      const size = total === 0 ? batch : Math.min(batch, total - this.n);
      const waited = await this.append(size);
      if (waited) {
        // Paused by back-pressure: resume at the set rate, not with a burst to catch up.
        startedAt = Date.now();
        startN = this.n;
      }
      if (rate > 0) {
        // Paced against the start time, so timer jitter does not accumulate.
        const due = startedAt + ((this.n - startN) / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait, undefined, { signal: this.signal });
        else await yieldToLoop();
      } else {
        await yieldToLoop(); // let the forwarder and acks run between batches
      }
    }
    if (total > 0 && this.n >= total) this.log.info({ total: this.n }, 'synthetic generator reached its total');
  }

  /** Appends one batch; true when the writer had to wait for outbox space. */
  private async append(size: number): Promise<boolean> {
    const now = Date.now();
    const records: CaptureInput[] = [];
    for (let i = 1; i <= size; i++) {
      const n = this.n + i;
      records.push({
        id: `${this.cfg.name}:${this.run}:${n}`,
        ts: now, // no source_ts: a generated record's source time is its capture time
        data: { n, sku: `SKU-${(n * 7919) % 100_000}`, qty: n % 97, loc: `A-${n % 40}-${n % 12}`, order: `SO-${Math.floor(n / 10)}` },
      });
    }
    const next = this.n + size;
    const r = await this.writer.append(records, { key: 'progress', value: { n: next, run: this.run } satisfies Progress });
    this.n = next;
    return r.waitedMs > 0;
  }
}
