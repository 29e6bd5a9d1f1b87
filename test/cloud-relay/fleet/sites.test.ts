import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentSummary } from '../../../cloud-relay/fleet/fleet.js';
import type { SiteSummary } from '../../../cloud-relay/fleet/sites.js';
import type { Relay } from '../../../cloud-relay/relay.js';
import { waitFor } from '../../helpers/net.js';
import { getJson, relayHarness } from '../../helpers/relay-harness.js';
import { birthMsg, healthMsg, willMsg } from '../../helpers/fleet-messages.js';

const WAIT_MS = 15_000;
const T = 1_800_000_000_000;

describe('GET /api/sites', () => {
  const h = relayHarness();
  beforeEach(() => h.setup());
  afterEach(() => h.cleanup());

  const sites = async (relay: Relay) => (await getJson<{ sites: SiteSummary[] }>(`${relay.httpUrl}/api/sites`)).body.sites;
  const agents = async (relay: Relay) => (await getJson<{ agents: AgentSummary[] }>(`${relay.httpUrl}/api/agents`)).body.agents;

  it('adds up, per site and sorted by site, the agents by state, pending events, the oldest pending age and collectors in error, as the health messages said', async () => {
    let now = T;
    const relay = await h.startRelay({ fleet: { stale_after: '45s' } }, { clock: () => now });
    const a1 = await h.connectAgent(relay, { site: 'wh-north', agent: 'a1' });
    const a2 = await h.connectAgent(relay, { site: 'wh-north', agent: 'a2' });
    const a3 = await h.connectAgent(relay, { site: 'wh-east', agent: 'a3' });
    const a4 = await h.connectAgent(relay, { site: 'wh-north', agent: 'a4' });
    for (const [a, boot] of [[a1, 'b1'], [a2, 'b2'], [a3, 'b3'], [a4, 'b4']] as const) await a.presence(birthMsg(boot, T));
    await a1.health(
      healthMsg('b1', T, [
        { stream: 'orders', pending: 120, oldestAgeMs: 300_000 },
        { stream: 'scans', pending: 5, oldestAgeMs: 2_000 },
      ], { collectors: [{ name: 'orders', state: 'error', errors: 7 }, { name: 'scans', state: 'running' }] }),
    );
    await a2.health(healthMsg('b2', T, [{ stream: 'orders', pending: 30, oldestAgeMs: 900_000 }], { collectors: [{ name: 'orders', state: 'backing-off', errors: 2 }] }));
    await a3.health(healthMsg('b3', T, [{ stream: 'orders', pending: 0, oldestAgeMs: null }]));
    await a4.presence(willMsg('b4', T));
    await waitFor('four agents with health and a4 offline', async () => {
      const l = await agents(relay);
      return l.length === 4 && l.filter((a) => a.health_at !== null).length === 3 && l.find((a) => a.agent === 'a4')?.online === false;
    }, WAIT_MS);

    expect(await sites(relay)).toEqual([
      { site: 'wh-east', agents: { total: 1, online: 1, offline: 0, stale: 0 }, pending: 0, oldest_pending_age_ms: null, collectors_in_error: 0 },
      // a2's collector backing off retries on its own: not "in error".
      { site: 'wh-north', agents: { total: 3, online: 2, offline: 1, stale: 0 }, pending: 155, oldest_pending_age_ms: 900_000, collectors_in_error: 1 },
    ]);
    expect((await agents(relay)).find((a) => a.agent === 'a1')).toMatchObject({ state: 'online', backlog: { pending: 125, oldest_pending_age_ms: 300_000 }, collectors_in_error: 1 });

    // a2 goes silent past stale_after; a1 keeps sending.
    now = T + 50_000;
    await a1.health(healthMsg('b1', now, [{ stream: 'orders', pending: 1, oldestAgeMs: 1_000 }]));
    await waitFor('a1 health at +50s', async () => (await agents(relay)).find((a) => a.agent === 'a1')?.health_at === now, WAIT_MS);
    expect((await sites(relay)).find((s) => s.site === 'wh-north')).toEqual({
      site: 'wh-north',
      agents: { total: 3, online: 1, offline: 1, stale: 1 },
      pending: 31,
      oldest_pending_age_ms: 900_000,
      collectors_in_error: 0,
    });
  });

  it('is an empty list without agents', async () => {
    const relay = await h.startRelay();
    expect(await sites(relay)).toEqual([]);
  });
});
