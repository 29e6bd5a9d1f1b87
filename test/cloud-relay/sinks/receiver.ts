import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { prng } from '../../../bench/lib/prng.js';
import { webhookSignature, type WebhookBody } from '../../../cloud-relay/sinks/webhook.js';

export interface ReceiverOptions {
  /** Seed of the fault schedule: one run is one sequence of answers. */
  seed: number;
  /** Share of requests answered 5xx (not processed). */
  failRate?: number;
  /** Share of requests processed but answered only after `slowMs` (past the sink's timeout). */
  slowRate?: number;
  slowMs?: number;
  /** Checks the signature header when set; a bad one is answered 401 and counted. */
  secret?: string;
  signatureHeader?: string;
}

/**
 * A webhook receiver as a downstream system runs one (a real HTTP server on a free loopback port):
 * it checks the signature, keeps each event once by its id (the idempotency key), in arrival order
 * per stream, and counts repeats. Faults come from a seeded schedule: 5xx answers, and answers
 * slower than the sink waits (the events are taken, the sink does not know it, and sends them again).
 * Streams in `broken` are always answered 500.
 */
export class FlakyReceiver {
  /** Per "site/agent/stream": event ids in first-arrival order, with their seq. */
  readonly streams = new Map<string, Array<{ id: string; seq: number; value: unknown }>>();
  private readonly seen = new Set<string>();
  readonly counts = { requests: 0, accepted: 0, failed: 0, slow: 0, repeats: 0, badSignature: 0, brokenRefused: 0 };
  readonly idempotencyKeys: string[] = [];
  readonly broken = new Set<string>();
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];
  private readonly random: () => number;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly o: ReceiverOptions,
  ) {
    this.random = prng(o.seed);
  }

  static async start(o: ReceiverOptions): Promise<FlakyReceiver> {
    let self!: FlakyReceiver;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => self.handle(Buffer.concat(chunks), req.headers, (status) => res.writeHead(status).end()));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const addr = server.address();
    self = new FlakyReceiver(server, `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/events`, o);
    return self;
  }

  private handle(raw: Buffer, headers: Record<string, string | string[] | undefined>, answer: (status: number) => void): void {
    this.counts.requests++;
    if (this.o.secret) {
      const got = Buffer.from(String(headers[(this.o.signatureHeader ?? 'X-Erp-Edge-Signature').toLowerCase()] ?? ''));
      const want = Buffer.from(webhookSignature(this.o.secret, raw));
      if (got.length !== want.length || !timingSafeEqual(got, want)) {
        this.counts.badSignature++;
        return answer(401);
      }
    }
    const body = JSON.parse(raw.toString('utf8')) as WebhookBody;
    const key = `${body.site}/${body.agent}/${body.stream}`;
    if (this.broken.has(body.stream)) {
      this.counts.brokenRefused++;
      answer(500);
      return this.notify();
    }
    const r = this.random();
    const fail = this.o.failRate ?? 0;
    if (r < fail) {
      this.counts.failed++;
      return answer(503);
    }
    this.idempotencyKeys.push(String(headers['idempotency-key']));
    this.take(key, body);
    if (r < fail + (this.o.slowRate ?? 0)) {
      this.counts.slow++;
      setTimeout(() => answer(200), this.o.slowMs ?? 1_000);
    } else answer(200);
    this.notify();
  }

  private take(key: string, body: WebhookBody): void {
    this.counts.accepted++;
    const list = this.streams.get(key) ?? [];
    this.streams.set(key, list);
    for (const e of body.events) {
      if (this.seen.has(e.id)) {
        this.counts.repeats++;
        continue;
      }
      this.seen.add(e.id);
      list.push({ id: e.id, seq: e.seq, value: e.value });
    }
  }

  /** Seqs taken of one stream of site plant-7, agent edge-1 (the test wire's), in arrival order. */
  seqs(stream: string, site = 'plant-7', agent = 'edge-1'): number[] {
    return (this.streams.get(`${site}/${agent}/${stream}`) ?? []).map((e) => e.seq);
  }

  /** Events taken so far, all streams. */
  get total(): number {
    return this.seen.size;
  }

  /** Resolves once `check` holds after a request (at once if it holds now); rejects after `timeoutMs` (a deadline, not a synchronisation). */
  until(what: string, check: () => boolean, timeoutMs = 120_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver: ${what} not reached in ${timeoutMs} ms; counts ${JSON.stringify(this.counts)}, taken ${this.total}`)), timeoutMs);
      this.waiters.push({ check, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  private notify(): void {
    const ready = this.waiters.filter((w) => w.check());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
