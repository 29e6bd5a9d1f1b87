import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { createLogger } from '../../common/logger.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { Relay } from '../../cloud-relay/relay.js';
import { readOutboxStatus } from '../../agent/outbox/outbox.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { agentYaml, CliProcess, fetchAllEvents, relayYaml } from '../helpers/pipeline.js';

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const STREAM = 'handhelds';
const TOKEN = 'e2e-handheld-token-0123456789';
/** Agent kills, each right after an ack, and scans sent per life. */
const LIVES = 5;
const PER_LIFE = 4;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Reply {
  ok: boolean;
  seq?: number;
  id?: string;
}

/** Opens the agent's scanner endpoint once it listens (a restarted agent takes a moment). */
async function connect(url: string): Promise<WebSocket> {
  return waitFor(
    'the scanner-ws endpoint',
    () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
        ws.once('open', () => resolve(ws));
        ws.once('error', (err) => {
          ws.terminate();
          reject(err);
        });
      }),
    30_000,
    100,
  );
}

describe('scanner-ws end to end: kill -9 right after an ack', () => {
  it('every acked scan reaches the relay, each scan once, though the agent is killed with -9 the moment an ack arrives', async () => {
    const { dir, cleanup } = makeTempDir();
    cleanups.push(cleanup);
    writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: 0, embeddedPort: 0 }));
    const relay = await Relay.start(loadRelayConfig(join(dir, 'relay.yaml')), logger);
    cleanups.push(() => relay.stop());

    const port = await freePort();
    const dataDir = join(dir, 'agent-data');
    // The token comes from the environment, as a site's config would have it.
    const collectors = `  - type: scanner-ws
    name: ${STREAM}
    host: 127.0.0.1
    port: ${port}
    devices:
      - id: hh-1
        token: \${SCANNER_TOKEN_HH1}
`;
    writeFileSync(join(dir, 'agent.yaml'), agentYaml({ url: relay.brokerUrl, inbox: join(dir, 'unused'), dataDir, collectors }));
    const agent = new CliProcess('edge-agent', join(dir, 'agent.yaml'), join(dir, 'agent.log'));
    cleanups.push(() => agent.kill('SIGKILL'));
    const env = { SCANNER_TOKEN_HH1: TOKEN };
    const url = `ws://127.0.0.1:${port}/scans`;

    const acked = new Set<string>();
    const refused: string[] = [];
    /** Sent and not acked yet: the handheld keeps them and sends them again after a reconnect (same id). */
    let unacked: string[] = [];
    let next = 1;

    for (let life = 1; life <= LIVES + 1; life++) {
      const last = life > LIVES;
      agent.start(env);
      const ws = await connect(url);
      const pid = agent.pid!;
      // The last life (not killed) sends one new scan besides the resends: its ack ends the run.
      const batch = [...unacked, ...Array.from({ length: last ? 1 : PER_LIFE }, () => `scan-${next++}`)];
      const done = new Promise<void>((resolve) => {
        let killed = false;
        ws.on('message', (data) => {
          const replies = [JSON.parse(String(data)) as Reply].flat();
          for (const r of replies) {
            if (r.ok) acked.add(r.id!);
            else refused.push(JSON.stringify(r));
          }
          unacked = unacked.filter((id) => !acked.has(id));
          // At once, in the handler: nothing the agent did after sending the ack can save the scan.
          if (!last && !killed) {
            killed = true;
            process.kill(pid, 'SIGKILL');
          }
          if (refused.length > 0 || batch.every((id) => acked.has(id))) resolve();
        });
        ws.on('close', () => resolve());
      });
      for (const id of batch) {
        if (!unacked.includes(id)) unacked.push(id);
        ws.send(JSON.stringify({ barcode: `CODE-${id}`, id }));
      }
      await done;
      ws.terminate();
      if (!last) await agent.kill('SIGKILL');
    }
    const sent = next - 1;
    expect(refused).toEqual([]);
    expect(unacked).toEqual([]);
    expect(acked.size).toBe(sent);

    // Every scan at the relay, each once (a resent scan that had been committed is recognised by its id).
    const outbox = join(dataDir, 'outbox.db');
    await waitFor('agent outbox drained', () => readOutboxStatus(outbox).streams.every((s) => s.pending === 0), 30_000, 100);
    const events = await waitFor(
      `relay to hold ${sent} scans`,
      async () => {
        const ev = await fetchAllEvents<{ seq: number; id: string; data: { barcode: string; device: string } }>(relay.httpUrl, 'site-a', 'agent-1', STREAM);
        return new Set(ev.map((e) => e.id)).size >= sent ? ev : undefined;
      },
      30_000,
      200,
    );
    const ids = events.map((e) => e.id.split('/m/')[1]);
    expect(ids).toHaveLength(sent);
    expect(new Set(ids)).toEqual(new Set(Array.from({ length: sent }, (_, i) => `scan-${i + 1}`)));
    expect(events.every((e) => e.data.device === 'hh-1' && e.data.barcode === `CODE-${e.id.split('/m/')[1]}`)).toBe(true);
    await agent.kill('SIGTERM');
  }, 120_000);
});
