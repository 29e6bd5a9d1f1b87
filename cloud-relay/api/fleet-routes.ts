import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { topicLevel } from '../../common/wire-v1.js';
import type { FleetRegistry } from '../fleet/fleet.js';

const agentParams = z.strictObject({ site: topicLevel, agent: topicLevel });
/** `since`: history samples at or after this relay time (epoch ms). */
const agentQuery = z.strictObject({ since: z.coerce.number().int().nonnegative().optional() });

const issues = (e: z.ZodError) => e.issues.map((i) => `${i.path.join('.')}: ${i.message}`);

/**
 * GET /api/sites (per site: agents by state, backlog, collectors in error), /api/agents (every
 * agent, one line each) and /api/agents/:site/:agent (latest presence and health whole, history).
 */
export function registerFleetRoutes(app: FastifyInstance, fleet: FleetRegistry): void {
  app.get('/api/sites', async () => ({ sites: fleet.sites() }));
  app.get('/api/agents', async () => ({ agents: fleet.list() }));
  app.get('/api/agents/:site/:agent', async (req, reply) => {
    const p = agentParams.safeParse(req.params);
    if (!p.success) return reply.code(400).send({ error: 'invalid path', issues: issues(p.error) });
    const q = agentQuery.safeParse(req.query);
    if (!q.success) return reply.code(400).send({ error: 'invalid query', issues: issues(q.error) });
    const a = fleet.get(p.data.site, p.data.agent, q.data.since);
    if (!a) return reply.code(404).send({ error: 'unknown agent', site: p.data.site, agent: p.data.agent });
    return a;
  });
}
