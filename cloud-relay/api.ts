import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { portInUseError } from '../common/errors.js';
import { topicLevel } from '../common/wire-v1.js';
import type { Logger } from '../common/logger.js';
import type { RelayStore } from './store.js';

const eventsQuery = z.strictObject({
  site: topicLevel,
  agent: topicLevel,
  stream: topicLevel,
  epoch: z.string().optional(),
  after: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(100),
});

/** Read-only HTTP API over the relay store. */
export async function startHttpApi(
  host: string,
  port: number,
  store: RelayStore,
  stats: () => unknown,
  log: Logger,
): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/api/streams', async () => ({ streams: store.listStreams() }));
  app.get('/api/stats', async () => stats());
  app.get('/api/events', async (req, reply) => {
    const q = eventsQuery.safeParse(req.query);
    if (!q.success) {
      return reply.code(400).send({ error: 'invalid query', issues: q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
    }
    const { epoch, events } = store.listEvents(q.data);
    const last = events[events.length - 1];
    return { site: q.data.site, agent: q.data.agent, stream: q.data.stream, epoch, events, next_after: last ? last.seq : q.data.after };
  });
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
