import { safeUrl, type Logger } from '../../../common/logger.js';
import type { AlertNotification } from './alert.js';
import type { WebhookConfig } from './rules.js';

/** A notification waiting for the webhook, with what to tell the store once it is delivered. */
export interface Delivery {
  alertId: number;
  body: AlertNotification;
}

export interface WebhookOptions {
  config: WebhookConfig;
  log: Logger;
  /** Called once a delivery is accepted (2xx) or dropped from a full queue: the store stops resending it. */
  done: (d: Delivery) => void;
}

/**
 * POSTs notifications to the webhook one at a time, in the order they were queued (so an
 * alert's resolution never overtakes its firing), retrying the head with exponential back-off
 * until the receiver answers 2xx. `enqueue` never waits: a webhook that is down must not hold up
 * the evaluator or ingest. The queue is bounded; past it the oldest notification is dropped.
 */
export class WebhookSender {
  private readonly queue: Delivery[] = [];
  private running = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private inflight: AbortController | undefined;
  private readonly target: string;
  /** Delivered, failed attempts, dropped: for tests and diagnostics. */
  readonly counts = { delivered: 0, failures: 0, dropped: 0 };

  /** The URL without user info (fetch refuses a URL with credentials) and those credentials as Basic auth. */
  private readonly endpoint: { url: string; headers: Record<string, string> };

  constructor(private readonly o: WebhookOptions) {
    this.target = safeUrl(o.config.url);
    this.endpoint = withoutCredentials(o.config.url);
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(d: Delivery): void {
    if (this.stopped) return;
    this.queue.push(d);
    if (this.queue.length > this.o.config.queue) {
      const lost = this.queue.shift()!;
      this.counts.dropped++;
      this.o.log.error({ webhook: this.target, rule: lost.body.rule, site: lost.body.site, agent: lost.body.agent, status: lost.body.status, queue: this.o.config.queue }, 'alert webhook queue full: oldest notification dropped');
      this.o.done(lost);
    }
    if (!this.running) void this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.inflight?.abort();
    this.wake?.();
  }

  private async run(): Promise<void> {
    this.running = true;
    let delay = this.o.config.retry.initial;
    while (!this.stopped && this.queue.length > 0) {
      const d = this.queue[0]!;
      const failure = await this.post(d.body);
      if (this.stopped) break;
      if (failure === undefined) {
        this.queue.shift();
        this.counts.delivered++;
        delay = this.o.config.retry.initial;
        this.o.done(d);
        continue;
      }
      this.counts.failures++;
      this.o.log.warn({ webhook: this.target, rule: d.body.rule, site: d.body.site, agent: d.body.agent, status: d.body.status, err: failure, retry_in_ms: delay }, 'alert webhook delivery failed; will retry');
      await this.sleep(delay);
      delay = Math.min(delay * 2, this.o.config.retry.max);
    }
    this.running = false;
  }

  /** undefined when delivered; otherwise why not (never the URL's credentials nor the headers). */
  private async post(body: AlertNotification): Promise<string | undefined> {
    const ctl = new AbortController();
    this.inflight = ctl;
    const timer = setTimeout(() => ctl.abort(), this.o.config.timeout);
    try {
      const res = await fetch(this.endpoint.url, {
        method: 'POST',
        headers: { ...this.endpoint.headers, ...this.o.config.headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        // Never followed: a 301/302/303 turns the POST into a GET without the body (a 200 to it
        // would count as delivered), and a 307/308 would carry the headers to wherever it points.
        redirect: 'manual',
        signal: ctl.signal,
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 300 && res.status < 400) return `HTTP ${res.status}, a redirect: not followed, set alerts.webhook.url to where the receiver is`;
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      return ctl.signal.aborted ? `no answer within ${this.o.config.timeout} ms` : (err as Error).message;
    } finally {
      clearTimeout(timer);
      this.inflight = undefined;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}

/** `https://user:pass@host/x` → `https://host/x` and `Authorization: Basic …` (configured headers still win). */
function withoutCredentials(raw: string): { url: string; headers: Record<string, string> } {
  const u = new URL(raw);
  if (!u.username && !u.password) return { url: raw, headers: {} };
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  u.username = '';
  u.password = '';
  return { url: u.toString(), headers: { authorization: `Basic ${basic}` } };
}
