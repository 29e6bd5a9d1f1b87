import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Relay } from '../../../cloud-relay/relay.js';
import { waitFor } from '../../helpers/net.js';
import { relayHarness } from '../../helpers/relay-harness.js';
import { AGENT, SITE, batchV2 } from '../../helpers/relay-wire.js';
import { birthMsg, healthMsg } from '../../helpers/fleet-messages.js';
import { parsePromText, sample, seriesOf } from '../../helpers/prom-text.js';
import { hasPromtool, promtool } from '../../helpers/promtool.js';

const WAIT_MS = 15_000;
/** recordV2(seq).ts is 1_700_000_000_000 + seq: stored at this relay time, seq 1..10 are 7.990..7.999 s late. */
const STORE_AT = 1_700_000_008_000;

async function scrape(relay: Relay): Promise<{ text: string; series: Map<string, number>; type: string | null }> {
  const res = await fetch(`${relay.httpUrl}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, series: parsePromText(text), type: res.headers.get('content-type') };
}

describe('relay GET /metrics', () => {
  const h = relayHarness();
  beforeEach(() => h.setup());
  afterEach(() => h.cleanup());

  it('exposes presence, health, stored events, rejects and the capture→store lag with bounded labels, and passes promtool check metrics', async () => {
    let now = Date.now();
    const relay = await h.startRelay({}, { clock: () => now });
    const agent = await h.connectAgent(relay);
    const before = await scrape(relay); // the harness's warm-up batch is stored and observed: count from here
    const lagCount0 = sample(before.series, 'erp_edge_capture_to_store_lag_seconds_count') ?? 0;

    now = STORE_AT;
    await agent.presence(birthMsg('boot-1', now, { agent_version: '0.3.9' }));
    await agent.health(
      healthMsg('boot-1', now, [
        { stream: 'orders', pending: 42, oldestAgeMs: 90_000 },
        { stream: 'scans', pending: 0, oldestAgeMs: null },
      ], { collectors: [{ name: 'orders', state: 'error', errors: 3 }, { name: 'scans', state: 'running', errors: 0 }] }),
    );
    const ack = await agent.sendV2(batchV2(1, 10));
    expect(ack.status).toBe('ok');
    await agent.publishRaw(`erp-edge/v2/${SITE}/${AGENT}/events/orders`, 'not json');
    await waitFor('health and the reject to be counted', async () => (await h.stats(relay)).health_messages === 1 && (await h.stats(relay)).rejected.invalid_json === 1, WAIT_MS);

    const { text, series, type } = await scrape(relay);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    const who = { site: SITE, agent: AGENT };
    expect(sample(series, 'erp_edge_agent_up', who)).toBe(1);
    expect(sample(series, 'erp_edge_agent_info', { ...who, version: '0.3.9' })).toBe(1);
    expect(sample(series, 'erp_edge_agent_state', { ...who, state: 'online' })).toBe(1);
    expect(sample(series, 'erp_edge_agent_state', { ...who, state: 'offline' })).toBe(0);
    expect(sample(series, 'erp_edge_outbox_pending_events', { ...who, stream: 'orders' })).toBe(42);
    expect(sample(series, 'erp_edge_outbox_pending_events', { ...who, stream: 'scans' })).toBe(0);
    expect(sample(series, 'erp_edge_outbox_pending_bytes', { ...who, stream: 'orders' })).toBe(42 * 250);
    expect(sample(series, 'erp_edge_agent_disk_free_bytes', who)).toBe(7_000_000_000);
    expect(sample(series, 'erp_edge_outbox_oldest_pending_age_seconds', { ...who, stream: 'orders' })).toBe(90);
    expect(sample(series, 'erp_edge_outbox_oldest_pending_age_seconds', { ...who, stream: 'scans' })).toBe(0);
    expect(sample(series, 'erp_edge_collector_in_error', { ...who, collector: 'orders' })).toBe(1);
    expect(sample(series, 'erp_edge_collector_in_error', { ...who, collector: 'scans' })).toBe(0);
    expect(sample(series, 'erp_edge_collector_errors_total', { ...who, collector: 'orders' })).toBe(3);
    expect(sample(series, 'erp_edge_agent_last_health_age_seconds', who)).toBe(0);
    expect(sample(series, 'erp_edge_agent_exceptions', { ...who, kind: 'file_error' })).toBe(2);
    expect(sample(series, 'erp_edge_relay_events_stored_total', { ...who, stream: 'orders' })).toBe(10);
    expect(sample(series, 'erp_edge_relay_messages_rejected_total', { reason: 'invalid_json' })).toBe(1);
    expect(sample(series, 'erp_edge_relay_messages_rejected_total', { reason: 'invalid_health' })).toBe(0);
    expect(sample(series, 'erp_edge_relay_batches_total', { wire: '2' })).toBe(1);
    expect(sample(series, 'erp_edge_relay_health_messages_total')).toBe(1);
    expect(sample(series, 'erp_edge_relay_presence_messages_total')).toBe(1);

    // The ten records, 7.99 s after their capture: in the 10 s bucket, not the 5 s one.
    expect((sample(series, 'erp_edge_capture_to_store_lag_seconds_count') ?? 0) - lagCount0).toBe(10);
    const le5 = sample(series, 'erp_edge_capture_to_store_lag_seconds_bucket', { le: '5' })! - sample(before.series, 'erp_edge_capture_to_store_lag_seconds_bucket', { le: '5' })!;
    const le10 = sample(series, 'erp_edge_capture_to_store_lag_seconds_bucket', { le: '10' })! - sample(before.series, 'erp_edge_capture_to_store_lag_seconds_bucket', { le: '10' })!;
    expect([le5, le10]).toEqual([0, 10]);
    const sum = sample(series, 'erp_edge_capture_to_store_lag_seconds_sum')! - sample(before.series, 'erp_edge_capture_to_store_lag_seconds_sum')!;
    expect(sum).toBeCloseTo(79.945, 3);

    // No label carries a boot id, a record id or a file name.
    for (const line of series.keys()) expect(line).not.toMatch(/boot-1|orders\.csv|#\d/);
    if (hasPromtool()) {
      const r = promtool(['check', 'metrics'], text);
      expect(r.status, r.output).toBe(0);
    }
  });

  it('two relays in one process each serve their own metrics (own registries, no clash)', async () => {
    const one = await h.startRelay();
    const two = await h.startRelay({ store: { path: join(h.dir, 'two', 'relay.db') } });
    const a = await h.connectAgent(one, { agent: 'only-on-one' });
    await a.health(healthMsg('b', Date.now(), [{ stream: 'orders', pending: 7, oldestAgeMs: 1 }]));
    await waitFor('health at relay one', async () => (await h.stats(one)).health_messages === 1, WAIT_MS);
    const s1 = (await scrape(one)).series;
    const s2 = (await scrape(two)).series;
    expect(sample(s1, 'erp_edge_outbox_pending_events', { site: SITE, agent: 'only-on-one', stream: 'orders' })).toBe(7);
    expect(seriesOf(s2, 'erp_edge_outbox_pending_events')).toEqual([]);
    expect(sample(s2, 'erp_edge_relay_health_messages_total')).toBe(0);
  });
});
