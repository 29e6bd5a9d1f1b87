import type { Registry } from 'prom-client';
import { scrapedCounter, scrapedGauge } from '../../common/prom-scraped.js';
import type { FleetRegistry } from '../fleet/fleet.js';
import { AGENT_STATES } from '../fleet/state.js';
import { streamOldestAgeMs } from '../fleet/health-figures.js';

/**
 * Gauges of the fleet, read from the fleet registry at scrape time (collect callbacks): what a
 * scrape shows is the registry now, and an agent or stream that is gone is gone from the output.
 * Labels are bounded by the fleet's agents, streams and collectors (configured names), never a
 * file name, record id or boot id. Health figures are the agent's latest health, whatever its state.
 */
export function registerFleetMetrics(registry: Registry, fleet: FleetRegistry): void {
  const reg = { registers: [registry] };
  const views = () => fleet.views();

  gauge(reg, 'erp_edge_agent_up', 'Whether the agent is online (1) or offline or stale (0).', ['site', 'agent'], (set) => {
    for (const v of views()) set({ site: v.record.site, agent: v.record.agent }, v.state === 'online' ? 1 : 0);
  });
  gauge(reg, 'erp_edge_agent_info', 'Agent version from its latest birth message (always 1).', ['site', 'agent', 'version'], (set) => {
    for (const v of views()) set({ site: v.record.site, agent: v.record.agent, version: v.presence?.agent_version ?? 'unknown' }, 1);
  });
  gauge(reg, 'erp_edge_agent_state', 'Agent state: 1 for the current one of online, offline, stale; 0 for the others.', ['site', 'agent', 'state'], (set) => {
    for (const v of views()) for (const s of AGENT_STATES) set({ site: v.record.site, agent: v.record.agent, state: s }, v.state === s ? 1 : 0);
  });
  gauge(reg, 'erp_edge_agent_last_health_age_seconds', 'Seconds since the relay received the agent\'s latest health message.', ['site', 'agent'], (set) => {
    const now = fleet.clock();
    for (const v of views()) if (v.record.health_at !== null) set({ site: v.record.site, agent: v.record.agent }, Math.max(0, now - v.record.health_at) / 1000);
  });
  gauge(reg, 'erp_edge_agent_disk_free_bytes', 'Free space on the file system of the agent\'s data folder, where its outbox grows (latest health; agents from 0.4 on).', ['site', 'agent'], (set) => {
    for (const v of views()) if (v.health?.disk) set({ site: v.record.site, agent: v.record.agent }, v.health.disk.free_bytes);
  });
  gauge(reg, 'erp_edge_agent_clock_offset_seconds', 'Relay clock minus the agent\'s, estimated by the agent from acks (latest health; agents from 0.4 on).', ['site', 'agent'], (set) => {
    for (const v of views()) {
      const ms = v.health?.forwarder?.clock_offset_ms;
      if (ms !== undefined) set({ site: v.record.site, agent: v.record.agent }, ms / 1000);
    }
  });
  gauge(reg, 'erp_edge_agent_resident_memory_bytes', 'Resident memory of the agent process (latest health).', ['site', 'agent'], (set) => {
    for (const v of views()) if (v.health?.process) set({ site: v.record.site, agent: v.record.agent }, v.health.process.rss_bytes);
  });

  const perStream = (name: string, help: string, value: (h: NonNullable<ReturnType<typeof views>[number]['health']>, s: NonNullable<ReturnType<typeof views>[number]['health']>['streams'][number]) => number) =>
    gauge(reg, name, help, ['site', 'agent', 'stream'], (set) => {
      for (const v of views()) for (const s of v.health?.streams ?? []) set({ site: v.record.site, agent: v.record.agent, stream: s.stream }, value(v.health!, s));
    });
  perStream('erp_edge_outbox_pending_events', 'Events in the agent outbox not yet acked by the relay (latest health).', (_h, s) => s.pending);
  perStream('erp_edge_outbox_pending_bytes', 'Bytes of the events in the agent outbox not yet acked (latest health).', (_h, s) => s.pending_bytes);
  perStream('erp_edge_outbox_oldest_pending_age_seconds', 'Age of the oldest pending event at the agent\'s latest health (agent clock); 0 when none is pending.', (h, s) => (streamOldestAgeMs(h, s) ?? 0) / 1000);

  gauge(reg, 'erp_edge_collector_in_error', 'Whether the collector is in state error (1) in the agent\'s latest health.', ['site', 'agent', 'collector'], (set) => {
    for (const v of views()) for (const c of v.health?.collectors ?? []) set({ site: v.record.site, agent: v.record.agent, collector: c.name }, c.state === 'error' ? 1 : 0);
  });
  gauge(reg, 'erp_edge_agent_exceptions', 'Open exceptions at the agent by kind (files in error/, dead letters, ...), latest health.', ['site', 'agent', 'kind'], (set) => {
    for (const v of views()) for (const e of v.health?.exceptions ?? []) set({ site: v.record.site, agent: v.record.agent, kind: e.kind }, e.count);
  });

  // The agent's own count since its process started: a counter that resets on agent restart, as
  // Prometheus counters do (rate() and increase() handle the reset).
  scrapedCounter(registry, 'erp_edge_collector_errors_total', 'Errors of the collector since its agent process started (latest health).', ['site', 'agent', 'collector'], (c) => {
    for (const v of views()) for (const col of v.health?.collectors ?? []) c.inc({ site: v.record.site, agent: v.record.agent, collector: col.name }, col.error_count);
  });
}

type Labels = Record<string, string>;

/** A gauge whose series are rebuilt at each scrape by `fill`. */
function gauge(reg: { registers: Registry[] }, name: string, help: string, labelNames: string[], fill: (set: (labels: Labels, value: number) => void) => void): void {
  scrapedGauge(reg.registers[0]!, name, help, labelNames, (g) => fill((labels, value) => g.set(labels, value)));
}
