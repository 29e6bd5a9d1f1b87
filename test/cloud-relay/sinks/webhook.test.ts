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
  expect(decodeURIComponent(rx.idempotencyKeys[0]!)).toBe(`${ids[0]}..${ids[1]}`);
  // Plain ids are sent as they are (what receivers keyed on before).
  expect(idempotencyKey(batch(['orders.csv#41']))).toBe('orders.csv#41');
  expect(idempotencyKey(batch(['a:1', 'a:2', 'a:3']))).toBe('a:1..a:3');
  // A lone surrogate (JSON allows one) does not throw either.
  expect(idempotencyKey(batch(['x\ud800']))).toBe('x%EF%BF%BD');
});
