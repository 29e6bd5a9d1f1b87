import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A userspace TCP proxy between a client (the agent) and a server (the broker), for network faults
 * in tests and the chaos runner. Named by what it does, not by what a network does: it can
 *
 * - `blackhole()`: the connections open now stop carrying bytes in both directions; nothing is
 *   closed, no FIN, no RST — the bytes vanish, as over a dead NAT entry or a cut WAN line. New
 *   connections made afterwards pass normally: the link "comes back" for whoever reconnects, which
 *   is the realistic case (a NAT entry or route that died; the peer must notice and reconnect) and
 *   what a dead-link detector must handle. Those blackholed connections stay dead until `reset()`
 *   or `close()`. `blackhole({ newConnections: true })` swallows new connections too (accepted,
 *   then silent: a WAN link that is down) until `restore()`, after which new ones pass again while
 *   the old ones stay dead.
 * - `reset()`: every open connection is closed with an RST on both sides.
 * - `delay(ms)`: every chunk is held `ms` in each direction (order kept); `delay(0)` ends it.
 *
 * It cannot make packet loss: TCP below it retransmits, so "30 % loss" is not something a
 * userspace proxy can produce (that needs `tc netem`, which this machine lacks).
 */
export class TcpProxy {
  private readonly conns = new Set<ProxiedConnection>();
  private delayMs = 0;
  /** Connections accepted so far (a reconnect shows up here). */
  accepted = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly targetPort: number,
    private readonly targetHost: string,
  ) {}

  static async start(targetPort: number, opts: { port?: number; targetHost?: string } = {}): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const proxy = new TcpProxy(server, port, targetPort, opts.targetHost ?? '127.0.0.1');
    server.on('connection', (s) => proxy.accept(s));
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Connections open now (blackholed ones included). */
  get open(): number {
    return this.conns.size;
  }

  private blackholeNew = false;

  blackhole(opts: { newConnections?: boolean } = {}): void {
    for (const c of this.conns) c.blackholed = true;
    if (opts.newConnections) this.blackholeNew = true;
  }

  /** New connections pass again (those blackholed stay dead, as a NAT entry that is gone). */
  restore(): void {
    this.blackholeNew = false;
  }

  reset(): void {
    for (const c of [...this.conns]) c.reset();
  }

  delay(ms: number): void {
    this.delayMs = ms;
  }

  async close(): Promise<void> {
    this.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.accepted++;
    const upstream = connect(this.targetPort, this.targetHost);
    const c = new ProxiedConnection(client, upstream, () => this.delayMs, () => this.conns.delete(c));
    c.blackholed = this.blackholeNew;
    this.conns.add(c);
  }
}

class ProxiedConnection {
  blackholed = false;
  private closed = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    delayMs: () => number,
    private readonly onGone: () => void,
  ) {
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.pipe(client, upstream, delayMs);
    this.pipe(upstream, client, delayMs);
    for (const s of [client, upstream]) {
      s.on('error', () => this.reset());
      s.on('close', () => this.end());
    }
  }

  private pipe(from: Socket, to: Socket, delayMs: () => number): void {
    let nextAt = 0;
    from.on('data', (chunk: Buffer) => {
      if (this.blackholed || this.closed) return; // the bytes vanish
      const d = delayMs();
      if (d <= 0 && nextAt <= Date.now()) {
        to.write(chunk);
        return;
      }
      // In order: never before a chunk held earlier.
      nextAt = Math.max(Date.now() + d, nextAt);
      setTimeout(() => {
        if (!this.blackholed && !this.closed) to.write(chunk);
      }, nextAt - Date.now());
    });
  }

  /** RST both ways. */
  reset(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.resetAndDestroy();
    this.upstream.resetAndDestroy();
    this.onGone();
  }

  /** One side closed: close the other (unless blackholed, where nothing passes, not even a FIN). */
  private end(): void {
    if (this.closed) return;
    if (this.blackholed) {
      // A FIN from one side cannot cross a dead link; the other side keeps its socket.
      return;
    }
    this.closed = true;
    this.client.destroy();
    this.upstream.destroy();
    this.onGone();
  }
}
