import { Registry } from 'prom-client';
import { afterAll, afterEach, expect, it } from 'vitest';
import { routingHooks } from '../../../cloud-relay/mapping/sink-hooks.js';
import { routesSchema } from '../../../cloud-relay/mapping/routing.js';
import { retentionSchema } from '../../../cloud-relay/sinks/config.js';
import { sinkConfigSchema } from '../../../cloud-relay/sinks/registry.js';
import { Sinks } from '../../../cloud-relay/sinks/sinks.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { createLogger } from '../../../common/logger.js';
import { waitFor } from '../../helpers/net.js';
import { sqliteStoreFactory } from '../../helpers/relay-stores.js';
import { FlakyReceiver } from './receiver.js';
import { storeBatch } from './store-feed.js';

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
