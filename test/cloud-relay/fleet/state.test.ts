import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentState } from '../../../cloud-relay/fleet/state.js';
import type { AgentDetail, AgentSummary } from '../../../cloud-relay/fleet/fleet.js';
import type { Relay } from '../../../cloud-relay/relay.js';
import { waitFor } from '../../helpers/net.js';
import { getJson, relayHarness } from '../../helpers/relay-harness.js';
import { AGENT, SITE } from '../../helpers/relay-wire.js';
import { birthMsg, healthMsg, willMsg } from '../../helpers/fleet-messages.js';
import { parsePromText, sample } from '../../helpers/prom-text.js';

const WAIT_MS = 15_000;
const T = 1_800_000_000_000;

describe('agentState', () => {
  const base = { online: true as boolean | null, presence_at: T as number | null, health_at: null as number | null };
  it('is offline after a will or offline message, whatever was heard', () => {
    expect(agentState({ ...base, online: false, health_at: T + 10 }, T + 10, 45_000)).toBe('offline');
  });
  it('is stale once nothing was heard for longer than stale_after: from the birth until the first health, then from the latest health', () => {
    expect(agentState(base, T + 45_000, 45_000)).toBe('online');
    expect(agentState(base, T + 45_001, 45_000)).toBe('stale');
    expect(agentState({ ...base, health_at: T + 30_000 }, T + 75_000, 45_000)).toBe('online');
    expect(agentState({ ...base, health_at: T + 30_000 }, T + 75_001, 45_000)).toBe('stale');
  });
  it('restarts the wait at a new birth (a restarted agent is not stale for its predecessor)', () => {
    expect(agentState({ online: true, presence_at: T + 100_000, health_at: T }, T + 120_000, 45_000)).toBe('online');
  });
  it('judges an agent known only by its health by that health', () => {
    expect(agentState({ online: null, presence_at: null, health_at: T }, T + 1_000, 45_000)).toBe('online');
    expect(agentState({ online: null, presence_at: null, health_at: T }, T + 46_000, 45_000)).toBe('stale');
  });
});

describe('stale detection at the relay (injected clock)', () => {
  const h = relayHarness();
  beforeEach(() => h.setup());
  afterEach(() => h.cleanup());

  const agentRow = async (relay: Relay) => (await getJson<{ agents: AgentSummary[] }>(`${relay.httpUrl}/api/agents`)).body.agents.find((a) => a.agent === AGENT);
  const up = async (relay: Relay) => sample(parsePromText(await (await fetch(`${relay.httpUrl}/metrics`)).text()), 'erp_edge_agent_up', { site: SITE, agent: AGENT });

  it('online → stale after stale_after without health → online at the next health → offline at its will; in /api/agents, the detail and erp_edge_agent_up', async () => {
    let now = T;
    const relay = await h.startRelay({ fleet: { stale_after: '45s' } }, { clock: () => now });
    const agent = await h.connectAgent(relay);

    await agent.presence(birthMsg('boot-1', T));
    await waitFor('the birth', async () => (await agentRow(relay))?.online === true, WAIT_MS);
    expect((await agentRow(relay))?.state).toBe('online');

    now = T + 10_000;
    await agent.health(healthMsg('boot-1', now, [{ stream: 'orders', pending: 0, oldestAgeMs: null }]));
    await waitFor('the health', async () => (await agentRow(relay))?.health_at === T + 10_000, WAIT_MS);

    now = T + 10_000 + 45_000; // exactly stale_after: still online
    expect((await agentRow(relay))?.state).toBe('online');
    expect(await up(relay)).toBe(1);
    now += 1; // one ms more: stale, with no message in between
    expect((await agentRow(relay))?.state).toBe('stale');
    expect((await getJson<AgentDetail>(`${relay.httpUrl}/api/agents/${SITE}/${AGENT}`)).body).toMatchObject({ online: true, state: 'stale' });
    expect(await up(relay)).toBe(0);
    const text = await (await fetch(`${relay.httpUrl}/metrics`)).text();
    expect(sample(parsePromText(text), 'erp_edge_agent_state', { site: SITE, agent: AGENT, state: 'stale' })).toBe(1);
    expect(sample(parsePromText(text), 'erp_edge_agent_state', { site: SITE, agent: AGENT, state: 'online' })).toBe(0);
    expect(sample(parsePromText(text), 'erp_edge_agent_last_health_age_seconds', { site: SITE, agent: AGENT })).toBe(45.001);

    const again = now;
    await agent.health(healthMsg('boot-1', now, [{ stream: 'orders', pending: 0, oldestAgeMs: null }]));
    await waitFor('the next health', async () => (await agentRow(relay))?.health_at === again, WAIT_MS);
    expect((await agentRow(relay))?.state).toBe('online');
    expect(await up(relay)).toBe(1);

    await agent.presence(willMsg('boot-1', now));
    await waitFor('the will', async () => (await agentRow(relay))?.online === false, WAIT_MS);
    expect((await agentRow(relay))?.state).toBe('offline');
    now += 10 * 60_000; // offline stays offline, never stale
    expect((await agentRow(relay))?.state).toBe('offline');
    expect(await up(relay)).toBe(0);
  });

  it('takes fleet.stale_after from the config (45 s by default)', async () => {
    let now = T;
    const relay = await h.startRelay({}, { clock: () => now });
    const agent = await h.connectAgent(relay);
    await agent.presence(birthMsg('boot-1', T));
    await waitFor('the birth', async () => (await agentRow(relay))?.online === true, WAIT_MS);
    now = T + 45_000;
    expect((await agentRow(relay))?.state).toBe('online');
    now = T + 45_001;
    expect((await agentRow(relay))?.state).toBe('stale');
  });
});
