/**
 * Disk full (#12 item 3): the agent's data folder on a small file system the test mounts (tmpfs,
 * else a loop-mounted ext4 image; root needed). The relay is away while files arrive, so the
 * outbox grows until the disk is at the floor the outbox keeps (outbox.disk_min_free plus room for
 * its WAL): capture pauses, `status` and health say so, nothing is written half. The relay comes
 * back: acks are recorded and prune at once, capture resumes into the freed pages, every row
 * arrives once and in order. A second fill and drain recovers the same way; `outbox verify` is
 * clean at the end.
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
  it('capture pauses at the disk floor (status and health show it, no crash loop), resumes when the relay is back, every row arrives once and in order over two fill/drain cycles, and the outbox verifies clean', async () => {
    const dir = root.dir;
    const mosquitto = await MosquittoProcess.start(dir);
    cleanups.push(() => mosquitto.stop());
    const httpPort = await freePort();
    const httpUrl = `http://127.0.0.1:${httpPort}`;
    writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl: mosquitto.url }));
    const inbox = join(dir, 'inbox');
    const config = join(dir, 'agent.yaml');
    // A small floor and reserve for a 12 MiB file system (the defaults are sized for real disks).
    const extraOutbox = '  disk_min_free: 1MiB\n  disk_reserve: 1MiB';
    writeFileSync(config, agentYaml({ url: mosquitto.url, inbox, dataDir, batchSize: 250, extraOutbox, extraTransport: '  health_interval: 300ms' }));
    const relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    const agent = new CliProcess('edge-agent', config, join(dir, 'agent.log'));
    cleanups.push(() => agent.kill('SIGTERM'), () => relay.kill('SIGTERM'));

    // Health as the relay would get it, straight from the broker.
    const watcher = await mqtt.connectAsync(mosquitto.url, { clientId: 'disk-full-watcher' });
    cleanups.push(() => watcher.endAsync());
    let lastHealth: ReturnType<typeof health.parse> | undefined;
    watcher.on('message', (_t, p) => (lastHealth = health.parse(JSON.parse(p.toString()))));
    await watcher.subscribeAsync(healthTopic('site-a', 'agent-1'), { qos: 1 });
    const snapshot = () => controlRequest<AgentSnapshot>(controlSocketPath(dataDir), 'GET', '/status').catch(() => undefined);
    const stream = async () => (await snapshot())?.streams.find((x) => x.stream === 'orders');

    /** With the relay away, `rows` more rows arrive: capture pauses once the disk is at its floor. */
    const fillUntilPaused = async (startN: number, total: number) => {
      dropCsvFiles(inbox, FILES, ROWS_PER_FILE, startN);
      // Paused with only pending rows left: acked rows still kept (the second time) are pruned at
      // the first touch of the floor and capture goes on into their pages before it pauses for good.
      let s: AgentSnapshot | undefined;
      await waitFor(
        'the outbox reports the disk full, holding only pending rows',
        async () => {
          s = await snapshot();
          return s?.outbox?.diskFull != null && s.outbox.events === s.streams.find((x) => x.stream === 'orders')?.pending;
        },
        120_000,
        100,
      );
      expect(s!.outbox!.full).toBe(true);
      expect(s!.outbox!.diskFull!.message).toMatch(/MiB free on the file system; appends leave .* MiB free/);
      expect(s!.streams.find((x) => x.stream === 'orders')!.lastSeq).toBeLessThan(total);
      // Paused, not crash-looping: the agent process is up and its collectors are not in error.
      expect(agent.running).toBe(true);
      expect(s!.collectors.every((c) => c.state === 'running')).toBe(true);
    };
    /** The relay comes back: capture resumes and the relay ends up with exactly rows 1..total. */
    const drain = async (total: number) => {
      relay.start();
      await waitForHttp(httpUrl, 60_000);
      await waitFor(`the relay holds all ${total} rows`, async () => (await relayLastSeq(httpUrl)) >= total, 300_000, 250);
      expect(checkExact(await fetchAllEvents(httpUrl, 'site-a', 'agent-1', 'orders'), total)).toBeUndefined();
      await waitFor('everything acked', async () => (await stream())?.ackedSeq === total, 60_000, 100);
      const s = (await snapshot())!;
      expect(s.outbox!.diskFull ?? null).toBeNull();
      expect(s.streams.find((x) => x.stream === 'orders')!.lastSeq).toBe(total);
    };

    agent.start();
    await fillUntilPaused(1, ROWS);
    await waitFor('health says disk_full', () => lastHealth?.outbox?.disk_full === true, 30_000, 50);
    const status = await runCliAsync('edge-agent', ['status', '--config', config]);
    expect(status.stdout).toMatch(/outbox DISK FULL since/);
    await drain(ROWS);
    await waitFor('health no longer says disk_full', () => lastHealth !== undefined && lastHealth.outbox?.disk_full !== true, 30_000, 50);

    // Second cycle: the relay goes away again, the disk fills again, and recovers again.
    await relay.kill('SIGTERM');
    await fillUntilPaused(ROWS + 1, 2 * ROWS);
    await drain(2 * ROWS);

    // Nothing written half: stopped, the file verifies clean.
    await agent.kill('SIGTERM');
    const verify = runCli('edge-agent', ['outbox', 'verify', '--config', config]);
    expect(verify.stdout).toMatch(/ok {4}sqlite integrity/);
    expect(verify.status).toBe(0);
  }, 900_000);
});
