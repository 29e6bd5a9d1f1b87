import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliProcess, relayYaml, waitForHttp } from '../../bench/lib/processes.js';
import { MosquittoProcess } from '../../bench/lib/mosquitto.js';
import { freePort } from '../../bench/lib/net.js';
import { AGENT_NODE_FLAGS } from '../../agent/runtime-flags.js';
import { TcpProxy } from '../../bench/lib/tcp-proxy.js';

const ROOT = resolve(import.meta.dirname, '../..');

export const SITE = 'chaos-site';
export const AGENT = 'chaos-agent';
export const SYNTH_STREAM = 'synth';
export const FILES_STREAM = 'files';

export interface SiteOptions {
  dir: string;
  /** Synthetic events in all, at `synthRate` per second. */
  synthTotal: number;
  synthRate: number;
  ackTimeout: string;
}

/**
 * One site of real processes: Mosquitto (its own port, no persistence, as the tests run it), the
 * relay (`cloud-relay run`, straight to the broker) and the agent (`edge-agent run`, through a TCP
 * proxy to the broker, so the link between them can be cut), each a child process run through tsx
 * (bin/*.js) as `npm run agent` / `npm run relay` do.
 */
export class ChaosSite {
  readonly inbox: string;
  readonly relayDb: string;
  private constructor(
    readonly o: SiteOptions,
    readonly broker: MosquittoProcess,
    readonly proxy: TcpProxy,
    readonly relay: CliProcess,
    readonly relayHttp: string,
    readonly agent: CliProcess,
  ) {
    this.inbox = join(o.dir, 'inbox');
    this.relayDb = join(o.dir, 'relay', 'relay.db');
  }

  static async start(o: SiteOptions): Promise<ChaosSite> {
    mkdirSync(join(o.dir, 'relay'), { recursive: true });
    mkdirSync(join(o.dir, 'inbox'), { recursive: true });
    const broker = await MosquittoProcess.start(o.dir);
    const proxy = await TcpProxy.start(broker.port);
    const httpPort = await freePort();
    const relayConf = join(o.dir, 'relay', 'relay.yaml');
    writeFileSync(relayConf, relayYaml({ dbPath: join(o.dir, 'relay', 'relay.db'), httpPort, brokerUrl: broker.url }));
    const relay = new CliProcess('cloud-relay', relayConf, join(o.dir, 'relay', 'relay.log'));
    const relayHttp = `http://127.0.0.1:${httpPort}`;
    const agentConf = join(o.dir, 'agent.yaml');
    writeFileSync(agentConf, agentYaml(o, proxy.url));
    const agent = new CliProcess('edge-agent', agentConf, join(o.dir, 'agent.log'), join(ROOT, 'bin', 'edge-agent.js'), AGENT_NODE_FLAGS);
    const site = new ChaosSite(o, broker, proxy, relay, relayHttp, agent);
    await site.startRelay();
    site.agent.start();
    return site;
  }

  async startRelay(): Promise<void> {
    this.relay.start();
    await waitForHttp(this.relayHttp, 30_000);
  }

  async stop(): Promise<void> {
    await this.agent.kill('SIGTERM');
    await this.relay.kill('SIGTERM');
    await this.proxy.close();
    await this.broker.stop();
  }

  /** Everything down at once, whatever state it is in (a failed run). */
  async kill(): Promise<void> {
    await this.agent.kill('SIGKILL').catch(() => undefined);
    if (this.relay.pid) process.kill(this.relay.pid, 'SIGCONT');
    await this.relay.kill('SIGKILL').catch(() => undefined);
    await this.proxy.close().catch(() => undefined);
    await this.broker.stop('SIGKILL').catch(() => undefined);
  }
}

function agentYaml(o: SiteOptions, url: string): string {
  return `site: ${SITE}
agent: ${AGENT}
log_level: ${process.env.ERP_EDGE_TEST_LOG ?? 'warn'}
data_dir: ${join(o.dir, 'agent-data')}
outbox:
  synchronous: FULL
http:
  listen: 127.0.0.1:0
transport:
  url: ${url}
  ack_timeout: ${o.ackTimeout}
  reconnect_period: 250ms
  batch_max_records: 200
collectors:
  - type: synthetic
    name: ${SYNTH_STREAM}
    rate: ${o.synthRate}
    total: ${o.synthTotal}
    batch: 20
  - type: file-drop
    name: ${FILES_STREAM}
    path: ${join(o.dir, 'inbox')}
    include: ["*.jsonl"]
    format: jsonl
    order: name
    stable_time: 150ms
    batch_size: 50
`;
}
