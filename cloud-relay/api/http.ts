import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { portInUseError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { RelayStore } from '../store/store.js';
import type { FleetRegistry } from '../fleet/fleet.js';
import type { FleetFeed } from '../fleet/feed.js';
import type { Authenticator } from '../auth/auth.js';
import { registerEventRoutes } from './event-routes.js';
import { registerFleetRoutes } from './fleet-routes.js';
import { registerMetricsRoute } from './metrics-routes.js';
import { registerAlertRoutes } from './alert-routes.js';
import { registerSinkRoutes } from './sink-routes.js';
import type { AlertList } from '../fleet/alerts/evaluator.js';
import { registerAuthHook, registerAuthRoutes } from './auth-routes.js';
import { registerLiveRoutes, type LiveOptions } from './live-routes.js';
import { registerDashboardRoutes } from './dashboard-routes.js';
import type { Registry } from 'prom-client';

export interface HttpApiDeps {
  store: RelayStore;
  fleet: FleetRegistry;
  feed: FleetFeed;
  auth: Authenticator;
  stats: () => unknown;
  /** The relay's Prometheus registry, served on GET /metrics. */
  prometheus: Registry;
  /** Active and recently resolved alerts (GET /api/alerts). */
  alerts: () => AlertList;
  live?: LiveOptions;
  /** The configured sinks (GET /api/sinks). */
  sinks?: readonly { name: string; type: string }[];
}

/**
 * The relay's HTTP side: the dashboard (dashboard-routes.ts), login (auth-routes.ts), streams,
 * events and stats (event-routes.ts), sites and agents (fleet-routes.ts), the live channel
 * (live-routes.ts), /metrics and /healthz.
 */
export async function startHttpApi(host: string, port: number, deps: HttpApiDeps, log: Logger): Promise<{ app: FastifyInstance; url: string }> {
  // Request objects are logged as method and path only: never a header (Authorization, Cookie) nor a query string.
  const httpLog = log.child({ part: 'http' }, { serializers: { req: (req: { method?: string; url?: string }) => ({ method: req.method, path: pathOf(req.url ?? '') }) } });
  const app = Fastify({
    loggerInstance: httpLog,
    // Fastify's own request lines would carry the URL's query; ours (below) carry the path only, never a header.
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  app.addHook('onResponse', async (req, reply) => {
    httpLog.debug({ method: req.method, path: pathOf(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime), by: req.principal?.name ?? undefined }, 'http request');
  });
  registerAuthHook(app, deps.auth);
  const open = { config: { public: !deps.auth.protectMetrics } };
  app.get('/healthz', open, async () => ({ ok: true }));
  registerMetricsRoute(app, deps.prometheus, open);
  registerDashboardRoutes(app);
  registerAuthRoutes(app, deps.auth, httpLog);
  registerEventRoutes(app, deps.store, deps.stats);
  registerFleetRoutes(app, deps.fleet);
  registerAlertRoutes(app, deps.alerts);
  registerSinkRoutes(app, deps.store, deps.sinks ?? []);
  registerLiveRoutes(app, deps.feed, deps.auth, httpLog, deps.live);
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

/** A URL without its query string (where tokens could ride). */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
