import { setTimeout as delay } from 'node:timers/promises';
import { ErpEdgeError, isErpEdgeError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { ExceptionCount } from '../../common/wire-v2.js';
import type { BaseCollectorConfig, Collector, CollectorKind, CollectorModule, CollectorStats } from './collector.js';
import { streamOf } from './collector.js';
import type { CaptureWriter, WriterStats } from './writer.js';

export type CollectorState = 'starting' | 'running' | 'backing-off' | 'error' | 'stopped';

export interface CollectorError {
  message: string;
  code?: string;
  at: number;
}

export interface CollectorStatus {
  name: string;
  type: string;
  stream: string;
  state: CollectorState;
  /** When it entered this state. */
  since: number;
  /**
   * When its current streak of failures began (null while running or stopped): a collector that
   * keeps failing cycles backing-off → starting → backing-off, so `since` alone never grows old.
   */
  failingSince: number | null;
  lastError: CollectorError | null;
  /** Failures since the agent started. */
  errorCount: number;
  restarts: number;
  /** When the next start is due (backing-off only). */
  retryAt: number | null;
  counters: Record<string, number | string | boolean>;
  exceptions: ExceptionCount[];
  writer: WriterStats;
}

export interface RestartPolicy {
  initialMs: number;
  maxMs: number;
}

export interface SupervisorOptions {
  kind: CollectorKind;
  config: BaseCollectorConfig;
  writer: CaptureWriter;
  logger: Logger;
  resolvePath(p: string): string;
  restart: RestartPolicy;
  /** How long a stop may take before the instance is abandoned (a stuck driver must not hold up shutdown). */
  stopTimeoutMs?: number;
}

/**
 * Runs one collector in its own guard, as Zigbee2MQTT's controller runs each extension: a failed
 * start or a loop that dies puts it in `backing-off` (with the error, its time and count) and a new
 * instance is started after a back-off that doubles up to `restart.maxMs`; the other collectors and
 * the forwarder never notice. A module that cannot be loaded (a broken driver) leaves it in `error`:
 * loading again cannot help until the installation is repaired.
 */
export class CollectorSupervisor {
  readonly name: string;
  readonly type: string;
  readonly stream: string;
  private state: CollectorState = 'stopped';
  private since = Date.now();
  private lastError: CollectorError | null = null;
  private errorCount = 0;
  private restarts = 0;
  /** Failures in a row without a stable run in between: the back-off exponent. */
  private failuresInARow = 0;
  /** First failure of the current streak (see CollectorStatus.failingSince). */
  private streakStart: number | null = null;
  private retryAt: number | null = null;
  private instance: { collector: Collector; abort: AbortController; startedAt: number; retire(): void } | undefined;
  private lastStats: CollectorStats = {};
  private module: CollectorModule<BaseCollectorConfig> | undefined;
  private stopping = false;
  private retryTimer: AbortController | undefined;
  private readonly log: Logger;
  private readonly stopTimeoutMs: number;

  constructor(private readonly opts: SupervisorOptions) {
    this.name = opts.config.name;
    this.type = opts.config.type;
    this.stream = streamOf(opts.config);
    this.log = opts.logger.child({ collector: `${this.type}:${this.name}` });
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  }

  /** The first start attempt. Never throws: a failure is a state, shown by status(). */
  async start(): Promise<void> {
    this.stopping = false;
    await this.attempt();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.retryAt = null;
    this.retryTimer?.abort();
    await this.stopInstance();
    this.setState('stopped');
  }

  status(): CollectorStatus {
    const stats = this.readStats();
    return {
      name: this.name,
      type: this.type,
      stream: this.stream,
      state: this.state,
      since: this.since,
      failingSince: this.state === 'running' || this.state === 'stopped' ? null : this.streakStart,
      lastError: this.lastError,
      errorCount: this.errorCount,
      restarts: this.restarts,
      retryAt: this.retryAt,
      counters: stats.counters ?? {},
      exceptions: stats.exceptions ?? [],
      writer: this.opts.writer.stats(),
    };
  }

  private readStats(): CollectorStats {
    const c = this.instance?.collector;
    if (!c?.stats) return this.lastStats;
    try {
      this.lastStats = c.stats();
    } catch (err) {
      this.log.debug({ err: { message: (err as Error).message } }, 'collector stats failed');
    }
    return this.lastStats;
  }

  private async attempt(): Promise<void> {
    if (this.stopping) return;
    this.retryAt = null;
    this.setState('starting');
    const mod = await this.load();
    if (!mod || this.stopping) return;
    const abort = new AbortController();
    // Set once this instance's stop() has finished or been abandoned (see CaptureWriter.forInstance).
    let retired = false;
    let collector: Collector | undefined;
    const fail = (err: unknown) => {
      // Only the live instance can fail the collector; a late call from a stopped one is ignored.
      if (this.instance?.abort === abort && !abort.signal.aborted) void this.onFailure(err, 'failed while running');
    };
    try {
      collector = mod.create(this.opts.config, {
        name: this.name,
        writer: this.opts.writer.forInstance(abort.signal, () => retired),
        logger: this.log,
        signal: abort.signal,
        resolvePath: this.opts.resolvePath,
        fail,
      });
      this.instance = { collector, abort, startedAt: Date.now(), retire: () => (retired = true) };
      await collector.start();
    } catch (err) {
      // fail() during start already handled this instance.
      if (collector !== undefined && this.instance?.abort !== abort) return;
      await this.onFailure(err, 'failed to start');
      return;
    }
    if (this.stopping || this.instance?.abort !== abort) return;
    this.setState('running');
    if (this.restarts > 0) this.log.info({ restarts: this.restarts }, 'collector running again');
  }

  private async load(): Promise<CollectorModule<BaseCollectorConfig> | undefined> {
    if (this.module) return this.module;
    try {
      this.module = (await this.opts.kind.load()) as CollectorModule<BaseCollectorConfig>;
      return this.module;
    } catch (err) {
      const e = new ErpEdgeError(
        'ERP_COLLECTOR_LOAD',
        `the ${this.type} collector module could not be loaded (${(err as Error).message}); the other collectors keep running. Repair or reinstall the agent, then restart it`,
        { type: this.type, name: this.name },
        { cause: err },
      );
      this.recordError(e);
      this.log.error({ err: { message: e.message, code: e.code } }, 'collector module failed to load');
      this.setState('error');
      return undefined;
    }
  }

  private async onFailure(err: unknown, what: string): Promise<void> {
    const ranFor = this.instance ? Date.now() - this.instance.startedAt : 0;
    // A run longer than the longest back-off was a stable one: start counting again.
    const stableRun = ranFor >= this.opts.restart.maxMs;
    if (stableRun) this.streakStart = null;
    this.recordError(err);
    this.failuresInARow = stableRun ? 1 : this.failuresInARow + 1;
    await this.stopInstance();
    if (this.stopping) return;
    const wait = Math.min(this.opts.restart.maxMs, this.opts.restart.initialMs * 2 ** (this.failuresInARow - 1));
    this.retryAt = Date.now() + wait;
    this.setState('backing-off');
    const e = this.lastError!;
    this.log.error({ err: { message: e.message, code: e.code }, errors: this.errorCount, retry_in_ms: wait }, `collector ${what}; restarting after back-off`);
    // In the background: the first start() returns after one attempt, whatever its outcome.
    void this.retryAfter(wait);
  }

  private async retryAfter(wait: number): Promise<void> {
    const timer = new AbortController();
    this.retryTimer = timer;
    try {
      await delay(wait, undefined, { signal: timer.signal, ref: false });
    } catch {
      return; // stopped while backing off
    }
    if (this.stopping) return;
    this.restarts++;
    await this.attempt();
  }

  private recordError(err: unknown): void {
    this.errorCount++;
    this.streakStart ??= Date.now();
    const code = isErpEdgeError(err) ? err.code : ((err as NodeJS.ErrnoException | undefined)?.code ?? undefined);
    this.lastError = { message: err instanceof Error ? err.message : String(err), ...(code ? { code: String(code) } : {}), at: Date.now() };
  }

  private async stopInstance(): Promise<void> {
    const inst = this.instance;
    if (!inst) return;
    this.readStats(); // its last figures stay shown while it is down
    this.instance = undefined;
    inst.abort.abort();
    const timeout = new AbortController();
    try {
      const stopped = inst.collector.stop().then(
        () => 'stopped' as const,
        (err: unknown) => {
          this.log.warn({ err: { message: (err as Error).message } }, 'collector stop failed');
          return 'stopped' as const;
        },
      );
      const r = await Promise.race([stopped, delay(this.stopTimeoutMs, 'timeout' as const, { signal: timeout.signal, ref: false }).catch(() => 'stopped' as const)]);
      if (r === 'timeout') this.log.error({ timeout_ms: this.stopTimeoutMs }, 'collector did not stop in time; abandoned');
    } finally {
      inst.retire();
      timeout.abort();
    }
  }

  private setState(state: CollectorState): void {
    if (state === this.state) return;
    this.state = state;
    this.since = Date.now();
  }
}
