import { describe, expect, it } from 'vitest';
import type { ServerResponse } from 'node:http';
import { LiveClient } from '../../../cloud-relay/api/live-client.js';

/** A response whose client never reads: everything written stays buffered. */
function stuckResponse() {
  const r = { writableLength: 0, destroyed: false, chunks: 0, write(c: string) { r.writableLength += c.length; r.chunks++; return false; }, destroy() { r.destroyed = true; }, end() {} };
  return r;
}

describe('live client buffering', () => {
  it('drops a client that does not read once its buffer passes the bound, instead of buffering forever', () => {
    const res = stuckResponse();
    const drops: number[] = [];
    const c = new LiveClient(res as unknown as ServerResponse, 10_000, (b) => drops.push(b));
    for (let i = 0; i < 1_000; i++) c.send('changes', { i, pad: 'x'.repeat(100) });
    expect(res.destroyed).toBe(true);
    expect(drops).toHaveLength(1);
    expect(res.writableLength).toBeLessThan(10_000 + 200);
    expect(c.isClosed).toBe(true);
  });
});
