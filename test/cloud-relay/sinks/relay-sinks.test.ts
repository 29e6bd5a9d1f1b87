import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import type { Relay } from '../../../cloud-relay/relay.js';
import { getJson, relayHarness } from '../../helpers/relay-harness.js';
import { waitFor } from '../../helpers/net.js';
import { parsePromText, sample } from '../../helpers/prom-text.js';
import { batchV2, range } from '../../helpers/relay-wire.js';
import { FlakyReceiver } from './receiver.js';

/**
 * The sinks inside a running relay: configured in its YAML, fed by agents over MQTT, seen in
 * GET /api/sinks and /metrics, their cursors kept across a relay restart, and retention pruning only
 * what every sink has passed.
 */
describe('relay with sinks', () => {
  const h = relayHarness(process.env.SINK_DEBUG ? createLogger({ level: 'debug' }) : undefined);
  const receivers: FlakyReceiver[] = [];
  beforeEach(() => h.setup());
  afterEach(async () => {
    await h.cleanup();
    for (const r of receivers.splice(0)) await r.stop();
  });

  const sinks = (erp: string, wms: string) => [
    { name: 'erp', type: 'webhook' as const, url: erp, poll: '50ms', retry: { initial: '10ms', max: '50ms' } },
    { name: 'wms', type: 'webhook' as const, url: wms, poll: '50ms', retry: { initial: '10ms', max: '50ms' }, max_attempts: 1_000 },
  ];
  const cursor = async (relay: Relay, sink: string, stream: string) => (await relay.store.delivery.cursors()).find((c) => c.sink === sink && c.stream === stream)?.delivered_seq ?? 0;

  it('delivers what agents send, keeps each cursor across a restart, and prunes only what every sink has passed', async () => {
    const erp = await FlakyReceiver.start({ seed: 1 });
    const wms = await FlakyReceiver.start({ seed: 2 });
    receivers.push(erp, wms);
    wms.broken.add('returns');
    const over = { sinks: sinks(erp.url, wms.url), retention: { max_age: '1ms', every: '1h' } };
    let relay = await h.startRelay(over);
    let agent = await h.connectAgent(relay);
    expect(await agent.sendV2(batchV2(1, 20))).toMatchObject({ status: 'ok', upto: 20 });
    expect(await agent.sendV2(batchV2(1, 5, { stream: 'returns', idPrefix: 'returns#' }))).toMatchObject({ status: 'ok', upto: 5 });
    await erp.until('25 events at erp', () => erp.seqs('orders').length === 20 && erp.seqs('returns').length === 5);
    await wms.until('orders at wms', () => wms.seqs('orders').length === 20);
    await waitFor('cursors', async () => (await cursor(relay, 'erp', 'orders')) === 20 && (await cursor(relay, 'erp', 'returns')) === 5 && (await cursor(relay, 'wms', 'orders')) === 20, 30_000);

    const view = (await getJson<{ sinks: Array<{ name: string; dead_letters: number; behind: number; streams: unknown[] }> }>(`${relay.httpUrl}/api/sinks`)).body;
    expect(view.sinks.map((s) => [s.name, s.dead_letters])).toEqual([
      ['erp', 0],
      ['wms', 0],
    ]);
    expect(view.sinks[1]!.streams).toContainEqual(expect.objectContaining({ stream: 'returns', last_seq: 5, delivered_seq: 0, behind: 5 }));

    // Retention: orders passed by both sinks go; returns waits for wms.
    await relay.sinks!.retention.runOnce();
    expect((await h.events(relay, 'orders')).events).toEqual([]);
    expect((await h.events(relay, 'returns')).events.map((e) => e.seq)).toEqual(range(1, 5));
    const metrics = parsePromText(await (await fetch(`${relay.httpUrl}/metrics`)).text());
    // The 20 orders and the harness's warm-up event (its handshake's stream, passed by both sinks).
    expect(sample(metrics, 'erp_edge_relay_retention_pruned_events_total')).toBe(21);
    expect(sample(metrics, 'erp_edge_relay_sink_delivered_events_total', { sink: 'erp' })).toBeGreaterThanOrEqual(25);
    expect(sample(metrics, 'erp_edge_relay_sink_dead_letters', { sink: 'wms' })).toBe(0);
    expect(sample(metrics, 'erp_edge_relay_sink_failed_attempts_total', { sink: 'wms' })).toBeGreaterThan(0);

    // A restart on the same store: each sink carries on from its cursor.
    await agent.close();
    await h.stopRelay(relay);
    const requests = erp.counts.requests;
    wms.broken.delete('returns');
    relay = await h.startRelay(over);
    agent = await h.connectAgent(relay);
    expect(await agent.sendV2(batchV2(21, 24))).toMatchObject({ status: 'ok', upto: 24 });
    await erp.until('orders 21..24 at erp', () => erp.seqs('orders').length === 24);
    await wms.until('returns at wms after the restart', () => wms.seqs('returns').length === 5 && wms.seqs('orders').length === 24);
    expect(erp.seqs('orders')).toEqual(range(1, 24));
    expect(wms.seqs('returns')).toEqual(range(1, 5));
    expect(erp.counts.repeats).toBe(0);
    expect(erp.counts.requests - requests).toBe(1);
  }, 180_000);
});
