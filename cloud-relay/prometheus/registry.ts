import { Registry } from 'prom-client';
import type { FleetRegistry } from '../fleet/fleet.js';
import { CaptureLag } from '../fleet/lag.js';
import type { RelayMetrics } from '../metrics.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { registerRelayCounters } from './relay-counters.js';

export interface RelayPrometheus {
  registry: Registry;
  lag: CaptureLag;
}

/**
 * The relay's own Prometheus registry (never prom-client's global one: two relays in one process,
 * as in the tests, must not share or clash over metrics). No default process metrics: the relay's
 * process is the host's monitoring's business, and they would differ between runtimes.
 */
export function createRelayPrometheus(fleet: FleetRegistry, metrics: RelayMetrics): RelayPrometheus {
  const registry = new Registry();
  registerFleetMetrics(registry, fleet);
  registerRelayCounters(registry, metrics);
  return { registry, lag: new CaptureLag(registry) };
}
