import type { HealthzConfig } from '../config.js';
import type { AgentSnapshot } from './agent-state.js';

/** One reason the agent is unhealthy: `check` is stable (for alert rules), `message` is for people. */
export interface HealthReason {
  check: 'collector' | 'outbox_full' | 'disconnected' | 'disk_free';
  message: string;
  collector?: string;
}

export type Healthz = { status: 'ok' } | { status: 'failing'; reasons: HealthReason[] };

/**
 * GET /healthz's verdict from a snapshot: failing when a collector has been failing, or the
 * forwarder disconnected, for longer than its threshold; when the outbox is full (capture is
 * paused or dropping); or when the data folder's disk is nearly full. Brief failures (a restart,
 * a broker blip) stay healthy: a monitor polling every minute must not page on them.
 */
export function healthzOf(s: AgentSnapshot, t: HealthzConfig, now: number): Healthz {
  const reasons = [...collectorReasons(s, t, now), ...outboxReasons(s), ...forwarderReasons(s, t, now), ...diskReasons(s, t)];
  return reasons.length === 0 ? { status: 'ok' } : { status: 'failing', reasons };
}

function collectorReasons(s: AgentSnapshot, t: HealthzConfig, now: number): HealthReason[] {
  return s.collectors
    .filter((c) => c.state === 'error' || c.state === 'backing-off' || c.failingSince !== null)
    .filter((c) => now - (c.failingSince ?? c.since) >= t.collector_failing_for)
    .map((c) => ({
      check: 'collector' as const,
      collector: c.name,
      message: `collector "${c.name}" (${c.type}) failing for ${seconds(now - (c.failingSince ?? c.since))}, now ${c.state}, ${c.errorCount} error(s)${c.lastError ? `; last: ${c.lastError.code ? `${c.lastError.code}: ` : ''}${c.lastError.message}` : ''}`,
    }));
}

function outboxReasons(s: AgentSnapshot): HealthReason[] {
  const o = s.outbox;
  if (!o?.full) return [];
  if (o.diskFull) return [{ check: 'outbox_full', message: `the disk holding the outbox is full: collectors are paused (${o.diskFull.message})` }];
  const what = o.capPolicy === 'block' ? 'collectors are paused' : 'the oldest events are being dropped';
  return [{ check: 'outbox_full', message: `the outbox is full (${o.events} of ${o.maxEvents} events, ${o.bytes} of ${o.maxBytes} bytes): ${what}` }];
}

function forwarderReasons(s: AgentSnapshot, t: HealthzConfig, now: number): HealthReason[] {
  const f = s.forwarder;
  if (!f || f.connected || now - f.connectedChangedAt < t.disconnected_for) return [];
  return [{ check: 'disconnected', message: `not connected to the broker for ${seconds(now - f.connectedChangedAt)}; capture continues into the outbox` }];
}

function diskReasons(s: AgentSnapshot, t: HealthzConfig): HealthReason[] {
  if (!s.disk || s.disk.freeBytes >= t.min_disk_free) return [];
  return [{ check: 'disk_free', message: `${s.disk.freeBytes} bytes free on the data folder's disk, below http.healthz.min_disk_free (${t.min_disk_free})` }];
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}
