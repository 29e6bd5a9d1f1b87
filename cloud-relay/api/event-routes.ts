import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { topicLevel } from '../../common/wire-v1.js';
import type { RelayStore } from '../store/store.js';

const eventsQuery = z.strictObject({
  site: topicLevel,
  agent: topicLevel,
  stream: topicLevel,
  epoch: z.string().optional(),
  after: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});

/** GET /api/streams, /api/events, /api/stats. */
export function registerEventRoutes(app: FastifyInstance, store: RelayStore, stats: () => unknown): void {
  app.get('/api/streams', async () => ({ streams: await store.listStreams() }));
  app.get('/api/stats', async () => stats());
  app.get('/api/events', async (req, reply) => {
    const q = eventsQuery.safeParse(req.query);
    if (!q.success) {
      return reply.code(400).send({ error: 'invalid query', issues: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
    }
    const { epoch, events } = await store.listEvents(q.data);
    const last = events[events.length - 1];
    return { site: q.data.site, agent: q.data.agent, stream: q.data.stream, epoch, events, next_after: last ? last.seq : q.data.after };
  });
}
