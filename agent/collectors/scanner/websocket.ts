import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { isErpEdgeError, portInUseError } from '../../../common/errors.js';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import { ScanBook } from './scan.js';
import { ScanQueue } from './scan-queue.js';
import type { ScannerWsConfig } from './schema.js';
import { DeviceTokens, tokenOf, type TokenSource } from './websocket-auth.js';
import { describeInvalid, deviceTime, failure, messageIdOf, scanMessage, type ScanReply } from './websocket-message.js';

/** How long stop() waits for a client to answer the 1001 close before its socket is cut. */
const CLOSE_WAIT_MS = 2_000;

export function create(cfg: ScannerWsConfig, ctx: CollectorContext): Collector {
  return new ScannerWsCollector(cfg, ctx);
}

interface Client {
  ws: WebSocket;
  device: string;
  remote: string;
  /** Answered the last ping (or sent something) since it was sent. */
  alive: boolean;
  messages: number;
}

/**
 * scanner-ws: a WebSocket endpoint for handheld apps (protocol: docs/scanner-ws.md). A client is
 * authenticated once, at the upgrade, by its device token (which also names its device); each
 * scan is answered `{ok: true, seq}` only once it is committed to the outbox, so an acked scan
 * survives a kill -9. When the outbox is full under `block` a scan is refused at once with a
 * retry-later error instead of holding the client (ScanQueue with `whenFull: 'refuse'`): nothing is
 * acked that was not written, and the app keeps the scan until it is.
 */
export class ScannerWsCollector implements Collector {
  private readonly log: Logger;
  private readonly tokens: DeviceTokens;
  private readonly clients = new Set<Client>();
  /** Messages being answered (their scans queued for the outbox): stop() waits for their replies. */
  private readonly inflight = new Set<Promise<void>>();
  private readonly throttle = new LogThrottle(60_000);
  private readonly counters = {
    connections_total: 0,
    auth_failures: 0,
    messages: 0,
    accepted: 0,
    invalid_messages: 0,
    device_mismatches: 0,
    full_refusals: 0,
    failed: 0,
    too_large: 0,
    dead_clients: 0,
  };
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private queue: ScanQueue | undefined;
  private book: ScanBook | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private boundUrl = '';

  constructor(
    private readonly cfg: ScannerWsConfig,
    private readonly ctx: CollectorContext,
  ) {
    this.log = ctx.logger;
    this.tokens = new DeviceTokens(cfg.devices);
    // Aborted before stop() is called: refuse new work at once.
    ctx.signal.addEventListener('abort', () => (this.stopping = true), { once: true });
  }

  /** ws://host:port/path as bound (the OS's port when the config says 0). */
  get url(): string {
    return this.boundUrl;
  }

  async start(): Promise<void> {
    const { cfg, ctx } = this;
    this.book = new ScanBook(ctx.writer, { gs1: { gsReplacement: cfg.gs1.gs_replacement, assumeGs1: cfg.gs1.assume }, repeatWindowMs: cfg.repeat_window });
    this.queue = new ScanQueue({ writer: ctx.writer, book: this.book, whenFull: 'refuse' });
    // Scans arriving faster than the outbox commits them (a slow disk): stop reading the sockets
    // until the queue is down again, as the TCP collectors do; nothing read is dropped.
    this.queue.on('pause', () => this.clients.forEach((c) => c.ws.pause()));
    this.queue.on('resume', () => this.clients.forEach((c) => c.ws.resume()));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: cfg.max_message_bytes, clientTracking: false, perMessageDeflate: false });
    const server = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'close' });
      res.end(`scanner endpoint: connect with a WebSocket to ${cfg.path}\n`);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? portInUseError(cfg.host, cfg.port, `collectors.${cfg.name}.port`, err) : err));
      server.listen(cfg.port, cfg.host, () => resolve());
    });
    server.on('error', (err) => this.log.error({ err: { message: err.message } }, 'scanner-ws server error'));
    this.server = server;
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
    this.boundUrl = `ws://${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${port}${cfg.path}`;
    this.pingTimer = setInterval(() => this.ping(), cfg.ping_interval);
    this.pingTimer.unref();
    this.log.info({ url: this.boundUrl, devices: cfg.devices.length }, 'scanner-ws listening');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.pingTimer);
    const server = this.server;
    this.server = undefined;
    // No new connections; upgraded sockets are the clients' and closed below.
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    // Scans already queued are appended (or refused) and answered before their clients are closed.
    await this.queue?.drain();
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    await Promise.all([...this.clients].map((c) => this.closeClient(c)));
    server?.closeAllConnections();
    await closed;
  }

  stats(): CollectorStats {
    return {
      counters: {
        connections: this.clients.size,
        /** Connections not read while scans wait for the outbox (back-pressure). */
        connections_paused: [...this.clients].filter((c) => c.ws.isPaused).length,
        ...this.counters,
        ...(this.book?.stats() ?? {}),
      },
      exceptions: this.book?.exceptions() ?? [],
    };
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // A client that resets mid-handshake must not become an unhandled error.
    socket.on('error', () => socket.destroy());
    const remote = req.socket.remoteAddress ?? 'unknown';
    if (this.stopping) return refuse(socket, 503, 'Service Unavailable');
    if (new URL(req.url ?? '/', 'http://agent').pathname !== this.cfg.path) return refuse(socket, 404, 'Not Found');
    const t = tokenOf(req);
    const device = t ? this.tokens.deviceOf(t.token) : undefined;
    if (!t || device === undefined) {
      this.counters.auth_failures++;
      // Never the token itself, not even in part.
      const reason = t ? `unknown token (in the ${t.source})` : 'no token';
      const line = this.throttle.take(`auth:${remote}:${reason}`);
      if (line) this.log.warn({ remote, reason, count: line.count }, 'scanner-ws connection refused: not authenticated (401)');
      return refuse(socket, 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer' });
    }
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.connected(ws, device, remote, t.source));
  }

  private connected(ws: WebSocket, device: string, remote: string, via: TokenSource): void {
    if (this.stopping) {
      ws.close(1001, 'agent stopping');
      return;
    }
    const client: Client = { ws, device, remote, alive: true, messages: 0 };
    if (this.queue?.paused) ws.pause();
    this.clients.add(client);
    this.counters.connections_total++;
    this.log.debug({ device, remote, via }, 'scanner-ws client connected');
    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data) => this.onMessage(client, data));
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the connection itself (1009 for a message over max_message_bytes, 1002 for a protocol error).
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.counters.too_large++;
      const line = this.throttle.take(`error:${device}:${err.code ?? ''}`);
      if (line) this.log.warn({ device, remote, code: err.code, err: { message: err.message }, count: line.count }, 'scanner-ws client error; connection closed');
    });
    ws.on('close', () => {
      this.clients.delete(client);
      this.log.debug({ device, remote, messages: client.messages }, 'scanner-ws client disconnected');
    });
  }

  private onMessage(client: Client, data: RawData): void {
    client.alive = true;
    client.messages++;
    this.counters.messages++;
    const receivedAt = Date.now();
    let json: unknown;
    try {
      json = JSON.parse(textOf(data));
    } catch (err) {
      this.counters.invalid_messages++;
      this.noteInvalid(client, 'not JSON');
      return this.send(client, failure('ERP_SCAN_INVALID', `not JSON: ${(err as Error).message}`, undefined));
    }
    const batch = Array.isArray(json);
    const items: unknown[] = Array.isArray(json) ? (json as unknown[]) : [json];
    if (items.length === 0) {
      this.counters.invalid_messages++;
      return this.send(client, failure('ERP_SCAN_INVALID', 'an empty array: send one scan object, or an array of them', undefined));
    }
    // Pushed in message order now, so the scans of a connection are stored in the order it sent them.
    const replies = items.map((item) => this.handle(client, item, receivedAt));
    const done = Promise.all(replies).then((r) => this.send(client, batch ? r : r[0]!));
    this.inflight.add(done);
    void done.finally(() => this.inflight.delete(done));
  }

  private async handle(client: Client, item: unknown, receivedAt: number): Promise<ScanReply> {
    const id = messageIdOf(item);
    if (this.stopping) return failure('ERP_SCAN_UNAVAILABLE', 'the agent is stopping; the scan was not recorded, send it again', id, this.cfg.retry_after);
    const parsed = scanMessage.safeParse(item);
    if (!parsed.success) {
      this.counters.invalid_messages++;
      const why = describeInvalid(parsed.error);
      this.noteInvalid(client, why);
      return failure('ERP_SCAN_INVALID', why, id);
    }
    const m = parsed.data;
    if (m.device !== undefined && m.device !== client.device) {
      this.counters.device_mismatches++;
      const line = this.throttle.take(`device:${client.device}`);
      if (line) this.log.warn({ device: client.device, remote: client.remote, claimed: m.device, count: line.count }, 'scanner-ws scan refused: sent as another device than its token is for');
      return failure('ERP_SCAN_FORBIDDEN', `this connection's token is for device ${JSON.stringify(client.device)}, not ${JSON.stringify(m.device)}`, id);
    }
    try {
      const { seq } = await this.queue!.push({
        device: client.device,
        raw: Buffer.from(m.barcode, 'utf8'),
        receivedAt,
        deviceTs: deviceTime(m.ts),
        location: m.location,
        messageId: m.id,
      });
      this.counters.accepted++;
      return { ok: true, seq, ...(id !== undefined ? { id } : {}) };
    } catch (err) {
      if (isErpEdgeError(err, 'ERP_OUTBOX_FULL')) {
        this.counters.full_refusals++;
        const line = this.throttle.take('full');
        if (line) this.log.warn({ refused: line.count }, 'scanner-ws scans refused: the outbox is full (clients are told to retry later)');
        return failure('ERP_OUTBOX_FULL', 'the agent outbox is full; the scan was not recorded, send it again later', id, this.cfg.retry_after);
      }
      this.counters.failed++;
      const line = this.throttle.take('failed');
      if (line && !this.stopping) this.log.error({ err: { message: (err as Error).message }, count: line.count }, 'scanner-ws scan could not be recorded');
      return failure('ERP_SCAN_UNAVAILABLE', 'the scan was not recorded; send it again later', id, this.cfg.retry_after);
    }
  }

  private noteInvalid(client: Client, why: string): void {
    const line = this.throttle.take(`invalid:${client.device}`);
    if (line) this.log.warn({ device: client.device, remote: client.remote, problem: why, count: line.count }, 'scanner-ws message refused: not a valid scan');
  }

  private send(client: Client, reply: ScanReply | ScanReply[]): void {
    // A client gone before its answer resends the scan; its id makes the retry the same record.
    if (client.ws.readyState === WebSocket.OPEN) client.ws.send(JSON.stringify(reply));
  }

  /** Drops clients that did not answer the last ping (a handheld out of Wi-Fi range leaves no FIN). */
  private ping(): void {
    // A paused socket is not read, its pongs neither: not a sign of a dead client.
    if (this.queue?.paused) return;
    for (const c of this.clients) {
      if (!c.alive) {
        this.counters.dead_clients++;
        this.log.info({ device: c.device, remote: c.remote }, 'scanner-ws client did not answer a ping; dropped');
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  private async closeClient(c: Client): Promise<void> {
    if (c.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(c.ws, 'close');
    c.ws.close(1001, 'agent stopping');
    const abort = new AbortController();
    const r = await Promise.race([closed.then(() => 'closed' as const), sleep(CLOSE_WAIT_MS, 'timeout' as const, { signal: abort.signal }).catch(() => 'closed' as const)]);
    abort.abort();
    if (r === 'timeout') c.ws.terminate();
  }
}

/** A message's text; text and binary frames alike (some apps send JSON as binary). */
function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** Answers an upgrade request with an HTTP error and closes the socket. */
function refuse(socket: Duplex, status: number, text: string, headers: Record<string, string> = {}): void {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n${extra}\r\n`);
}
