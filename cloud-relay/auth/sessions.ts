import { randomBytes } from 'node:crypto';

export interface Session {
  user: string;
  created_at: number;
  expires_at: number;
}

/**
 * Dashboard sessions, in memory: a relay restart logs everyone out, which is acceptable for an
 * operations dashboard and keeps session ids out of the store. Ids are 32 random bytes (base64url).
 * Bounded: beyond `max` the oldest session is dropped (a login loop cannot grow memory).
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly ttlMs: number,
    private readonly clock: () => number = Date.now,
    private readonly max = 10_000,
  ) {}

  create(user: string): { id: string; session: Session } {
    this.sweep();
    while (this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const now = this.clock();
    const session = { user, created_at: now, expires_at: now + this.ttlMs };
    this.sessions.set(id, session);
    return { id, session };
  }

  /** The live session of this id, or undefined (unknown or expired: an expired one is removed). */
  get(id: string): Session | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expires_at <= this.clock()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  /** Map order is creation order: expired sessions are at the front. */
  private sweep(): void {
    const now = this.clock();
    for (const [id, s] of this.sessions) {
      if (s.expires_at > now) break;
      this.sessions.delete(id);
    }
  }
}
