import mqtt, { type MqttClient } from 'mqtt';
import { MosquittoProcess } from '../lib/mosquitto.js';
import { startRelay, type BenchRelay } from '../lib/pipeline.js';
import { cpuSeconds } from '../lib/proc-stats.js';
import { waitFor } from '../lib/net.js';
import { healthTopic, presenceTopic } from '../../common/wire-v2.js';
import type { Scenario, ScenarioContext } from '../types.js';

/** Publishing connections the simulated agents share (the broker routes by topic; connections are not what is measured). */
const CONNECTIONS = 10;
/** Spacing of the health rounds: at least the relay's 1 s fleet flush, so each round's store writes are paid as in service. */
const ROUND_MS = 1_000;
/** The agents' default health_interval, for the derived "share of a core" figure. */
const HEALTH_INTERVAL_S = 15;
const SITES = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const who = (i: number) => ({ site: `site-${String(i % SITES).padStart(3, '0')}`, agent: `agent-${String(i).padStart(5, '0')}` });

/** A health message as an agent with two streams and two collectors sends it (about 1.2 KB). */
function healthOf(i: number, round: number, at: number): string {
  const stream = (name: string, pending: number) => ({
    stream: name,
    epoch: 'epoch-bench000',
    pending,
    pending_bytes: pending * 300,
    oldest_pending_at: pending > 0 ? at - 4_000 : null,
    last_seq: 1_000 * round + i,
    acked_seq: 1_000 * round + i - pending,
    last_ack_at: at - 200,
    dropped: 0,
    dead_letter: 0,
  });
  const collector = (name: string) => ({ name, type: 'file-drop', stream: name, state: 'running', since: at - 3_600_000, last_error: null, error_count: 0, restarts: 0 });
  return JSON.stringify({
    v: 2,
    boot: `boot-${i}`,
    at,
    uptime_s: 3_600 + round * HEALTH_INTERVAL_S,
    streams: [stream('orders', i % 7), stream('scans', 0)],
    collectors: [collector('orders'), collector('scans')],
    exceptions: [{ kind: 'file_error', count: 0, oldest_at: null }, { kind: 'dead_letter', count: 0, oldest_at: null }],
    outbox: { bytes: 1_048_576, events: 4_000, max_bytes: null, max_events: null, full: false },
    forwarder: { connected: true, wire: 2, in_flight: 0, last_ack_at: at - 200, capture_rate: 3.5, forward_rate: 3.5 },
    process: { rss_bytes: 60_000_000, cpu_percent: 0.4 },
  });
}

async function healthMessages(relay: BenchRelay): Promise<number> {
  const res = await fetch(`${relay.httpUrl}/api/stats`);
  return ((await res.json()) as { health_messages: number }).health_messages;
}

/** Publishes one message per agent (QoS 1), spread over the connections; resolves when every PUBACK is in. */
async function publishAll(clients: MqttClient[], n: number, topicOf: (i: number) => string, payloadOf: (i: number) => string, retain = false): Promise<void> {
  await Promise.all(
    clients.map(async (c, k) => {
      const sends: Promise<unknown>[] = [];
      for (let i = k; i < n; i += clients.length) sends.push(c.publishAsync(topicOf(i), payloadOf(i), { qos: 1, retain }));
      await Promise.all(sends);
    }),
  );
}

export const fleetHealth: Scenario = {
  name: 'fleet-health',
  description: "relay CPU per 1 000 agents' health messages (simulated agents over real MQTT, one per agent per round), beside the idle relay over the same time",
  async run(ctx: ScenarioContext) {
    const agents = Math.max(20, Math.round((ctx.quick ? 200 : 1_000) * ctx.scale));
    const rounds = ctx.quick ? 3 : 10;
    ctx.param('agents', agents);
    ctx.param('rounds', rounds);
    ctx.param('round_ms', ROUND_MS);
    ctx.param('connections', CONNECTIONS);
    for (let r = 0; r < ctx.repeats; r++) {
      const broker = await MosquittoProcess.start(ctx.dir);
      const relay = await startRelay(`${ctx.dir}/run-${r}`, broker.url);
      const clients: MqttClient[] = [];
      try {
        for (let c = 0; c < CONNECTIONS; c++) clients.push(await mqtt.connectAsync(broker.url, { clientId: `bench-fleet-${process.pid}-${c}`, reconnectPeriod: 0 }));
        const pid = relay.proc.pid!;
        // Births first (retained, as agents do), then the relay settles.
        const now = Date.now();
        await publishAll(clients, agents, (i) => presenceTopic(who(i).site, who(i).agent), (i) => JSON.stringify({ v: 2, online: true, boot: `boot-${i}`, at: now, agent_version: '0.4.0', wire: [1, 2] }), true);
        await waitFor('births at the relay', async () => ((await (await fetch(`${relay.httpUrl}/api/agents`)).json()) as { agents: unknown[] }).agents.length === agents, 60_000, 250);
        await sleep(1_500);

        // Reference: the idle relay over the same wall time, polled as in the measured run.
        const idle0 = cpuSeconds(pid);
        const idleStarted = performance.now();
        for (let k = 0; k < rounds; k++) {
          await sleep(ROUND_MS);
          await healthMessages(relay);
        }
        const idleCpu = cpuSeconds(pid) - idle0;
        const idleSeconds = (performance.now() - idleStarted) / 1000;

        const cpu0 = cpuSeconds(pid);
        for (let k = 1; k <= rounds; k++) {
          const started = performance.now();
          const at = Date.now();
          await publishAll(clients, agents, (i) => healthTopic(who(i).site, who(i).agent), (i) => healthOf(i, k, at));
          await waitFor(`round ${k} at the relay`, async () => (await healthMessages(relay)) >= agents * k, 120_000, 100);
          const left = ROUND_MS - (performance.now() - started);
          if (left > 0) await sleep(left);
        }
        await sleep(1_200); // the last round's fleet flush (every 1 s) belongs to it
        const cpu = cpuSeconds(pid) - cpu0;
        const messages = agents * rounds;
        const per1000 = (cpu / messages) * 1_000;
        ctx.record("relay CPU per 1 000 agents' health messages", 'CPU s', per1000);
        ctx.record('idle relay CPU over the same time (reference)', 'CPU s', idleCpu * (rounds * ROUND_MS) / 1000 / idleSeconds);
        // What 1 000 agents at the default 15 s health interval cost the relay, as a share of one core.
        ctx.record('relay CPU at 1 000 agents, health every 15 s', '% of a core', (per1000 / HEALTH_INTERVAL_S) * 100);

        await (await fetch(`${relay.httpUrl}/metrics`)).text(); // the first scrape compiles the collect paths: not measured
        const scrapeStarted = performance.now();
        const text = await (await fetch(`${relay.httpUrl}/metrics`)).text();
        ctx.record('GET /metrics scrape (all agents)', 'ms', performance.now() - scrapeStarted);
        ctx.param('metrics_bytes', Buffer.byteLength(text));
      } finally {
        for (const c of clients) await c.endAsync(true).catch(() => undefined);
        await relay.proc.kill('SIGTERM');
        await broker.stop();
      }
    }
    ctx.note('CPU is the relay process (user + system, /proc) from the first health publish to the fleet flush after the last round; it includes parsing, validation, the fleet registry, history and the store writes of agents and samples.');
  },
};
