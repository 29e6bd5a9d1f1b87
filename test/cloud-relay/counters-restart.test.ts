import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RelayStats } from '../../cloud-relay/metrics.js';
import { eventsTopic } from '../../common/wire-v1.js';
import { CliProcess, relayYaml, waitForHttp } from '../helpers/pipeline.js';
import { freePort, waitFor } from '../helpers/net.js';
import { RelayTestAgent } from '../helpers/relay-agent.js';
import { AGENT, SITE, batchV1 } from '../helpers/relay-wire.js';
import { getJson } from '../helpers/relay-harness.js';
import { makeTempDir } from '../helpers/tmp.js';

let dir: string;
let cleanup: () => void;
const stops: (() => Promise<void> | void)[] = [];
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir());
});
afterEach(async () => {
  while (stops.length) await stops.pop()!();
  cleanup();
});

async function stats(http: string): Promise<RelayStats> {
  const { status, body } = await getJson<RelayStats>(`${http}/api/stats`);
  expect(status).toBe(200);
  return body;
}

describe('relay counters across a kill -9', () => {
  it('/api/stats totals (store-backed and traffic: batches, gaps, rejected messages) go on after the relay process is killed', async () => {
    mkdirSync(join(dir, 'relay'));
    const [httpPort, brokerPort] = [await freePort(), await freePort()];
    const dbPath = join(dir, 'relay', 'relay.db');
    const conf = join(dir, 'relay', 'relay.yaml');
    writeFileSync(conf, relayYaml({ dbPath, httpPort, embeddedPort: brokerPort }));
    const relay = new CliProcess('cloud-relay', conf, join(dir, 'relay.log'));
    stops.push(() => relay.kill('SIGKILL'));
    const http = `http://127.0.0.1:${httpPort}`;
    relay.start();
    await waitForHttp(http, 30_000);

    const agent = await RelayTestAgent.connect(`mqtt://127.0.0.1:${brokerPort}`);
    await agent.handshake();
    expect(await agent.send(batchV1(1, 5))).toMatchObject({ status: 'ok', upto: 5 });
    expect(await agent.send(batchV1(9, 10))).toMatchObject({ status: 'gap', upto: 5 });
    await agent.publishRaw(eventsTopic(SITE, AGENT, 'orders'), '{not json');
    await waitFor('the bad message counted', async () => (await stats(http)).rejected.invalid_json === 1, 10_000);
    const before = await stats(http);
    expect(before.gaps).toBe(1);
    expect(before.records_stored).toBeGreaterThanOrEqual(5);
    // Saved beside the store within a second: wait for that (an event), then kill.
    await waitFor('the counters saved', () => {
      try {
        const saved = JSON.parse(readFileSync(`${dbPath}.counters.json`, 'utf8')) as { counters: { gaps: number; batches: number; rejected: { invalid_json: number } } };
        return saved.counters.gaps === 1 && saved.counters.batches === before.batches && saved.counters.rejected.invalid_json === 1;
      } catch {
        return false;
      }
    }, 10_000);
    agent.kill();
    await relay.kill('SIGKILL');

    relay.start();
    await waitForHttp(http, 30_000);
    const after = await stats(http);
    const totals = (s: RelayStats) => ({ records_stored: s.records_stored, batches: s.batches, batches_by_wire: s.batches_by_wire, gaps: s.gaps, rejected: s.rejected, counted_since: s.counted_since });
    expect(totals(after)).toEqual(totals(before));
    expect(after.started_at).toBeGreaterThan(before.started_at);

    // And counting goes on from there.
    const again = await RelayTestAgent.connect(`mqtt://127.0.0.1:${brokerPort}`);
    stops.push(() => again.close());
    expect(await again.send(batchV1(12, 12))).toMatchObject({ status: 'gap', upto: 5 });
    expect((await stats(http)).gaps).toBe(2);
  });
});
