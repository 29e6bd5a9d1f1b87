import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { topicLevel } from '../../common/wire-v1.js';
import type { FleetRegistry } from '../fleet/fleet.js';

const agentParams = z.strictObject({ site: topicLevel, agent: topicLevel });

/** GET /api/agents (every agent, one line each) and /api/agents/:site/:agent (latest presence and health, whole). */
export function registerFleetRoutes(app: FastifyInstance, fleet: FleetRegistry): void {
  app.get('/api/agents', async () => ({ agents: fleet.list() }));
  app.get('/api/agents/:site/:agent', async (req, reply) => {
    const p = agentParams.safeParse(req.params);
    if (!p.success) {
      return reply.code(400).send({ error: 'invalid path', issues: p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
    }
    const a = fleet.get(p.data.site, p.data.agent);
    if (!a) return reply.code(404).send({ error: 'unknown agent', site: p.data.site, agent: p.data.agent });
    return a;
  });
}
