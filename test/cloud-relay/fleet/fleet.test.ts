import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { health as healthSchema, presence as presenceSchema } from '../../../common/wire-v2.js';
import type { AgentDetail, AgentSummary } from '../../../cloud-relay/fleet/fleet.js';
import type { Relay } from '../../../cloud-relay/relay.js';
import { waitFor } from '../../helpers/net.js';
import { getJson, relayHarness } from '../../helpers/relay-harness.js';
import { RelayTestAgent } from '../../helpers/relay-agent.js';
import { AGENT, SITE } from '../../helpers/relay-wire.js';

const WAIT_MS = 15_000;
const T = 1_800_000_000_000;

function birth(boot: string, over: Record<string, unknown> = {}) {
  return {
    v: 2,
    online: true,
    boot,
    at: T,
    agent_version: '0.2.0',
    wire: [1, 2],
    epoch: 'epoch-aaaaaaaa',
    config_hash: 'cfg-1234',
    collectors: [{ name: 'orders', type: 'file-drop', stream: 'orders' }],
    started_at: T - 1_000,
    ...over,
  };
}

const will = (boot: string) => ({ v: 2, online: false, boot, at: T });

function healthMsg(boot: string, at: number, pending: [number, number | null][]) {
  return {
    v: 2,
    boot,
    at,
    uptime_s: 12.5,
    streams: pending.map(([n, oldest], i) => ({
      stream: `s${i}`,
      pending: n,
      pending_bytes: n * 100,
      oldest_pending_at: oldest,
      last_seq: 100,
      acked_seq: 100 - n,
      last_ack_at: at - 50,
      dropped: 0,
      dead_letter: 0,
    })),
    collectors: [{ name: 'orders', type: 'file-drop', stream: 'orders', state: 'running', last_error: null, error_count: 0 }],
    exceptions: [{ kind: 'file_error', count: 1, oldest_at: at - 60_000 }],
  };
}

describe('fleet registry: latest presence and health per agent', () => {
  const h = relayHarness();
  beforeEach(() => h.setup());
  afterEach(() => h.cleanup());

  const agents = async (relay: Relay) => (await getJson<{ agents: AgentSummary[] }>(`${relay.httpUrl}/api/agents`)).body.agents;
  const detail = (relay: Relay, site = SITE, agent = AGENT) => getJson<AgentDetail>(`${relay.httpUrl}/api/agents/${site}/${agent}`);
  /** Waits until GET /api/agents shows this agent in the state `ok` accepts. */
  const waitAgent = (relay: Relay, what: string, ok: (a: AgentSummary) => boolean) =>
    waitFor(what, async () => (await agents(relay)).find((a) => a.agent === AGENT && ok(a)), WAIT_MS);

  it('keeps the latest birth, applies a will of the same boot, and ignores a late will of an older boot', async () => {
    const relay = await h.startRelay();
    const agent = await h.connectAgent(relay);
    expect(presenceSchema.safeParse(birth('boot-1')).success).toBe(true);

    await agent.presence(birth('boot-1'));
    const online = await waitAgent(relay, 'boot-1 online', (a) => a.online === true);
    expect(online).toMatchObject({ site: SITE, agent: AGENT, online: true, boot: 'boot-1', agent_version: '0.2.0', wire: [1, 2], health_at: null, backlog: null });
    const d = await detail(relay);
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ site: SITE, agent: AGENT, online: true, boot: 'boot-1', presence: birth('boot-1'), health: null, stale_wills: 0 });

    // The will of that process: offline.
    await agent.presence(will('boot-1'));
    await waitAgent(relay, 'boot-1 offline', (a) => a.online === false);

    // A new process (boot-2) is born, then the previous process's will arrives late: ignored.
    await agent.presence(birth('boot-2', { agent_version: '0.2.1' }));
    await waitAgent(relay, 'boot-2 online', (a) => a.online === true && a.boot === 'boot-2');
    await agent.presence(will('boot-1'));
    await waitFor('the stale will to be counted', async () => (await h.stats(relay)).stale_wills === 1, WAIT_MS);
    expect((await agents(relay)).find((a) => a.agent === AGENT)).toMatchObject({ online: true, boot: 'boot-2', agent_version: '0.2.1' });
    expect((await detail(relay)).body).toMatchObject({ online: true, boot: 'boot-2', stale_wills: 1 });
    expect((await h.stats(relay)).presence_messages).toBe(4);
  });

  it('marks an agent offline when the broker publishes its will after the connection drops', async () => {
    const relay = await h.startRelay();
    const watcher = await h.connectAgent(relay);
    const dying = await RelayTestAgent.connect(relay.brokerUrl, { agent: 'edge-9', will: { payload: JSON.stringify({ ...will('boot-9'), at: T + 5 }) } });
    await dying.presence(birth('boot-9'));
    await waitFor('edge-9 online', async () => (await agents(relay)).find((a) => a.agent === 'edge-9' && a.online === true), WAIT_MS);
    dying.kill();
    await waitFor('edge-9 offline by its will', async () => (await agents(relay)).find((a) => a.agent === 'edge-9' && a.online === false), WAIT_MS);
    expect((await detail(relay, SITE, 'edge-9')).body).toMatchObject({ online: false, boot: 'boot-9', presence: birth('boot-9') });
    await watcher.close();
  });

  it('keeps the latest health per agent with a backlog summary, and serves it whole', async () => {
    const relay = await h.startRelay();
    const agent = await h.connectAgent(relay);
    const other = await h.connectAgent(relay, { agent: 'edge-2' });
    const first = healthMsg('boot-1', T, [[5, T - 3_000]]);
    const second = healthMsg('boot-1', T + 15_000, [
      [7, T + 15_000 - 2_000],
      [3, T + 15_000 - 9_000],
      [0, null],
    ]);
    expect(healthSchema.safeParse(second).success).toBe(true);
    await agent.health(first);
    await agent.health(second);
    await other.health(healthMsg('boot-x', T, [[0, null]]));
    const a = await waitAgent(relay, 'the second health', (x) => x.backlog?.pending === 10);
    expect(a).toMatchObject({ online: null, backlog: { pending: 10, oldest_pending_age_ms: 9_000 } });
    expect(typeof a.health_at).toBe('number');
    expect((await detail(relay)).body.health).toEqual(second);
    await waitFor('edge-2', async () => (await agents(relay)).find((x) => x.agent === 'edge-2'), WAIT_MS);
    expect((await agents(relay)).find((x) => x.agent === 'edge-2')).toMatchObject({ backlog: { pending: 0, oldest_pending_age_ms: null } });
    expect((await agents(relay)).map((x) => x.agent)).toEqual(['edge-1', 'edge-2']);
  });

  it('counts and ignores invalid presence and health messages', async () => {
    const relay = await h.startRelay();
    const agent = await h.connectAgent(relay);
    await agent.presence('not json', false);
    await agent.presence({ v: 2, online: true }, false); // no boot
    await agent.presence({ ...birth('b'), v: 1 }, false);
    await agent.health({ v: 2, boot: 'b', at: T }); // no streams, collectors...
    await agent.health('{');
    await waitFor('5 invalid messages', async () => {
      const r = (await h.stats(relay)).rejected;
      return r.invalid_presence === 3 && r.invalid_health === 2;
    }, WAIT_MS);
    expect((await agents(relay)).filter((a) => a.agent === AGENT)).toEqual([]);
    // A valid one after them is taken.
    await agent.presence(birth('boot-ok'));
    await waitAgent(relay, 'the valid birth', (a) => a.boot === 'boot-ok');
    expect((await h.stats(relay)).rejected).toMatchObject({ invalid_presence: 3, invalid_health: 2, invalid_schema: 0 });
  });

  it('keeps the registry in the store across a relay restart', async () => {
    const relay = await h.startRelay();
    const agent = await h.connectAgent(relay);
    await agent.presence(birth('boot-1'), false); // not retained: only the store can bring it back
    await agent.health(healthMsg('boot-1', T, [[4, T - 1_000]]));
    await waitAgent(relay, 'birth and health', (a) => a.online === true && a.backlog?.pending === 4);
    await agent.close();
    await h.stopRelay(relay);

    // The same store file (the harness's default path), a new embedded broker with nothing retained.
    const again = await h.startRelay();
    const a = (await agents(again)).find((x) => x.agent === AGENT);
    expect(a).toMatchObject({ online: true, boot: 'boot-1', agent_version: '0.2.0', backlog: { pending: 4, oldest_pending_age_ms: 1_000 } });
    expect((await detail(again)).body).toMatchObject({ presence: birth('boot-1'), health: healthMsg('boot-1', T, [[4, T - 1_000]]) });
  });

  it('answers 404 for an unknown agent and 400 for a malformed path', async () => {
    const relay = await h.startRelay();
    expect((await detail(relay, SITE, 'nobody')).status).toBe(404);
    expect((await detail(relay, 'a+b', AGENT)).status).toBe(400);
    expect(await agents(relay)).toEqual([]);
  });
});
