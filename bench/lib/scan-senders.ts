import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { prng } from './prng.js';

export { prng };

/**
 * Scanners as the bench and the tests play them: TCP clients that send scans written at random
 * byte boundaries (one scan split across writes, several in one), from a seeded generator so a run
 * can be repeated exactly.
 */


/**
 * A connected scanner socket (Nagle off: the writes' boundaries reach the wire as they are).
 * `localAddress` (e.g. 127.0.0.7) makes each connection a device of its own by remote address.
 */
export async function dialScanner(port: number, host = '127.0.0.1', localAddress?: string): Promise<Socket> {
  const s = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

/**
 * Writes `data` in pieces of 1..`max` bytes, letting the event loop turn after a piece with
 * probability `yieldP` so the reads split too (in one process with the agent, each turn costs a
 * commit: fewer turns, faster sending).
 */
export async function writeSplit(s: Socket, data: Buffer, rand: () => number, max = 64, yieldP = 0.3): Promise<void> {
  for (let i = 0; i < data.length; ) {
    const n = 1 + Math.floor(rand() * max);
    if (!s.write(data.subarray(i, i + n))) await once(s, 'drain');
    i += n;
    if (rand() < yieldP) await new Promise((r) => setImmediate(r));
  }
}

/** Scans as one byte stream, each followed by `terminator`. */
export function scanLines(codes: readonly string[], terminator = '\r'): Buffer {
  return Buffer.from(codes.map((c) => c + terminator).join(''), 'latin1');
}
