import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../agent/agent.js';
import { loadAgentConfig } from '../../agent/config.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { Relay } from '../../cloud-relay/relay.js';
import { createLogger } from '../../common/logger.js';
import { freePort, waitFor } from '../helpers/net.js';
import { agentYaml, fetchAllEvents, relayLastSeq, relayYaml } from '../helpers/pipeline.js';
import { dialScanner, prng, scanLines, writeSplit } from '../helpers/scan-senders.js';
import { makeTempDir } from '../helpers/tmp.js';

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const DEVICES = 20;
const PER_DEVICE = 5_000;
const TOTAL = DEVICES * PER_DEVICE;

interface ScanEvent {
  seq: number;
  id: string;
  data: { device: string; seq: number; barcode: string };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('end to end: scanner-tcp → outbox → MQTT → relay', () => {
  it('100 000 scans over 20 connections, split and coalesced at random byte boundaries, arrive exactly once, in per-device order', async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    const relayPath = join(dir, 'relay.yaml');
    writeFileSync(relayPath, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: 0, embeddedPort: 0 }));
    const relay = await Relay.start(loadRelayConfig(relayPath), logger);
    cleanups.push(() => relay.stop());

    const port = await freePort();
    const agentPath = join(dir, 'agent.yaml');
    const collectors = `  - type: scanner-tcp
    name: scans
    host: 127.0.0.1
    port: ${port}
    device_prefix: { separator: "|" }
    framing: { terminator: crlf }
`;
    writeFileSync(agentPath, agentYaml({ url: relay.brokerUrl, inbox: join(dir, 'unused'), dataDir: join(dir, 'agent-data'), collectors }));
    const agent = await Agent.start(loadAgentConfig(agentPath), logger);
    cleanups.push(() => agent.stop());
    await waitFor('scanner-tcp running', () => agent.supervisors[0]!.status().state === 'running', 10_000);

    // Each connection is a device naming itself in a prefix; barcodes carry device and position.
    const rand = prng(20_261_203);
    const sent = new Map<string, string[]>();
    await Promise.all(
      Array.from({ length: DEVICES }, async (_, d) => {
        const device = `DEV${String(d + 1).padStart(2, '0')}`;
        const codes = Array.from({ length: PER_DEVICE }, (_, i) => `0109501101530003${String(d).padStart(2, '0')}${String(i).padStart(6, '0')}`);
        sent.set(device, codes);
        const socket = await dialScanner(port);
        cleanups.push(() => void socket.destroy());
        await writeSplit(socket, scanLines(codes.map((c) => `${device}|${c}`), '\r\n'), rand, 160, 0.05);
        socket.end();
      }),
    );

    await waitFor(`relay to store ${TOTAL} scans`, async () => (await relayLastSeq(relay.httpUrl, 'scans')) >= TOTAL, 50_000, 100);
    const events = await fetchAllEvents<ScanEvent>(relay.httpUrl, 'site-a', 'agent-1', 'scans');
    expect(events.length).toBe(TOTAL);
    expect(events.every((e, i) => e.seq === i + 1)).toBe(true);
    expect(new Set(events.map((e) => e.id)).size).toBe(TOTAL);

    const byDevice = new Map<string, ScanEvent['data'][]>();
    for (const e of events) {
      const list = byDevice.get(e.data.device) ?? [];
      list.push(e.data);
      byDevice.set(e.data.device, list);
    }
    expect([...byDevice.keys()].sort()).toEqual([...sent.keys()].sort());
    for (const [device, codes] of sent) {
      const got = byDevice.get(device)!;
      // Compared as one string each: a 5 000-element diff would drown the report.
      expect(got.map((s) => s.barcode).join(','), device).toBe(codes.join(','));
      expect(got.every((s, i) => s.seq === i + 1), `${device} seq 1..${PER_DEVICE}`).toBe(true);
    }
    const counters = agent.supervisors[0]!.status().counters ?? {};
    expect(counters).toMatchObject({ scans: TOTAL, oversize: 0, partial_discarded: 0 });
  }, 60_000);
});
