import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../common/logger.js';
import { loadAgentConfig } from '../../agent/config.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { Agent } from '../../agent/agent.js';
import { Relay } from '../../cloud-relay/relay.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { agentYaml, checkExact, dropCsvFiles, fetchAllEvents, relayLastSeq, relayYaml } from '../helpers/pipeline.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const ROWS = 10_000;

interface Setup {
  dir: string;
  inbox: string;
  relay: Relay;
  agent: Agent;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function startRelay(dir: string, brokerUrl?: string): Promise<Relay> {
  const path = join(dir, 'relay.yaml');
  writeFileSync(path, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: 0, brokerUrl, embeddedPort: 0 }));
  const relay = await Relay.start(loadRelayConfig(path), logger);
  cleanups.push(() => relay.stop());
  return relay;
}

async function startAgent(dir: string, url: string, extraOutbox?: string, batchSize?: number): Promise<{ agent: Agent; inbox: string }> {
  const inbox = join(dir, 'inbox');
  const path = join(dir, 'agent.yaml');
  writeFileSync(path, agentYaml({ url, inbox, dataDir: join(dir, 'agent-data'), extraOutbox, batchSize }));
  const agent = await Agent.start(loadAgentConfig(path), logger);
  cleanups.push(() => agent.stop());
  return { agent, inbox };
}

async function setup(brokerUrl?: string): Promise<Setup> {
  const { dir, cleanup } = makeTempDir();
  cleanups.push(cleanup);
  const relay = await startRelay(dir, brokerUrl);
  const { agent, inbox } = await startAgent(dir, relay.brokerUrl);
  return { dir, inbox, relay, agent };
}

function pendingTotal(agent: Agent): number {
  return agent.outbox.streamStatus().reduce((n, s) => n + s.pending, 0);
}

async function expectDelivered(s: Setup, total: number): Promise<void> {
  await waitFor(`relay to store ${total} events`, async () => (await relayLastSeq(s.relay.httpUrl)) >= total, 60_000, 100);
  const events = await fetchAllEvents(s.relay.httpUrl, 'site-a', 'agent-1', 'orders');
  expect(checkExact(events, total)).toBeUndefined();
  await waitFor('outbox drained', () => pendingTotal(s.agent) === 0, 20_000);
  expect(s.relay.metrics.snapshot().rejected).toEqual({ invalid_json: 0, invalid_schema: 0, topic_mismatch: 0, bad_topic: 0, unsupported_version: 0, too_large: 0, internal_error: 0, invalid_presence: 0, invalid_health: 0 });
}

describe('end to end: file drop → outbox → MQTT → relay', () => {
  it('delivers 10 000 rows in order, none duplicated, over the embedded broker', async () => {
    const s = await setup();
    dropCsvFiles(s.inbox, 5, ROWS / 5);
    await expectDelivered(s, ROWS);
  });

  it.skipIf(!hasMosquitto)('delivers 10 000 rows in order, none duplicated, over a real Mosquitto', async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const mosquitto = await MosquittoProcess.start(dir);
    cleanups.push(() => mosquitto.stop());
    const s = await setup(mosquitto.url);
    dropCsvFiles(s.inbox, 5, ROWS / 5);
    await expectDelivered(s, ROWS);
  });

  it.skipIf(!hasMosquitto)('captures 10 000 rows while the broker is down and replays them in order when it returns', async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const mosquitto = await MosquittoProcess.start(dir, await freePort());
    cleanups.push(() => mosquitto.stop());
    const s = await setup(mosquitto.url);
    // Prove the link works first, then cut it.
    dropCsvFiles(s.inbox, 1, 10, 1, 'warmup');
    await waitFor('warm-up delivered', async () => (await relayLastSeq(s.relay.httpUrl)) === 10, 20_000);
    await mosquitto.stop('SIGKILL');

    dropCsvFiles(s.inbox, 4, ROWS / 4, 11);
    await waitFor('10 000 rows captured offline', () => pendingTotal(s.agent) === ROWS, 60_000, 100);
    expect(await relayLastSeq(s.relay.httpUrl)).toBe(10);

    await mosquitto.restart();
    await expectDelivered(s, ROWS + 10);
  });

  describe.skipIf(!hasMosquitto)('outbox caps while the broker is down', () => {
    async function offlineSetup(extraOutbox: string) {
      const { dir, cleanup } = makeTempDir();
      cleanups.push(cleanup);
      const mosquitto = await MosquittoProcess.start(dir);
      cleanups.push(() => mosquitto.stop());
      const relay = await startRelay(dir, mosquitto.url);
      await mosquitto.stop('SIGKILL');
      const { agent, inbox } = await startAgent(dir, mosquitto.url, extraOutbox, 50);
      return { dir, inbox, relay, agent, mosquitto };
    }

    it('block: the collector pauses at the cap and resumes as acks free space; nothing is lost', async () => {
      const s = await offlineSetup('  max_events: 200\n  cap_policy: block');
      dropCsvFiles(s.inbox, 1, 1_000);
      await waitFor('outbox full', () => s.agent.outbox.isFull(), 20_000);
      // Paused: the file stays claimed at the cap instead of filling the disk.
      await new Promise((r) => setTimeout(r, 500));
      expect(s.agent.outbox.usage().events).toBe(200);
      expect(s.agent.supervisors[0]!.status().writer.records).toBe(200);
      await s.mosquitto.restart();
      await expectDelivered({ ...s }, 1_000);
      expect(s.agent.outbox.usage().dropped).toBe(0);
    });

    it('drop_oldest: the oldest pending events are dropped, counted at the agent and at the relay', async () => {
      const s = await offlineSetup('  max_events: 200\n  cap_policy: drop_oldest');
      dropCsvFiles(s.inbox, 1, 1_000);
      await waitFor('all rows captured', () => s.agent.supervisors[0]!.status().writer.records === 1_000, 20_000);
      expect(s.agent.outbox.usage()).toMatchObject({ events: 200, dropped: 800 });
      await s.mosquitto.restart();
      await waitFor('relay reaches seq 1000', async () => (await relayLastSeq(s.relay.httpUrl)) === 1_000, 30_000);
      const events = await fetchAllEvents(s.relay.httpUrl, 'site-a', 'agent-1', 'orders');
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => 801 + i));
      expect(events.map((e) => Number(e.data.fields.n))).toEqual(Array.from({ length: 200 }, (_, i) => 801 + i));
      const streams = (await (await fetch(`${s.relay.httpUrl}/api/streams`)).json()) as { streams: { dropped: number }[] };
      expect(streams.streams[0]!.dropped).toBe(800);
      expect(s.relay.metrics.snapshot().dropped_at_agents).toBe(800);
    });
  });
});
