/**
 * The tls settings' files, checked at start and by `validate` (common/tls.ts): every problem a
 * clear ErpEdgeError naming the setting and the file, never the passphrase. Real certificates
 * made by openssl (test/helpers/certs.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isErpEdgeError, type ErpEdgeError } from '../../common/errors.js';
import { expirySoon, explainBrokerError, loadTls, tlsSchema, type TlsConfig } from '../../common/tls.js';
import { transportSchema } from '../../agent/config.js';
import { makeTempDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { requireBinary } from '../helpers/requirements.js';
import { agentCn, makeCa, OPENSSL_INSTALL, type CaFiles, type CertFiles } from '../helpers/certs.js';

const hasOpenssl = requireBinary('openssl', OPENSSL_INSTALL);
const PASS = 'correct-horse-battery';

function tlsError(fn: () => unknown): ErpEdgeError {
  try {
    fn();
  } catch (err) {
    if (isErpEdgeError(err)) return err;
    throw err;
  }
  throw new Error('expected an ErpEdgeError');
}

describe.skipIf(!hasOpenssl)('tls files (loadTls)', () => {
  const { dir, cleanup } = makeTempDir('tls-files-');
  let ca: CaFiles;
  let good: CertFiles;
  let other: CertFiles;
  let encrypted: CertFiles;
  let future: CertFiles;
  const cfg = (o: Partial<TlsConfig>): TlsConfig => tlsSchema.parse({ ca_file: ca.cert, cert_file: good.cert, key_file: good.key, ...o });

  beforeAll(() => {
    ca = makeCa(dir, 'ca');
    good = ca.issue('good', { cn: agentCn('site-a', 'agent-1'), usage: 'client' });
    other = ca.issue('other', { cn: agentCn('site-b', 'agent-1'), usage: 'client' });
    encrypted = ca.issue('enc', { cn: agentCn('site-a', 'agent-1'), usage: 'client', passphrase: PASS });
    future = ca.issue('future', { cn: agentCn('site-a', 'agent-1'), usage: 'client', start: '20980101000000Z', end: '20990101000000Z' });
    writeFileSync(join(dir, 'empty.pem'), '');
    writeFileSync(join(dir, 'der.bin'), Buffer.from([0x30, 0x82, 0x01, 0x0a]));
    mkdirSync(join(dir, 'a-folder'));
  });
  afterAll(cleanup);

  it('good files: options for mqtt.js, the certificate subject and expiry, no problems', () => {
    const t = loadTls(cfg({}), 'transport.tls');
    expect(t.problems).toEqual([]);
    expect(t.options.ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(t.options.rejectUnauthorized).toBe(true);
    expect(t.cert?.subject).toBe('CN=site-a/agent-1');
    expect(t.cert!.validTo.getTime()).toBeGreaterThan(Date.now());
  });

  it.each([
    ['a missing file', { ca_file: '/nonexistent/ca.pem' }, /^transport\.tls\.ca_file: cannot read \/nonexistent\/ca\.pem: no such file$/],
    ['a folder', { cert_file: 'A_FOLDER' }, /^transport\.tls\.cert_file: cannot read \S+a-folder: is a folder, not a file$/],
    ['an empty file', { ca_file: 'EMPTY' }, /^transport\.tls\.ca_file \(\S+empty\.pem\): the file is empty; expected a CA certificate in PEM form$/],
    ['DER, not PEM', { cert_file: 'DER' }, /^transport\.tls\.cert_file \(\S+der\.bin\): not a PEM file \(convert DER with/],
    ['cert and key swapped', { cert_file: 'GOOD_KEY', key_file: 'GOOD_CERT' }, /^transport\.tls\.cert_file \(\S+good\.key\): holds a private key, not a certificate \(cert_file and key_file swapped\?\)/],
    ['a key that is not the certificate\'s', { key_file: 'OTHER_KEY' }, /^transport\.tls\.key_file \(\S+other\.key\) is not the private key of transport\.tls\.cert_file \(\S+good\.pem, CN=site-a\/agent-1\)/],
    ['an encrypted key without passphrase', { cert_file: 'ENC_CERT', key_file: 'ENC_KEY' }, /^transport\.tls\.key_file \(\S+enc\.key\): the key is encrypted: set transport\.tls\.passphrase/],
    ['a wrong passphrase', { cert_file: 'ENC_CERT', key_file: 'ENC_KEY', passphrase: 'not-the-passphrase' }, /^transport\.tls\.key_file \(\S+enc\.key\): cannot decrypt the key: wrong transport\.tls\.passphrase$/],
  ] as const)('%s: ERP_TLS_FILE naming the setting and the file', (_name, over, message) => {
    const files: Record<string, string> = {
      A_FOLDER: join(dir, 'a-folder'),
      EMPTY: join(dir, 'empty.pem'),
      DER: join(dir, 'der.bin'),
      GOOD_KEY: good.key,
      GOOD_CERT: good.cert,
      OTHER_KEY: other.key,
      ENC_CERT: encrypted.cert,
      ENC_KEY: encrypted.key,
    };
    const o = Object.fromEntries(Object.entries(over).map(([k, v]) => [k, k === 'passphrase' ? v : (files[v] ?? v)]));
    const err = tlsError(() => loadTls(cfg(o), 'transport.tls'));
    expect(err.code).toBe('ERP_TLS_FILE');
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('not-the-passphrase');
  });

  it('the right passphrase opens an encrypted key', () => {
    const t = loadTls(cfg({ cert_file: encrypted.cert, key_file: encrypted.key, passphrase: PASS }), 'broker.tls');
    expect(t.options.passphrase).toBe(PASS);
    expect(t.problems).toEqual([]);
  });

  it('not yet valid: a problem (ERP_TLS_CERT_DATES), not a refusal to start', () => {
    const t = loadTls(cfg({ cert_file: future.cert, key_file: future.key }), 'transport.tls');
    expect(t.problems.map((p) => [p.code, p.message])).toEqual([
      ['ERP_TLS_CERT_DATES', `transport.tls.cert_file (${future.cert}): the certificate (CN=site-a/agent-1) is not valid before 2098-01-01T00:00:00.000Z (check this machine's clock)`],
    ]);
  });

  it('a certificate ending within 30 days is warned about (at start); one ending later, or already expired, is not', () => {
    const t = loadTls(cfg({}), 'transport.tls');
    const end = t.cert!.validTo.getTime();
    expect(expirySoon(t, end - 10.5 * 86_400_000)).toBe(`transport.tls.cert_file (${good.cert}): the certificate (CN=site-a/agent-1) expires on ${t.cert!.validTo.toISOString()} (in 10 days): renew it before then`);
    expect(expirySoon(t, end - 31 * 86_400_000)).toBeUndefined();
    expect(expirySoon(t, end + 1)).toBeUndefined();
  });

  it('an expired CA in ca_file is a problem too', () => {
    const t = loadTls(cfg({}), 'transport.tls', Date.parse('2040-01-01'));
    expect(t.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/^transport\.tls\.ca_file \(\S+ca\.pem\): the CA certificate \(CN=erp-edge test CA ca\) expired on 20\d\d-/),
      expect.stringMatching(/^transport\.tls\.cert_file \(\S+good\.pem\): the certificate \(CN=site-a\/agent-1\) expired on 20\d\d-/),
    ]);
  });

  it('the schema: cert_file and key_file together; tls only with a TLS URL', () => {
    expect(tlsSchema.safeParse({ cert_file: 'a.pem' }).error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['key_file', 'required with cert_file (the private key of that certificate)']]);
    const r = transportSchema.safeParse({ url: 'mqtt://broker:1883', tls: { ca_file: 'ca.pem' } });
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['url', 'tls is set but the URL is not a TLS one: use mqtts:// (or wss://), e.g. mqtts://broker:8883 (the TLS listener\'s port)']]);
    expect(transportSchema.safeParse({ url: 'mqtts://broker:8883', tls: { ca_file: 'ca.pem' } }).success).toBe(true);
  });

  it('`edge-agent validate`: files relative to the config file; a missing one names the setting and the file, exit 1', () => {
    const d = join(dir, 'cfg');
    mkdirSync(join(d, 'certs'), { recursive: true });
    copyFileSync(ca.cert, join(d, 'certs', 'ca.pem'));
    copyFileSync(good.cert, join(d, 'certs', 'agent.pem'));
    copyFileSync(good.key, join(d, 'certs', 'agent.key'));
    const yaml = (keyFile: string) => `site: site-a
agent: agent-1
data_dir: ./data
transport:
  url: mqtts://127.0.0.1:8883
  tls:
    ca_file: certs/ca.pem
    cert_file: certs/agent.pem
    key_file: ${keyFile}
collectors:
  - type: synthetic
    name: orders
`;
    writeFileSync(join(d, 'ok.yaml'), yaml('certs/agent.key'));
    const ok = runCli('edge-agent', ['validate', '--config', join(d, 'ok.yaml')]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/^OK \S+ok\.yaml: site site-a, agent agent-1, 1 collector\(s\), client certificate CN=site-a\/agent-1 valid until 20\d\d-/);
    writeFileSync(join(d, 'missing.yaml'), yaml('certs/agent-typo.key'));
    const bad = runCli('edge-agent', ['validate', '--config', join(d, 'missing.yaml')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toBe(`ERP_TLS_FILE: transport.tls.key_file: cannot read ${join(d, 'certs', 'agent-typo.key')}: no such file\n`);
  });
});

describe('broker connection errors explained', () => {
  const ctx = { key: 'transport', url: 'mqtts://broker.example:8883', username: 'site-a/agent-1' };
  const explain = (e: object) => explainBrokerError(Object.assign(new Error('x'), e), ctx)?.message;

  it('MQTT refusals name the login settings, never the password', () => {
    expect(explain({ code: 4 })).toBe('the broker refused the login: bad user name or password (transport.username "site-a/agent-1" and transport.password)');
    expect(explain({ code: 134 })).toBe(explain({ code: 4 }));
    expect(explain({ code: 135 })).toBe('the broker refused the connection: not authorized (user "site-a/agent-1"): a wrong transport.password, or the broker\'s password file or ACL does not admit transport.username');
  });

  it('a plain listener behind mqtts:// and the system CAs are said so', () => {
    expect(explain({ code: 'ERR_SSL_WRONG_VERSION_NUMBER' })).toBe('TLS to the broker failed: the broker does not speak TLS on broker.example:8883 (ERR_SSL_WRONG_VERSION_NUMBER): use mqtt:// for a plain listener, or the broker\'s TLS port');
    expect(explain({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })).toMatch(/the system's CA certificates \(set transport\.tls\.ca_file\) does not vouch for/);
  });

  it('errors that explain themselves are left alone', () => {
    expect(explain({ code: 'ECONNREFUSED' })).toBeUndefined();
  });
});
