import type { Socket } from 'node:net';
import type { DevicePrefix } from './device-prefix.js';
import { Framer } from './framing.js';
import type { FramingConfig } from './schema.js';

/** What a connection reports to its collector. */
export interface ConnectionSink {
  read(bytes: number): void;
  scan(device: string, raw: Buffer, receivedAt: number): void;
  oversize(conn: ScanConnection, length: number): void;
  /** The connection closed in the middle of a frame: those bytes are not a scan. */
  partial(conn: ScanConnection, length: number): void;
  idle(conn: ScanConnection): void;
  error(conn: ScanConnection, err: NodeJS.ErrnoException): void;
  closed(conn: ScanConnection): void;
}

export interface ConnectionOptions {
  framing: FramingConfig;
  prefix: DevicePrefix | undefined;
  idleTimeoutMs: number;
  keepaliveMs: number;
}

/**
 * One scanner's TCP connection: frames its bytes into scans, closes it when silent too long, and
 * stops reading while the outbox is full (the socket is paused: the kernel's buffer fills and the
 * sender's window closes, so the device holds its scans instead of the agent's memory).
 */
export class ScanConnection {
  private readonly framer: Framer;
  private paused = false;

  constructor(
    readonly socket: Socket,
    /** The connection's device id (a scan's prefix can name another). */
    readonly device: string,
    private readonly opts: ConnectionOptions,
    private readonly sink: ConnectionSink,
  ) {
    this.framer = new Framer(opts.framing);
    if (opts.keepaliveMs > 0) socket.setKeepAlive(true, opts.keepaliveMs);
    socket.setTimeout(opts.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => {
      // A paused connection is silent because the agent stopped reading it, not because the device went away.
      if (this.paused) return;
      sink.idle(this);
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => sink.error(this, err));
    socket.on('close', () => {
      const partial = this.framer.end();
      if (partial > 0) sink.partial(this, partial);
      sink.closed(this);
    });
  }

  /** Where the connection comes from, for logs. */
  get peer(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /** Bytes held for an unfinished frame. */
  get pending(): number {
    return this.framer.pending;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
    this.socket.setTimeout(0);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.setTimeout(this.opts.idleTimeoutMs);
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const at = Date.now();
    this.sink.read(chunk.length);
    for (const ev of this.framer.push(chunk)) {
      if (ev.kind === 'oversize') {
        this.sink.oversize(this, ev.length);
        continue;
      }
      const split = this.opts.prefix?.split(ev.bytes);
      if (split) this.sink.scan(split.device, split.raw, at);
      else this.sink.scan(this.device, ev.bytes, at);
    }
  }
}
