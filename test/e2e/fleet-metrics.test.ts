/**
 * The relay's fleet view end to end (#9): two real agents (two sites) send presence, health and
 * events through a real Mosquitto to a real relay; its /metrics passes `promtool check metrics`
 * and shows what the agents said, as do /api/sites and the agents' history.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../common/logger.js';
import { loadAgentConfig } from '../../agent/config.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { Agent } from '../../agent/agent.js';
import { Relay } from '../../cloud-relay/relay.js';
import type { AgentDetail, AgentSummary } from '../../cloud-relay/fleet/fleet.js';
import type { SiteSummary } from '../../cloud-relay/fleet/sites.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/net.js';
import { relayYaml } from '../helpers/pipeline.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { hasPromtool, promtool } from '../helpers/promtool.js';
import { parsePromText, sample } from '../helpers/prom-text.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const hasTool = hasPromtool();
const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function startAgent(dir: string, site: string, agent: string, url: string): Promise<Agent> {
  const home = join(dir, agent);
  mkdirSync(join(home, 'inbox'), { recursive: true });
  const path = join(home, 'agent.yaml');
  writeFileSync(
    path,
    `site: ${site}
agent: ${agent}
log_level: warn
data_dir: ./data
http:
  listen: 127.0.0.1:0
transport:
  url: ${url}
  ack_timeout: 3s
  health_interval: 300ms
collectors:
  - type: file-drop
    name: orders
    path: ./inbox
    stable_time: 100ms
`,
  );
  const a = await Agent.start(loadAgentConfig(path), logger);
  cleanups.push(() => a.stop());
  return a;
}

function dropCsv(dir: string, agent: string, rows: number): void {
  const lines = ['order_id,line,sku,qty'];
  for (let i = 1; i <= rows; i++) lines.push(`SO-${i},1,SKU-${i},${i}`);
  writeFileSync(join(dir, agent, 'inbox', 'orders.csv.tmp'), `${lines.join('\n')}\n`);
  renameSync(join(dir, agent, 'inbox', 'orders.csv.tmp'), join(dir, agent, 'inbox', 'orders.csv'));
}

describe.runIf(hasMosquitto)('fleet metrics end to end (real agents, real Mosquitto)', () => {
  it('/metrics after two agents\' presence, health and events passes promtool check metrics and matches /api/sites and the agents\' health', async () => {
    const t = makeTempDir('fleet-metrics-');
    cleanups.push(t.cleanup);
    chmodSync(t.dir, 0o755); // Mosquitto started as root reads its config as the mosquitto user
    const broker = await MosquittoProcess.start(t.dir);
    cleanups.push(() => broker.stop());
    const relayPath = join(t.dir, 'relay.yaml');
    writeFileSync(relayPath, relayYaml({ dbPath: join(t.dir, 'relay.db'), httpPort: 0, brokerUrl: broker.url }));
    const relay = await Relay.start(loadRelayConfig(relayPath), logger);
    cleanups.push(() => relay.stop());
    await startAgent(t.dir, 'wh-north', 'agent-n', broker.url);
    await startAgent(t.dir, 'wh-south', 'agent-s', broker.url);
    dropCsv(t.dir, 'agent-n', 30);
    dropCsv(t.dir, 'agent-s', 20);

    // Events stored, and a health sent after they were acked (nothing pending any more).
    const acked = async (site: string, agent: string, n: number) =>
      ((await get<AgentDetail>(`${relay.httpUrl}/api/agents/${site}/${agent}`)).health?.streams.find((x) => x.stream === 'orders')?.acked_seq ?? 0) >= n;
    const stored = (n: number, site: string, agent: string, text: string) =>
      sample(parsePromText(text), 'erp_edge_relay_events_stored_total', { site, agent, stream: 'orders' }) === n;
    await waitFor('both agents\' events stored and a health with nothing pending', async () => {
      const text = await (await fetch(`${relay.httpUrl}/metrics`)).text();
      const s = parsePromText(text);
      return (
        stored(30, 'wh-north', 'agent-n', text) &&
        stored(20, 'wh-south', 'agent-s', text) &&
        sample(s, 'erp_edge_outbox_pending_events', { site: 'wh-north', agent: 'agent-n', stream: 'orders' }) === 0 &&
        sample(s, 'erp_edge_outbox_pending_events', { site: 'wh-south', agent: 'agent-s', stream: 'orders' }) === 0 &&
        // A health from after the acks (one from before the capture has nothing pending either).
        (await acked('wh-north', 'agent-n', 30)) &&
        (await acked('wh-south', 'agent-s', 20))
      );
    }, 30_000);

    const text = await (await fetch(`${relay.httpUrl}/metrics`)).text();
    if (hasTool) {
      const r = promtool(['check', 'metrics'], text);
      expect(r.status, `${r.output}\n${text}`).toBe(0);
    }
    const s = parsePromText(text);
    for (const [site, agent] of [['wh-north', 'agent-n'], ['wh-south', 'agent-s']] as const) {
      expect(sample(s, 'erp_edge_agent_up', { site, agent })).toBe(1);
      expect(sample(s, 'erp_edge_agent_state', { site, agent, state: 'online' })).toBe(1);
      expect(sample(s, 'erp_edge_collector_in_error', { site, agent, collector: 'orders' })).toBe(0);
      expect(sample(s, 'erp_edge_agent_last_health_age_seconds', { site, agent })).toBeLessThan(30);
      // The relay's view is the agent's latest health, whole.
      const d = await get<AgentDetail>(`${relay.httpUrl}/api/agents/${site}/${agent}`);
      expect(sample(s, 'erp_edge_agent_info', { site, agent, version: d.presence!.agent_version! })).toBe(1);
      expect(d.state).toBe('online');
      expect(d.history.length).toBeGreaterThan(0);
      expect(d.history.at(-1)).toMatchObject({ pending: d.health!.streams.reduce((n, x) => n + x.pending, 0) });
      // One machine, one clock: the offset the agent estimated from its acks is near 0 (within the round trip).
      const offset = d.health!.forwarder!.clock_offset_ms!;
      expect(Math.abs(offset)).toBeLessThan(1_000);
      expect(sample(s, 'erp_edge_agent_clock_offset_seconds', { site, agent })).toBe(offset / 1000);
    }
    expect(sample(s, 'erp_edge_capture_to_store_lag_seconds_count')).toBe(50);
    // Per agent, the dashboard's capture→cloud lag: the newest stored record's, a few seconds at most here.
    const { agents } = await get<{ agents: AgentSummary[] }>(`${relay.httpUrl}/api/agents`);
    for (const a of agents) expect(a.capture_lag_ms, a.agent).toBeGreaterThanOrEqual(0);
    for (const a of agents) expect(a.capture_lag_ms, a.agent).toBeLessThan(30_000);
    expect(sample(s, 'erp_edge_relay_messages_rejected_total', { reason: 'invalid_health' })).toBe(0);

    const { sites } = await get<{ sites: SiteSummary[] }>(`${relay.httpUrl}/api/sites`);
    expect(sites.map((x) => x.site)).toEqual(['wh-north', 'wh-south']);
    for (const x of sites) expect(x).toMatchObject({ agents: { total: 1, online: 1, offline: 0, stale: 0 }, collectors_in_error: 0 });
  }, 60_000);
});
