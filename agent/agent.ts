import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { ErpEdgeError } from '../common/errors.js';
import { expirySoon, loadTls } from '../common/tls.js';
import { scrubber, secretValues } from '../common/secrets.js';
import type { Logger } from '../common/logger.js';
import { forwarderSettings, outboxOptions, type LoadedAgentConfig } from './config.js';
import { collectorKinds, findKind } from './collectors/registry.js';
import { streamOf, sourceOf, type CollectorKind } from './host/collector.js';
import { CollectorSupervisor } from './host/supervisor.js';
import { CaptureWriter } from './host/writer.js';
import { discardDeadLetters, resendDeadLetters } from './host/dead-letter-actions.js';
import { Outbox } from './outbox/outbox.js';
import type { DeadLetterQuery } from './outbox/dead-letter.js';
import { Forwarder } from './transport/forwarder.js';
import { Presence } from './transport/presence.js';
import { AgentState } from './state/agent-state.js';
import { controlSocketPath, startControlServer, type ControlHandler, type ControlServer } from './state/control.js';
import { DiskGauge } from './state/disk.js';
import { healthzOf } from './state/healthz.js';
import { startAgentHttp, type AgentHttpServer } from './state/http.js';
import { AgentMetrics } from './state/metrics.js';
import { AGENT_VERSION } from './version.js';

export interface AgentStartOptions {
  /** Collector kinds (tests add their own); the registry's by default. */
  kinds?: readonly CollectorKind[];
}

/**
 * The composition root: config → outbox → capture writers and supervisors → forwarder (with
 * presence) → state, the local control socket and the HTTP endpoints (/healthz, /metrics). Data
 * flows one way; acks and the relay's presence are the only ways back.
 */
export class Agent {
  private pruneTimer: NodeJS.Timeout | undefined;
  private http: AgentHttpServer | undefined;

  private constructor(
    readonly cfg: LoadedAgentConfig,
    readonly outbox: Outbox,
    readonly supervisors: CollectorSupervisor[],
    readonly forwarder: Forwarder,
    readonly state: AgentState,
    readonly boot: string,
    private readonly control: ControlServer,
    private readonly log: Logger,
  ) {}

  static async start(cfg: LoadedAgentConfig, logger: Logger, opts: AgentStartOptions = {}): Promise<Agent> {
    const kinds = opts.kinds ?? (collectorKinds as unknown as CollectorKind[]);
    const log = logger.child({ site: cfg.site, agent: cfg.agent });
    const boot = randomUUID();
    const startedAt = Date.now();
    const socket = controlSocketPath(cfg.data_dir);
    const scrub = scrubber(secretValues(cfg));
    // Certificates first: a missing or wrong file stops the start before anything is opened.
    const tls = cfg.transport.tls ? loadTls(cfg.transport.tls, 'transport.tls') : undefined;
    // Expired (or not yet valid): said now; capture goes on and the broker has the last word.
    for (const p of tls?.problems ?? []) log.error({ err: { code: p.code, message: p.message } }, p.message);
    const soon = expirySoon(tls);
    if (soon) log.warn(soon);
    let agent: Agent | undefined;
    // First: a second agent on the same data_dir must not open the outbox at all.
    const control = await startControlServer(socket, (req) => (agent ? handleControl(agent, req) : Promise.resolve({ status: 503, body: { error: 'starting' } })), log);
    try {
      const outbox = new Outbox(outboxOptions(cfg.outboxPath, cfg.outbox, log.child({ component: 'outbox' })));
      const supervisors = cfg.collectors.map((c) => {
        const kind = findKind(kinds, c.type);
        if (!kind) throw new ErpEdgeError('ERP_COLLECTOR_UNKNOWN', `unknown collector type "${c.type}"`, { type: c.type });
        const writer = new CaptureWriter({ outbox, source: sourceOf(c), stream: streamOf(c), maxRecordBytes: cfg.outbox.max_record_bytes, logger: log });
        return new CollectorSupervisor({
          kind,
          config: c,
          writer,
          logger: log,
          resolvePath: (p) => resolve(cfg.configDir, p),
          restart: { initialMs: cfg.collector_restart.initial, maxMs: cfg.collector_restart.max },
        });
      });
      let state: AgentState | undefined;
      const t = cfg.transport;
      const presence = new Presence({
        site: cfg.site,
        agent: cfg.agent,
        boot,
        agentVersion: AGENT_VERSION,
        epoch: outbox.epoch,
        configHash: cfg.configHash,
        collectors: supervisors.map((s) => ({ name: s.name, type: s.type, stream: s.stream })),
        startedAt,
        healthIntervalMs: t.health_interval,
        health: () => state!.health(),
        logger: log,
      });
      const forwarder = new Forwarder({
        outbox,
        site: cfg.site,
        agent: cfg.agent,
        boot,
        ...forwarderSettings(t),
        tls,
        presence,
        logger: log,
      });
      state = new AgentState({
        site: cfg.site,
        agent: cfg.agent,
        version: AGENT_VERSION,
        boot,
        startedAt,
        outbox,
        // A collector's last error goes to `status`, /healthz and the relay (health): never with a secret in it.
        collectors: () => supervisors.map((s) => scrubLastError(s.status(), scrub)),
        forwarder: () => forwarder.getStats(),
        configuredStreams: supervisors.map((s) => ({ stream: s.stream, collector: s.name })),
        disk: new DiskGauge(cfg.data_dir, cfg.outboxPath),
      });
      agent = new Agent(cfg, outbox, supervisors, forwarder, state, boot, control, log);
      // Before anything runs: a port in use stops the start with nothing to undo but the outbox.
      await agent.startHttp().catch((err: unknown) => {
        state!.stop();
        outbox.close();
        throw err;
      });
      forwarder.start();
      // Each in its own guard: a collector that fails to start is backing off, the rest capture.
      await Promise.all(supervisors.map((s) => s.start()));
      agent.schedulePrune();
      log.info({ version: AGENT_VERSION, boot, epoch: outbox.epoch, outbox: cfg.outboxPath, collectors: supervisors.map((s) => `${s.name}:${s.status().state}`) }, 'agent started');
      return agent;
    } catch (err) {
      await control.close();
      throw err;
    }
  }

  /** Where GET /healthz and /metrics answer; undefined when `http.listen` is off. */
  get httpUrl(): string | undefined {
    return this.http?.url;
  }

  private async startHttp(): Promise<void> {
    const { listen, healthz } = this.cfg.http;
    if (!listen) return;
    const metrics = new AgentMetrics(() => this.state.snapshot(), AGENT_VERSION);
    this.http = await startAgentHttp(
      listen.host,
      listen.port,
      {
        healthz: () => healthzOf(this.state.snapshot(), healthz, Date.now()),
        metrics: async () => ({ contentType: metrics.contentType(), body: await metrics.render() }),
      },
      this.log.child({ component: 'http' }),
    );
  }

  private schedulePrune(): void {
    this.pruneTimer = setInterval(() => {
      try {
        this.outbox.pruneAcked();
      } catch (err) {
        // A full or failing disk: pruning is retried next minute; capture keeps its own errors.
        this.log.error({ err: { message: (err as Error).message } }, 'outbox prune failed');
      }
    }, 60_000);
    this.pruneTimer.unref();
  }

  resendDeadLetters(q: DeadLetterQuery) {
    return resendDeadLetters(this.outbox, q, this.cfg.outbox.max_record_bytes, this.log);
  }

  discardDeadLetters(q: DeadLetterQuery) {
    return discardDeadLetters(this.outbox, q, this.log);
  }

  async stop(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    await this.http?.close();
    await Promise.all(this.supervisors.map((s) => s.stop()));
    await this.forwarder.stop();
    this.state.stop();
    await this.control.close();
    this.outbox.close();
    this.log.info('agent stopped');
  }
}

function scrubLastError<T extends { lastError: { message: string } | null }>(s: T, scrub: (t: string) => string): T {
  return s.lastError ? { ...s, lastError: { ...s.lastError, message: scrub(s.lastError.message) } } : s;
}

/** The control socket's routes: status, the dead-letter actions and outbox resend. */
async function handleControl(agent: Agent, req: Parameters<ControlHandler>[0]): ReturnType<ControlHandler> {
  const route = `${req.method} ${req.path}`;
  if (route === 'GET /status') return { status: 200, body: agent.state.snapshot() };
  if (route === 'GET /deadletters') return { status: 200, body: agent.outbox.deadLetters.list(queryOf(req.query)) };
  const body = (req.body ?? {}) as { stream?: string; ids?: number[] };
  const q: DeadLetterQuery = { ...(body.stream ? { stream: body.stream } : {}), ...(body.ids ? { ids: body.ids } : {}) };
  if (route === 'POST /deadletters/resend') return { status: 200, body: agent.resendDeadLetters(q) };
  if (route === 'POST /deadletters/discard') return { status: 200, body: { discarded: agent.discardDeadLetters(q).length } };
  if (route === 'POST /outbox/resend') {
    const r = req.body as { stream?: unknown; from?: unknown } | undefined;
    if (typeof r?.stream !== 'string' || typeof r.from !== 'number') return { status: 400, body: { error: 'stream and from are required' } };
    return { status: 200, body: agent.outbox.resendRetained(r.stream, r.from) };
  }
  return { status: 404, body: { error: `no route ${route}` } };
}

function queryOf(p: URLSearchParams): DeadLetterQuery {
  const n = (k: string) => (p.get(k) === null ? undefined : Number(p.get(k)));
  return {
    ...(p.get('stream') ? { stream: p.get('stream')! } : {}),
    ...(n('limit') !== undefined ? { limit: n('limit') } : {}),
    ...(n('after') !== undefined ? { afterId: n('after') } : {}),
  };
}
