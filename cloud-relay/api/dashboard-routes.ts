import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/** The dashboard's files, served as they are (no build step); next to this module in the source tree and in dist/ (scripts/copy-dashboard.mjs). */
const DIR = fileURLToPath(new URL('./dashboard/', import.meta.url));

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
    const body = readFileSync(`${DIR}${f.file}`);
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
