import { MosquittoProcess } from '../lib/mosquitto.js';
import { freePort } from '../lib/net.js';
import { DIST, PACKAGED, packagedBuilt, startAgent, startRelay, waitCaptured, waitCollectorRunning, waitStored, type AgentOptions } from '../lib/pipeline.js';
import type { Dist } from '../types.js';
import { cpuSeconds, sampleRss } from '../lib/proc-stats.js';
import type { Scenario, ScenarioContext } from '../types.js';

const MB = 2 ** 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Time for a fresh agent process to finish starting before it is measured. */
const settleMs = (ctx: ScenarioContext) => (ctx.scale < 0.1 ? 1_500 : 3_000);

export const footprint: Scenario = {
  name: 'footprint',
  description: 'agent RSS idle, with a large backlog on disk and while replaying it; idle CPU%; start-up; the same for the packaged executable',
  async run(ctx: ScenarioContext) {
    // What ships is what is measured: `node dist/…` with the runtime flags, and the single
    // executable of `npm run package` (Node 24 inside, the same flags baked in) when it is built.
    await measure(ctx, DIST, 'agent');
    if (packagedBuilt()) await measure(ctx, PACKAGED, 'packaged agent');
    else ctx.log('packaged agent: not measured (dist/package/linux-x64/edge-agent missing: npm run package)');
  },
};

async function measure(ctx: ScenarioContext, dist: Dist, label: string): Promise<void> {
  const idleSeconds = Math.max(1, Math.round((ctx.quick ? 5 : 30) * Math.min(1, ctx.scale * 4)));
  const backlog = Math.max(1_000, Math.round((ctx.quick ? 100_000 : 10_000_000) * ctx.scale));
  ctx.param('idle_seconds', idleSeconds);
  ctx.param('backlog_events', backlog);
  for (let r = 0; r < ctx.repeats; r++) {
    const dir = `${ctx.dir}/${dist.executable ? 'packaged' : 'dist'}-run-${r}`;
    // Idle: connected, a file-drop collector on an empty folder.
    const broker = await MosquittoProcess.start(ctx.dir);
    const spawned = performance.now();
    const idle = startAgent(`${dir}/idle`, { brokerUrl: broker.url, total: 0, rate: 0, batch: 1 }, dist);
    try {
      // Start-up: from spawn until the agent's control socket reports its collector running.
      await waitCollectorRunning(`${dir}/idle`, 'idle', 60_000);
      ctx.record(`${label} start-up`, 'ms', performance.now() - spawned);
      await sleep(settleMs(ctx)); // start-up done
      const cpu0 = cpuSeconds(idle.pid!);
      const rss = sampleRss(idle.pid!, 500);
      await sleep(idleSeconds * 1000);
      const cpu = ((cpuSeconds(idle.pid!) - cpu0) / idleSeconds) * 100;
      ctx.record(`${label} RSS idle`, 'MB', rss.stop().max / MB);
      ctx.record(`${label} CPU idle`, '%', cpu, '< 1');
    } finally {
      await idle.kill('SIGTERM');
      await broker.stop();
    }
    // Backlog: captured with the broker down, then a fresh agent process starts on it.
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    const opts: AgentOptions = { brokerUrl: url, total: backlog, rate: 0, batch: 1_000 };
    const relay = await startRelay(`${dir}/backlog`, url);
    let agent = startAgent(`${dir}/backlog`, opts, dist);
    let b2: MosquittoProcess | undefined;
    try {
      ctx.log(`${label}: building a ${backlog}-event backlog`);
      await waitCaptured(`${dir}/backlog`, backlog, 1_800_000);
      await agent.kill('SIGTERM');
      agent = startAgent(`${dir}/backlog`, opts, dist);
      await sleep(settleMs(ctx));
      const withBacklog = sampleRss(agent.pid!, 500);
      await sleep(2_000);
      ctx.record(`${label} RSS with backlog on disk`, 'MB', withBacklog.stop().max / MB, '< 80, flat');
      const replay = sampleRss(agent.pid!, 200);
      b2 = await MosquittoProcess.start(ctx.dir, port);
      await waitStored(relay, backlog, 1_800_000);
      ctx.record(`${label} RSS replaying the backlog (max)`, 'MB', replay.stop().max / MB, '< 80');
    } finally {
      await agent.kill('SIGTERM');
      await relay.proc.kill('SIGTERM');
      await b2?.stop();
    }
  }
}
