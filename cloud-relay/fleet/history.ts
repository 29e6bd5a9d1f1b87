import type { Health } from '../../common/wire-v2.js';
import type { HistoryRow } from '../store/store.js';
import { healthFigures } from './health-figures.js';

/** One point of an agent's chart, taken from each health message it sends (its fields: store.ts HistoryRow). */
export type HistorySample = HistoryRow['sample'];

/** A sample of an agent, as the store keeps it. */
export type AgentSample = HistoryRow;

export function sampleOf(h: Health, at: number): HistorySample {
  const f = healthFigures(h);
  return {
    at,
    pending: f.pending,
    oldest_pending_age_ms: f.oldest_pending_age_ms,
    capture_rate: h.forwarder?.capture_rate ?? null,
    forward_rate: h.forwarder?.forward_rate ?? null,
    collectors_in_error: f.collectors_in_error,
    rss: h.process?.rss_bytes ?? null,
  };
}

/**
 * The last `max` samples of each agent, in arrival order, and those not yet written to the store.
 * Bounded both in memory and in the store (the store deletes older rows as it writes newer ones).
 */
export class FleetHistory {
  private readonly byAgent = new Map<string, HistorySample[]>();
  private unsaved: AgentSample[] = [];

  constructor(readonly max: number) {}

  /** Samples loaded from the store (oldest first): kept, not written again. */
  load(rows: Iterable<AgentSample>): void {
    for (const r of rows) this.keep(r.site, r.agent, r.sample);
  }

  add(site: string, agent: string, sample: HistorySample): void {
    this.keep(site, agent, sample);
    this.unsaved.push({ site, agent, sample });
    // Between flushes (a store that keeps failing) the backlog stays bounded too: at most max per agent.
    if (this.unsaved.length > this.max * Math.max(1, this.byAgent.size)) this.unsaved = this.unsaved.slice(-this.max * this.byAgent.size);
  }

  /** Samples of an agent at or after `since` (relay time), oldest first. */
  of(site: string, agent: string, since = Number.NEGATIVE_INFINITY): HistorySample[] {
    const all = this.byAgent.get(`${site}/${agent}`) ?? [];
    return since === Number.NEGATIVE_INFINITY ? [...all] : all.filter((s) => s.at >= since);
  }

  /** Samples not yet in the store; `saved()` once they are. */
  pending(): readonly AgentSample[] {
    return this.unsaved;
  }

  saved(n: number): void {
    this.unsaved = this.unsaved.slice(n);
  }

  private keep(site: string, agent: string, sample: HistorySample): void {
    const k = `${site}/${agent}`;
    let list = this.byAgent.get(k);
    if (!list) this.byAgent.set(k, (list = []));
    list.push(sample);
    if (list.length > this.max) list.splice(0, list.length - this.max);
  }
}
