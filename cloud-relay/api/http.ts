import Fastify, { type FastifyInstance } from 'fastify';
import { portInUseError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { RelayStore } from '../store/store.js';
import type { FleetRegistry } from '../fleet/fleet.js';
import { registerEventRoutes } from './event-routes.js';
import { registerFleetRoutes } from './fleet-routes.js';
import { registerMetricsRoute } from './metrics-routes.js';
import { registerAlertRoutes } from './alert-routes.js';
import type { AlertList } from '../fleet/alerts/evaluator.js';
import type { Registry } from 'prom-client';

export interface HttpApiDeps {
  store: RelayStore;
  fleet: FleetRegistry;
  stats: () => unknown;
  /** The relay's Prometheus registry, served on GET /metrics. */
  prometheus: Registry;
  /** Active and recently resolved alerts (GET /api/alerts). */
  alerts: () => AlertList;
}

/** Read-only HTTP API of the relay: streams, events and stats (event-routes.ts), sites and agents (fleet-routes.ts), /metrics. */
export async function startHttpApi(host: string, port: number, deps: HttpApiDeps, log: Logger): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ ok: true }));
  registerEventRoutes(app, deps.store, deps.stats);
  registerFleetRoutes(app, deps.fleet);
  registerMetricsRoute(app, deps.prometheus);
  registerAlertRoutes(app, deps.alerts);
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw portInUseError(host, port, 'http.port', err);
    throw err;
  }
  const addr = app.server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  log.debug({ host, port: actual }, 'relay HTTP API listening');
  return { app, url: `http://${host}:${actual}` };
}
