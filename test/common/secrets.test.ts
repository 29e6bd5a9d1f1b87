import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { isSecretKey, scrubber, secretValues } from '../../common/secrets.js';

describe('secrets (common/secrets.ts)', () => {
  const config = {
    transport: { url: 'mqtts://broker:8883', username: 'site-a/agent-1', password: 'broker-pw-123', tls: { key_file: 'a.key', passphrase: 'key-pass-456' } },
    collectors: [{ type: 'sql', connection: { host: 'db', user: 'capture', password: 'sql-pw-789' } }, { type: 'scanner-ws', devices: [{ id: 'h1', token: 'device-token-abc' }] }],
    auth: { users: [{ name: 'ops', password_hash: 'scrypt$16384$8$1$c2FsdA$aGFzaA' }], tokens: [{ name: 'ci', token: 'api-token-0123456789' }] },
    alerts: { webhook: { url: 'https://hook:webhook-url-pw@example.com/x', headers: { Authorization: 'Bearer webhook-bearer', 'X-Api-Key': 'webhook-api-key', 'Content-Type': 'application/json' } } },
    short: { password: 'abc' },
  };

  it('finds every secret value: by key (nested, any case, in lists) and in URLs with credentials', () => {
    expect(secretValues(config).sort()).toEqual(
      ['broker-pw-123', 'key-pass-456', 'sql-pw-789', 'device-token-abc', 'scrypt$16384$8$1$c2FsdA$aGFzaA', 'api-token-0123456789', 'webhook-url-pw', 'Bearer webhook-bearer', 'webhook-api-key', 'abc'].sort(),
    );
    expect(['password', 'Authorization', 'X-Api-Key', 'webhook_secret', 'passphrase', 'token'].every(isSecretKey)).toBe(true);
    expect(['key', 'key_file', 'username', 'url', 'Content-Type'].some(isSecretKey)).toBe(false);
  });

  it('scrubs values, their JSON-escaped and URL-encoded forms, and any URL password; short values are left to key redaction', () => {
    const scrub = scrubber(['pa"ss\\word', 'p@ss word', 'abc']);
    expect(scrub('x pa"ss\\word y')).toBe('x [redacted] y');
    expect(scrub(JSON.stringify({ m: 'login pa"ss\\word failed' }))).toBe('{"m":"login [redacted] failed"}');
    expect(scrub('mqtt://u:p%40ss%20word@h')).toBe('mqtt://u:[redacted]@h');
    expect(scrub('see postgres://capture:anything@db:5432/erp')).toBe('see postgres://capture:[redacted]@db:5432/erp');
    expect(scrub('abc')).toBe('abc');
  });

  it('the logger redacts secret keys and scrubs secret values from every line', () => {
    const lines: string[] = [];
    const destination = new Writable({ write: (c, _e, done) => (lines.push(String(c)), done()) });
    const log = createLogger({ level: 'debug', destination, secrets: secretValues(config) });
    log.info({ cfg: { password: 'literal-not-in-config', Authorization: 'Bearer x' } }, 'keys');
    log.error({ err: { message: 'driver said: password "sql-pw-789" rejected' } }, 'values');
    log.warn('connecting to mqtt://u:inline-pw@host:1883');
    const text = lines.join('');
    for (const s of [...secretValues(config).filter((v) => v.length >= 4), 'literal-not-in-config', 'inline-pw']) expect(text).not.toContain(s);
    expect(text).toContain('[redacted]');
  });
});
