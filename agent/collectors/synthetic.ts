import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { topicLevel } from '../../common/wire-v1.js';
import type { Logger } from '../../common/logger.js';
import type { NewRecord, Outbox } from '../outbox/outbox.js';
import { defineCollector, type Collector, type CollectorContext } from './collector.js';

/**
 * Generates warehouse-like records at a set rate: for load tests, benchmarks and trying a
 * deployment end to end before the real sources are wired. Its progress is a checkpoint,
 * so a restart continues the count instead of repeating it.
 */
const schema = z.strictObject({
  type: z.literal('synthetic'),
  name: topicLevel,
  stream: topicLevel.optional(),
  /** Events per second; 0 means as fast as the outbox takes them. */
  rate: z.number().nonnegative().default(100),
  /** Stop after this many events in all (across restarts); 0 means never stop. */
  total: z.number().int().nonnegative().default(0),
  /** Records per outbox transaction. */
  batch: z.number().int().min(1).max(100_000).default(100),
});

export type SyntheticConfig = z.output<typeof schema>;

export const synthetic = defineCollector({
  type: 'synthetic',
  schema,
  create: (cfg, ctx) => new SyntheticCollector(cfg, ctx),
});

interface Progress {
  n: number;
}

export class SyntheticCollector implements Collector {
  readonly name: string;
  private readonly id: string;
  private readonly stream: string;
  private readonly outbox: Outbox;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private n: number;

  constructor(
    private readonly cfg: SyntheticConfig,
    ctx: CollectorContext,
  ) {
    this.name = cfg.name;
    this.id = `synthetic:${cfg.name}`;
    this.stream = cfg.stream ?? cfg.name;
    this.outbox = ctx.outbox;
    this.log = ctx.logger.child({ collector: this.id });
    this.n = this.outbox.getCheckpoint<Progress>(this.id, 'progress')?.n ?? 0;
  }

  async start(): Promise<void> {
    this.log.info({ rate: this.cfg.rate, total: this.cfg.total, from: this.n }, 'synthetic generator started');
    this.running = this.loop().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.log.error({ err: { message: (err as Error).message } }, 'synthetic generator failed');
    });
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  stats(): Record<string, number> {
    return { records: this.n };
  }

  private async loop(): Promise<void> {
    const { rate, total, batch } = this.cfg;
    let startedAt = Date.now();
    let startN = this.n;
    while (!this.abort.signal.aborted && (total === 0 || this.n < total)) {
      const size = total === 0 ? batch : Math.min(batch, total - this.n);
      if (this.outbox.isFull()) {
        await this.outbox.waitForSpace(this.abort.signal);
        // Paused by back-pressure: resume at the set rate, not with a burst to catch up.
        startedAt = Date.now();
        startN = this.n;
      }
      this.append(size);
      if (rate > 0) {
        // Paced against the start time, so timer jitter does not accumulate.
        const due = startedAt + ((this.n - startN) / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait, undefined, { signal: this.abort.signal });
        else await yieldToLoop();
      } else {
        await yieldToLoop(); // let the forwarder and acks run between batches
      }
    }
    if (total > 0 && this.n >= total) this.log.info({ total: this.n }, 'synthetic generator reached its total');
  }

  private append(size: number): void {
    const now = Date.now();
    const records: NewRecord[] = [];
    for (let i = 1; i <= size; i++) {
      const n = this.n + i;
      records.push({
        id: `${this.name}:${n}`,
        source: this.id,
        ts: now,
        correlation_id: null,
        data: { n, sku: `SKU-${(n * 7919) % 100_000}`, qty: n % 97, loc: `A-${n % 40}-${n % 12}`, order: `SO-${Math.floor(n / 10)}` },
      });
    }
    const next = this.n + size;
    this.outbox.append(this.stream, records, { collector: this.id, key: 'progress', value: { n: next } });
    this.n = next;
  }
}
