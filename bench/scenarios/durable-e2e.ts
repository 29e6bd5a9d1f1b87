import { MosquittoProcess } from '../lib/mosquitto.js';
import { DIST, relayTimes, startAgent, startRelay, waitStored } from '../lib/pipeline.js';
import type { Dist } from '../types.js';
import { cpuSeconds, sampleRss } from '../lib/proc-stats.js';
import type { Scenario, ScenarioContext } from '../types.js';

export const durableE2e: Scenario = {
  name: 'durable-e2e',
  description: 'synthetic collector → outbox (synchronous=FULL) → MQTT → relay (SQLite, FULL) → ack, agent and relay as processes',
  async run(ctx: ScenarioContext) {
    const n = Math.max(1_000, Math.round((ctx.quick ? 50_000 : 500_000) * ctx.scale));
    const batch = 1_000;
    ctx.param('events', n);
    ctx.param('collector_batch', batch);
    const base = ctx.baseline;
    if (base) {
      ctx.param('baseline', `${base.ref} (${base.sha.slice(0, 12)})`);
      ctx.param('baseline_agent_node_flags', [...base.dist.agentFlags]);
    }
    const now: number[] = [];
    const before: number[] = [];
    for (let r = 0; r < ctx.repeats; r++) {
      // With a baseline, the two alternate (ABBA...), so drift on the machine falls on both alike.
      const order = !base ? ['now'] : r % 2 === 0 ? ['now', 'baseline'] : ['baseline', 'now'];
      for (const which of order) {
        const dist = which === 'now' ? DIST : base!.dist;
        const m = await measure(ctx, `${ctx.dir}/run-${r}-${which}`, n, batch, dist);
        const label = which === 'now' ? '' : `, baseline ${base!.ref}`;
        ctx.record(`agent CPU per 100k events${label}`, 'CPU s', m.agentCpu);
        ctx.record(`relay CPU per 100k events${label}`, 'CPU s', m.relayCpu);
        if (which === 'now') {
          now.push(m.eps);
          ctx.record('durable end-to-end throughput', 'events/s', m.eps, '>= 5x broker-baseline');
          const raw = ctx.recorded('broker-baseline', 'raw QoS 1, 1 record/message');
          if (raw) ctx.record('ratio to raw QoS 1 (1 record/message)', 'x', m.eps / median(raw), '>= 5');
          ctx.record('agent RSS under load (max)', 'MB', m.rssMb, '< 80');
        } else {
          before.push(m.eps);
          ctx.record(`durable end-to-end throughput, baseline ${base!.ref}`, 'events/s', m.eps);
        }
      }
    }
    if (base) ctx.record(`change against baseline ${base.ref} (medians)`, '%', (median(now) / median(before) - 1) * 100, '>= -5');
    if (!ctx.recorded('broker-baseline', 'raw QoS 1, 1 record/message')) ctx.note('ratio not computed: broker-baseline did not run in this invocation');
  },
};

/**
 * One run: throughput from the relay's store (first capture → last commit), the agent's peak RSS,
 * and the CPU each process used per 100 000 events (start-up included; less sensitive than
 * throughput to what else the machine is doing, so before/after comparisons are steadier).
 */
async function measure(ctx: ScenarioContext, dir: string, n: number, batch: number, dist: Dist): Promise<{ eps: number; rssMb: number; agentCpu: number; relayCpu: number }> {
  const broker = await MosquittoProcess.start(ctx.dir);
  const relay = await startRelay(dir, broker.url, true, dist);
  const agent = startAgent(dir, { brokerUrl: broker.url, total: n, rate: 0, batch }, dist);
  const rss = sampleRss(agent.pid!);
  try {
    await waitStored(relay, n, 600_000);
    const per100k = 100_000 / n;
    const agentCpu = cpuSeconds(agent.pid!) * per100k;
    const relayCpu = cpuSeconds(relay.proc.pid!) * per100k;
    const t = relayTimes(relay.dbPath);
    if (t.count !== n) throw new Error(`relay holds ${t.count} events, expected ${n}`);
    return { eps: n / ((t.lastReceived - t.firstTs) / 1000), rssMb: rss.stop().max / 2 ** 20, agentCpu, relayCpu };
  } finally {
    rss.stop();
    await agent.kill('SIGTERM');
    await relay.proc.kill('SIGTERM');
    await broker.stop();
  }
}

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
