import { Counter, Gauge, type Registry } from 'prom-client';
import type { DeliveryStore } from '../store/delivery.js';

/**
 * The sinks' Prometheus metrics: counters kept by the delivery loops and the retention job, and
 * the dead-letter table's count and oldest age per sink, read from the store at scrape time (so
 * several instances sharing a store report the same table).
 */
export class SinkMetrics {
  readonly delivered: Counter<'sink'>;
  readonly failures: Counter<'sink'>;
  readonly deadLettered: Counter<'sink'>;
  readonly redelivered: Counter<'sink'>;
  readonly prunedEvents: Counter;
  readonly prunedSegments: Counter;

  constructor(registry: Registry, store: DeliveryStore, sinks: readonly string[], clock: () => number = Date.now) {
    const registers = [registry];
    this.delivered = new Counter({ name: 'erp_edge_relay_sink_delivered_events_total', help: 'Events a sink delivered (acknowledged by the receiver).', labelNames: ['sink'], registers });
    this.failures = new Counter({ name: 'erp_edge_relay_sink_failed_attempts_total', help: 'Delivery attempts that failed (retried, then dead-lettered).', labelNames: ['sink'], registers });
    this.deadLettered = new Counter({ name: 'erp_edge_relay_sink_dead_lettered_events_total', help: 'Events a sink gave up on (delivery failures or a transform refusal).', labelNames: ['sink'], registers });
    this.redelivered = new Counter({ name: 'erp_edge_relay_sink_retried_events_total', help: 'Dead-lettered events delivered by `dlq retry`.', labelNames: ['sink'], registers });
    this.prunedEvents = new Counter({ name: 'erp_edge_relay_retention_pruned_events_total', help: 'Stored events deleted by retention.', registers });
    this.prunedSegments = new Counter({ name: 'erp_edge_relay_retention_pruned_segments_total', help: 'Stored segments (runs of events) deleted by retention.', registers });
    for (const sink of sinks) for (const c of [this.delivered, this.failures, this.deadLettered, this.redelivered]) c.inc({ sink }, 0);
    // One store read per scrape feeds both gauges (a read younger than a second is reused).
    let stats: { at: number; rows: Promise<Map<string, { count: number; oldest_at: number | null }>> } | undefined;
    const read = () => {
      const now = clock();
      if (!stats || now - stats.at > 1_000) {
        stats = { at: now, rows: store.deadLetterStats().then((rows) => new Map(rows.map((r) => [r.sink, r] as const))) };
      }
      return stats.rows;
    };
    new Gauge({
      name: 'erp_edge_relay_sink_dead_letters',
      help: 'Events in the dead-letter table (dead or waiting for a retry), by sink.',
      labelNames: ['sink'],
      registers,
      async collect() {
        const m = await read();
        this.reset();
        for (const sink of new Set([...sinks, ...m.keys()])) this.set({ sink }, m.get(sink)?.count ?? 0);
      },
    });
    new Gauge({
      name: 'erp_edge_relay_sink_dead_letter_oldest_age_seconds',
      help: 'Age of the oldest dead-lettered event, by sink (0 when none).',
      labelNames: ['sink'],
      registers,
      async collect() {
        const m = await read();
        this.reset();
        const now = clock();
        for (const sink of new Set([...sinks, ...m.keys()])) {
          const at = m.get(sink)?.oldest_at ?? null;
          this.set({ sink }, at === null ? 0 : Math.max(0, (now - at) / 1000));
        }
      },
    });
  }
}
