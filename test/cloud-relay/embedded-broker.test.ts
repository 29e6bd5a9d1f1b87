import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { relayHarness } from '../helpers/relay-harness.js';
import { AGENT, SITE, batchV2 } from '../helpers/relay-wire.js';

/** limits.max_message_bytes at the embedded broker (#12 item 6: a size limit on every input). */
describe('embedded broker: limits.max_message_bytes', () => {
  const h = relayHarness();
  beforeEach(() => h.setup());
  afterEach(() => h.cleanup());

  it('refuses a larger publish (its sender is disconnected, the relay never sees it) and serves everyone else on', async () => {
    const relay = await h.startRelay({ limits: { max_record_bytes: 1024, max_message_bytes: 4096 } });
    const agent = await h.connectAgent(relay);
    const before = await h.stats(relay); // the handshake's warm-up batch
    const big = await mqtt.connectAsync(relay.brokerUrl, { clientId: 'too-big', reconnectPeriod: 0 });
    big.on('error', () => undefined); // the refused publish may surface as an error, then the close
    const closed = new Promise<void>((resolve) => big.once('close', () => resolve()));
    const payload = JSON.stringify({ ...batchV2(1, 1), pad: 'p'.repeat(4096) });
    big.publish(`erp-edge/v2/${SITE}/${AGENT}/events/orders`, payload, { qos: 1 });
    await closed;
    big.end(true);

    // Just under the limit passes; the agent's own connection was never touched.
    const fits = batchV2(1, 1);
    expect(Buffer.byteLength(JSON.stringify(fits))).toBeLessThan(4096);
    expect(await agent.sendV2(fits)).toMatchObject({ status: 'ok', upto: 1 });
    const s = await h.stats(relay);
    expect(s.batches).toBe(before.batches + 1);
    expect(Object.values(s.rejected).reduce((a, b) => a + b, 0)).toBe(0);
  });
  // Over the limit at the relay itself (an external broker with a higher limit): too_large, for event
  // batches and health alike — test/cloud-relay/ingest/decode.test.ts and test/e2e/relay-fuzz.test.ts.
});
