import { Histogram, type Registry } from 'prom-client';
import type { DecodedRecord } from '../ingest/decode.js';

/**
 * Upper bounds in seconds: sub-second for a healthy pipeline, up to a day for a backlog replayed
 * after a long outage (the business question is "how late did it arrive", not only "is it fast").
 */
export const LAG_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3_600, 21_600, 86_400];

/**
 * `erp_edge_capture_to_store_lag_seconds`: relay store time minus each stored record's capture
 * `ts` (agent clock, so an agent clock ahead of the relay's reads as 0, never negative). Observed
 * once per commit with the records it stored, after the commit, off the ack's critical section.
 */
export class CaptureLag {
  private readonly histogram: Histogram;

  constructor(registry: Registry) {
    this.histogram = new Histogram({
      name: 'erp_edge_capture_to_store_lag_seconds',
      help: 'Seconds from capture at the agent (record ts, agent clock) to storage at the relay, per stored record.',
      buckets: LAG_BUCKETS_S,
      registers: [registry],
    });
  }

  observe(records: readonly DecodedRecord[], storedAt: number): void {
    for (const r of records) {
      const ts = (r.value as { ts?: unknown } | undefined)?.ts;
      if (typeof ts === 'number') this.histogram.observe(Math.max(0, storedAt - ts) / 1000);
    }
  }
}
