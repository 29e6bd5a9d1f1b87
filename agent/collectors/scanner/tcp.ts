import { connect, createServer, type Server, type Socket } from 'node:net';
import { isErpEdgeError, portInUseError } from '../../../common/errors.js';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import { Backoff } from './backoff.js';
import { DevicePrefix } from './device-prefix.js';
import { ScanBook } from './scan.js';
import { ScanQueue } from './scan-queue.js';
import { listenPorts, type ScannerTcpConfig } from './schema.js';
import { ScanConnection, type ConnectionOptions, type ConnectionSink } from './tcp-connection.js';

/**
 * scanner-tcp: scanners that stream lines over TCP, either connecting to the agent (`listen`) or
 * serving a port the agent connects to (`connect`, typical of serial-to-Ethernet gateways). Bytes
 * become scans in the framer; scans are numbered per device and appended in arrival order by the
 * scan queue. Nothing a device sends can take the collector down: noise is recorded as invalid
 * scans, over-long lines and cut-off frames are counted and logged, a silent connection is closed.
 */
export function create(cfg: ScannerTcpConfig, ctx: CollectorContext): Collector {
  return new ScannerTcpCollector(cfg, ctx);
}

interface Counters {
  /** Connections accepted or made, in all. */
  connections_total: number;
  /** Refused: over `max_connections`. */
  connections_refused: number;
  /** connect mode: attempts that failed. */
  connect_failures: number;
  /** Bytes read from devices. */
  bytes_read: number;
  /** Frames over `framing.max_length`, discarded. */
  oversize: number;
  /** Connections closed in the middle of a frame (those bytes are not a scan). */
  partial_discarded: number;
  /** Connections closed because they were silent for `idle_timeout`. */
  idle_closed: number;
  socket_errors: number;
  /** Times reading was paused for back-pressure. */
  pauses: number;
  /** Scans read but not stored because the collector was stopped first (outbox full at stop). */
  lost_at_stop: number;
}

const LOG_INTERVAL_MS = 60_000;

/**
 * Many devices at once are bounded by commits, not CPU: with a synchronous (fsync'd) outbox a
 * commit takes tens of ms, so a commit carries up to 5 000 scans, and reading pauses only when two
 * commits' worth wait (at most 10 000 × max_length bytes held; typical scans are under 100 bytes).
 */
const QUEUE = { maxBatch: 5_000, highWater: 10_000 };

export class ScannerTcpCollector implements Collector {
  private readonly log: Logger;
  private readonly book: ScanBook;
  private readonly queue: ScanQueue;
  private readonly conns = new Set<ScanConnection>();
  private readonly servers: Server[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly connecting = new Set<Socket>();
  private readonly throttle = new LogThrottle(LOG_INTERVAL_MS);
  private readonly connOpts: ConnectionOptions;
  private readonly sink: ConnectionSink;
  private readonly byAddress = new Map<string, string>();
  private readonly byPort = new Map<number, string>();
  private readonly counters: Counters = {
    connections_total: 0,
    connections_refused: 0,
    connect_failures: 0,
    bytes_read: 0,
    oversize: 0,
    partial_discarded: 0,
    idle_closed: 0,
    socket_errors: 0,
    pauses: 0,
    lost_at_stop: 0,
  };
  private failed = false;
  private closing = false;

  constructor(
    private readonly cfg: ScannerTcpConfig,
    private readonly ctx: CollectorContext,
    /** Queue sizes (tests and the bench; the defaults suit a site). */
    tuning: { highWater?: number | undefined; maxBatch?: number | undefined } = {},
  ) {
    this.log = ctx.logger;
    this.book = new ScanBook(ctx.writer, { gs1: { gsReplacement: cfg.gs1.gs_replacement, assumeGs1: cfg.gs1.assume }, repeatWindowMs: cfg.repeat_window });
    this.queue = new ScanQueue({ writer: ctx.writer, book: this.book, whenFull: 'wait', maxBatch: tuning.maxBatch ?? QUEUE.maxBatch, highWater: tuning.highWater ?? QUEUE.highWater });
    // The queue pauses when scans wait faster than the outbox takes them: the outbox is full
    // under `block`, or the disk is slower than the devices for a moment.
    this.queue.on('pause', () => {
      this.counters.pauses++;
      this.warn('pause', { backlog: this.queue.backlog, connections: this.conns.size, pauses: this.counters.pauses }, 'scans arrive faster than the outbox takes them (full?): connections paused, the devices hold their scans');
      for (const c of this.conns) c.pause();
    });
    this.queue.on('resume', () => {
      this.log.debug({ backlog: this.queue.backlog }, 'scanner connections resumed');
      for (const c of this.conns) c.resume();
    });
    for (const d of cfg.devices) {
      if (d.address !== undefined) this.byAddress.set(plainAddress(d.address), d.id);
      if (d.local_port !== undefined) this.byPort.set(d.local_port, d.id);
    }
    this.connOpts = {
      framing: cfg.framing,
      prefix: cfg.device_prefix ? new DevicePrefix(cfg.device_prefix) : undefined,
      idleTimeoutMs: cfg.idle_timeout,
      keepaliveMs: cfg.keepalive,
    };
    this.sink = {
      read: (n) => (this.counters.bytes_read += n),
      scan: (device, raw, receivedAt) => this.onScan(device, raw, receivedAt),
      oversize: (c, length) => {
        this.counters.oversize++;
        this.warn(`oversize:${c.device}`, { device: c.device, peer: c.peer, length, max_length: cfg.framing.max_length }, 'scan longer than framing.max_length discarded');
      },
      partial: (c, length) => {
        this.counters.partial_discarded++;
        this.warn(`partial:${c.device}`, { device: c.device, peer: c.peer, bytes: length }, 'connection closed in the middle of a scan; the unfinished bytes are not a scan');
      },
      idle: (c) => {
        this.counters.idle_closed++;
        this.warn(`idle:${c.device}`, { device: c.device, peer: c.peer, idle_timeout_ms: cfg.idle_timeout }, 'silent connection closed after idle_timeout');
      },
      error: (c, err) => {
        this.counters.socket_errors++;
        this.warn(`error:${c.device}:${err.code ?? ''}`, { device: c.device, peer: c.peer, err: { message: err.message, code: err.code } }, 'scanner connection error');
      },
      closed: (c) => this.conns.delete(c),
    };
    ctx.signal.addEventListener('abort', () => this.close(), { once: true });
  }

  async start(): Promise<void> {
    if (this.cfg.mode === 'listen') {
      for (const port of listenPorts(this.cfg.port)) this.servers.push(await this.listen(port));
      this.log.info({ host: this.cfg.host, port: this.cfg.port, devices: this.cfg.devices.length }, 'scanner-tcp listening');
    } else {
      for (const d of this.cfg.devices) this.connectTo(d.id, d.host!, d.port!, new Backoff(this.cfg.reconnect));
      this.log.info({ devices: this.cfg.devices.map((d) => `${d.id}@${d.host}:${d.port}`) }, 'scanner-tcp connecting to devices');
    }
  }

  /** Stops reading, then waits for what was read to be appended (or given up: the instance is stopped). */
  async stop(): Promise<void> {
    this.close();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    await this.queue.drain();
    if (this.counters.lost_at_stop > 0) this.log.warn({ scans: this.counters.lost_at_stop }, 'scans read but not stored: the collector stopped while the outbox was full');
  }

  stats(): CollectorStats {
    let paused = 0;
    for (const c of this.conns) if (c.isPaused) paused++;
    return {
      counters: {
        connections: this.conns.size,
        ...this.counters,
        ...this.book.stats(),
        backlog: this.queue.backlog,
        connections_paused: paused,
      },
      exceptions: this.book.exceptions(),
    };
  }

  /** Bytes held for unfinished frames across connections (bounded by max_length each). */
  heldBytes(): number {
    let n = 0;
    for (const c of this.conns) n += c.pending;
    return n;
  }

  private listen(port: number): Promise<Server> {
    const server = createServer((socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? portInUseError(this.cfg.host, port, `collectors.${this.cfg.name}.port`, err) : err));
      server.listen(port, this.cfg.host, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.warn('server', { err: { message: err.message } }, 'scanner-tcp server error'));
        resolve(server);
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.closing || this.conns.size >= this.cfg.max_connections) {
      this.counters.connections_refused++;
      this.warn('refused', { peer: `${socket.remoteAddress}:${socket.remotePort}`, max_connections: this.cfg.max_connections }, 'scanner connection refused: max_connections reached');
      socket.destroy();
      return;
    }
    const address = plainAddress(socket.remoteAddress ?? 'unknown');
    const device = this.byAddress.get(address) ?? (socket.localPort !== undefined ? this.byPort.get(socket.localPort) : undefined) ?? address;
    this.attach(socket, device);
  }

  private attach(socket: Socket, device: string): ScanConnection {
    this.counters.connections_total++;
    const c = new ScanConnection(socket, device, this.connOpts, this.sink);
    this.conns.add(c);
    // Accepted while the outbox is full: the connection waits like the others.
    if (this.queue.paused) c.pause();
    return c;
  }

  private connectTo(id: string, host: string, port: number, backoff: Backoff): void {
    if (this.closing) return;
    const socket = connect({ host, port });
    this.connecting.add(socket);
    let conn: ScanConnection | undefined;
    let connectedAt = 0;
    socket.setTimeout(this.cfg.connect_timeout);
    const onConnectTimeout = () => socket.destroy(Object.assign(new Error(`no connection within connect_timeout (${this.cfg.connect_timeout} ms)`), { code: 'ETIMEDOUT' }));
    socket.once('timeout', onConnectTimeout);
    const onConnectError = (err: NodeJS.ErrnoException) => {
      this.counters.connect_failures++;
      this.warn(`connect:${id}`, { device: id, host, port, failures: backoff.failures + 1, err: { message: err.message, code: err.code } }, 'cannot connect to scanner; retrying with back-off');
    };
    socket.on('error', onConnectError);
    socket.once('connect', () => {
      this.connecting.delete(socket);
      socket.off('timeout', onConnectTimeout);
      socket.off('error', onConnectError);
      connectedAt = Date.now();
      if (backoff.failures > 0) this.log.info({ device: id, host, port, after_failures: backoff.failures }, 'connected to scanner');
      this.throttle.reset(`connect:${id}`);
      conn = this.attach(socket, id);
    });
    socket.once('close', () => {
      this.connecting.delete(socket);
      if (this.closing) return;
      // A connection that carried data or lasted was a good one: start the back-off over. One that
      // the gateway accepts and drops at once keeps backing off.
      if (conn && (socket.bytesRead > 0 || Date.now() - connectedAt >= this.cfg.reconnect.max)) backoff.reset();
      const wait = backoff.next();
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.connectTo(id, host, port, backoff);
      }, wait);
      this.timers.add(t);
    });
  }

  private onScan(device: string, raw: Buffer, receivedAt: number): void {
    this.queue.push({ device, raw, receivedAt }).catch((err: unknown) => this.appendFailed(err));
  }

  private appendFailed(err: unknown): void {
    if (this.ctx.signal.aborted) {
      this.counters.lost_at_stop++;
      return;
    }
    if (this.failed) return;
    this.failed = true;
    // The outbox refused the scans for a reason other than being stopped (closed, disk error):
    // the supervisor restarts the collector; the devices reconnect (or resend) to the new one.
    this.ctx.fail(isErpEdgeError(err) ? err : err instanceof Error ? err : new Error(String(err)));
  }

  /** Stops accepting and reading: servers stop listening, connections and reconnect timers go. */
  private close(): void {
    if (this.closing) return;
    this.closing = true;
    for (const s of this.servers) s.close();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.connecting) s.destroy();
    for (const c of this.conns) c.close();
  }

  private warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.throttle.take(key);
    if (t) this.log.warn({ ...fields, ...(t.suppressed > 0 ? { repeated: t.suppressed } : {}) }, msg);
  }
}

/** `::ffff:10.1.2.3` (an IPv4 peer on a dual-stack socket) is `10.1.2.3`. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
