import { hostname } from 'node:os';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import type { DeliveryStore } from '../store/delivery.js';
import type { RetentionConfig } from './config.js';
import { SinkDelivery } from './delivery.js';
import { SinkMetrics } from './metrics.js';
import { createSink, type SinkConfig } from './registry.js';
import { Retention } from './retention.js';
import { identityTransform, matchAll, type Sink, type SinkHooksFor } from './sink.js';

export interface SinksOptions {
  sinks: readonly SinkConfig[];
  retention: RetentionConfig;
  store: DeliveryStore;
  registry: Registry;
  /**
   * This relay's `id` (its MQTT client id, unique per instance on one broker). The leases' owner is
   * `<id>@<host name>`: the same across a restart, so a relay started again after a crash takes its
   * streams back at once instead of waiting out its own leases; and two instances left on the
   * default id on different hosts (different brokers, one PostgreSQL) still hold separate leases.
   */
  relayId: string;
  /** Routing and mapping's hooks per sink (identity and match-all where absent). */
  hooksFor?: SinkHooksFor | undefined;
  log: Logger;
  clock?: (() => number) | undefined;
}

/** Every configured sink's delivery loop and the retention job, started and stopped together. */
export class Sinks {
  private constructor(
    readonly deliveries: readonly SinkDelivery[],
    private readonly sinks: readonly Sink[],
    readonly retention: Retention,
    readonly metrics: SinkMetrics,
  ) {}

  static start(o: SinksOptions): Sinks {
    const log = o.log.child({ part: 'sinks' });
    const owner = `${o.relayId}@${hostname()}`;
    const names = o.sinks.map((s) => s.name);
    const metrics = new SinkMetrics(o.registry, o.store, names, o.clock);
    const sinks: Sink[] = [];
    const deliveries = o.sinks.map((cfg) => {
      const sink = createSink(cfg, log);
      sinks.push(sink);
      const hooks = o.hooksFor?.({ name: cfg.name, type: cfg.type }) ?? {};
      const { type: _t, name: _n, batch_size, max_attempts, retry, concurrency, lease, poll } = cfg;
      return new SinkDelivery({
        sink,
        hooks: { match: hooks.match ?? matchAll, transform: hooks.transform ?? identityTransform },
        settings: { name: cfg.name, batch_size, max_attempts, retry, concurrency, lease, poll },
        store: o.store,
        owner,
        metrics,
        log,
        ...(o.clock ? { clock: o.clock } : {}),
      });
    });
    const retention = new Retention({ config: o.retention, store: o.store, sinks: names, metrics, log, ...(o.clock ? { clock: o.clock } : {}) });
    for (const d of deliveries) d.start();
    retention.start();
    if (deliveries.length > 0) log.info({ sinks: o.sinks.map((s) => ({ name: s.name, type: s.type })), retention_max_age_ms: o.retention.max_age ?? null }, 'sinks started');
    return new Sinks(deliveries, sinks, retention, metrics);
  }

  /** Events were stored: every sink looks now. */
  wake(): void {
    for (const d of this.deliveries) d.wake();
  }

  async stop(): Promise<void> {
    await Promise.all(this.deliveries.map((d) => d.stop()));
    await this.retention.stop();
    await Promise.all(this.sinks.map((s) => s.close()));
  }
}
