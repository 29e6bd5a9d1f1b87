import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { CaptureLag, LAG_BUCKETS_S } from '../../../cloud-relay/fleet/lag.js';
import type { DecodedRecord } from '../../../cloud-relay/ingest/decode.js';

const rec = (ts: unknown): DecodedRecord => ({ seq: 1, id: 'x', value: ts === undefined ? undefined : { ts } });

/** The histogram as a per-record walk would count it: cumulative `le` buckets, sum and count. */
function expected(tss: unknown[], storedAt: number): { buckets: number[]; sum: number; count: number } {
  const counts = new Array<number>(LAG_BUCKETS_S.length + 1).fill(0);
  let sum = 0;
  let count = 0;
  for (const ts of tss) {
    if (typeof ts !== 'number') continue;
    const v = Math.max(0, storedAt - ts) / 1000;
    const k = LAG_BUCKETS_S.findIndex((le) => v <= le);
    counts[k === -1 ? LAG_BUCKETS_S.length : k]!++;
    sum += v;
    count++;
  }
  let acc = 0;
  return { buckets: counts.slice(0, LAG_BUCKETS_S.length).map((c) => (acc += c)), sum, count };
}

describe('CaptureLag', () => {
  it('counts every record in its bucket, runs of one ts and mixed ones alike', async () => {
    const storedAt = 10_000_000;
    const tss: unknown[] = [
      ...Array.from({ length: 50 }, () => storedAt - 120),
      storedAt - 3_000,
      storedAt - 3_000,
      'late',
      undefined,
      storedAt + 5, // a clock ahead: lag 0
      storedAt - 100_000_000, // beyond the last bound: +Inf only
      ...Array.from({ length: 20 }, (_, i) => storedAt - i * 1_000),
    ];
    const registry = new Registry();
    const lag = new CaptureLag(registry);
    lag.observe(tss.slice(0, 40).map(rec), storedAt);
    lag.observe(tss.slice(40).map(rec), storedAt);
    const metric = (await registry.getMetricsAsJSON())[0]!;
    const values = metric.values as { metricName?: string; labels: Record<string, string | number>; value: number }[];
    const bucket = values.filter((x) => x.metricName?.endsWith('_bucket') && x.labels.le !== '+Inf').map((x) => x.value);
    const want = expected(tss, storedAt);
    expect(bucket).toEqual(want.buckets);
    expect(values.find((x) => x.metricName?.endsWith('_count'))!.value).toBe(want.count);
    expect(values.find((x) => x.metricName?.endsWith('_sum'))!.value).toBeCloseTo(want.sum, 9);
  });
});
