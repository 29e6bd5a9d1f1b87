/**
 * #9 acceptance, end to end: real Mosquitto, a real relay, real agent processes (bin/edge-agent,
 * killed with -9).
 *  a. An agent killed with SIGKILL shows offline within its keep-alive window (the broker
 *     publishes its will); restarted, online with a new boot id; its old will, published again by
 *     hand, never flips it back.
 *  b. During a backlog the relay's API shows per stream the pending count the agent's outbox holds.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { readOutboxStatus } from '../../agent/outbox/outbox.js';
import type { AgentDetail, AgentSummary } from '../../cloud-relay/fleet/fleet.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { agentYaml, CliProcess, dropCsvFiles, relayYaml, waitForHttp } from '../helpers/pipeline.js';
import { presenceTopic } from '../../common/wire-v2.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const SITE = 'site-a';
const AGENT = 'agent-1';
const KEEPALIVE_MS = 2_000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const row = async (httpUrl: string) => (await get<{ agents: AgentSummary[] }>(`${httpUrl}/api/agents`)).agents.find((a) => a.site === SITE && a.agent === AGENT);
const detail = (httpUrl: string) => get<AgentDetail>(`${httpUrl}/api/agents/${SITE}/${AGENT}`);

/** A spawned Mosquitto (optionally with ACL lines), a relay and an agent as child processes. */
async function setup(o: { acl?: string; relayUser?: string; extraTransport?: string } = {}) {
  const { dir, cleanup } = makeTempDir('fleet-acceptance-');
  cleanups.push(cleanup);
  chmodSync(dir, 0o755); // Mosquitto started as root reads its config as the mosquitto user
  const extra: string[] = [];
  if (o.acl) {
    writeFileSync(join(dir, 'acl'), o.acl, { mode: 0o644 });
    extra.push(`acl_file ${join(dir, 'acl')}`);
  }
  const broker = await MosquittoProcess.start(dir, undefined, extra);
  cleanups.push(() => broker.stop());
  const httpPort = await freePort();
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const brokerUrl = o.relayUser ? `${broker.url}\n  username: ${o.relayUser}` : broker.url;
  writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl }));
  const inbox = join(dir, 'inbox');
  const dataDir = join(dir, 'agent-data');
  writeFileSync(join(dir, 'agent.yaml'), agentYaml({ site: SITE, agent: AGENT, url: broker.url, inbox, dataDir, extraTransport: o.extraTransport ?? '' }));
  const relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
  const agent = new CliProcess('edge-agent', join(dir, 'agent.yaml'), join(dir, 'agent.log'));
  cleanups.push(() => agent.kill('SIGTERM'), () => relay.kill('SIGTERM'));
  relay.start();
  await waitForHttp(httpUrl);
  return { dir, broker, httpUrl, relay, agent, inbox, outboxPath: join(dataDir, 'outbox.db') };
}

describe.skipIf(!hasMosquitto)('#9 acceptance: presence and health, real agent processes', () => {
  it('an agent killed with -9 is offline within its keep-alive window; restarted, online with a new boot id; its old will never flips it back', async () => {
    const s = await setup({ extraTransport: `  keepalive: ${KEEPALIVE_MS}ms\n  health_interval: 500ms\n` });
    s.agent.start();
    const first = await waitFor('the agent online', async () => {
      const r = await row(s.httpUrl);
      return r?.state === 'online' && r.health_at !== null ? r : undefined;
    }, 30_000);

    await s.agent.kill('SIGKILL');
    // Mosquitto notices the dead link after 1.5 × keep-alive and publishes the will: the
    // deadline is the functional bound (keep-alive × 2 after the kill), not a measured figure.
    const off = await waitFor('offline at the relay', async () => {
      const r = await row(s.httpUrl);
      return r?.state === 'offline' ? r : undefined;
    }, KEEPALIVE_MS * 2, 25);
    expect(off.boot).toBe(first.boot); // the will carries the dead process's boot id

    s.agent.start();
    const again = await waitFor('online again', async () => {
      const r = await row(s.httpUrl);
      return r?.state === 'online' && r.boot !== first.boot ? r : undefined;
    }, 30_000);
    expect(again.boot).not.toBe(first.boot);

    // The dead process's will, published again (retained, as the broker would): ignored by boot id.
    const before = (await detail(s.httpUrl)).stale_wills;
    const hand = await mqtt.connectAsync(s.broker.url, { clientId: 'old-will', reconnectPeriod: 0 });
    cleanups.push(() => hand.endAsync());
    await hand.publishAsync(presenceTopic(SITE, AGENT), JSON.stringify({ v: 2, online: false, boot: first.boot, at: Date.now() }), { qos: 1, retain: true });
    await waitFor('the old will seen and counted as stale', async () => (await detail(s.httpUrl)).stale_wills > before, 10_000);
    const after = await detail(s.httpUrl);
    expect(after).toMatchObject({ online: true, state: 'online', boot: again.boot });
  }, 90_000);

  it('during a backlog the relay shows per stream the pending count of the agent\'s own outbox', async () => {
    // Honest backlog with everything real and running: the broker's ACL lets the relay (user
    // `relay`) read every agent topic and publish only its own status, so it receives presence,
    // health and the event batches but its acks are dropped by the broker. Nothing is ever acked:
    // the agent keeps all it captured pending (resending it), and its health goes on reaching the
    // relay, as when acks are lost on the way back. The agent (anonymous) may use every topic.
    const acl = ['topic readwrite erp-edge/#', '', 'user relay', 'topic read erp-edge/#', 'topic write erp-edge/v1/relay/status', ''].join('\n');
    const s = await setup({ acl, relayUser: 'relay', extraTransport: '  health_interval: 300ms\n' });
    s.agent.start();
    await waitFor('the agent online', async () => (await row(s.httpUrl))?.state === 'online', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\nrelay.log:\n${readFileSync(join(s.dir, 'relay.log'), 'utf8').slice(-3000)}\nagent.log:\n${readFileSync(join(s.dir, 'agent.log'), 'utf8').slice(-3000)}`);
    });
    const rows = dropCsvFiles(s.inbox, 2, 60);

    // The outbox (read-only, while the agent runs) holds every row, none acked.
    await waitFor(`${rows} rows pending in the outbox`, () => readOutboxStatus(s.outboxPath).streams.find((x) => x.stream === 'orders')?.pending === rows, 30_000, 100);
    // A health sent after that reaches the relay.
    const d = await waitFor('the relay showing the backlog', async () => {
      const x = await detail(s.httpUrl);
      return x.health?.streams.find((st) => st.stream === 'orders')?.pending === rows ? x : undefined;
    }, 15_000, 100);
    const own = readOutboxStatus(s.outboxPath);
    for (const st of own.streams) {
      const seen = d.health!.streams.find((x) => x.stream === st.stream);
      expect(seen, st.stream).toMatchObject({ pending: st.pending, pending_bytes: st.pendingBytes, acked_seq: st.ackedSeq, last_seq: st.lastSeq });
    }
    expect(own.streams.find((x) => x.stream === 'orders')?.ackedSeq).toBe(0);
    const summary = await row(s.httpUrl);
    expect(summary?.backlog?.pending).toBe(own.streams.reduce((n, x) => n + x.pending, 0));
  }, 90_000);
});
