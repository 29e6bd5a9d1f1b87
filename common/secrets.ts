/**
 * Secrets in config (passwords, passphrases, tokens, password hashes, webhook headers such as
 * Authorization, credentials inside URLs) never reach a log line, `status` / `validate` output or
 * an error message. Two lines of defence:
 *  1. keys: the logger redacts these keys wherever they appear in a logged object (SECRET_KEYS);
 *  2. values: every secret value of the loaded config is collected (`secretValues`) and replaced in
 *     each log line and each line a CLI prints (`scrubber`), so a driver or library that echoes one
 *     in a message is caught too.
 * This file is the one list of what counts as a secret.
 */

/** Config and log keys whose values are secret (exact names, for the logger's redaction paths). */
export const SECRET_KEYS = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'api_key',
  'apiKey',
  'authorization',
  'Authorization',
  'cookie',
  'connection_string',
  'password_hash',
  'private_key',
  'client_secret',
] as const;

/** Any key containing one of these (after lower-casing, `-` → `_`) is secret too: `X-Api-Key`, `webhook_secret`, `sql_password`. */
const SECRET_KEY_PARTS = ['password', 'passwd', 'passphrase', 'secret', 'token', 'api_key', 'apikey', 'authorization', 'cookie', 'private_key', 'connection_string', 'credential'];

export function isSecretKey(key: string): boolean {
  const k = key.toLowerCase().replace(/-/g, '_');
  return SECRET_KEY_PARTS.some((p) => k.includes(p));
}

/** Values shorter than this are not scrubbed by value (they would mangle every line); the key redaction still applies. */
export const MIN_SCRUB_LENGTH = 4;

/**
 * Every secret value in a config object: strings (or lists of strings) under a secret key, and the
 * user info of URLs with credentials (`mqtt://user:pass@host`).
 */
export function secretValues(config: unknown): string[] {
  const out = new Set<string>();
  const walk = (v: unknown, secret: boolean, depth: number): void => {
    if (depth > 20 || v === null || v === undefined) return;
    if (typeof v === 'string') {
      if (secret && v !== '') out.add(v);
      for (const c of urlCredentials(v)) out.add(c);
      return;
    }
    // A list under a secret key is a list of secrets; an object's own keys decide for its values
    // (`tokens: [{ name, token }]`: the token is secret, its name is not).
    if (Array.isArray(v)) return v.forEach((x) => walk(x, secret, depth + 1));
    if (typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, isSecretKey(k), depth + 1);
  };
  walk(config, false, 0);
  return [...out];
}

/** `scheme://user:password@`: group 1 up to the colon, group 2 the password. */
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:)([^\s/@]+)@/gi;

function urlCredentials(s: string): string[] {
  const found: string[] = [];
  for (const m of s.matchAll(URL_USERINFO)) {
    if (m[2]) found.push(m[2], safeDecode(m[2]));
  }
  return found;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export const REDACTED = '[redacted]';

/**
 * A function that replaces every secret value (and its JSON-escaped and URL-encoded forms) and
 * the password of any `scheme://user:pass@` in a text with `[redacted]`.
 */
export function scrubber(secrets: readonly string[]): (text: string) => string {
  const forms = new Set<string>();
  for (const s of secrets) {
    if (s.length < MIN_SCRUB_LENGTH) continue;
    forms.add(s);
    forms.add(JSON.stringify(s).slice(1, -1));
    forms.add(encodeURIComponent(s));
  }
  const ordered = [...forms].sort((a, b) => b.length - a.length);
  return (text: string) => {
    let out = text;
    for (const f of ordered) if (out.includes(f)) out = out.split(f).join(REDACTED);
    return out.replace(URL_USERINFO, `$1${REDACTED}@`);
  };
}

/**
 * Scrubs everything this process writes to stdout and stderr (a CLI's output: `status`, `validate`,
 * error lines). Call once, as soon as the config (and so its secrets) is known.
 */
export function scrubProcessOutput(secrets: readonly string[]): void {
  const scrub = scrubber(secrets);
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string') return write(scrub(chunk), ...rest);
      if (chunk instanceof Uint8Array) return write(scrub(Buffer.from(chunk).toString('utf8')), ...rest);
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
}
