import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { once } from 'node:events';

export interface WebhookRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/**
 * A real HTTP receiver for the relay's alert webhook, on a free loopback port. `failFirst`
 * requests are answered 503 (and recorded in `failed`); the others 200 (recorded in `received`).
 * `redirectFirst` POSTs are answered 301 to /moved (recorded in `failed`), which accepts anything
 * (a client that follows it lands there). `waitFor(n)` resolves once `n` requests were accepted:
 * tests await it instead of sleeping.
 */
export class WebhookServer {
  readonly received: WebhookRequest[] = [];
  readonly failed: WebhookRequest[] = [];
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
    public failFirst: number,
    public redirectFirst: number,
  ) {}

  static async start(o: { failFirst?: number; redirectFirst?: number } = {}): Promise<WebhookServer> {
    let self: WebhookServer | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r: WebhookRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') };
        if (self!.redirectFirst > 0 && req.method === 'POST') {
          self!.redirectFirst--;
          self!.failed.push(r);
          res.writeHead(301, { location: '/moved' }).end();
          return;
        }
        if (self!.failFirst > 0) {
          self!.failFirst--;
          self!.failed.push(r);
          res.writeHead(503).end('down');
          return;
        }
        self!.received.push(r);
        res.writeHead(200).end('ok');
        self!.notify();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    self = new WebhookServer(server, `http://127.0.0.1:${port}/hook`, o.failFirst ?? 0, o.redirectFirst ?? 0);
    return self;
  }

  /** Resolves once `n` requests were accepted (at once if already), or rejects after `timeoutMs` (a deadline, not a synchronisation). */
  waitFor(n: number, timeoutMs = 15_000): Promise<void> {
    if (this.received.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`webhook: ${this.received.length} of ${n} requests after ${timeoutMs} ms: ${JSON.stringify(this.received.map((r) => r.body))}`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  private notify(): void {
    const ready = this.waiters.filter((w) => this.received.length >= w.n);
    this.waiters = this.waiters.filter((w) => this.received.length < w.n);
    for (const w of ready) w.resolve();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
