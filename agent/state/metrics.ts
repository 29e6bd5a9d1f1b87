import { collectDefaultMetrics, Registry, type Gauge } from 'prom-client';
import { scrapedCounter, scrapedGauge } from '../../common/prom-scraped.js';
import type { CollectorState } from '../host/supervisor.js';
import type { AgentSnapshot } from './agent-state.js';

const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

const COLLECTOR_STATES: readonly CollectorState[] = ['starting', 'running', 'backing-off', 'error', 'stopped'];

/**
 * The agent's GET /metrics: its own Registry (never prom-client's global one, which a library
 * loaded in the same process could fill), every value read from agent/state when scraped.
 * Labels are bounded by the config (stream, collector, type) or the code (state, version): never
 * a file name or record id, so a busy site cannot blow up the series count.
 */
/** How often the event-loop lag histogram takes a sample (nodejs_eventloop_lag_*). */
export const EVENT_LOOP_SAMPLE_MS = 100;

export class AgentMetrics {
  readonly registry = new Registry();
  /** One snapshot per scrape: every metric of a scrape sees the same moment, and the outbox is read once. */
  private current: AgentSnapshot | undefined;

  constructor(
    private readonly snapshot: () => AgentSnapshot,
    version: string,
  ) {
    // Conventional process_* and nodejs_* names, unprefixed: the agent is its own scrape target.
    // The event-loop lag is sampled every 100 ms, not prom-client's 10 ms: at 10 ms its timer woke
    // an idle agent 100 times a second (idle CPU 0.3 -> 1.0 % of a core, footprint bench); a stall
    // worth alerting on lasts far longer than 100 ms.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // Gauges whose names end in _total, which promtool's lint refuses; each is the sum of its
    // per-type sibling (nodejs_active_handles{type} ...), so nothing is lost.
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
    this.outboxMetrics();
    this.collectorMetrics();
    this.forwarderMetrics();
    // NaN, not 0, when statfs fails: a made-up 0 would page someone about a full disk.
    this.gauge('erp_edge_disk_free_bytes', 'Bytes free on the file system of the agent data folder (NaN when it cannot be read).', [], (g, s) => g.set(s.disk ? s.disk.freeBytes : Number.NaN));
    this.gauge('erp_edge_agent_info', 'Always 1; the agent version as a label.', ['version'], (g) => g.set({ version }, 1));
  }

  contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    this.current = this.snapshot();
    try {
      return await this.registry.metrics();
    } finally {
      this.current = undefined;
    }
  }

  private snap(): AgentSnapshot {
    return (this.current ??= this.snapshot());
  }

  private outboxMetrics(): void {
    const perStream = (name: string, help: string, value: (st: AgentSnapshot['streams'][number], now: number) => number) =>
      this.gauge(name, help, ['stream'], (g, s) => {
        for (const st of s.streams) g.set({ stream: st.stream }, value(st, s.at));
      });
    perStream('erp_edge_outbox_pending_events', 'Events in the outbox not yet acknowledged by the relay.', (st) => st.pending);
    perStream('erp_edge_outbox_pending_bytes', 'Bytes of the events not yet acknowledged by the relay.', (st) => st.pendingBytes);
    perStream('erp_edge_outbox_oldest_pending_age_seconds', 'Age of the oldest unacknowledged event; 0 when none is pending.', (st, now) =>
      st.oldestPendingAt === null ? 0 : Math.max(0, (now - st.oldestPendingAt) / 1000),
    );
    perStream('erp_edge_outbox_dead_letters', 'Records of the stream in the dead-letter table.', (st) => st.deadLetters);
    this.gauge('erp_edge_outbox_bytes', 'Bytes of events held in the outbox (pending and kept for replay).', [], (g, s) => s.outbox && g.set(s.outbox.bytes));
    this.gauge('erp_edge_outbox_events', 'Events held in the outbox (pending and kept for replay).', [], (g, s) => s.outbox && g.set(s.outbox.events));
    this.gauge('erp_edge_outbox_full', '1 while the outbox is at its cap (collectors paused, or dropping the oldest).', [], (g, s) => s.outbox && g.set(s.outbox.full ? 1 : 0));
    this.gauge('erp_edge_outbox_file_bytes', 'Size on disk of the outbox files (database and WAL; NaN when they cannot be read).', [], (g, s) => g.set(s.disk ? s.disk.outboxFileBytes : Number.NaN));
  }

  private collectorMetrics(): void {
    this.gauge('erp_edge_collector_state', '1 for the state each collector is in, 0 for the others.', ['collector', 'type', 'state'], (g, s) => {
      for (const c of s.collectors) for (const state of COLLECTOR_STATES) g.set({ collector: c.name, type: c.type, state }, c.state === state ? 1 : 0);
    });
    this.counter('erp_edge_collector_errors_total', 'Failures of each collector (failed starts and loops that died) since the agent started.', ['collector'], (s) =>
      s.collectors.map((c) => [{ collector: c.name }, c.errorCount]),
    );
    this.counter('erp_edge_capture_records_total', 'Records each collector has appended to the outbox since the agent started.', ['collector'], (s) =>
      s.collectors.map((c) => [{ collector: c.name }, c.writer.records]),
    );
  }

  private forwarderMetrics(): void {
    this.gauge('erp_edge_forwarder_connected', '1 while connected to the broker.', [], (g, s) => s.forwarder && g.set(s.forwarder.connected ? 1 : 0));
    this.gauge('erp_edge_forwarder_last_ack_age_seconds', 'Seconds since the relay last acknowledged a batch (since the agent started, before the first ack).', [], (g, s) => {
      const since = lastAckAt(s) ?? s.startedAt;
      if (since !== null) g.set(Math.max(0, (s.at - since) / 1000));
    });
  }

  /** A gauge filled at scrape time; series of collectors or streams gone from the config do not linger. */
  private gauge(name: string, help: string, labelNames: string[], fill: (g: Gauge, s: AgentSnapshot) => unknown): void {
    scrapedGauge(this.registry, name, help, labelNames, (g) => fill(g, this.snap()));
  }

  /** A counter whose values are counts kept elsewhere (supervisor, writer): set to them at each scrape. */
  private counter(name: string, help: string, labelNames: string[], values: (s: AgentSnapshot) => [Record<string, string>, number][]): void {
    scrapedCounter(this.registry, name, help, labelNames, (c) => {
      for (const [labels, v] of values(this.snap())) c.inc(labels, v);
    });
  }
}

/** The latest ack of any stream: the forwarder's own since start, else the outbox's (kept across restarts). */
function lastAckAt(s: AgentSnapshot): number | null {
  const times = [s.forwarder?.lastAckAt ?? null, ...s.streams.map((st) => st.lastAckAt)].filter((t): t is number => t !== null);
  return times.length === 0 ? null : Math.max(...times);
}
