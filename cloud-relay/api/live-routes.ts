import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../common/logger.js';
import type { FleetFeed } from '../fleet/feed.js';
import type { Authenticator } from '../auth/auth.js';
import { LiveClient } from './live-client.js';

export interface LiveOptions {
  heartbeatMs?: number;
  /** Per client: unsent bytes beyond this and the client is dropped. */
  maxBufferedBytes?: number;
}

/**
 * GET /api/live: Server-Sent Events. `snapshot` first (sites and agents rows as /api/sites and
 * /api/agents give them), then `changes` (a list of {reason, agent, site}) as presence, health or
 * state changes, and a heartbeat comment every `heartbeatMs`. Auth: the onRequest hook, as /api/*.
 */
export function registerLiveRoutes(app: FastifyInstance, feed: FleetFeed, auth: Authenticator, log: Logger, o: LiveOptions = {}): void {
  const clients = new Set<LiveClient>();
  // Open event streams would keep the server's close() waiting forever: end them first.
  app.addHook('preClose', async () => {
    for (const c of clients) c.close();
    clients.clear();
    feed.stop();
  });

  app.get('/api/live', (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx in front: do not buffer the stream
    });
    const who = req.principal?.name ?? null;
    const client = new LiveClient(res, o.maxBufferedBytes ?? 1024 * 1024, (buffered) => log.warn({ user: who, buffered }, 'live client dropped: too slow'));
    clients.add(client);
    res.write('retry: 3000\n\n');
    client.send('snapshot', feed.snapshot());
    // A stream outlives the request that opened it: after logout or session expiry it must stop
    // too, so the credentials are checked again before each send and heartbeat.
    const stillAllowed = () => auth.identify(req.headers.authorization, req.headers.cookie) !== undefined;
    const endIfRevoked = () => {
      if (stillAllowed()) return false;
      log.info({ user: who }, 'live client closed: session ended');
      client.close();
      return true;
    };
    const unsubscribe = feed.subscribe((changes) => endIfRevoked() || client.send('changes', changes));
    const beat = setInterval(() => endIfRevoked() || client.heartbeat(), o.heartbeatMs ?? 15_000);
    log.debug({ user: who, clients: clients.size }, 'live client connected');
    req.raw.socket.once('close', () => {
      clearInterval(beat);
      unsubscribe();
      clients.delete(client);
      log.debug({ user: who, clients: clients.size }, 'live client disconnected');
    });
  });
}
