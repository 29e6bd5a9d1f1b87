import type { SerialPort } from 'serialport';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import { Backoff } from './backoff.js';
import { DevicePrefix } from './device-prefix.js';
import { Framer, type FrameEvent } from './framing.js';
import { ScanBook } from './scan.js';
import { ScanQueue } from './scan-queue.js';
import type { ScannerSerialConfig } from './schema.js';

/**
 * A scanner on a serial port (RS-232, or a USB adapter: /dev/ttyUSB0, COM3). The port is read as a
 * byte stream and cut into scans by the shared framing; each scan is numbered per device and
 * appended in arrival order (ScanQueue).
 *
 * A port that is not there (adapter unplugged, not yet enumerated at boot) is not a failure of the
 * collector: it keeps trying to open it with capped, jittered back-off (`reconnect`) and shows why in its stats
 * (`port_open`, `last_open_error`); the scans resume when the port comes back. Restarting the
 * collector would not bring the port back sooner and would hide the state behind `error`.
 *
 * Under systemd, `PrivateDevices=yes` gives the service a /dev without physical devices, so
 * /dev/ttyUSB* and /dev/ttyS* are not there (nor an adapter plugged in later): the unit needs
 * `PrivateDevices=no` with `DevicePolicy=closed` and `DeviceAllow=char-ttyUSB rw` (char-ttyS,
 * char-ttyACM), and the service user the `dialout` group; otherwise opening fails with ENOENT or
 * EACCES, shown as `last_open_error` (README, "Serial scanner").
 */
export function create(cfg: ScannerSerialConfig, ctx: CollectorContext): Collector {
  return new SerialScanner(cfg, ctx);
}

type SerialPortClass = typeof SerialPort;

export class SerialScanner implements Collector {
  private readonly log: Logger;
  private readonly device: string;
  private readonly framer: Framer;
  private readonly prefix: DevicePrefix | undefined;
  private readonly book: ScanBook;
  private readonly queue: ScanQueue;
  /** One line per interval for what repeats while a port is away or a sender misbehaves. */
  private readonly throttle = new LogThrottle(60_000);
  private SerialPortCtor: SerialPortClass | undefined;
  private port: SerialPort | undefined;
  /** Grows with failed opens since the port was last open. */
  private readonly backoff: Backoff;
  private retry: NodeJS.Timeout | undefined;
  /** An open in progress: stop() waits for it, so no port is left open behind a stopped instance. */
  private opening: Promise<void> | undefined;
  private stopping = false;
  /** Appends still in flight (their scans were read): stop() waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly counters = {
    port_open: false,
    /** Times the port was opened again after it had been open (an unplug and replug counts one). */
    reopens: 0,
    /** Opens that failed (port missing, busy, no permission). */
    open_failures: 0,
    last_open_error: '',
    /** Times an open port went away (USB unplugged, driver gone). */
    disconnects: 0,
    bytes: 0,
    /** Frames cut short when the port closed: the bytes read of a scan whose end never came. */
    partial_discarded: 0,
    /** Frames over `max_length`, discarded. */
    oversize: 0,
    /** Scans read but not stored: the append failed or the collector was stopped first. */
    lost: 0,
    /** Times reading was paused because the outbox is full (block policy). */
    pauses: 0,
    paused: false,
  };
  private opened = false;
  private failed = false;

  constructor(
    private readonly cfg: ScannerSerialConfig,
    private readonly ctx: CollectorContext,
  ) {
    this.log = ctx.logger.child({ port: cfg.path });
    this.device = cfg.device ?? ctx.name;
    this.framer = new Framer(cfg.framing);
    this.prefix = cfg.device_prefix ? new DevicePrefix(cfg.device_prefix) : undefined;
    this.backoff = new Backoff(cfg.reconnect);
    this.book = new ScanBook(ctx.writer, { gs1: { gsReplacement: cfg.gs1.gs_replacement, assumeGs1: cfg.gs1.assume }, repeatWindowMs: cfg.repeat_window });
    // `wait`: a serial line has no way to say "later"; what was read waits for room, and reading
    // stops meanwhile (pause), so the device's output backs up in the OS buffer and, with
    // `rts_cts`, the device is told to stop sending.
    this.queue = new ScanQueue({ writer: ctx.writer, book: this.book, whenFull: 'wait' });
    this.queue.on('pause', () => this.pauseReading());
    this.queue.on('resume', () => this.resumeReading());
  }

  async start(): Promise<void> {
    // Loaded here, not at module level: `validate` never loads the native binding, and a binding
    // that fails to load is a failed start of this collector only (the supervisor retries it).
    this.SerialPortCtor ??= (await import('serialport')).SerialPort;
    this.stopping = false;
    this.log.info({ baud_rate: this.cfg.baud_rate, device: this.device }, 'serial scanner started');
    await this.tryOpen();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    await this.opening;
    const port = this.port;
    this.port = undefined;
    if (port) await closePort(port);
    this.discardPartial('collector stopped');
    this.counters.port_open = false;
    // What was read is appended (or, when the host already withdrew the writer, counted as lost).
    await this.queue.drain();
    await Promise.allSettled([...this.inFlight]);
  }

  stats(): CollectorStats {
    return {
      counters: {
        ...this.counters,
        ...this.book.stats(),
        /** Scans read and waiting for the outbox. */
        backlog: this.queue.backlog,
        /** Bytes read from the OS but not yet framed: they pile up (to 64 KiB) while reading is paused. */
        read_buffered: this.port?.readableLength ?? 0,
      },
      exceptions: this.book.exceptions(),
    };
  }

  /** Tries to open the port once; on failure schedules the next try. Never rejects. */
  private tryOpen(): Promise<void> {
    const p = this.open().finally(() => {
      if (this.opening === p) this.opening = undefined;
    });
    this.opening = p;
    return p;
  }

  private async open(): Promise<void> {
    const Ctor = this.SerialPortCtor!;
    let port: SerialPort;
    try {
      port = new Ctor({
        path: this.cfg.path,
        baudRate: this.cfg.baud_rate,
        dataBits: this.cfg.data_bits,
        stopBits: this.cfg.stop_bits,
        parity: this.cfg.parity,
        rtscts: this.cfg.rts_cts,
        autoOpen: false,
      });
    } catch (err) {
      this.openFailed(err as Error);
      return;
    }
    const err = await new Promise<Error | null>((resolve) => port.open(resolve));
    if (this.stopping) {
      if (!err) await closePort(port);
    } else if (err) this.openFailed(err);
    else this.onOpened(port);
  }

  private onOpened(port: SerialPort): void {
    this.port = port;
    this.counters.port_open = true;
    if (this.opened) this.counters.reopens++;
    this.opened = true;
    this.backoff.reset();
    this.throttle.reset('open');
    this.log.info({ reopens: this.counters.reopens }, 'serial port open');
    // Still paused by back-pressure from before the port went away: stay paused.
    if (this.queue.paused) port.pause();
    port.on('data', (chunk: Buffer) => this.onData(chunk));
    port.on('close', (err: Error | null) => this.onClose(port, err));
    // A read of 0 bytes ends the stream without a close: the device is gone all the same.
    port.on('end', () => void closePort(port));
    // Errors of an open port (a failed write, a failed close) are followed by `close` when they end
    // it; log them, the close handler reopens.
    port.on('error', (err: Error) => {
      const t = this.throttle.take('port-error');
      if (t) this.log.warn({ err: { message: err.message }, count: t.count }, 'serial port error');
    });
  }

  private openFailed(err: Error): void {
    this.counters.open_failures++;
    this.counters.last_open_error = err.message;
    const delay = this.backoff.next();
    const t = this.throttle.take('open');
    if (t) this.log.warn({ err: { message: err.message }, failed_opens: t.count, retry_ms: delay }, 'serial port cannot be opened; retrying');
    this.scheduleOpen(delay);
  }

  private onClose(port: SerialPort, err: Error | null): void {
    port.removeAllListeners('data');
    if (this.port !== port || this.stopping) return;
    this.port = undefined;
    this.counters.port_open = false;
    this.counters.disconnects++;
    this.discardPartial('port closed');
    const delay = this.backoff.next();
    // A flapping adapter must not flood the log: one line per interval, with the count.
    const t = this.throttle.take('gone');
    if (t) this.log.warn({ err: err ? { message: err.message } : undefined, disconnects: t.count, retry_ms: delay }, 'serial port went away; reopening');
    this.scheduleOpen(delay);
  }

  private scheduleOpen(delay: number): void {
    if (this.stopping) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.tryOpen();
    }, delay);
  }

  private onData(chunk: Buffer): void {
    const receivedAt = Date.now();
    this.counters.bytes += chunk.length;
    for (const ev of this.framer.push(chunk)) this.onFrame(ev, receivedAt);
  }

  private onFrame(ev: FrameEvent, receivedAt: number): void {
    if (ev.kind === 'oversize') {
      this.counters.oversize++;
      const t = this.throttle.take('oversize');
      if (t) this.log.warn({ length: ev.length, max_length: this.cfg.framing.max_length, count: t.count }, 'frame over max_length discarded');
      return;
    }
    // A multiplexer on one port puts each scan's device in front of it.
    const { device, raw } = this.prefix?.split(ev.bytes) ?? { device: this.device, raw: ev.bytes };
    const p = this.queue.push({ device, raw, receivedAt }).then(
      () => undefined,
      (err: unknown) => this.appendFailed(err),
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private appendFailed(err: unknown): void {
    this.counters.lost++;
    // Stopped by the host: the successor instance owns the sequence, this one may not append.
    if (this.ctx.signal.aborted) {
      const t = this.throttle.take('lost-at-stop');
      if (t) this.log.warn({ count: t.count }, 'scans read while stopping were not stored');
      return;
    }
    // The outbox itself failed (disk, database): the supervisor restarts the collector, once for
    // the whole batch whose scans all carry this error.
    if (this.failed) return;
    this.failed = true;
    this.ctx.fail(err);
  }

  private discardPartial(why: string): void {
    const bytes = this.framer.end();
    if (bytes === 0) return;
    this.counters.partial_discarded++;
    this.log.warn({ bytes, why }, 'unfinished frame discarded');
  }

  private pauseReading(): void {
    this.counters.pauses++;
    this.counters.paused = true;
    this.log.info({ backlog: this.queue.backlog }, 'outbox full: serial reading paused');
    this.port?.pause();
  }

  private resumeReading(): void {
    this.counters.paused = false;
    this.log.info('serial reading resumed');
    this.port?.resume();
  }
}

/** Closes a port, ignoring that it is already closed. */
function closePort(port: SerialPort): Promise<void> {
  if (!port.isOpen) return Promise.resolve();
  return new Promise((resolve) => port.close(() => resolve()));
}
