import { isUtf8 } from 'node:buffer';
import { LogThrottle } from '../../common/log-throttle.js';
import type { Logger } from '../../common/logger.js';
import { health as healthSchema, presence as presenceSchema, type Health, type Presence } from '../../common/wire-v2.js';
import type { RelayMetrics } from '../metrics.js';
import type { AgentRecord, RelayStore } from '../store/store.js';
import { healthFigures } from './health-figures.js';
import { FleetHistory, sampleOf, type HistorySample } from './history.js';
import { agentState, type AgentState } from './state.js';
import { siteSummaries, type SiteSummary } from './sites.js';
import type { AgentView } from './agent-view.js';

export interface FleetOptions {
  store: RelayStore;
  metrics: RelayMetrics;
  log: Logger;
  clock?: () => number;
  /** `fleet.stale_after`: an online agent silent this long is `stale`. */
  staleAfterMs: number;
  /** `fleet.history_samples`: health samples kept per agent. */
  historySamples: number;
  /** Changes are written to the store at most this often (presence is retained at the broker anyway). */
  flushIntervalMs?: number;
}

/** A row of GET /api/agents. */
export interface AgentSummary {
  site: string;
  agent: string;
  online: boolean | null;
  state: AgentState;
  boot: string | null;
  agent_version: string | null;
  wire: number[] | null;
  last_seen: number;
  health_at: number | null;
  /** From the latest health: pending events over all streams, and the age of the oldest (agent clock: at - oldest). */
  backlog: { pending: number; oldest_pending_age_ms: number | null } | null;
  /** Collectors in state `error` in the latest health; null before any health. */
  collectors_in_error: number | null;
  /**
   * Capture→cloud lag of the latest batch stored from this agent: relay store time minus the
   * newest record's capture `ts` (agent clock), ms; null until a batch is stored since the relay started.
   */
  capture_lag_ms: number | null;
}

/** GET /api/agents/:site/:agent: the latest presence and health, whole. */
export interface AgentDetail {
  site: string;
  agent: string;
  online: boolean | null;
  state: AgentState;
  boot: string | null;
  last_seen: number;
  presence_at: number | null;
  stale_wills: number;
  presence: Presence | null;
  health: Health | null;
  health_at: number | null;
  /** A sample per health message, oldest first (at most `fleet.history_samples`). */
  history: HistorySample[];
}


const LOG_INTERVAL_MS = 60_000;

/** What changed an agent's row: a presence message, a health message (the live channel's feed listens). */
export type FleetChangeKind = 'presence' | 'health';
export type FleetListener = (site: string, agent: string, kind: FleetChangeKind) => void;

/**
 * The latest presence (birth / will, with boot ids) and health of each agent, their state
 * (online, offline, stale) and a bounded history of health samples, kept in memory and written
 * to the store in the background.
 */
export class FleetRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  private readonly dirty = new Set<string>();
  private readonly throttle = new LogThrottle(LOG_INTERVAL_MS);
  private readonly history: FleetHistory;
  readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<FleetListener>();
  /** In memory only: a restarted relay learns it again from the next batch. */
  private readonly lag = new Map<string, number>();

  constructor(private readonly o: FleetOptions) {
    this.clock = o.clock ?? Date.now;
    this.history = new FleetHistory(o.historySamples);
  }

  /** Reads what the store holds (once, before start and before any message). */
  async load(): Promise<void> {
    for (const r of await this.o.store.loadAgents()) this.agents.set(keyOf(r.site, r.agent), r);
    this.history.load(await this.o.store.loadHistory(this.o.historySamples));
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.o.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Called after each accepted presence or health message (the live feed, the alert evaluator); returns the unsubscribe. */
  onChange(fn: FleetListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private notify(site: string, agent: string, kind: FleetChangeKind): void {
    for (const fn of this.listeners) {
      try {
        fn(site, agent, kind);
      } catch (err) {
        // A listener's bug must not stop the registry from taking the next message.
        this.o.log.error({ site, agent, kind, err: { message: (err as Error).message } }, 'fleet change listener failed');
      }
    }
  }

  private flushing: Promise<void> | undefined;

  /** Writes changed agents to the store; a failure is logged and retried at the next flush. One at a time. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushOnce();
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
    }
  }

  private async flushOnce(): Promise<void> {
    const samples = this.history.pending();
    if (this.dirty.size === 0 && samples.length === 0) return;
    const keys = [...this.dirty];
    const rows = keys.map((k) => ({ ...this.agents.get(k)! }));
    // Taken now: a change arriving while the write is under way marks its agent dirty again.
    this.dirty.clear();
    try {
      if (rows.length > 0) await this.o.store.saveAgents(rows);
      const n = samples.length;
      await this.o.store.saveHistory(samples, this.history.max);
      this.history.saved(n);
    } catch (err) {
      for (const k of keys) this.dirty.add(k);
      const t = this.throttle.take('flush');
      if (t) this.o.log.error({ agents: rows.length, err: { message: (err as Error).message }, count: t.count }, 'could not save the fleet registry; will retry');
    }
  }

  private row(site: string, agent: string, now: number): AgentRecord {
    const k = keyOf(site, agent);
    let r = this.agents.get(k);
    if (!r) {
      r = { site, agent, online: null, boot: null, birth: null, presence_at: null, last_seen: now, health: null, health_at: null, stale_wills: 0 };
      this.agents.set(k, r);
    }
    this.dirty.add(k);
    return r;
  }

  private invalid(kind: 'presence' | 'health', site: string, agent: string, detail: string): void {
    this.o.metrics.rejected[kind === 'presence' ? 'invalid_presence' : 'invalid_health']++;
    const t = this.throttle.take(`invalid:${kind}:${site}/${agent}`);
    if (t) this.o.log.warn({ site, agent, kind, detail: detail.slice(0, 500), count: t.count, suppressed: t.suppressed }, `invalid ${kind} message ignored`);
  }

  /** A message on erp-edge/v2/{site}/{agent}/status: birth (online) or will / clean offline. */
  onPresence(site: string, agent: string, payload: Buffer): void {
    if (payload.length === 0) return; // a cleared retained status
    const p = parse(payload, presenceSchema);
    if (!p.ok) return this.invalid('presence', site, agent, p.detail);
    this.o.metrics.presenceMessages++;
    const msg = p.value;
    const now = this.clock();
    const k = keyOf(site, agent);
    const known = this.agents.get(k);
    const birth = known?.birth as Presence | null | undefined;
    if (!msg.online && birth && birth.boot !== msg.boot) {
      // A late will of a previous process: it must not mark the newer process offline.
      this.o.metrics.staleWills++;
      known!.stale_wills++;
      this.dirty.add(k);
      const t = this.throttle.take(`stale:${site}/${agent}`);
      if (t) this.o.log.info({ site, agent, will_boot: msg.boot, birth_boot: birth.boot, count: t.count }, 'stale will ignored (its boot is not the latest birth)');
      return;
    }
    const r = this.row(site, agent, now);
    // A clean stop's offline message and the broker's will can both arrive: say it once.
    const changed = r.online !== msg.online || r.boot !== msg.boot;
    r.online = msg.online;
    r.boot = msg.boot;
    if (msg.online) r.birth = msg;
    r.presence_at = now;
    r.last_seen = now;
    if (changed) this.o.log.info({ site, agent, online: msg.online, boot: msg.boot, agent_version: msg.agent_version }, msg.online ? 'agent online' : 'agent offline');
    this.notify(site, agent, 'presence');
  }

  /** A message on erp-edge/v2/{site}/{agent}/health. */
  onHealth(site: string, agent: string, payload: Buffer): void {
    const p = parse(payload, healthSchema);
    if (!p.ok) return this.invalid('health', site, agent, p.detail);
    this.o.metrics.healthMessages++;
    const now = this.clock();
    const r = this.row(site, agent, now);
    r.health = p.value;
    r.health_at = now;
    r.last_seen = now;
    this.history.add(site, agent, sampleOf(p.value, now));
    this.notify(site, agent, 'health');
  }

  /** After a commit of an agent's batch (wire v1 and v2): the capture→cloud lag of its newest record. */
  onStored(site: string, agent: string, records: readonly { value: object | undefined }[], storedAt: number): void {
    let newest: number | undefined;
    for (const r of records) {
      const ts = (r.value as { ts?: unknown } | undefined)?.ts;
      if (typeof ts === 'number' && (newest === undefined || ts > newest)) newest = ts;
    }
    if (newest !== undefined) this.lag.set(keyOf(site, agent), Math.max(0, storedAt - newest));
  }

  /** Every agent with its state now, by site then agent. */
  views(): AgentView[] {
    const now = this.clock();
    return [...this.agents.values()].sort((a, b) => (a.site === b.site ? cmp(a.agent, b.agent) : cmp(a.site, b.site))).map((r) => this.viewOf(r, now));
  }

  /** One agent with its state now; undefined when unknown. */
  view(site: string, agent: string): AgentView | undefined {
    const r = this.agents.get(keyOf(site, agent));
    return r ? this.viewOf(r, this.clock()) : undefined;
  }

  private viewOf(r: AgentRecord, now: number): AgentView {
    return { record: r, state: agentState(r, now, this.o.staleAfterMs), presence: r.birth as Presence | null, health: r.health as Health | null };
  }

  /** GET /api/sites: per site, sorted by site. */
  sites(): SiteSummary[] {
    return siteSummaries(this.views());
  }

  list(): AgentSummary[] {
    return this.views().map(({ record: r, state, presence: birth, health }) => {
        const f = health ? healthFigures(health) : null;
        return {
          site: r.site,
          agent: r.agent,
          online: r.online,
          state,
          boot: r.boot,
          agent_version: birth?.agent_version ?? null,
          wire: birth?.wire ?? null,
          last_seen: r.last_seen,
          health_at: r.health_at,
          backlog: f ? { pending: f.pending, oldest_pending_age_ms: f.oldest_pending_age_ms } : null,
          collectors_in_error: f ? f.collectors_in_error : null,
          capture_lag_ms: this.lag.get(keyOf(r.site, r.agent)) ?? null,
        };
      });
  }

  /** `since`: only history samples at or after it (relay time, epoch ms). */
  get(site: string, agent: string, since?: number): AgentDetail | undefined {
    const r = this.agents.get(keyOf(site, agent));
    if (!r) return undefined;
    return {
      site: r.site,
      agent: r.agent,
      online: r.online,
      state: agentState(r, this.clock(), this.o.staleAfterMs),
      boot: r.boot,
      last_seen: r.last_seen,
      presence_at: r.presence_at,
      stale_wills: r.stale_wills,
      presence: r.birth as Presence | null,
      health: r.health as Health | null,
      health_at: r.health_at,
      history: this.history.of(site, agent, since),
    };
  }
}

/** An agent's key in the registry and the live feed. */
export function keyOf(site: string, agent: string): string {
  return `${site}/${agent}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function parse<T>(payload: Buffer, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } } }): { ok: true; value: T } | { ok: false; detail: string } {
  // toString would turn invalid bytes into U+FFFD silently.
  if (!isUtf8(payload)) return { ok: false, detail: 'invalid JSON: not valid UTF-8' };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, detail: `invalid JSON: ${(err as Error).message}` };
  }
  const r = schema.safeParse(json);
  if (r.success) return { ok: true, value: r.data };
  const i = r.error.issues[0];
  return { ok: false, detail: i ? `${i.path.map(String).join('.') || '(root)'}: ${i.message}` : 'invalid' };
}
