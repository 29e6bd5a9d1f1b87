import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { idempotencyKey, WebhookSink, webhookSinkSchema } from '../../../cloud-relay/sinks/webhook.js';
import type { DeliveryBatch } from '../../../cloud-relay/sinks/sink.js';
import { FlakyReceiver } from './receiver.js';

const receivers: FlakyReceiver[] = [];
afterEach(async () => {
  for (const r of receivers.splice(0)) await r.stop();
});

const batch = (ids: string[]): DeliveryBatch => ({
  sink: 'erp',
  stream: { site: 'plant-7', agent: 'edge-1', stream: 'orders', epoch: 'epoch-aaaaaaaa' },
  events: ids.map((id, i) => ({ id, seq: i + 1, correlation_id: null, value: { id } })),
});

it('delivers events whose ids are any text (Cyrillic key column, a line break): the Idempotency-Key is percent-encoded UTF-8, ASCII ids unchanged', async () => {
  const rx = await FlakyReceiver.start({ seed: 1, secret: 'test-signing-secret-0123456789' });
  receivers.push(rx);
  const sink = new WebhookSink(webhookSinkSchema.parse({ type: 'webhook', name: 'erp', url: rx.url, secret: 'test-signing-secret-0123456789' }));
  const ids = ['orders/Жук-1|Москва/0f3a', 'orders/a\nb 100%/77c1'];
  await sink.deliver(batch(ids), new AbortController().signal);
  expect(rx.streams.get('plant-7/edge-1/orders')!.map((e) => e.id)).toEqual(ids);
  expect(rx.idempotencyKeys).toHaveLength(1);
  expect(rx.idempotencyKeys[0]).toMatch(/^[\x21-\x7e]+$/);
  expect(decodeURIComponent(rx.idempotencyKeys[0]!)).toBe(`plant-7/edge-1/orders/${ids[0]}..${ids[1]}`);
  // Plain ids are sent as they are, after the stream they are unique in.
  expect(idempotencyKey(batch(['orders.csv#41']))).toBe('plant-7/edge-1/orders/orders.csv#41');
  expect(idempotencyKey(batch(['a:1', 'a:2', 'a:3']))).toBe('plant-7/edge-1/orders/a:1..a:3');
  // A lone surrogate (JSON allows one) does not throw either.
  expect(idempotencyKey(batch(['x\ud800']))).toBe('plant-7/edge-1/orders/x%EF%BF%BD');
  // The same id at another site is another key: a receiver honouring the key alone keeps both.
  const other: DeliveryBatch = { ...batch(['orders.csv#41']), stream: { site: 'plant-9', agent: 'edge-1', stream: 'orders', epoch: 'epoch-aaaaaaaa' } };
  expect(idempotencyKey(other)).toBe('plant-9/edge-1/orders/orders.csv#41');
});

it('does not follow a redirect: a POST answered 301 fails (fetch would send a GET without the body, and a 200 to it lost the batch); 307 does not carry the headers on', async () => {
  const seen: Array<{ method: string; url: string; body: string; key: string | undefined }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body, key: (req.headers as IncomingHttpHeaders)['x-api-key'] as string | undefined });
      if (req.url === '/moved') res.writeHead(301, { location: '/new?token=t0k3n' }).end();
      else if (req.url === '/temporary') res.writeHead(307, { location: '/new' }).end();
      else res.writeHead(200).end('ok');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  try {
    for (const [path, status] of [['moved', 301], ['temporary', 307]] as const) {
      const sink = new WebhookSink(webhookSinkSchema.parse({ type: 'webhook', name: 'erp', url: `http://127.0.0.1:${port}/${path}`, headers: { 'X-Api-Key': 'k-123' } }));
      const err = await sink.deliver(batch(['orders.csv#1']), new AbortController().signal).then(
        () => undefined,
        (e: unknown) => e as Error & { code?: string },
      );
      expect(err?.code).toBe('ERP_SINK_DELIVERY');
      expect(err?.message).toMatch(new RegExp(`HTTP ${status}, a redirect to http://127\\.0\\.0\\.1:${port}/new.*redirects are not followed`));
      expect(err?.message).not.toContain('t0k3n');
    }
    // Only the two POSTs reached the server: nothing went on to /new.
    expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /moved', 'POST /temporary']);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
