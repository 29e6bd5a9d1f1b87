/**
 * Disk full (#12 item 3): the agent's data folder on a small file system the test mounts (tmpfs,
 * else a loop-mounted ext4 image; root needed). The relay is away while files arrive, so the
 * outbox grows until the file system refuses writes (SQLITE_FULL): capture pauses, `status` and
 * health say so, nothing is written half; the relay comes back, acks prune rows, capture resumes,
 * and the relay ends with every row exactly once; `outbox verify` is clean.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { agentYaml, checkExact, CliProcess, dropCsvFiles, fetchAllEvents, relayLastSeq, relayYaml, waitForHttp } from '../helpers/pipeline.js';
import { mountSmallFs } from '../helpers/small-fs.js';
import { runCli, runCliAsync } from '../helpers/cli.js';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { health, healthTopic } from '../../common/wire-v2.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const FILES = 8;
const ROWS_PER_FILE = 8_000;
const ROWS = FILES * ROWS_PER_FILE;

const root = makeTempDir('disk-full-');
const dataDir = join(root.dir, 'small');
const small = mountSmallFs(dataDir, 12 * 1024 * 1024);
afterAll(() => {
  if (process.env.ERP_EDGE_KEEP_LOGS) for (const f of ['agent.log', 'relay.log']) if (existsSync(join(root.dir, f))) copyFileSync(join(root.dir, f), join(process.env.ERP_EDGE_KEEP_LOGS, `disk-full-${f}`));
  small?.unmount();
  root.cleanup();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe.skipIf(!hasMosquitto || !small)('outbox on a full disk (agent and relay as child processes)', () => {
  it('capture pauses when the file system is full, status and health show it, capture resumes as acks free space; every row once; verify clean', async () => {
    const dir = root.dir;
    const mosquitto = await MosquittoProcess.start(dir);
    cleanups.push(() => mosquitto.stop());
    const httpPort = await freePort();
    const httpUrl = `http://127.0.0.1:${httpPort}`;
    writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl: mosquitto.url }));
    const inbox = join(dir, 'inbox');
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, agentYaml({ url: mosquitto.url, inbox, dataDir, batchSize: 250, extraTransport: '  health_interval: 300ms' }));
    const relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    const agent = new CliProcess('edge-agent', config, join(dir, 'agent.log'));
    cleanups.push(() => agent.kill('SIGTERM'), () => relay.kill('SIGTERM'));

    // Health as the relay would get it, straight from the broker.
    const watcher = await mqtt.connectAsync(mosquitto.url, { clientId: 'disk-full-watcher' });
    cleanups.push(() => watcher.endAsync());
    let lastHealth: ReturnType<typeof health.parse> | undefined;
    watcher.on('message', (_t, p) => (lastHealth = health.parse(JSON.parse(p.toString()))));
    await watcher.subscribeAsync(healthTopic('site-a', 'agent-1'), { qos: 1 });

    agent.start();
    dropCsvFiles(inbox, FILES, ROWS_PER_FILE);
    const snapshot = () => controlRequest<AgentSnapshot>(controlSocketPath(dataDir), 'GET', '/status').catch(() => undefined);
    await waitFor('the outbox reports the disk full', async () => (await snapshot())?.outbox?.diskFull != null, 60_000, 100);
    const s = (await snapshot())!;
    expect(s.outbox!.full).toBe(true);
    expect(s.streams.find((x) => x.stream === 'orders')!.lastSeq).toBeLessThan(ROWS);
    await waitFor('health says disk_full', () => lastHealth?.outbox?.disk_full === true, 10_000, 50);
    const status = await runCliAsync('edge-agent', ['status', '--config', config]);
    expect(status.stdout).toMatch(/outbox DISK FULL since/);
    // Paused, not crash-looping: the agent process is up and its collectors are not in error.
    expect(agent.running).toBe(true);
    expect(s.collectors.every((c) => c.state === 'running')).toBe(true);

    // The relay comes back: acks prune rows, capture resumes, everything arrives once.
    relay.start();
    await waitForHttp(httpUrl);
    await waitFor(`relay to hold ${ROWS} rows`, async () => (await relayLastSeq(httpUrl)) >= ROWS, 120_000, 200);
    expect(checkExact(await fetchAllEvents(httpUrl, 'site-a', 'agent-1', 'orders'), ROWS)).toBeUndefined();
    await waitFor('disk_full cleared', async () => (await snapshot())?.outbox?.diskFull === null, 10_000, 100);
    await waitFor('health without disk_full', () => lastHealth !== undefined && lastHealth.outbox?.disk_full === undefined, 10_000, 50);

    await agent.kill('SIGTERM');
    const verify = runCli('edge-agent', ['outbox', 'verify', '--config', config]);
    expect(verify.stdout).toMatch(/ok {4}sqlite integrity/);
    expect(verify.status).toBe(0);
  }, 240_000);
});
