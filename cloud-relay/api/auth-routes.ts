import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import { SESSION_COOKIE, type Authenticator, type Principal } from '../auth/auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Served without a session or token (the dashboard's files, POST /api/login; /metrics and /healthz unless protected). */
    public?: boolean;
  }
}

const loginBody = z.strictObject({ user: z.string().min(1).max(100), password: z.string().min(1).max(1024) });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Every route requires a session cookie or a bearer token unless it declares `config.public`.
 * Decided on the matched route (not on the URL text), so a percent-encoded or doubled-slash path
 * cannot slip past; unknown paths get their 404 with no data either way.
 */
export function registerAuthHook(app: FastifyInstance, auth: Authenticator): void {
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.public || !req.routeOptions.url) return;
    const p = auth.identify(req.headers.authorization, req.headers.cookie);
    if (!p) return reply.code(401).header('www-authenticate', 'Bearer realm="erp-edge"').send({ error: 'authentication required' });
    req.principal = p;
  });
}

/** POST /api/login, POST /api/logout, GET /api/me. */
export function registerAuthRoutes(app: FastifyInstance, auth: Authenticator, log: Logger): void {
  app.post('/api/login', { config: { public: true } }, async (req, reply) => {
    if (!auth.enabled) return reply.code(400).send({ error: 'authentication is disabled on this relay' });
    const b = loginBody.safeParse(req.body);
    if (!b.success) return reply.code(400).send({ error: 'expected {"user": "...", "password": "..."}' });
    const wait = auth.throttle.retryAfterS(req.ip);
    if (wait > 0) return reply.code(429).header('retry-after', String(wait)).send({ error: 'too many failed logins; try again later', retry_after_s: wait });
    const sid = await auth.login(b.data.user, b.data.password);
    if (!sid) {
      const delay = auth.throttle.failed(req.ip);
      log.warn({ user: b.data.user, ip: req.ip }, 'login failed');
      await sleep(delay);
      return reply.code(401).send({ error: 'invalid user or password' });
    }
    auth.throttle.succeeded(req.ip);
    log.info({ user: b.data.user, ip: req.ip }, 'login');
    return reply.header('set-cookie', sessionCookie(req, sid, Math.floor(auth.sessionTtlMs / 1000))).send({ user: b.data.user });
  });

  app.post('/api/logout', { config: { public: true } }, async (req, reply) => {
    auth.logout(req.headers.cookie);
    return reply.header('set-cookie', sessionCookie(req, '', 0)).send({ ok: true });
  });

  app.get('/api/me', async (req) => me(req.principal));
}

function me(p: Principal | undefined) {
  if (!p || p.kind === 'anonymous') return { user: null, kind: 'anonymous', auth: false };
  if (p.kind === 'token') return { user: p.name, kind: 'token', auth: true };
  return { user: p.name, kind: 'user', auth: true, expires_at: p.session.expires_at };
}

/** HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure when served over TLS. */
function sessionCookie(req: FastifyRequest, value: string, maxAgeS: number): string {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure}`;
}

export type { FastifyReply };
