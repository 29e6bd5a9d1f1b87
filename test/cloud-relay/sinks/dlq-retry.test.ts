import { Registry } from 'prom-client';
import { afterAll, afterEach, expect, it } from 'vitest';
import { routingHooks } from '../../../cloud-relay/mapping/sink-hooks.js';
import { routesSchema } from '../../../cloud-relay/mapping/routing.js';
import { retentionSchema } from '../../../cloud-relay/sinks/config.js';
import { sinkConfigSchema } from '../../../cloud-relay/sinks/registry.js';
import { RETRY_LEASE_STREAM } from '../../../cloud-relay/store/delivery.js';
import { Sinks } from '../../../cloud-relay/sinks/sinks.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { createLogger } from '../../../common/logger.js';
import { waitFor } from '../../helpers/net.js';
import { sqliteStoreFactory } from '../../helpers/relay-stores.js';
import { FlakyReceiver } from './receiver.js';
import { storeBatch, streamId } from './store-feed.js';

const silent = createLogger({ level: 'silent' });
const factory = sqliteStoreFactory();
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
afterAll(() => factory.dispose());

const erp = (url: string) => sinkConfigSchema.parse({ type: 'webhook', name: 'erp', url, timeout: '2s', batch_size: 10, max_attempts: 1, retry: { initial: '10ms', max: '20ms' }, poll: '50ms' });

function start(store: RelayStore, url: string, stream: string): Sinks {
  const hooksFor = routingHooks({ mappings: {}, routes: routesSchema.parse([{ stream, sinks: ['erp'] }]) });
  const s = Sinks.start({ sinks: [erp(url)], retention: retentionSchema.parse({}), store: store.delivery, registry: new Registry(), relayId: 'relay-1', hooksFor, log: silent });
  cleanup.push(() => s.stop());
  return s;
}

it('dlq retry does not deliver an event the sink’s routes no longer take: the row stays dead, saying why', async () => {
  const store = await factory.open(await factory.place(), { dedupeWindowMs: 0, log: silent });
  cleanup.push(() => store.close());
  const rx = await FlakyReceiver.start({ seed: 1 });
  cleanup.push(() => rx.stop());

  // Routed to erp while the receiver refuses them: dead-lettered after one attempt.
  rx.broken.add('orders');
  const first = start(store, rx.url, 'orders');
  await storeBatch(store, 1, 3);
  await waitFor('orders 1..3 dead-lettered', async () => (await store.delivery.listDeadLetters({ sink: 'erp' }, 10)).length === 3, 60_000);
  await first.stop();
  rx.broken.delete('orders');

  // The routes changed: erp now takes returns only. The sink runs (returns arrive)...
  start(store, rx.url, 'returns');
  await storeBatch(store, 1, 2, { stream: 'returns', idPrefix: 'returns#' });
  await rx.until('returns 1..2', () => rx.total === 2);
  // ...and a retry of the old orders rows must not hand them over (as stored, unmapped).
  expect(await store.delivery.retryDeadLetters({ sink: 'erp' }, Date.now())).toBe(3);
  const rows = await waitFor(
    'the retried rows settled',
    async () => {
      const r = await store.delivery.listDeadLetters({ sink: 'erp' }, 10);
      return r.length < 3 || r.every((x) => x.status === 'dead') ? r : undefined;
    },
    60_000,
  );
  expect(rows.map((r) => [r.seq, r.status])).toEqual([
    [1, 'dead'],
    [2, 'dead'],
    [3, 'dead'],
  ]);
  expect(rows[0]!.error).toMatch(/no longer takes this event/);
  expect(rx.streams.has('plant-7/edge-1/orders')).toBe(false);
  expect(rx.total).toBe(2);
}, 120_000);

it('a dlq retry pass whose lease another instance took over (its back-off outlasting the lease) stops retrying; the rows are delivered once, after', async () => {
  const store = await factory.open(await factory.place(), { dedupeWindowMs: 0, log: silent });
  cleanup.push(() => store.close());
  const rx = await FlakyReceiver.start({ seed: 2 });
  cleanup.push(() => rx.stop());
  // Three dead-lettered orders (as a sink that gave up on them left them), marked for retry.
  await storeBatch(store, 1, 3);
  const sid = await streamId(store, 'orders');
  const now = Date.now();
  expect(await store.delivery.claim('erp', sid, 'relay-0', now, 60_000)).toBe(0);
  const dead = [1, 2, 3].map((seq) => ({ seq, event_id: `orders.csv#${seq}`, attempts: 1, error: 'HTTP 500', field: null }));
  expect(await store.delivery.advance('erp', sid, 'relay-0', 3, dead, now, 60_000)).toBe(true);
  await store.delivery.release('erp', sid, 'relay-0');
  expect(await store.delivery.retryDeadLetters({ sink: 'erp' }, now)).toBe(3);

  // relay-1 retries them against a receiver that refuses: many attempts, short back-off.
  rx.broken.add('orders');
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => void lines.push(l) } });
  const cfg = sinkConfigSchema.parse({ type: 'webhook', name: 'erp', url: rx.url, timeout: '1s', lease: '2s', max_attempts: 1000, retry: { initial: '10ms', max: '20ms' }, poll: '50ms' });
  const s = Sinks.start({ sinks: [cfg], retention: retentionSchema.parse({}), store: store.delivery, registry: new Registry(), relayId: 'relay-1', log });
  cleanup.push(() => s.stop());
  await rx.until('relay-1 retrying', () => rx.counts.brokenRefused >= 2);

  // relay-2 takes the retry lease (relay-1's looks run out from where relay-2 stands).
  expect(await store.delivery.claim('erp', RETRY_LEASE_STREAM, 'relay-2', Date.now() + 60_000, 3_600_000)).not.toBeNull();
  await waitFor('relay-1 leaving the retries', () => lines.some((l) => l.includes('dead-letter retries taken over by another instance')), 60_000);
  expect((await store.delivery.listDeadLetters({ sink: 'erp' }, 10)).map((r) => r.status)).toEqual(['retry', 'retry', 'retry']);
  expect(rx.total).toBe(0);

  // relay-2 gone (its lease given up): relay-1 takes the rows up again and delivers each once.
  rx.broken.delete('orders');
  await store.delivery.release('erp', RETRY_LEASE_STREAM, 'relay-2');
  await rx.until('3 retried events', () => rx.total === 3);
  await waitFor('dead-letter table empty', async () => (await store.delivery.listDeadLetters({}, 10)).length === 0, 60_000);
  expect(rx.streams.get('plant-7/edge-1/orders')!.map((e) => e.id)).toEqual(['orders.csv#1', 'orders.csv#2', 'orders.csv#3']);
  expect(rx.counts.repeats).toBe(0);
}, 120_000);
