import { MosquittoProcess } from '../../test/helpers/mosquitto.js';
import { relayTimes, startAgent, startRelay, waitStored } from '../lib/pipeline.js';
import { sampleRss } from '../lib/proc-stats.js';
import type { Scenario, ScenarioContext } from '../types.js';

export const durableE2e: Scenario = {
  name: 'durable-e2e',
  description: 'synthetic collector → outbox (synchronous=FULL) → MQTT → relay (SQLite, FULL) → ack, agent and relay as processes',
  async run(ctx: ScenarioContext) {
    const n = Math.max(1_000, Math.round((ctx.quick ? 50_000 : 500_000) * ctx.scale));
    const batch = 1_000;
    ctx.param('events', n);
    ctx.param('collector_batch', batch);
    for (let r = 0; r < ctx.repeats; r++) {
      const dir = `${ctx.dir}/run-${r}`;
      const broker = await MosquittoProcess.start(ctx.dir);
      const relay = await startRelay(dir, broker.url);
      const agent = startAgent(dir, { brokerUrl: broker.url, total: n, rate: 0, batch });
      const rss = sampleRss(agent.pid!);
      try {
        await waitStored(relay, n, 600_000);
        const t = relayTimes(relay.dbPath);
        if (t.count !== n) throw new Error(`relay holds ${t.count} events, expected ${n}`);
        const eps = n / ((t.lastReceived - t.firstTs) / 1000);
        ctx.record('durable end-to-end throughput', 'events/s', eps, '>= 5x broker-baseline');
        const base = ctx.recorded('broker-baseline', 'raw QoS 1, 1 record/message');
        if (base) ctx.record('ratio to raw QoS 1 (1 record/message)', 'x', eps / median(base), '>= 5');
        ctx.record('agent RSS under load (max)', 'MB', rss.stop().max / 2 ** 20, '< 80');
      } finally {
        rss.stop();
        await agent.kill('SIGTERM');
        await relay.proc.kill('SIGTERM');
        await broker.stop();
      }
    }
    if (!ctx.recorded('broker-baseline', 'raw QoS 1, 1 record/message')) ctx.note('ratio not computed: broker-baseline did not run in this invocation');
  },
};

export function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
