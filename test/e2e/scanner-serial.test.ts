/**
 * Serial scanner end to end (#10 acceptance, serial): a real relay and a real agent (child
 * processes) on a spawned Mosquitto, the agent with one scanner-serial collector on one end of a
 * socat pty pair; the test is the scanner on the other end. Scans arrive at the relay; the pty
 * closed (socat killed: the adapter unplugged) and re-created at the same path, capture resumes
 * with the device's sequence continuing, and `edge-agent status` shows the port's state meanwhile
 * while the collector stays running.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import type { CollectorStatus } from '../../agent/host/supervisor.js';
import { runCliAsync } from '../helpers/cli.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { freePort, waitFor } from '../helpers/net.js';
import { agentYaml, CliProcess, fetchAllEvents, relayYaml, waitForHttp } from '../helpers/pipeline.js';
import { hasSocat, PtyPair } from '../helpers/pty-pair.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { makeTempDir } from '../helpers/tmp.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const socat = hasSocat();
const SITE = 'site-scan';
const AGENT = 'agent-serial';

interface ScanEvent {
  seq: number;
  id: string;
  data: { device: string; seq: number; barcode: string };
}

let dir: string;
let cleanupDir: () => void;
let mosquitto: MosquittoProcess;
let relay: CliProcess;
let agent: CliProcess;
let httpUrl: string;
let cfgPath: string;
let pty: PtyPair;

const scans = () => fetchAllEvents<ScanEvent>(httpUrl, SITE, AGENT, 'dock-3');

async function collectorStatus(): Promise<CollectorStatus | undefined> {
  const r = await runCliAsync('edge-agent', ['status', '--config', cfgPath, '--json']);
  const s = JSON.parse(r.stdout) as AgentSnapshot;
  return s.running ? s.collectors.find((c) => c.name === 'dock-3') : undefined;
}

describe.skipIf(!hasMosquitto || !socat)('scanner-serial end to end: pty → agent → MQTT → relay', () => {
  beforeAll(async () => {
    ({ dir, cleanup: cleanupDir } = makeTempDir('e2e-serial-'));
    pty = new PtyPair(dir);
    mosquitto = await MosquittoProcess.start(dir);
    const httpPort = await freePort();
    httpUrl = `http://127.0.0.1:${httpPort}`;
    writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl: mosquitto.url }));
    relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    relay.start();
    await waitForHttp(httpUrl);
  });

  afterAll(async () => {
    await agent?.kill('SIGTERM');
    await relay?.kill('SIGTERM');
    await pty?.close();
    await mosquitto?.stop();
    cleanupDir?.();
  });

  it('scans arrive; the pty closed and re-created, capture resumes and the device sequence continues', async () => {
    await pty.open();
    cfgPath = join(dir, 'agent.yaml');
    const collector = `  - type: scanner-serial
    name: dock-3
    path: ${pty.port}
    device: gun-1
    reconnect: { initial: 50ms, max: 500ms }
`;
    writeFileSync(cfgPath, agentYaml({ site: SITE, agent: AGENT, url: mosquitto.url, inbox: join(dir, 'unused'), dataDir: join(dir, 'agent-data'), collectors: collector }));
    agent = new CliProcess('edge-agent', cfgPath, join(dir, 'agent.log'));
    agent.start();
    await waitFor('the port open', async () => (await collectorStatus())?.counters.port_open === true, 30_000, 200);

    const first = Array.from({ length: 20 }, (_, i) => `0400000000${String(i).padStart(4, '0')}`);
    await pty.write(first.map((s) => `${s}\r`).join(''));
    await waitFor('the first scans at the relay', async () => (await scans()).length === first.length, 30_000, 200);

    // Unplugged: the collector stays running and says why there are no scans.
    await pty.close();
    const away = await waitFor(
      'status shows the port away',
      async () => {
        const c = await collectorStatus();
        return c && c.counters.port_open === false && Number(c.counters.open_failures) >= 1 ? c : undefined;
      },
      30_000,
      200,
    );
    expect(away.state).toBe('running');
    expect(away.restarts).toBe(0);
    expect(String(away.counters.last_open_error)).toMatch(/no such file/i);
    expect(away.counters.disconnects).toBe(1);

    // Plugged back in.
    await pty.open();
    await waitFor('the port open again', async () => (await collectorStatus())?.counters.port_open === true, 30_000, 200);
    const second = ['ABC-1', 'ABC-2', 'ABC-3'];
    await pty.write(second.map((s) => `${s}\r`).join(''));
    await waitFor('every scan at the relay', async () => (await scans()).length === first.length + second.length, 30_000, 200);

    const evs = await scans();
    expect(evs.map((e) => e.data.barcode)).toEqual([...first, ...second]);
    expect(evs.map((e) => e.data.seq)).toEqual(evs.map((_, i) => i + 1));
    expect(new Set(evs.map((e) => e.data.device))).toEqual(new Set(['gun-1']));
    expect(new Set(evs.map((e) => e.id)).size).toBe(evs.length);
    const after = (await collectorStatus())!;
    expect(after).toMatchObject({ state: 'running', restarts: 0, errorCount: 0 });
    expect(after.counters).toMatchObject({ reopens: 1, scans: first.length + second.length, lost: 0 });
  });
});
