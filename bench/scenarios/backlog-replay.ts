import { MosquittoProcess } from '../lib/mosquitto.js';
import { freePort } from '../lib/net.js';
import { relayTimes, startAgent, startRelay, waitCaptured, waitStored, type AgentOptions } from '../lib/pipeline.js';
import type { Scenario, ScenarioContext } from '../types.js';

/**
 * A site back from an outage: events captured while the broker is down, the agent killed
 * with -9 on top (as the Mosquitto bridge peer is), then the broker returns.
 */
export const backlogReplay: Scenario = {
  name: 'backlog-replay',
  description: 'events captured offline, agent kill -9 and restart, broker back: replay rate and events lost',
  async run(ctx: ScenarioContext) {
    const n = Math.max(1_000, Math.round((ctx.quick ? 50_000 : 1_000_000) * ctx.scale));
    ctx.param('events', n);
    for (let r = 0; r < ctx.repeats; r++) {
      const dir = `${ctx.dir}/run-${r}`;
      const port = await freePort();
      const url = `mqtt://127.0.0.1:${port}`;
      const relay = await startRelay(dir, url);
      const opts: AgentOptions = { brokerUrl: url, total: n, rate: 0, batch: 1_000 };
      let agent = startAgent(dir, opts);
      let broker: MosquittoProcess | undefined;
      try {
        ctx.log(`capturing ${n} events with the broker down`);
        await waitCaptured(dir, n, 900_000);
        await agent.kill('SIGKILL');
        agent = startAgent(dir, opts); // same config: resumes from its outbox, generates nothing more
        await new Promise((res) => setTimeout(res, 1_000));
        const t0 = Date.now();
        broker = await MosquittoProcess.start(ctx.dir, port);
        await waitStored(relay, n, 900_000);
        const t = relayTimes(relay.dbPath);
        ctx.record('replay: broker start → relay store complete', 'events/s', n / ((t.lastReceived - t0) / 1000), '>= 150000');
        ctx.record('replay: first → last relay commit', 'events/s', n / Math.max(0.001, (t.lastReceived - t.firstReceived) / 1000));
        ctx.record('erp-edge events lost after agent kill -9', 'events', n - t.count, '0');
      } finally {
        await agent.kill('SIGTERM');
        await relay.proc.kill('SIGTERM');
        await broker?.stop();
      }
    }
    ctx.note('replay time includes the MQTT reconnect back-off of the agent and the relay (up to 1 s each)');
  },
};
