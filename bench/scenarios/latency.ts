import { MosquittoProcess } from '../lib/mosquitto.js';
import { percentile, relayTimes, startAgent, startRelay, waitStored } from '../lib/pipeline.js';
import type { Scenario, ScenarioContext } from '../types.js';

export const latency: Scenario = {
  name: 'latency',
  description: 'steady 1 000 events/s; capture → relay commit latency percentiles',
  async run(ctx: ScenarioContext) {
    const rate = 1_000;
    const seconds = Math.max(1, Math.round((ctx.quick ? 5 : 30) * Math.min(1, ctx.scale * 4)));
    const n = rate * seconds;
    ctx.param('rate', rate);
    ctx.param('seconds', seconds);
    for (let r = 0; r < ctx.repeats; r++) {
      const dir = `${ctx.dir}/run-${r}`;
      const broker = await MosquittoProcess.start(ctx.dir);
      const relay = await startRelay(dir, broker.url);
      // 10 records every 10 ms: steady, as scanners and CDC polls are.
      const agent = startAgent(dir, { brokerUrl: broker.url, total: n, rate, batch: 10 });
      try {
        await waitStored(relay, n, seconds * 1000 + 60_000);
        const l = relayTimes(relay.dbPath).latencies.sort((a, b) => a - b);
        ctx.record('latency p50', 'ms', percentile(l, 50));
        ctx.record('latency p95', 'ms', percentile(l, 95));
        ctx.record('latency p99', 'ms', percentile(l, 99), '< 50');
      } finally {
        await agent.kill('SIGTERM');
        await relay.proc.kill('SIGTERM');
        await broker.stop();
      }
    }
    ctx.note('latency = relay received_at (taken inside the store transaction, before its fsync) − capture ts; both on this machine\'s clock, ms resolution');
  },
};
