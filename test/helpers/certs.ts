import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary } from './requirements.js';

/**
 * Real certificates for the TLS tests, made by `openssl` (3.0 has no `x509 -not_before`, so every
 * leaf is signed by `openssl ca`, whose -startdate/-enddate make an expired or not-yet-valid one).
 * EC P-256 keys: quick to make. Files are world-readable: Mosquitto started as root reads them as
 * the `mosquitto` user. Test material only.
 */

export const OPENSSL_INSTALL = 'sudo apt-get install -y openssl';

export function hasOpenssl(): boolean {
  return findBinary('openssl') !== undefined;
}

export interface CertFiles {
  cert: string;
  key: string;
}

export interface CaFiles extends CertFiles {
  /** Signs a leaf with this CA. */
  issue(name: string, o: LeafOptions): CertFiles;
}

export interface LeafOptions {
  cn: string;
  /** subjectAltName, e.g. `IP:127.0.0.1,DNS:localhost` (server certificates). */
  san?: string;
  usage: 'server' | 'client';
  /** openssl ca dates (YYYYMMDDHHMMSSZ); a year from now by default. */
  start?: string;
  end?: string;
  /** Encrypt the key with this passphrase (PKCS#8, AES-256). */
  passphrase?: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? (err as Error).message}`);
  }
}

/** `openssl -subj` form: `/` inside a value (our CN `site/agent`) is escaped. */
function subj(cn: string): string {
  return `/CN=${cn.replace(/\//g, '\\/')}`;
}

/** A self-signed CA in `dir/<name>/` that can issue leaves. */
export function makeCa(dir: string, name: string): CaFiles {
  const d = join(dir, name);
  mkdirSync(join(d, 'issued'), { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(d, 0o755);
  writeFileSync(join(d, 'index.txt'), '');
  writeFileSync(join(d, 'serial'), `${Date.now().toString(16).padStart(16, '0')}\n`);
  writeFileSync(
    join(d, 'ca.cnf'),
    `[ca]
default_ca = test_ca
[test_ca]
dir = ${d}
database = ${d}/index.txt
new_certs_dir = ${d}/issued
serial = ${d}/serial
certificate = ${d}/ca.pem
private_key = ${d}/ca.key
default_md = sha256
policy = any_cn
unique_subject = no
email_in_dn = no
copy_extensions = none
[any_cn]
commonName = supplied
`,
  );
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650', '-subj', subj(`erp-edge test CA ${name}`),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    d,
  );
  const ca: CaFiles = {
    cert: join(d, 'ca.pem'),
    key: join(d, 'ca.key'),
    issue: (leaf, o) => issue(d, leaf, o),
  };
  worldReadable(d);
  return ca;
}

function issue(caDir: string, name: string, o: LeafOptions): CertFiles {
  const key = join(caDir, `${name}.key`);
  const csr = join(caDir, `${name}.csr`);
  const cert = join(caDir, `${name}.pem`);
  const ext = join(caDir, `${name}.ext`);
  const lines = ['[leaf]', 'basicConstraints = CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment', `extendedKeyUsage = ${o.usage === 'server' ? 'serverAuth' : 'clientAuth'}`];
  if (o.san) lines.push(`subjectAltName = ${o.san}`);
  writeFileSync(ext, `${lines.join('\n')}\n`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subj(o.cn)], caDir);
  const dates = o.start || o.end ? ['-startdate', o.start ?? '20200101000000Z', '-enddate', o.end ?? '20990101000000Z'] : ['-days', '365'];
  openssl(['ca', '-batch', '-config', join(caDir, 'ca.cnf'), '-in', csr, '-out', cert, '-notext', '-extfile', ext, '-extensions', 'leaf', ...dates], caDir);
  if (o.passphrase !== undefined) {
    openssl(['pkey', '-in', key, '-out', `${key}.enc`, '-aes256', '-passout', `pass:${o.passphrase}`], caDir);
    renameSync(`${key}.enc`, key);
  }
  worldReadable(caDir);
  return { cert, key };
}

function worldReadable(d: string): void {
  for (const f of readdirSync(d, { withFileTypes: true })) chmodSync(join(d, f.name), f.isDirectory() ? 0o755 : 0o644);
}

/** The relay's certificate CN: its username under `use_identity_as_username` (config/mosquitto/erp-edge.acl). */
export const RELAY_CN = 'erp-edge-relay';

/** An agent's certificate CN: `<site>/<agent>`, which the ACL's `%u` patterns expand to its own topics. */
export function agentCn(site: string, agent: string): string {
  return `${site}/${agent}`;
}

export interface TestPki {
  ca: CaFiles;
  /** For 127.0.0.1 and localhost. */
  server: CertFiles;
  /** Names only broker.invalid: connecting to 127.0.0.1 is a host name mismatch. */
  serverWrongName: CertFiles;
  relay: CertFiles;
  /** Another CA: an agent given its certificate as ca_file cannot verify the broker. */
  otherCa: CaFiles;
}

export function makePki(dir: string): TestPki {
  const ca = makeCa(dir, 'ca');
  const otherCa = makeCa(dir, 'other-ca');
  return {
    ca,
    otherCa,
    server: ca.issue('server', { cn: 'broker', san: 'IP:127.0.0.1,DNS:localhost', usage: 'server' }),
    serverWrongName: ca.issue('server-wrong-name', { cn: 'broker.invalid', san: 'DNS:broker.invalid', usage: 'server' }),
    relay: ca.issue('relay', { cn: RELAY_CN, usage: 'client' }),
  };
}
