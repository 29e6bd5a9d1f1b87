import { healthFigures } from './health-figures.js';
import type { AgentView } from './agent-view.js';
import { AGENT_STATES, type AgentState } from './state.js';

/** A row of GET /api/sites: the site's agents added up, from each agent's latest health. */
export interface SiteSummary {
  site: string;
  agents: { total: number } & Record<AgentState, number>;
  /** Pending events over every agent and stream of the site. */
  pending: number;
  /** The oldest pending event's age over the site, as of each agent's latest health; null when nothing is pending. */
  oldest_pending_age_ms: number | null;
  collectors_in_error: number;
}

/** `views` sorted by site (FleetRegistry.views()): one summary per site, in that order. */
export function siteSummaries(views: readonly AgentView[]): SiteSummary[] {
  const out: SiteSummary[] = [];
  let cur: SiteSummary | undefined;
  for (const v of views) {
    if (cur?.site !== v.record.site) {
      cur = { site: v.record.site, agents: { total: 0, ...zeroStates() }, pending: 0, oldest_pending_age_ms: null, collectors_in_error: 0 };
      out.push(cur);
    }
    cur.agents.total++;
    cur.agents[v.state]++;
    if (!v.health) continue;
    const f = healthFigures(v.health);
    cur.pending += f.pending;
    cur.collectors_in_error += f.collectors_in_error;
    if (f.oldest_pending_age_ms !== null && (cur.oldest_pending_age_ms === null || f.oldest_pending_age_ms > cur.oldest_pending_age_ms)) {
      cur.oldest_pending_age_ms = f.oldest_pending_age_ms;
    }
  }
  return out;
}

function zeroStates(): Record<AgentState, number> {
  return Object.fromEntries(AGENT_STATES.map((s) => [s, 0])) as Record<AgentState, number>;
}
