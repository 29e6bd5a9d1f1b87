import type { ResolvedRelayConfig } from '../config.js';
import { parsePasswordHash, verifyPassword, type ParsedHash } from './password.js';
import { SessionStore, type Session } from './sessions.js';
import { TokenSet } from './tokens.js';
import { LoginThrottle } from './login-throttle.js';

export const SESSION_COOKIE = 'erp_edge_session';

/** Who made a request: a dashboard user (session cookie) or an API client (bearer token). */
export type Principal = { kind: 'user'; name: string; session: Session } | { kind: 'token'; name: string } | { kind: 'anonymous'; name: null };

/**
 * A fixed hash verified when the user name is unknown, so an unknown name costs the same scrypt
 * as a wrong password and response times do not reveal which user names exist.
 */
const DUMMY = parsePasswordHash('scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')!;

/** The relay's `auth:` at run time: users, tokens, sessions and the failed-login throttle. */
export class Authenticator {
  readonly enabled: boolean;
  readonly protectMetrics: boolean;
  readonly sessionTtlMs: number;
  readonly throttle: LoginThrottle;
  private readonly users = new Map<string, ParsedHash>();
  private readonly tokens: TokenSet;
  private readonly sessions: SessionStore;

  constructor(cfg: ResolvedRelayConfig['auth'], clock: () => number = Date.now) {
    this.enabled = !cfg.disabled;
    this.protectMetrics = this.enabled && cfg.protect_metrics;
    this.sessionTtlMs = cfg.session_ttl;
    for (const u of cfg.users) this.users.set(u.name, parsePasswordHash(u.password_hash)!);
    this.tokens = new TokenSet(cfg.tokens);
    this.sessions = new SessionStore(cfg.session_ttl, clock);
    this.throttle = new LoginThrottle(clock);
  }

  get userCount(): number {
    return this.users.size;
  }

  get tokenCount(): number {
    return this.tokens.size;
  }

  /** From the Authorization header and the session cookie; undefined when neither is valid. */
  identify(authorization: string | undefined, cookieHeader: string | undefined): Principal | undefined {
    if (!this.enabled) return { kind: 'anonymous', name: null };
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (bearer) {
      const name = this.tokens.match(bearer);
      if (name !== undefined) return { kind: 'token', name };
    }
    const sid = sessionIdOf(cookieHeader);
    const session = sid ? this.sessions.get(sid) : undefined;
    return session ? { kind: 'user', name: session.user, session } : undefined;
  }

  /** A new session id when the password is right. */
  async login(user: string, password: string): Promise<string | undefined> {
    const known = this.users.get(user);
    const ok = await verifyPassword(password, known ?? DUMMY);
    if (!ok || !known) return undefined;
    return this.sessions.create(user).id;
  }

  logout(cookieHeader: string | undefined): void {
    const sid = sessionIdOf(cookieHeader);
    if (sid) this.sessions.delete(sid);
  }
}

/** The session id in a Cookie header (no cookie library: one name, base64url value). */
export function sessionIdOf(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === SESSION_COOKIE && v && /^[A-Za-z0-9_-]{20,100}$/.test(v)) return v;
  }
  return undefined;
}
