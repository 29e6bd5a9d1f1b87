import type { AgentRecord } from '../store/store.js';

/**
 * What the fleet view says about an agent:
 *  - `offline`: its latest presence is a will or a clean stop's offline message;
 *  - `stale`: not offline, but nothing heard for `fleet.stale_after` — no health since, or since its
 *    birth when none came yet (a half-open connection the broker has not timed out, a stuck health loop);
 *  - `online`: otherwise.
 * An agent known only by its health (no presence seen, e.g. the retained birth was cleared) is
 * judged by its health alone.
 */
export type AgentState = 'online' | 'offline' | 'stale';

export const AGENT_STATES: readonly AgentState[] = ['online', 'offline', 'stale'];

export function agentState(r: Pick<AgentRecord, 'online' | 'presence_at' | 'health_at'>, now: number, staleAfterMs: number): AgentState {
  if (r.online === false) return 'offline';
  // A new birth restarts the wait for health: a restarted agent is not stale for its predecessor's silence.
  const heard = Math.max(r.health_at ?? Number.NEGATIVE_INFINITY, r.online === true ? (r.presence_at ?? Number.NEGATIVE_INFINITY) : Number.NEGATIVE_INFINITY);
  return now - heard > staleAfterMs ? 'stale' : 'online';
}
