import type { Logger } from '../../common/logger.js';
import { keyOf, type AgentSummary, type FleetRegistry } from './fleet.js';
import type { SiteSummary } from './sites.js';
import type { AgentState } from './state.js';

/** Why a row is sent again: a presence or health message, or the clock (online ↔ stale). */
export type ChangeReason = 'presence' | 'health' | 'state';

/** One event of the live channel: the agent's row as /api/agents gives it and its site's row as /api/sites gives it. */
export interface FleetChange {
  reason: ChangeReason;
  agent: AgentSummary;
  site: SiteSummary | null;
}

/** The whole fleet, as a live client first receives it. */
export interface FleetSnapshot {
  at: number;
  sites: SiteSummary[];
  agents: AgentSummary[];
}

export interface FleetFeedOptions {
  log: Logger;
  /** `stale` is a matter of time, not of a message: rows are checked this often for a state change. */
  stateCheckMs?: number;
  /** Messages within this window are sent as one batch (one /api/agents computation per batch, not per message). */
  coalesceMs?: number;
}

type Subscriber = (changes: FleetChange[]) => void;

/**
 * Turns the fleet registry's changes into live-channel events: coalesces presence and health
 * messages, and runs a timer that notices agents turning stale (or back) without any message.
 * Does nothing while nobody listens.
 */
export class FleetFeed {
  private readonly subscribers = new Set<Subscriber>();
  private readonly pending = new Map<string, ChangeReason>();
  private readonly lastState = new Map<string, AgentState>();
  private flushTimer: NodeJS.Timeout | undefined;
  private stateTimer: NodeJS.Timeout | undefined;
  private unlisten: (() => void) | undefined;

  constructor(
    private readonly fleet: FleetRegistry,
    private readonly o: FleetFeedOptions,
  ) {}

  snapshot(): FleetSnapshot {
    const agents = this.fleet.list();
    for (const a of agents) this.lastState.set(keyOf(a.site, a.agent), a.state);
    return { at: this.fleet.clock(), sites: this.fleet.sites(), agents };
  }

  subscribe(fn: Subscriber): () => void {
    if (this.subscribers.size === 0) this.start();
    this.subscribers.add(fn);
    return () => {
      this.subscribers.delete(fn);
      if (this.subscribers.size === 0) this.stop();
    };
  }

  stop(): void {
    this.unlisten?.();
    this.unlisten = undefined;
    clearInterval(this.stateTimer);
    clearTimeout(this.flushTimer);
    this.stateTimer = this.flushTimer = undefined;
    this.pending.clear();
  }

  private start(): void {
    this.unlisten = this.fleet.onChange((site, agent, kind) => this.queue(keyOf(site, agent), kind));
    this.stateTimer = setInterval(() => this.checkStates(), this.o.stateCheckMs ?? 5_000);
    this.stateTimer.unref();
  }

  private queue(key: string, reason: ChangeReason): void {
    // Presence outranks health: a client announcing "now offline" wants the presence reason.
    if (this.pending.get(key) !== 'presence') this.pending.set(key, reason);
    this.flushTimer ??= setTimeout(() => this.flush(), this.o.coalesceMs ?? 200);
  }

  private flush(): void {
    this.flushTimer = undefined;
    if (this.pending.size === 0) return;
    const want = new Map(this.pending);
    this.pending.clear();
    this.emit(this.fleet.list().filter((a) => want.has(keyOf(a.site, a.agent))), (a) => want.get(keyOf(a.site, a.agent))!);
  }

  private checkStates(): void {
    // Rows with a message queued go out with that message's reason at the next flush.
    const changed = this.fleet.list().filter((a) => !this.pending.has(keyOf(a.site, a.agent)) && this.lastState.get(keyOf(a.site, a.agent)) !== a.state);
    if (changed.length > 0) this.emit(changed, () => 'state');
  }

  private emit(rows: AgentSummary[], reasonOf: (a: AgentSummary) => ChangeReason): void {
    if (rows.length === 0) return;
    const sites = new Map(this.fleet.sites().map((s) => [s.site, s]));
    const changes = rows.map((a) => {
      this.lastState.set(keyOf(a.site, a.agent), a.state);
      return { reason: reasonOf(a), agent: a, site: sites.get(a.site) ?? null };
    });
    for (const fn of this.subscribers) {
      try {
        fn(changes);
      } catch (err) {
        this.o.log.error({ err: { message: (err as Error).message } }, 'live subscriber failed');
      }
    }
  }
}
