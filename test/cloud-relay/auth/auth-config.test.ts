import { describe, expect, it } from 'vitest';
import { relayConfigSchema } from '../../../cloud-relay/config.js';
import { parseConfigText } from '../../../common/config-file.js';
import { configFailure } from '../../helpers/config-failure.js';

const HASH = 'scrypt$32768$8$1$0Nd9WiSSb+iUqGf8+tZkmQ==$ZedMAOxMb+cZRkaCPqZaJLfCPrrOuSCKsD6OSLBZwck=';
const BASE = ['broker: embedded', 'store:', '  path: relay.db'];
const parse = (lines: string[], env: NodeJS.ProcessEnv = {}) => parseConfigText([...BASE, ...lines, ''].join('\n'), 'relay.yaml', relayConfigSchema, env);


describe('relay config: auth', () => {
  it('refuses to start with neither users nor tokens, naming auth, unless disabled explicitly', () => {
    expect(configFailure(() => parse([]))).toMatch(/auth: configure auth\.users or auth\.tokens/);
    expect(configFailure(() => parse(['auth:', '  protect_metrics: true']))).toMatch(/auth: configure auth\.users or auth\.tokens/);
    expect(parse(['auth:', '  disabled: true']).auth.disabled).toBe(true);
  });

  it('reads users, tokens (with ${VAR}), protect_metrics and session_ttl; defaults 12h and open metrics', () => {
    const cfg = parse(
      ['auth:', '  users:', `    - { name: alice, password_hash: "${HASH}" }`, '  tokens:', '    - { name: ops-ci, token: "${ERP_EDGE_API_TOKEN}" }'],
      { ERP_EDGE_API_TOKEN: 'tok-0123456789abcdef' },
    );
    expect(cfg.auth).toEqual({ disabled: false, users: [{ name: 'alice', password_hash: HASH }], tokens: [{ name: 'ops-ci', token: 'tok-0123456789abcdef' }], protect_metrics: false, session_ttl: 12 * 3_600_000 });
    expect(parse(['auth:', '  tokens: [{ name: a, token: abcdefabcdefabcdef }]', '  session_ttl: 30m', '  protect_metrics: true']).auth).toMatchObject({ session_ttl: 1_800_000, protect_metrics: true });
  });

  it('refuses a hash that is not scrypt, a short token, a repeated user; never echoes the token', () => {
    expect(configFailure(() => parse(['auth:', '  users: [{ name: a, password_hash: "plaintext" }]']))).toMatch(/auth\.users\[0\]\.password_hash: not a scrypt hash/);
    expect(configFailure(() => parse(['auth:', `  users: [{ name: a, password_hash: "${HASH}" }, { name: a, password_hash: "${HASH}" }]`]))).toMatch(/list each user name once/);
    const short = configFailure(() => parse(['auth:', '  tokens: [{ name: a, token: "${T}" }]'], { T: 'short-secret' }));
    expect(short).toMatch(/auth\.tokens\[0\]\.token: use at least 16 characters/);
    expect(short).not.toContain('short-secret');
  });
});
