import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { portInUseError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { Healthz } from './healthz.js';

/** What the endpoints serve; agent.ts wires them to agent/state. */
export interface AgentHttpRoutes {
  healthz(): Healthz;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface AgentHttpServer {
  /** http://host:port with the port actually bound (the OS picks it for port 0). */
  url: string;
  close(): Promise<void>;
}

/**
 * GET /healthz and GET /metrics for a site's own monitoring, on node:http: two read-only routes
 * do not justify a web framework on the agent. Listens on 127.0.0.1 unless the config says
 * otherwise; a port in use is an ERP_PORT_IN_USE naming `http.listen`.
 */
export async function startAgentHttp(host: string, port: number, routes: AgentHttpRoutes, log: Logger): Promise<AgentHttpServer> {
  const server: Server = createServer((req, res) => void serve(req, res, routes, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? portInUseError(host, port, 'http.listen', err) : err));
    server.listen(port, host, () => resolve());
  });
  server.on('error', (err) => log.error({ err: { message: err.message } }, 'agent HTTP endpoint error'));
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info({ url }, 'agent HTTP endpoints listening (/healthz, /metrics)');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection must not hold up the agent's stop.
        server.closeIdleConnections();
      }),
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, routes: AgentHttpRoutes, log: Logger): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://agent').pathname;
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'application/json', JSON.stringify({ error: 'only GET' }), { allow: 'GET, HEAD' });
    if (path === '/healthz') {
      const h = routes.healthz();
      return send(res, h.status === 'ok' ? 200 : 503, 'application/json', JSON.stringify(h));
    }
    if (path === '/metrics') {
      const m = await routes.metrics();
      return send(res, 200, m.contentType, m.body);
    }
    send(res, 404, 'application/json', JSON.stringify({ error: `no route ${path}; try /healthz or /metrics` }));
  } catch (err) {
    log.error({ err: { message: (err as Error).message }, path }, 'agent HTTP request failed');
    send(res, 500, 'application/json', JSON.stringify({ error: (err as Error).message }));
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
