import mqtt from 'mqtt';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retentionSchema } from '../../../cloud-relay/sinks/config.js';
import type { MqttSinkMessage } from '../../../cloud-relay/sinks/mqtt.js';
import { sinkConfigSchema } from '../../../cloud-relay/sinks/registry.js';
import { Sinks } from '../../../cloud-relay/sinks/sinks.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { createLogger } from '../../../common/logger.js';
import { MosquittoProcess } from '../../helpers/mosquitto.js';
import { waitFor } from '../../helpers/net.js';
import { sqliteStoreFactory } from '../../helpers/relay-stores.js';
import { range } from '../../helpers/relay-wire.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { storeBatch } from './store-feed.js';

const silent = createLogger({ level: 'silent' });

describe('mqtt sink against a real Mosquitto', () => {
  const tmp = makeTempDir('erp-edge-mqtt-sink-');
  const factory = sqliteStoreFactory();
  let broker: MosquittoProcess;
  let store: RelayStore;
  beforeAll(async () => {
    broker = await MosquittoProcess.start(tmp.dir);
    store = await factory.open(await factory.place(), { dedupeWindowMs: 0, log: silent });
  }, 30_000);
  afterAll(async () => {
    await store?.close();
    await broker?.stop();
    await factory.dispose();
    tmp.cleanup();
  });

  it('re-publishes each event at QoS 1 to its stream topic, once and in seq order per stream', async () => {
    const got = new Map<string, MqttSinkMessage[]>();
    let total = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'downstream-consumer' });
    sub.on('message', (topic, payload) => {
      const list = got.get(topic) ?? [];
      got.set(topic, list);
      list.push(JSON.parse(payload.toString('utf8')) as MqttSinkMessage);
      if (++total === 150) done();
    });
    await sub.subscribeAsync('cloud/#', { qos: 1 });
    const registry = new Registry();
    const cfg = sinkConfigSchema.parse({ type: 'mqtt', name: 'cloud', url: broker.url, client_id: 'relay-sink-test', topic: 'cloud/{site}/{stream}/events', batch_size: 20, poll: '50ms' });
    const sinks = Sinks.start({ sinks: [cfg], retention: retentionSchema.parse({}), store: store.delivery, registry, relayId: 'test', log: silent });
    try {
      for (const stream of ['orders', 'moves', 'counts']) {
        await storeBatch(store, 1, 30, { stream, idPrefix: `${stream}#` });
        await storeBatch(store, 31, 50, { stream, idPrefix: `${stream}#` });
      }
      await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error(`${total} of 150 messages`)), 60_000))]);
      expect([...got.keys()].sort()).toEqual(['cloud/plant-7/counts/events', 'cloud/plant-7/moves/events', 'cloud/plant-7/orders/events']);
      for (const stream of ['orders', 'moves', 'counts']) {
        const msgs = got.get(`cloud/plant-7/${stream}/events`)!;
        expect(msgs.map((m) => m.id)).toEqual(range(1, 50).map((s) => `${stream}#${s}`));
        expect(msgs[1]).toEqual({
          v: 1,
          site: 'plant-7',
          agent: 'edge-1',
          stream,
          epoch: 'epoch-aaaaaaaa',
          id: `${stream}#2`,
          seq: 2,
          correlation_id: 'file:2',
          value: expect.objectContaining({ seq: 2, id: `${stream}#2`, data: { seq: 2, tag: 'first' }, key: 'SO-2|1' }),
        });
      }
      // The cursor moves once the PUBACKs are in (after the consumer may have them).
      await waitFor('cursors at 50', async () => (await store.delivery.pendingStreams('cloud', 10)).length === 0, 30_000);
      expect((await store.delivery.cursors()).map((c) => c.delivered_seq)).toEqual([50, 50, 50]);
    } finally {
      await sinks.stop();
      await sub.endAsync();
    }
  }, 120_000);
});
