import { Histogram, type Registry } from 'prom-client';
import type { DecodedRecord } from '../ingest/decode.js';

/**
 * Upper bounds in seconds: sub-second for a healthy pipeline, up to a day for a backlog replayed
 * after a long outage (the business question is "how late did it arrive", not only "is it fast").
 */
export const LAG_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3_600, 21_600, 86_400];

const NAME = 'erp_edge_capture_to_store_lag_seconds';

/**
 * `erp_edge_capture_to_store_lag_seconds`: relay store time minus each stored record's capture
 * `ts` (agent clock, so an agent clock ahead of the relay's reads as 0, never negative). Observed
 * once per commit with the records it stored, after the commit, off the ack's critical section.
 *
 * Counted in plain arrays on the ingest path and exposed as a histogram at scrape time: prom-client's
 * observe() costs ~0.26 µs a value (labels hashed, validated), and this runs once per stored record.
 */
export class CaptureLag {
  private readonly counts = new Float64Array(LAG_BUCKETS_S.length + 1);
  private sum = 0;
  private count = 0;

  constructor(registry: Registry) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the subclass below reads the counts
    const lag = this;
    // A Histogram for its name, help and type in the registry; its values come from the counts above.
    class Counted extends Histogram {
      override async get() {
        return lag.export() as never;
      }
      // The registry prefers this one (prom-client 15) when formatting the text exposition.
      async getForPromString() {
        return lag.export();
      }
    }
    new Counted({ name: NAME, help: 'Seconds from capture at the agent (record ts, agent clock) to storage at the relay, per stored record.', buckets: LAG_BUCKETS_S, registers: [registry] });
  }

  observe(records: readonly DecodedRecord[], storedAt: number): void {
    // The records of a batch mostly share their capture time: the bucket is found once per distinct
    // ts in a row, not walked again for every record (up to 16 steps for a backlog's old records).
    let lastTs = Number.NaN;
    let v = 0;
    let k = 0;
    for (const r of records) {
      const ts = (r.value as { ts?: unknown } | undefined)?.ts;
      if (typeof ts !== 'number') continue;
      if (ts !== lastTs) {
        lastTs = ts;
        v = Math.max(0, storedAt - ts) / 1000;
        k = 0;
        while (k < LAG_BUCKETS_S.length && v > LAG_BUCKETS_S[k]!) k++; // first bound ≥ v: Prometheus' `le`
      }
      this.counts[k]!++;
      this.sum += v;
      this.count++;
    }
  }

  /** The histogram as prom-client's registry formats one: cumulative buckets, +Inf, sum and count. */
  private export() {
    let acc = 0;
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = LAG_BUCKETS_S.map((le, i) => {
      acc += this.counts[i]!;
      return { metricName: `${NAME}_bucket`, labels: { le }, value: acc };
    });
    values.push({ metricName: `${NAME}_bucket`, labels: { le: '+Inf' }, value: this.count });
    values.push({ metricName: `${NAME}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${NAME}_count`, labels: {}, value: this.count });
    return { name: NAME, help: 'Seconds from capture at the agent (record ts, agent clock) to storage at the relay, per stored record.', type: 'histogram', aggregator: 'sum', values };
  }
}
