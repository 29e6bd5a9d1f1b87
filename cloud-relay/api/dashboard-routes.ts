import type { FastifyInstance } from 'fastify';
import { dashboardFile } from './dashboard-files.js';

const FILES: Array<{ path: string; file: string; type: string }> = [
  { path: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { path: '/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { path: '/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
];

/** Only our own scripts and styles, no framing: an injected agent name cannot run script even if escaping failed. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** GET / (the dashboard), /app.js, /style.css: public, they hold no data; the data comes from /api/* after login. */
export function registerDashboardRoutes(app: FastifyInstance): void {
  for (const f of FILES) {
    // Read once at start: a missing file fails the relay's start, not a user's page load.
    const body = dashboardFile(f.file);
    app.get(f.path, { config: { public: true } }, async (_req, reply) =>
      reply
        .header('content-type', f.type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', CSP)
        .header('referrer-policy', 'no-referrer')
        .send(body),
    );
  }
}
