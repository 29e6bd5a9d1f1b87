import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createLogger } from '../../../common/logger.js';
import { Outbox, type NewRecord } from '../../../agent/outbox/outbox.js';
import type { Forwarder } from '../../../agent/transport/forwarder.js';
import { Relay } from '../../../cloud-relay/relay.js';
import type { RelayConfig } from '../../../cloud-relay/config.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../../cloud-relay/embedded-broker.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/net.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
import { testForwarder } from '../../helpers/forwarder.js';

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const SITE = 'site-f';
const AGENT = 'agent-f';

let dir: string;
let cleanup: () => void;
let broker: EmbeddedBroker;
const stops: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = makeTempDir());
  // A broker of its own, apart from the relay, so relays can come and go as at a real site.
  broker = await startEmbeddedBroker('127.0.0.1', 0, logger);
});
afterEach(async () => {
  while (stops.length) await stops.pop()!();
  await broker.close();
  cleanup();
});

async function startRelay(db: string): Promise<Relay> {
  const cfg: RelayConfig = {
    id: 'relay-f',
    log_level: 'info',
    broker: { url: broker.url },
    embedded_broker: { host: '127.0.0.1', port: 0 },
    store: { path: join(dir, db), synchronous: 'FULL' },
    http: { host: '127.0.0.1', port: 0 },
    auth: { disabled: true },
  };
  const relay = await Relay.start(cfg, logger);
  await relay.ready;
  return relay;
}

function startAgent(ackTimeoutMs: number): { outbox: Outbox; forwarder: Forwarder } {
  const outbox = new Outbox(testOutboxOptions(join(dir, 'outbox.db'), { replayWindowMs: 0 }));
  const forwarder = testForwarder({ outbox, site: SITE, agent: AGENT, url: broker.url, ackTimeoutMs, reconnectPeriodMs: 200, logger });
  forwarder.start();
  stops.push(() => outbox.close(), () => forwarder.stop());
  return { outbox, forwarder };
}

const recs = (from: number, to: number): NewRecord[] => Array.from({ length: to - from + 1 }, (_, i) => ({ id: `r${from + i}`, source: 'test', data: { n: from + i } }));

async function stream(relay: Relay) {
  return (await relay.store.listStreams()).find((s) => s.stream === 'orders' && s.current);
}

describe('forwarder against a real broker and relay', () => {
  it('when the relay lost what this outbox already pruned, the agent skips it (counted) instead of stalling', async () => {
    let relay = await startRelay('relay-1.db');
    const { outbox } = startAgent(1_000);
    outbox.append('orders', recs(1, 100));
    await waitFor('relay 1 has 1..100', async () => (await stream(relay))?.last_seq === 100, 15_000);
    await waitFor('acked', () => outbox.ackedSeq('orders') === 100, 15_000);
    outbox.pruneAcked(true);
    await relay.stop();

    // The relay comes back with an empty store (lost disk, restored backup): it expects seq 1.
    relay = await startRelay('relay-2.db');
    stops.push(() => relay.stop());
    outbox.append('orders', recs(101, 150));
    await waitFor('relay 2 has up to 150', async () => (await stream(relay))?.last_seq === 150, 20_000);
    const events = (await relay.store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 0, limit: 1000 })).events;
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 101 + i));
    // Declared as skipped (reason `pruned`: acked and pruned here, lost by the relay), counted apart from drops.
    expect(await stream(relay)).toMatchObject({ dropped: 0, skipped_other: 100 });
  });

  it('does not resend on ack timeouts while the relay is known to be offline, and resends at once when it returns', async () => {
    let relay = await startRelay('relay.db');
    const { outbox, forwarder } = startAgent(300);
    outbox.append('orders', recs(1, 10));
    await waitFor('first 10 stored', async () => (await stream(relay))?.last_seq === 10, 15_000);
    await relay.stop(); // publishes its retained offline status

    outbox.append('orders', recs(11, 20));
    // Several ack timeouts long: with the relay known offline none of them may fire.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(forwarder.getStats().timeouts).toBe(0);

    relay = await startRelay('relay.db');
    stops.push(() => relay.stop());
    await waitFor('all 20 stored', async () => (await stream(relay))?.last_seq === 20, 15_000);
    expect(forwarder.getStats().timeouts).toBe(0);
  });
});
