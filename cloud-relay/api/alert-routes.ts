import type { FastifyInstance } from 'fastify';
import type { AlertList } from '../fleet/alerts/evaluator.js';

/** GET /api/alerts: active alerts (oldest first) and recently resolved ones (newest first, bounded by alerts.resolved_kept). */
export function registerAlertRoutes(app: FastifyInstance, alerts: () => AlertList): void {
  app.get('/api/alerts', async () => alerts());
}
