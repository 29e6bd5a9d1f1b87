import type { Registry } from 'prom-client';
import { scrapedCounter } from '../../common/prom-scraped.js';
import type { RelayMetrics } from '../metrics.js';

/**
 * The relay's own counters (RelayMetrics, also on GET /api/stats) as Prometheus counters, read at
 * scrape time. Labels come from fixed sets (wire version, reason), plus site/agent/stream for
 * stored events (bounded by the streams the relay holds).
 */
export function registerRelayCounters(registry: Registry, m: RelayMetrics): void {
  const reg = { registers: [registry] };
  counter(reg, 'erp_edge_relay_events_stored_total', 'Events stored by the relay.', ['site', 'agent', 'stream'], (inc) => {
    for (const s of m.storedByStream.values()) inc({ site: s.site, agent: s.agent, stream: s.stream }, s.count);
  });
  counter(reg, 'erp_edge_relay_messages_rejected_total', 'Messages refused whole (never acked), by reason.', ['reason'], (inc) => {
    for (const [reason, n] of Object.entries(m.rejected)) inc({ reason }, n);
  });
  counter(reg, 'erp_edge_relay_batches_total', 'Event batches applied, by wire version.', ['wire'], (inc) => {
    inc({ wire: '1' }, m.batchesByWire.v1);
    inc({ wire: '2' }, m.batchesByWire.v2);
  });
  counter(reg, 'erp_edge_relay_skipped_seqs_total', 'Seqs the agents skipped (dropped at their cap, dead-lettered, pruned, other), by reason.', ['reason'], (inc) => {
    for (const [reason, n] of Object.entries(m.skipped)) inc({ reason }, n);
  });
  counter(reg, 'erp_edge_relay_records_rejected_total', 'Records refused with a rejected ack, by problem.', ['reason'], (inc) => {
    for (const [reason, n] of Object.entries(m.rejectedRecords)) inc({ reason }, n);
  });
  const plain: Array<[string, string, () => number]> = [
    ['erp_edge_relay_duplicates_total', 'Records resent at seqs already held.', () => m.duplicates],
    ['erp_edge_relay_duplicate_ids_total', 'Records not stored because their id was stored before.', () => m.duplicateIds],
    ['erp_edge_relay_conflicts_total', 'Resent seqs carrying other records than those held.', () => m.conflicts],
    ['erp_edge_relay_gaps_total', 'Batches answered with a gap ack.', () => m.gaps],
    ['erp_edge_relay_rejected_acks_total', 'Rejected acks sent.', () => m.rejectedAcks],
    ['erp_edge_relay_conflict_acks_total', 'Conflict acks sent.', () => m.conflictAcks],
    ['erp_edge_relay_new_epochs_total', 'New outbox epochs seen for known streams.', () => m.newEpochs],
    ['erp_edge_relay_store_errors_total', 'Batches the store failed to take (not acked).', () => m.storeErrors],
    ['erp_edge_relay_presence_messages_total', 'Agent presence messages applied.', () => m.presenceMessages],
    ['erp_edge_relay_health_messages_total', 'Agent health messages applied.', () => m.healthMessages],
    ['erp_edge_relay_stale_wills_total', 'Late wills of an older agent process, ignored.', () => m.staleWills],
  ];
  for (const [name, help, value] of plain) counter(reg, name, help, [], (inc) => inc({}, value()));
}

type Labels = Record<string, string>;

/** A counter set to the relay's running total at each scrape (the totals only grow while the relay runs). */
function counter(reg: { registers: Registry[] }, name: string, help: string, labelNames: string[], fill: (inc: (labels: Labels, value: number) => void) => void): void {
  scrapedCounter(reg.registers[0]!, name, help, labelNames, (c) => fill((labels, value) => c.inc(labels, value)));
}
