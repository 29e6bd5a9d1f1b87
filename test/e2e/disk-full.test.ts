/**
 * Disk full (#12 item 3): the agent's data folder on a small file system the test mounts (tmpfs,
 * else a loop-mounted ext4 image; root needed). The relay is away while files arrive, so the
 * outbox grows until the file system refuses writes (SQLITE_FULL): capture pauses, `status` and
 * health say so, nothing is written half, and `outbox verify` is clean. (Resuming once the relay
 * is back is not asserted yet: see the KNOWN GAP note below.)
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { agentYaml, CliProcess, dropCsvFiles, relayYaml } from '../helpers/pipeline.js';
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
  // KNOWN GAP (#12 item 3): recovery is not reliable yet. With the relay back, acks and pruning
  // free pages inside the database, but the WAL needs room on the file system for every write
  // (acks included); the reserve file gives it once, and a second disk-full after resuming without
  // the reserve deadlocks on "could not record the ack". Runs of the full scenario (capture 64 000
  // rows on 12 MiB, relay back, every row once) passed once and stalled twice. Not asserted here
  // until fixed; see the report of the h-otools branch.
  it('capture pauses when the file system is full, status and health show it, the agent does not crash-loop, and the outbox verifies clean', async () => {
    const dir = root.dir;
    const mosquitto = await MosquittoProcess.start(dir);
    cleanups.push(() => mosquitto.stop());
    const httpPort = await freePort();
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

    // Nothing written half: stopped while paused, the file verifies clean.
    await agent.kill('SIGTERM');
    const verify = runCli('edge-agent', ['outbox', 'verify', '--config', config]);
    expect(verify.stdout).toMatch(/ok {4}sqlite integrity/);
    expect(verify.status).toBe(0);
    void relay;
  }, 240_000);
});
