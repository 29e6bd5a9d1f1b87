/**
 * Alerts end to end in one process: a relay (embedded broker, real store) on an injected clock,
 * test agents over MQTT, and a real HTTP server receiving the webhook. Synchronisation is the
 * server's received requests (WebhookServer.waitFor) and the relay's API, never a sleep.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertList } from '../../../../cloud-relay/fleet/alerts/evaluator.js';
import type { AgentSummary } from '../../../../cloud-relay/fleet/fleet.js';
import type { Relay } from '../../../../cloud-relay/relay.js';
import { waitFor } from '../../../helpers/net.js';
import { getJson, relayHarness } from '../../../helpers/relay-harness.js';
import { AGENT, SITE } from '../../../helpers/relay-wire.js';
import { birthMsg, willMsg } from '../../../helpers/fleet-messages.js';
import { WebhookServer } from '../../../helpers/webhook-server.js';

const T = 1_800_000_000_000;
const WAIT_MS = 15_000;
const h = relayHarness();
const servers: WebhookServer[] = [];
beforeEach(() => h.setup());
afterEach(async () => {
  await h.cleanup();
  for (const s of servers.splice(0)) await s.stop();
});

async function webhook(o: { failFirst?: number; redirectFirst?: number } = {}): Promise<WebhookServer> {
  const s = await WebhookServer.start(o);
  servers.push(s);
  return s;
}

/** agent_offline after 5 min, evaluated every 20 ms of real time on the test's clock. */
const alertsConfig = (url: string) => ({
  evaluate_every: '20ms',
  webhook: { url, headers: { authorization: 'Bearer hook-token' }, retry: { initial: '10ms', max: '40ms' } },
  rules: [{ name: 'agent-offline', kind: 'agent_offline' as const, for: '5m' }],
});

const agentRow = async (relay: Relay) => (await getJson<{ agents: AgentSummary[] }>(`${relay.httpUrl}/api/agents`)).body.agents.find((a) => a.agent === AGENT);

/** A test agent with a real will, born as `boot`. */
async function bornAgent(relay: Relay, boot: string, now: () => number) {
  const agent = await h.connectAgent(relay, { will: { payload: JSON.stringify(willMsg(boot, now())) } });
  await agent.presence(birthMsg(boot, now()));
  await waitFor('the birth', async () => (await agentRow(relay))?.boot === boot && (await agentRow(relay))?.online === true, WAIT_MS);
  return agent;
}

/** Drops the agent's connection without DISCONNECT: the broker publishes its will. */
async function dropLink(relay: Relay, agent: Awaited<ReturnType<typeof bornAgent>>): Promise<void> {
  agent.client.stream.destroy();
  await waitFor('the will at the relay', async () => (await agentRow(relay))?.state === 'offline', WAIT_MS);
}

describe('alert webhook (real HTTP receiver, injected clock)', () => {
  it('an agent offline (its will) for 5 min and back (a new birth): exactly one firing and one resolved, in order, with the documented JSON body and the configured headers', async () => {
    const hook = await webhook();
    let now = T;
    const relay = await h.startRelay({ id: 'relay-a', alerts: alertsConfig(hook.url) }, { clock: () => now });
    const a1 = await bornAgent(relay, 'boot-1', () => now);
    await dropLink(relay, a1);
    const willAt = now;
    now += 5 * 60_000; // the wait runs out on the next evaluation
    await hook.waitFor(1);
    expect(hook.received[0]!.body).toEqual({
      status: 'firing',
      rule: 'agent-offline',
      kind: 'agent_offline',
      site: SITE,
      agent: AGENT,
      labels: {},
      value: 'offline',
      started_at: willAt,
      fired_at: now,
      relay: 'relay-a',
    });
    expect(hook.received[0]!.headers).toMatchObject({ 'content-type': 'application/json', authorization: 'Bearer hook-token' });
    const firing = (await getJson<AlertList>(`${relay.httpUrl}/api/alerts`)).body;
    expect(firing.active).toEqual([expect.objectContaining({ rule: 'agent-offline', site: SITE, agent: AGENT, resolved_at: null })]);

    now += 60_000;
    await bornAgent(relay, 'boot-2', () => now);
    await hook.waitFor(2);
    expect(hook.received[1]!.body).toMatchObject({ status: 'resolved', rule: 'agent-offline', started_at: willAt, fired_at: willAt + 300_000, resolved_at: now });
    const done = (await getJson<AlertList>(`${relay.httpUrl}/api/alerts`)).body;
    expect(done.active).toEqual([]);
    expect(done.resolved).toEqual([expect.objectContaining({ rule: 'agent-offline', resolved_at: now, firing_sent: true, resolved_sent: true })]);
    // More evaluations, online throughout: nothing more.
    const seen = relay.alerts.evaluations;
    await waitFor('three more evaluations', () => relay.alerts.evaluations >= seen + 3, WAIT_MS);
    expect(hook.received.map((r) => (r.body as { status: string }).status)).toEqual(['firing', 'resolved']);
  });

  it('credentials in the webhook URL are sent as Basic auth (fetch refuses a URL holding them)', async () => {
    const hook = await webhook();
    let now = T;
    const url = hook.url.replace('http://', 'http://alerts:s%40cret@');
    const relay = await h.startRelay({ alerts: { ...alertsConfig(url), webhook: { url, retry: { initial: '10ms', max: '40ms' } } } }, { clock: () => now });
    const a1 = await bornAgent(relay, 'boot-1', () => now);
    await dropLink(relay, a1);
    now += 5 * 60_000;
    await hook.waitFor(1);
    expect(hook.received[0]!.headers).toMatchObject({ authorization: `Basic ${Buffer.from('alerts:s@cret').toString('base64')}` });
    expect(relay.alerts.webhookCounts?.failures).toBe(0);
  });

  it('a redirect is a failed attempt, not a delivery: fetch would follow a 301 with a GET without the body, and its 200 would lose the alert', async () => {
    const hook = await webhook({ redirectFirst: 2 });
    let now = T;
    const relay = await h.startRelay({ alerts: alertsConfig(hook.url) }, { clock: () => now });
    const a1 = await bornAgent(relay, 'boot-1', () => now);
    await dropLink(relay, a1);
    now += 5 * 60_000;
    await hook.waitFor(1);
    expect(hook.received.map((r) => [r.method, r.path, (r.body as { status?: string } | null)?.status])).toEqual([['POST', '/hook', 'firing']]);
    expect(hook.failed.map((r) => r.method)).toEqual(['POST', 'POST']);
    await waitFor('the relay to count the delivery', () => relay.alerts.webhookCounts?.delivered === 1, WAIT_MS);
    expect(relay.alerts.webhookCounts).toMatchObject({ delivered: 1, failures: 2 });
  });

  it('a webhook failing 3 times then answering gets the firing once, then the resolved, in order', async () => {
    const hook = await webhook({ failFirst: 3 });
    let now = T;
    const relay = await h.startRelay({ alerts: alertsConfig(hook.url) }, { clock: () => now });
    const a1 = await bornAgent(relay, 'boot-1', () => now);
    await dropLink(relay, a1);
    now += 5 * 60_000;
    // The birth comes while the firing is still being retried: the resolved queues behind it.
    await waitFor('a first failed attempt', () => hook.failed.length >= 1, WAIT_MS);
    await bornAgent(relay, 'boot-2', () => now);
    await hook.waitFor(2);
    expect(hook.failed.map((r) => (r.body as { status: string }).status)).toEqual(['firing', 'firing', 'firing']);
    expect(hook.received.map((r) => (r.body as { status: string }).status)).toEqual(['firing', 'resolved']);
    expect(relay.alerts.webhookCounts).toMatchObject({ delivered: 2, failures: 3, dropped: 0 });
  });

  it('a relay restarted (same store) with an active alert fires nothing again, and the resolved still comes', async () => {
    const hook = await webhook();
    let now = T;
    const config = { id: 'relay-r', alerts: alertsConfig(hook.url), store: { path: `${h.dir}/relay.db`, synchronous: 'FULL' as const } };
    const first = await h.startRelay(config, { clock: () => now });
    const a1 = await bornAgent(first, 'boot-1', () => now);
    await dropLink(first, a1);
    now += 5 * 60_000;
    await hook.waitFor(1);
    await h.stopRelay(first);

    now += 60_000;
    const second = await h.startRelay(config, { clock: () => now });
    // The store's registry says offline, the store's alert says fired: evaluations find it active.
    expect((await agentRow(second))?.state).toBe('offline');
    await waitFor('evaluations of the restarted relay', () => second.alerts.evaluations >= 3, WAIT_MS);
    expect((await getJson<AlertList>(`${second.httpUrl}/api/alerts`)).body.active).toEqual([expect.objectContaining({ rule: 'agent-offline', fired_at: T + 300_000 })]);
    await bornAgent(second, 'boot-2', () => now);
    await hook.waitFor(2);
    // One queue, in order: a second firing would have come before this resolved.
    expect(hook.received.map((r) => (r.body as { status: string; relay: string }).status)).toEqual(['firing', 'resolved']);
    expect(hook.received[1]!.body).toMatchObject({ relay: 'relay-r', resolved_at: now, fired_at: T + 300_000 });
  });
});
