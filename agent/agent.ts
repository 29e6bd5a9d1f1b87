import { resolve } from 'node:path';
import { ErpEdgeError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { LoadedAgentConfig } from './config.js';
import { Outbox } from './outbox/outbox.js';
import { Forwarder } from './transport/forwarder.js';
import { findCollector } from './collectors/registry.js';
import type { Collector } from './collectors/collector.js';

export const AGENT_VERSION = '0.1.0';

/** The running agent: collectors → outbox → forwarder. */
export class Agent {
  private pruneTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly outbox: Outbox,
    readonly collectors: Collector[],
    readonly forwarder: Forwarder,
    private readonly log: Logger,
  ) {}

  static async start(cfg: LoadedAgentConfig, logger: Logger): Promise<Agent> {
    const log = logger.child({ site: cfg.site, agent: cfg.agent });
    const outbox = new Outbox({
      path: cfg.outboxPath,
      synchronous: cfg.outbox.synchronous,
      maxBytes: cfg.outbox.max_bytes,
      maxEvents: cfg.outbox.max_events,
      capPolicy: cfg.outbox.cap_policy,
      replayWindowMs: cfg.outbox.replay_window,
      logger: log.child({ component: 'outbox' }),
    });
    const collectors = cfg.collectors.map((c) => {
      const def = findCollector(c.type);
      if (!def) throw new ErpEdgeError('ERP_COLLECTOR_UNKNOWN', `unknown collector type "${c.type}"`, { type: c.type });
      return def.create(c, { outbox, logger: log, resolvePath: (p) => resolve(cfg.configDir, p) });
    });
    const t = cfg.transport;
    const forwarder = new Forwarder({
      outbox,
      site: cfg.site,
      agent: cfg.agent,
      url: t.url,
      // `${VAR:-}` yields an empty string: treat it as not set.
      username: t.username || undefined,
      password: t.password || undefined,
      clientId: t.client_id,
      batchMaxRecords: t.batch_max_records,
      batchMaxBytes: t.batch_max_bytes,
      maxInflight: t.max_inflight,
      ackTimeoutMs: t.ack_timeout,
      version: AGENT_VERSION,
      logger: log,
    });
    const agent = new Agent(outbox, collectors, forwarder, log);
    forwarder.start();
    for (const c of collectors) await c.start();
    agent.pruneTimer = setInterval(() => {
      try {
        outbox.pruneAcked();
      } catch (err) {
        // A full or failing disk: pruning is retried next minute; capture keeps its own errors.
        log.error({ err: { message: (err as Error).message } }, 'outbox prune failed');
      }
    }, 60_000);
    agent.pruneTimer.unref();
    log.info({ version: AGENT_VERSION, epoch: outbox.epoch, outbox: cfg.outboxPath, collectors: collectors.map((c) => c.name) }, 'agent started');
    return agent;
  }

  async stop(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    for (const c of this.collectors) await c.stop();
    await this.forwarder.stop();
    this.outbox.close();
    this.log.info('agent stopped');
  }
}
