import type { AgentView } from '../agent-view.js';
import { streamOldestAgeMs } from '../health-figures.js';
import type { AlertRule } from './rules.js';
import { compareVersions, parseVersion } from './version.js';

/** One alert instance whose condition holds now for an agent. */
export interface Holding {
  /** The collector or stream it is about, when the rule is per collector or stream. */
  labels: Record<string, string>;
  /** What was measured (state, age in ms, version, free bytes…), as the webhook and the API show it. */
  value: number | string;
  /** When the condition began, when the relay knows it (relay clock); otherwise when the evaluator first saw it. */
  since?: number;
}

/**
 * Where `rule` holds for one agent now. Each rule reads only the agent's latest presence and
 * health (as /api/agents and /metrics do); a figure the agent does not report (no disk in a 0.3
 * health, no version before a birth) holds nothing: the relay cannot tell.
 */
export function holdsFor(rule: AlertRule, v: AgentView): Holding[] {
  switch (rule.kind) {
    case 'agent_offline':
      return agentOffline(v);
    case 'oldest_pending_age':
      return oldestPendingAge(v, rule.above);
    case 'collector_error':
      return collectorError(v);
    case 'agent_version_below':
      return versionBelow(v, rule.version);
    case 'disk_free_below':
      return diskFreeBelow(v, rule.bytes);
  }
}

function agentOffline(v: AgentView): Holding[] {
  if (v.state === 'online') return [];
  // An offline agent has been so since its will or offline message arrived (kept in the store,
  // so a relay restart does not restart the wait); stale began when the evaluator first saw it.
  const since = v.state === 'offline' && v.record.presence_at !== null ? v.record.presence_at : undefined;
  return [{ labels: {}, value: v.state, ...(since !== undefined ? { since } : {}) }];
}

function oldestPendingAge(v: AgentView, aboveMs: number): Holding[] {
  if (!v.health) return [];
  const out: Holding[] = [];
  for (const s of v.health.streams) {
    const age = streamOldestAgeMs(v.health, s);
    if (age !== null && age > aboveMs) out.push({ labels: { stream: s.stream }, value: age });
  }
  return out;
}

function collectorError(v: AgentView): Holding[] {
  if (!v.health) return [];
  return v.health.collectors.filter((c) => c.state === 'error').map((c) => ({ labels: { collector: c.name }, value: c.last_error?.message ?? 'error' }));
}

function versionBelow(v: AgentView, min: string): Holding[] {
  const raw = v.presence?.agent_version;
  const have = raw === undefined ? undefined : parseVersion(raw);
  const want = parseVersion(min);
  if (!have || !want || compareVersions(have, want) >= 0) return [];
  return [{ labels: {}, value: raw! }];
}

function diskFreeBelow(v: AgentView, bytes: number): Holding[] {
  const free = v.health?.disk?.free_bytes;
  if (free === undefined || free >= bytes) return [];
  return [{ labels: {}, value: free }];
}
