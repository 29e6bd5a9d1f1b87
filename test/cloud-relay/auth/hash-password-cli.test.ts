import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePasswordHash, verifyPassword } from '../../../cloud-relay/auth/password.js';

const BIN = resolve(import.meta.dirname, '../../../bin/cloud-relay.js');

const run = (input: string) => spawnSync(process.execPath, [BIN, 'hash-password'], { input, encoding: 'utf8', timeout: 30_000 });

describe('cloud-relay hash-password', () => {
  it('reads the password from stdin (first line) and prints a scrypt hash that verifies it', async () => {
    const r = run('s3cret pass phrase\n');
    expect(r.status, r.stderr).toBe(0);
    const hash = r.stdout.trim();
    expect(hash).not.toContain('s3cret');
    const parsed = parsePasswordHash(hash);
    expect(parsed).toBeDefined();
    expect(await verifyPassword('s3cret pass phrase', parsed!)).toBe(true);
  });

  it('refuses an empty password', () => {
    const r = run('\n');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/empty password/);
  });
});
