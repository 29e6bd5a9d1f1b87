import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Where a client put its token: browsers cannot set headers on a WebSocket, so the query is allowed too. */
export type TokenSource = 'header' | 'query';

/**
 * The device tokens of a scanner-ws collector. A token names its device: the client cannot pick
 * another. Tokens are kept as SHA-256 hashes and compared with timingSafeEqual over equal-length
 * digests, every entry each time, so the answer's timing says nothing of how much of a guess was right.
 */
export class DeviceTokens {
  private readonly entries: { device: string; hash: Buffer }[];

  constructor(devices: readonly { id: string; token: string }[]) {
    this.entries = devices.map((d) => ({ device: d.id, hash: sha256(d.token) }));
  }

  /** The device this token belongs to, or undefined. */
  deviceOf(token: string): string | undefined {
    const h = sha256(token);
    let found: string | undefined;
    for (const e of this.entries) if (timingSafeEqual(h, e.hash) && found === undefined) found = e.device;
    return found;
  }
}

/** The token of an upgrade request: `Authorization: Bearer <token>` first, else `?token=`. */
export function tokenOf(req: IncomingMessage): { token: string; source: TokenSource } | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return { token: m[1]!, source: 'header' };
  }
  const q = new URL(req.url ?? '/', 'http://agent').searchParams.get('token');
  return q ? { token: q, source: 'query' } : undefined;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
