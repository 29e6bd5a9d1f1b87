import { createHmac } from 'node:crypto';
import { batchKey, eventKey } from './event-key.js';
import { z } from 'zod';
import { durationMs } from '../../common/duration.js';
import { ErpEdgeError } from '../../common/errors.js';
import { safeUrl } from '../../common/logger.js';
import { deliverySettings } from './delivery-settings.js';
import type { DeliveryBatch, Sink } from './sink.js';

export const webhookSinkSchema = z.strictObject({
  type: z.literal('webhook'),
  ...deliverySettings,
  /** Receives each batch as a JSON POST; credentials go in `headers` (a URL's user info is refused: it would reach logs). */
  url: z
    .string()
    .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
    .refine((u) => !/^https?:\/\/[^/]*@/.test(u), 'put credentials in headers (e.g. Authorization), not in the URL'),
  /** Extra request headers (e.g. Authorization); never logged. */
  headers: z.record(z.string(), z.string()).default({}),
  /**
   * Key of the HMAC-SHA256 signature over the request body, sent as `<signature_header>: sha256=<hex>`.
   * Use `${VAR}`; never logged. Without it requests are not signed.
   */
  secret: z.string().min(16, 'use at least 16 characters (e.g. openssl rand -hex 32)').optional(),
  signature_header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an HTTP header name').default('X-Erp-Edge-Signature'),
  /** One request's deadline: a request without an answer by then counts as a failure (and is retried). */
  timeout: durationMs.refine((v) => v > 0, 'must be more than 0').default(10_000),
});
export type WebhookSinkConfig = z.output<typeof webhookSinkSchema>;

/** What a webhook receives: one stream's events in seq order. Versioned (`v`). */
export interface WebhookBody {
  v: 1;
  sink: string;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  events: DeliveryBatch['events'];
}

/** `sha256=<hex>` of the body under `secret`: what a receiver recomputes to check a request. */
export function webhookSignature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * The request's Idempotency-Key: the event's key (`<site>/<agent>/<stream>/<id>`, event-key.ts) for
 * a batch of one; `<site>/<agent>/<stream>/<first id>..<last id>` for more. A retried batch carries
 * the same events and so the same key, and no other site's batch can carry it. Each event's own key
 * (`idempotency_key` of a canonical event, or site/agent/stream + `id` in the body) is what a
 * receiver that de-duplicates per event keys on. Ids are any text (a CSV key column, a database
 * key) but a header value is bytes: characters other than visible ASCII, and `%`, are
 * percent-encoded as UTF-8 (decodeURIComponent gives the key back; ASCII reads as is).
 */
export function idempotencyKey(batch: DeliveryBatch): string {
  const first = batch.events[0]!.id;
  const last = batch.events[batch.events.length - 1]!.id;
  return headerSafe(batch.events.length === 1 ? eventKey(batch.stream, first) : batchKey(batch.stream, first, last));
}

/** Without it fetch refuses the request (a character above U+00FF, a line break): the batch could never be delivered. */
function headerSafe(text: string): string {
  return text.replace(/[^\x21-\x24\x26-\x7e]/gu, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

/** HTTP POST of each batch; a 2xx answer within `timeout` is delivered, anything else (a redirect too) throws ERP_SINK_DELIVERY. */
export class WebhookSink implements Sink {
  readonly type = 'webhook';
  readonly name: string;
  private readonly target: string;

  constructor(private readonly cfg: WebhookSinkConfig) {
    this.name = cfg.name;
    this.target = safeUrl(cfg.url);
  }

  async deliver(batch: DeliveryBatch, signal: AbortSignal): Promise<void> {
    const payload: WebhookBody = { v: 1, sink: this.name, ...batch.stream, events: batch.events };
    const body = JSON.stringify(payload);
    const headers: Record<string, string> = { ...this.cfg.headers, 'content-type': 'application/json', 'idempotency-key': idempotencyKey(batch) };
    if (this.cfg.secret !== undefined) headers[this.cfg.signature_header] = webhookSignature(this.cfg.secret, body);
    const timeout = AbortSignal.timeout(this.cfg.timeout);
    let status: number;
    let location: string | null = null;
    try {
      // Redirects are not followed: fetch turns a POST answered 301/302/303 into a GET without the
      // body (a 2xx to that would count the batch delivered, its events lost), and a 307/308 would
      // carry the configured headers (credentials) to wherever it points.
      const res = await fetch(this.cfg.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.any([signal, timeout]) });
      // Read to the end so the connection is reused (the answer itself says nothing we use).
      await res.arrayBuffer();
      status = res.status;
      location = res.headers.get('location');
    } catch (err) {
      const why = timeout.aborted ? `no answer within ${this.cfg.timeout} ms` : signal.aborted ? 'relay stopping' : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
      throw new ErpEdgeError('ERP_SINK_DELIVERY', `webhook ${this.target}: ${why}`, { sink: this.name, url: this.target });
    }
    if (status >= 300 && status <= 399) {
      const to = location === null ? 'no Location' : safeUrl(URL.canParse(location, this.cfg.url) ? new URL(location, this.cfg.url).href : location);
      throw new ErpEdgeError('ERP_SINK_DELIVERY', `webhook ${this.target}: HTTP ${status}, a redirect to ${to}: redirects are not followed, set the sink's url to where the receiver is`, { sink: this.name, url: this.target, status });
    }
    if (status < 200 || status > 299) throw new ErpEdgeError('ERP_SINK_DELIVERY', `webhook ${this.target}: HTTP ${status}`, { sink: this.name, url: this.target, status });
  }

  async close(): Promise<void> {}
}
