import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

/** GET /metrics: Prometheus text exposition of the relay's registry (open, like /healthz, unless `auth.protect_metrics`). */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry, opts: { config: { public: boolean } }): void {
  app.get('/metrics', opts, async (_req, reply) => {
    const body = await registry.metrics();
    return reply.header('content-type', registry.contentType).send(body);
  });
}
