import { MosquittoProcess } from '../lib/mosquitto.js';
import { sampleRecord } from '../lib/payload.js';
import { publishQos1 } from '../lib/publish.js';
import type { Scenario, ScenarioContext } from '../types.js';

const PUBLISH_WINDOW = 1_000;

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
        // The same window the bridge scenario's publisher uses: the broker's pace, not mqtt.js's queue.
        const opts = { window: PUBLISH_WINDOW, timeoutMs: 600_000 };
        const s1 = await publishQos1(broker.url, 'bench/raw', single.length, (i) => single[i - 1]!, opts);
        ctx.record('raw QoS 1, 1 record/message', 'events/s', n / s1);
        const s100 = await publishQos1(broker.url, 'bench/raw100', batched.length, (i) => batched[i - 1]!, opts);
        ctx.record('raw QoS 1, 100 records/message', 'events/s', n / s100);
      } finally {
        await broker.stop();
      }
    }
  },
};
