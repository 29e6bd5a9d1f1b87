import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashes for the relay's dashboard users: `scrypt$N$r$p$salt$hash` (salt and hash in
 * base64). The parameters travel with the hash so a later release can raise the cost without
 * invalidating the hashes already in configs.
 */
const PREFIX = 'scrypt';
/** 2^15 × 8 × 128 B = 32 MiB of memory per hash: OWASP's scrypt floor, ~50–100 ms on a server core. */
const DEFAULTS = { N: 1 << 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const HASH_FORMAT = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

export interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Undefined when `text` is not a hash this module wrote (the config schema reports it). */
export function parsePasswordHash(text: string): ParsedHash | undefined {
  const m = HASH_FORMAT.exec(text);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // N a power of two above 1 (scrypt's rule), and bounded so a config cannot make a login take minutes.
  if (N < 2 || (N & (N - 1)) !== 0 || N > 1 << 20 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const salt = Buffer.from(m[4]!, 'base64');
  const hash = Buffer.from(m[5]!, 'base64');
  if (salt.length < 8 || hash.length < 16) return undefined;
  return { N, r, p, salt, hash };
}

function derive(password: string, salt: Buffer, keylen: number, o: ScryptOptions): Promise<Buffer> {
  // 128·N·r bytes are needed; Node's default maxmem (32 MiB) is exactly the floor, so give headroom.
  const maxmem = 128 * (o.N ?? DEFAULTS.N) * (o.r ?? DEFAULTS.r) * 2;
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, keylen, { ...o, maxmem }, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, DEFAULTS);
  return `${PREFIX}$${DEFAULTS.N}$${DEFAULTS.r}$${DEFAULTS.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time in the password (timingSafeEqual over equal-length keys). */
export async function verifyPassword(password: string, h: ParsedHash): Promise<boolean> {
  const key = await derive(password, h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p });
  return timingSafeEqual(key, h.hash);
}
