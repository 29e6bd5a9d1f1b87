import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ErpEdgeError } from './errors.js';

/**
 * Transport security shared by the agent's `transport` and the relay's `broker`: the `tls:`
 * settings, the files they name read and checked at start (missing, not PEM, key not matching the
 * certificate, expired), and broker connection errors (TLS and MQTT refusals) turned into one
 * clear line naming the setting and the file at fault. docs/security.md says what each means.
 */

export const tlsSchema = z
  .strictObject({
    /** CA certificate(s) (PEM) that signed the broker's certificate; the system's CAs when not set. */
    ca_file: z.string().min(1).optional(),
    /** This client's certificate (PEM), for brokers that require one (`require_certificate true`). */
    cert_file: z.string().min(1).optional(),
    /** Its private key (PEM); encrypted keys need `passphrase`. */
    key_file: z.string().min(1).optional(),
    /** Use `${VAR}`: never written to a log, `status` or an error. */
    passphrase: z.string().optional(),
    /** The name to check the broker's certificate against, when the URL's host is not one it lists. */
    servername: z.string().min(1).optional(),
    /** false accepts any broker certificate: for a test bench only, never in production. */
    reject_unauthorized: z.boolean().default(true),
  })
  .superRefine((t, ctx) => {
    if (t.cert_file && !t.key_file) ctx.addIssue({ code: 'custom', path: ['key_file'], message: 'required with cert_file (the private key of that certificate)' });
    if (t.key_file && !t.cert_file) ctx.addIssue({ code: 'custom', path: ['cert_file'], message: 'required with key_file (the certificate of that key)' });
  });

export type TlsConfig = z.output<typeof tlsSchema>;

/** URL schemes that run over TLS: `tls:` settings do nothing for the others, so they are refused there. */
export function isTlsUrl(url: string): boolean {
  return /^(mqtts|wss|tls|ssl):\/\//i.test(url);
}

/** A schema check for a broker object with `url` and `tls` (agent `transport`, relay `broker`). */
export function checkTlsUrl(b: { url: string; tls?: TlsConfig | undefined }, ctx: z.RefinementCtx): void {
  if (b.tls && !isTlsUrl(b.url)) {
    ctx.addIssue({ code: 'custom', path: ['url'], message: `tls is set but the URL is not a TLS one: use mqtts:// (or wss://), e.g. ${b.url.replace(/^[a-z]+:/i, 'mqtts:').replace(/:1883(?=\/|$)/, ':8883')} (the TLS listener's port)` });
  }
}

/** The file settings made absolute, relative to the config file's folder. */
export function resolveTlsPaths<T extends TlsConfig | undefined>(tls: T, dir: string): T {
  if (!tls) return tls;
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(dir, p));
  const out: TlsConfig = { ...tls };
  for (const k of ['ca_file', 'cert_file', 'key_file'] as const) {
    const v = abs(tls[k]);
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

/** mqtt.js / tls.connect options. */
export interface TlsConnectOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  passphrase?: string;
  servername?: string;
  rejectUnauthorized: boolean;
}

export interface TlsMaterial {
  options: TlsConnectOptions;
  /** The setting prefix, e.g. `transport.tls` or `broker.tls`: every message names it. */
  key: string;
  files: { ca_file?: string; cert_file?: string; key_file?: string };
  /** This client's certificate: its subject (CN) and when it stops being valid. */
  cert?: { subject: string; validTo: Date };
  /**
   * Certificates of ours out of their validity period (expired, not yet valid): the connection
   * is still tried (the broker decides; a renewed CA may accept it), but these are logged at start
   * and make `validate` fail.
   */
  problems: ErpEdgeError[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_KEY = /-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----/;

/**
 * Reads and checks the files `tls` names (paths already absolute). Throws ERP_TLS_FILE for a file
 * that cannot be used at all (missing, unreadable, not PEM, key not decryptable or not matching the
 * certificate); returns validity problems (ERP_TLS_CERT_DATES) for the caller to report.
 */
export function loadTls(tls: TlsConfig, key: string, now = Date.now()): TlsMaterial {
  const options: TlsConnectOptions = { rejectUnauthorized: tls.reject_unauthorized };
  if (tls.servername) options.servername = tls.servername;
  const files: TlsMaterial['files'] = {};
  const problems: ErpEdgeError[] = [];
  const material: TlsMaterial = { options, key, files, problems };

  if (tls.ca_file) {
    files.ca_file = tls.ca_file;
    const text = readPem(`${key}.ca_file`, tls.ca_file);
    const certs = text.match(PEM_CERT) ?? [];
    if (certs.length === 0) throw notPem(`${key}.ca_file`, tls.ca_file, text, 'a CA certificate');
    certs.forEach((pem, i) => {
      const c = parseCert(`${key}.ca_file`, tls.ca_file!, pem, certs.length > 1 ? i : undefined);
      const p = dateProblem(`${key}.ca_file`, tls.ca_file!, c, now, 'the CA certificate');
      if (p) problems.push(p);
    });
    options.ca = Buffer.from(text);
  }
  if (tls.cert_file && tls.key_file) {
    files.cert_file = tls.cert_file;
    files.key_file = tls.key_file;
    const certText = readPem(`${key}.cert_file`, tls.cert_file);
    const certs = certText.match(PEM_CERT) ?? [];
    if (certs.length === 0) throw notPem(`${key}.cert_file`, tls.cert_file, certText, 'a certificate');
    const cert = parseCert(`${key}.cert_file`, tls.cert_file, certs[0]!);
    const p = dateProblem(`${key}.cert_file`, tls.cert_file, cert, now, 'the certificate');
    if (p) problems.push(p);
    const keyText = readPem(`${key}.key_file`, tls.key_file);
    if (!PEM_KEY.test(keyText)) throw notPem(`${key}.key_file`, tls.key_file, keyText, 'a private key');
    const privateKey = parseKey(key, tls.key_file, keyText, tls.passphrase);
    if (!cert.checkPrivateKey(privateKey)) {
      throw new ErpEdgeError(
        'ERP_TLS_FILE',
        `${key}.key_file (${tls.key_file}) is not the private key of ${key}.cert_file (${tls.cert_file}, ${cert.subject.replace(/\n/g, ', ')}): give the key made with that certificate`,
        { setting: `${key}.key_file`, file: tls.key_file },
      );
    }
    options.cert = Buffer.from(certText);
    options.key = Buffer.from(keyText);
    if (tls.passphrase) options.passphrase = tls.passphrase;
    material.cert = { subject: cert.subject.replace(/\n/g, ', '), validTo: new Date(cert.validTo) };
  }
  return material;
}

/** Renew before this: a certificate that expires within it is warned about at every start. */
export const EXPIRY_WARNING_MS = 30 * 86_400_000;

/** `… expires on <date> (in N days): renew it` when this client's certificate is valid but ends within `withinMs`. */
export function expirySoon(t: TlsMaterial | undefined, now = Date.now(), withinMs = EXPIRY_WARNING_MS): string | undefined {
  if (!t?.cert || !t.files.cert_file) return undefined;
  const left = t.cert.validTo.getTime() - now;
  if (left <= 0 || left > withinMs) return undefined;
  const days = Math.floor(left / 86_400_000);
  return `${t.key}.cert_file (${t.files.cert_file}): the certificate (${t.cert.subject}) expires on ${t.cert.validTo.toISOString()} (in ${days} day${days === 1 ? '' : 's'}): renew it before then`;
}

function readPem(setting: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (the service user must be able to read it)' : code === 'EISDIR' ? 'is a folder, not a file' : code;
    throw new ErpEdgeError('ERP_TLS_FILE', `${setting}: cannot read ${file}: ${why}`, { setting, file, code }, { cause: err });
  }
}

function notPem(setting: string, file: string, text: string, want: string): ErpEdgeError {
  let why = 'not a PEM file (convert DER with `openssl x509 -inform der -in FILE -out FILE.pem`)';
  if (text.trim() === '') why = 'the file is empty';
  else if (want !== 'a private key' && PEM_KEY.test(text)) why = 'holds a private key, not a certificate (cert_file and key_file swapped?)';
  else if (want === 'a private key' && /-----BEGIN CERTIFICATE-----/.test(text)) why = 'holds a certificate, not a private key (cert_file and key_file swapped?)';
  else if (/-----BEGIN /.test(text)) why = `PEM, but not ${want}`;
  return new ErpEdgeError('ERP_TLS_FILE', `${setting} (${file}): ${why}; expected ${want} in PEM form`, { setting, file });
}

function parseCert(setting: string, file: string, pem: string, index?: number): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    const which = index === undefined ? '' : ` (certificate #${index + 1})`;
    throw new ErpEdgeError('ERP_TLS_FILE', `${setting} (${file})${which}: not a valid certificate: ${(err as Error).message}`, { setting, file }, { cause: err });
  }
}

function parseKey(key: string, file: string, text: string, passphrase: string | undefined): KeyObject {
  const setting = `${key}.key_file`;
  try {
    return createPrivateKey({ key: text, format: 'pem', ...(passphrase ? { passphrase } : {}) });
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    const encrypted = /ENCRYPTED/.test(text) || /Proc-Type: 4,ENCRYPTED/.test(text);
    let why: string;
    if (encrypted && !passphrase) why = `the key is encrypted: set ${key}.passphrase (from \${VAR})`;
    else if (encrypted) why = `cannot decrypt the key: wrong ${key}.passphrase`;
    else why = `not a usable private key (${code || 'unreadable'})`;
    // Never the driver's message: it could quote what it was given.
    throw new ErpEdgeError('ERP_TLS_FILE', `${setting} (${file}): ${why}`, { setting, file, code });
  }
}

function dateProblem(setting: string, file: string, c: X509Certificate, now: number, what: string): ErpEdgeError | undefined {
  const from = new Date(c.validFrom);
  const to = new Date(c.validTo);
  const subject = c.subject.replace(/\n/g, ', ');
  if (now > to.getTime()) {
    return new ErpEdgeError('ERP_TLS_CERT_DATES', `${setting} (${file}): ${what} (${subject}) expired on ${to.toISOString()}: renew it`, { setting, file, valid_to: to.toISOString() });
  }
  if (now < from.getTime()) {
    return new ErpEdgeError('ERP_TLS_CERT_DATES', `${setting} (${file}): ${what} (${subject}) is not valid before ${from.toISOString()} (check this machine's clock)`, { setting, file, valid_from: from.toISOString() });
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Connection errors

export interface BrokerContext {
  /** Setting prefix of the broker block: `transport` (agent) or `broker` (relay). */
  key: string;
  url: string;
  tls?: TlsMaterial | undefined;
  username?: string | undefined;
}

/** The broker's certificate cannot be verified against ca_file. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

/**
 * What a broker connection error means, naming the setting and file at fault; undefined for errors
 * that need no explaining (connection refused, reset: the message says it). The message never
 * includes a secret (the URL is shown without credentials).
 */
export function explainBrokerError(err: Error & { code?: unknown; host?: string; cert?: { subjectaltname?: string } }, b: BrokerContext): ErpEdgeError | undefined {
  const code = typeof err.code === 'string' ? err.code : undefined;
  const t = b.tls;
  const ca = t?.files.ca_file ? `${t.key}.ca_file (${t.files.ca_file})` : `the system's CA certificates (set ${b.key}.tls.ca_file)`;
  const cert = t?.files.cert_file ? `${t.key}.cert_file (${t.files.cert_file})` : undefined;
  const tlsError = (reason: string, message: string) => new ErpEdgeError('ERP_BROKER_TLS', `TLS to the broker failed: ${message}`, { reason, setting: b.key });
  if (code && UNTRUSTED.has(code)) {
    const self = code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ? 'a self-signed certificate' : 'a certificate';
    return tlsError(code, `wrong CA: the broker presents ${self} that ${ca} does not vouch for (unable to verify; ${code}); give the CA that signed the broker's certificate`);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = err.cert?.subjectaltname ?? 'no subjectAltName';
    const host = err.host ?? hostOf(b.url);
    return tlsError(code, `host name mismatch: the broker's certificate is not for "${host}" (it lists ${names}); connect by a name it lists (${b.key}.url) or set ${b.key}.tls.servername`);
  }
  if (code === 'CERT_HAS_EXPIRED') return tlsError(code, `the broker's certificate has expired (${code}); renew it on the broker`);
  if (code === 'CERT_NOT_YET_VALID') return tlsError(code, `the broker's certificate is not valid yet (${code}); check this machine's clock`);
  if (code === 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED') {
    const when = t?.cert ? ` (it expired on ${t.cert.validTo.toISOString()})` : '';
    return tlsError(code, `the broker refused this client's certificate ${cert ?? ''} as expired${when}: renew it`);
  }
  if (code === 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA') {
    return tlsError(code, `the broker does not trust the CA that issued ${cert ?? "this client's certificate"} (unknown ca): issue the client certificate from the CA in the broker's cafile`);
  }
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' && !cert)) {
    return tlsError(code, `the broker requires a client certificate: set ${b.key}.tls.cert_file and ${b.key}.tls.key_file`);
  }
  if (code === 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' || code === 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED' || code === 'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE') {
    return tlsError(code, `the broker refused this client's certificate ${cert ?? ''} (${code})`);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'EPROTO') {
    return tlsError(code, `the broker does not speak TLS on ${hostPort(b.url)} (${code}): use mqtt:// for a plain listener, or the broker's TLS port`);
  }
  if (code?.startsWith('ERR_SSL_') || code?.startsWith('ERR_TLS_')) return tlsError(code, `${code}: ${err.message.split('\n')[0]!.slice(0, 200)}`);
  // MQTT CONNACK refusals: mqtt.js puts the return code (3.1.1) or reason code (5) in `code`.
  const rc = typeof err.code === 'number' ? err.code : undefined;
  if (rc === 4 || rc === 134) {
    const who = b.username ? `${b.key}.username "${b.username}" and ${b.key}.password` : `no ${b.key}.username / password set`;
    return new ErpEdgeError('ERP_BROKER_AUTH', `the broker refused the login: bad user name or password (${who})`, { reason: rc, setting: `${b.key}.password` });
  }
  if (rc === 5 || rc === 135) {
    // Mosquitto answers a wrong password with this too (3.1.1 has no finer code for it).
    const who = b.username ? `user "${b.username}"` : t?.cert ? `certificate ${t.cert.subject}` : 'an anonymous client';
    const check = b.username ? `a wrong ${b.key}.password, or the broker's password file or ACL does not admit ${b.key}.username` : `the broker's ACL or identity settings do not admit ${t?.cert ? `${b.key}.tls.cert_file` : 'anonymous clients'}`;
    return new ErpEdgeError('ERP_BROKER_AUTH', `the broker refused the connection: not authorized (${who}): ${check}`, { reason: rc, setting: b.key });
  }
  return undefined;
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return '?';
  }
}

function hostPort(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
}
