import { describe, expect, it } from 'vitest';
import { hashPassword, parsePasswordHash, verifyPassword } from '../../../cloud-relay/auth/password.js';
import { TokenSet } from '../../../cloud-relay/auth/tokens.js';
import { SessionStore } from '../../../cloud-relay/auth/sessions.js';
import { LoginThrottle } from '../../../cloud-relay/auth/login-throttle.js';
import { sessionIdOf } from '../../../cloud-relay/auth/auth.js';

describe('auth credentials', () => {
  it('hashes passwords with scrypt, parameters and salt in the text; verifies right and wrong passwords', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(a).not.toBe(b); // a fresh salt each time
    const h = parsePasswordHash(a)!;
    expect(await verifyPassword('correct horse', h)).toBe(true);
    expect(await verifyPassword('correct horsf', h)).toBe(false);
    expect(await verifyPassword('', h)).toBe(false);
    expect(parsePasswordHash('scrypt$1000$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==')).toBeUndefined(); // N not a power of two
  });

  it('matches tokens by value, any length, and names the match', () => {
    const t = new TokenSet([{ name: 'ci', token: 'a'.repeat(20) }, { name: 'ops', token: 'b'.repeat(40) }]);
    expect(t.match('a'.repeat(20))).toBe('ci');
    expect(t.match('b'.repeat(40))).toBe('ops');
    expect(t.match('a'.repeat(19))).toBeUndefined();
    expect(t.match('')).toBeUndefined();
  });

  it('sessions expire after their ttl and are 32 random bytes', () => {
    let now = 1_000;
    const s = new SessionStore(60_000, () => now);
    const { id } = s.create('alice');
    expect(Buffer.from(id, 'base64url')).toHaveLength(32);
    expect(s.get(id)?.user).toBe('alice');
    expect(sessionIdOf(`x=1; erp_edge_session=${id}; y=2`)).toBe(id);
    now += 60_000;
    expect(s.get(id)).toBeUndefined();
  });

  it('failed logins: growing delay, then locked for the window', () => {
    let now = 0;
    const t = new LoginThrottle(() => now);
    const delays = Array.from({ length: 10 }, () => t.failed('1.2.3.4'));
    expect(delays.slice(0, 3)).toEqual([250, 500, 750]);
    expect(Math.max(...delays)).toBe(2_000);
    expect(t.retryAfterS('1.2.3.4')).toBe(600);
    expect(t.retryAfterS('5.6.7.8')).toBe(0);
    now += 600_000;
    expect(t.retryAfterS('1.2.3.4')).toBe(0);
  });
});
