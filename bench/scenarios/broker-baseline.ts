import mqtt from 'mqtt';
import { MosquittoProcess } from '../../test/helpers/mosquitto.js';
import { sampleRecord } from '../lib/payload.js';
import type { Scenario, ScenarioContext } from '../types.js';

/** Publishes `count` QoS 1 messages and resolves when the broker has PUBACKed them all. */
async function publishAll(url: string, payloads: string[], topic: string): Promise<number> {
  const client = await mqtt.connectAsync(url, { clean: true, reconnectPeriod: 0 });
  try {
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      let pending = payloads.length;
      for (const p of payloads) {
        client.publish(topic, p, { qos: 1 }, (err) => {
          if (err) return reject(err);
          if (--pending === 0) resolve();
        });
      }
    });
    return (performance.now() - started) / 1000;
  } finally {
    await client.endAsync();
  }
}

export const brokerBaseline: Scenario = {
  name: 'broker-baseline',
  description: 'raw mqtt.js QoS 1 publishes to Mosquitto, one record per message, no durability: the broker limit',
  async run(ctx: ScenarioContext) {
    const n = Math.max(200, Math.round((ctx.quick ? 20_000 : 200_000) * ctx.scale));
    ctx.param('events', n);
    const single = Array.from({ length: n }, (_, i) => sampleRecord(i + 1));
    // The same records, 100 to a message: what batching buys at the broker.
    const batched: string[] = [];
    for (let i = 0; i < n; i += 100) batched.push(`[${single.slice(i, i + 100).join(',')}]`);
    ctx.param('payload_bytes', Buffer.byteLength(single[0]!));
    for (let r = 0; r < ctx.repeats; r++) {
      const broker = await MosquittoProcess.start(ctx.dir);
      try {
        const s1 = await publishAll(broker.url, single, 'bench/raw');
        ctx.record('raw QoS 1, 1 record/message', 'events/s', n / s1);
        const s100 = await publishAll(broker.url, batched, 'bench/raw100');
        ctx.record('raw QoS 1, 100 records/message', 'events/s', n / s100);
      } finally {
        await broker.stop();
      }
    }
  },
};
