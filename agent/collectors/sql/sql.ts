import { setTimeout as sleep } from 'node:timers/promises';
import { isErpEdgeError } from '../../../common/errors.js';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import type { Writer } from '../../host/writer.js';
import type { DialectModule, SqlSource } from '../../databases/dialect.js';
import type { LogicalCapture } from './logical.js';
import { pollIncremental, type TableCapture } from './incremental.js';
import type { MssqlCapture } from './mssql-capture.js';
import type { MssqlConnectOptions, MssqlRunner } from '../../databases/mssql-runner.js';
import { reconcileDeletes } from './reconcile.js';
import { initialLoad } from './snapshot.js';
import { pollQuery, type QueryCapture } from './query.js';
import { mssqlTables, type MssqlTableConfig, type QueryConfig, type SqlConfig, type TableConfig } from './schema.js';

/** Drivers load lazily: a collector for one database never loads another's driver. */
const DIALECTS: Record<Exclude<SqlConfig['driver'], 'mssql'>, () => Promise<DialectModule>> = {
  pg: () => import('../../databases/dialects/pg.js'),
  mysql: () => import('../../databases/dialects/mysql.js'),
};
/** SQL Server's module gives a runner (mssql-runner.ts), not a SqlSource: its modes have their own engine. */
const MSSQL = () => import('../../databases/dialects/mssql.js');

export function create(cfg: SqlConfig, ctx: CollectorContext): Collector {
  return new SqlCollector(cfg, ctx);
}

/** Test seam: how a driver: mssql collector connects (SQL Server cannot run where the tests run). */
export interface SqlCollectorDeps {
  connectMssql?: ((opts: MssqlConnectOptions) => Promise<MssqlRunner>) | undefined;
}

interface TableState {
  records: number;
  deletes: number;
  /** Why deletes are not looked for in this table ('' when they are). */
  reconcileError: string;
  polls: number;
  lastPollAt: number | null;
  /** The current run of errors: the first one's time, the count and the last message. */
  errorSince: number | null;
  errors: number;
  lastError: string;
  /** Pages read with another schema version than the one before (schema-version.ts). */
  schemaChanges: number;
  /** Logical capture: bytes of WAL the slot holds on the server, as of the last poll. */
  lagBytes?: number | undefined;
}

function newState(): TableState {
  return { records: 0, deletes: 0, reconcileError: '', polls: 0, lastPollAt: null, errorSince: null, errors: 0, lastError: '', schemaChanges: 0 };
}

/** A polled entry's name in stats, logs and its checkpoint: the table, or the query's name. */
function labelOf(t: SqlConfig['tables'][number]): string {
  return t.mode === 'query' ? t.name : t.table;
}

/** Stats name of the logical capture's loop (one per collector: one slot). */
const LOGICAL = 'logical';

/**
 * Captures changes from tables of one database: one loop per table, each polling at its interval,
 * backing off (doubling, up to retry.max) while the database fails, and resuming from the
 * checkpoint the outbox holds with the records.
 */
export class SqlCollector implements Collector {
  private source: SqlSource | undefined;
  private mssql: MssqlRunner | undefined;
  private readonly writer: Writer;
  private readonly log: Logger;
  private readonly signal: AbortSignal;
  private readonly abort = new AbortController();
  private loops: Promise<void>[] = [];
  private logical: LogicalCapture | undefined;
  private readonly states = new Map<string, TableState>();
  private readonly errorLog = new LogThrottle(60_000);

  constructor(
    private readonly cfg: SqlConfig,
    ctx: CollectorContext,
    private readonly deps: SqlCollectorDeps = {},
  ) {
    this.writer = ctx.writer;
    this.log = ctx.logger;
    ctx.signal.addEventListener('abort', () => this.abort.abort(), { once: true });
    this.signal = this.abort.signal;
  }

  async start(): Promise<void> {
    const c = this.cfg.connection;
    const opts = { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, poolSize: c.pool_size, connectTimeoutMs: c.connect_timeout, timeZone: this.cfg.time_zone };
    // A database unreachable at start fails the start: the host retries it with back-off and shows why.
    if (this.cfg.driver === 'mssql') {
      const connect = this.deps.connectMssql ?? (await MSSQL()).connect;
      this.mssql = await connect({ ...opts, encrypt: c.encrypt, trustServerCertificate: c.trust_server_certificate });
    } else this.source = await (await DIALECTS[this.cfg.driver]()).connect(opts);
    const mssqlCapture = this.mssql ? (await import('./mssql-capture.js')).MssqlCapture : undefined;
    for (const t of this.cfg.tables) {
      const state = newState();
      this.states.set(labelOf(t), state);
      if (t.mode === 'incremental') this.loops.push(this.run(t, state));
      else if (t.mode === 'query') this.loops.push(this.runQuery(t, state));
      else {
        const capture = new mssqlCapture!({ table: t, runner: this.mssql!, timeZone: this.cfg.time_zone, ...this.captureBase(t, state) });
        this.loops.push(this.runMssql(t, state, capture));
      }
    }
    if (this.cfg.logical) {
      // Its own connection (not read-only: it creates and advances the slot), made in the loop.
      const { LogicalCapture } = await import('./logical.js');
      const state = newState();
      this.states.set(LOGICAL, state);
      this.logical = new LogicalCapture({ cfg: this.cfg, writer: this.writer, onSchemaChange: (table, from, to) => this.noteSchemaChange(table, state, from, to) });
      this.loops.push(this.runLogical(this.logical, state));
    }
    this.log.info({ driver: this.cfg.driver, host: c.host, database: c.database, tables: this.cfg.tables.map(labelOf), logical: this.cfg.logical?.tables.map((t) => t.table) }, 'capturing SQL changes');
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
    await this.logical?.close();
    await this.source?.close().catch(() => undefined);
    await this.mssql?.close().catch(() => undefined);
  }

  stats(): CollectorStats {
    const counters: Record<string, number | string> = {};
    for (const [table, s] of this.states) {
      counters[`${table}.records`] = s.records;
      if (table !== LOGICAL) counters[`${table}.deletes`] = s.deletes; // logical: deletes are among its records
      if (s.reconcileError) counters[`${table}.reconcile_error`] = s.reconcileError;
      if (s.schemaChanges > 0) counters[`${table}.schema_changes`] = s.schemaChanges;
      counters[`${table}.polls`] = s.polls;
      if (s.errorSince !== null) {
        counters[`${table}.error`] = s.lastError;
        counters[`${table}.error_since`] = new Date(s.errorSince).toISOString();
        counters[`${table}.errors`] = s.errors;
      }
      if (s.lagBytes !== undefined) counters[`${table}.slot_lag_bytes`] = s.lagBytes;
    }
    return { counters };
  }

  private async run(t: TableConfig, state: TableState): Promise<void> {
    const capture: TableCapture = { table: t, ...this.captureBase(t, state) };
    // The first look for deletes one interval after start, then every interval.
    let lastReconcile = Date.now();
    await this.poll(t.table, state, t.poll_interval ?? this.cfg.poll_interval, async () => {
      state.records += await initialLoad(capture, this.signal); // nothing once done
      state.records += await pollIncremental(capture, this.signal);
      if (t.reconcile_interval > 0 && Date.now() - lastReconcile >= t.reconcile_interval) {
        lastReconcile = Date.now();
        state.deletes += await this.reconcile(t.table, state, () => reconcileDeletes(capture, this.signal));
      }
    });
  }

  private async runQuery(q: QueryConfig, state: TableState): Promise<void> {
    const capture: QueryCapture = { query: q, ...this.captureBase(q, state) };
    await this.poll(q.name, state, q.poll_interval ?? this.cfg.poll_interval, async () => {
      state.records += await pollQuery(capture, this.signal);
    });
  }

  /** A SQL Server table (change_tracking, rowversion, cdc): the same loop, back-off and stats as run(). */
  private async runMssql(t: MssqlTableConfig, state: TableState, capture: MssqlCapture): Promise<void> {
    const reconcileInterval = t.mode === 'rowversion' ? t.reconcile_interval : 0;
    let lastReconcile = Date.now();
    await this.poll(t.table, state, t.poll_interval ?? this.cfg.poll_interval, async () => {
      const r = await capture.poll(this.signal);
      state.records += r.records;
      state.deletes += r.deletes;
      if (reconcileInterval > 0 && Date.now() - lastReconcile >= reconcileInterval) {
        lastReconcile = Date.now();
        state.deletes += await this.reconcile(t.table, state, () => capture.reconcile(this.signal));
      }
    });
  }

  /** The collector's slot, read every poll_interval (stats under `logical.*`); a broken connection is made again on the next try. */
  private async runLogical(capture: LogicalCapture, state: TableState): Promise<void> {
    await this.poll(LOGICAL, state, this.cfg.poll_interval, async () => {
      state.records += await capture.poll(this.signal);
      state.lagBytes = await capture.lagBytes();
    }, () => capture.close());
  }

  private captureBase(t: { poll_interval?: number | undefined; stream?: string | undefined }, state: TableState) {
    return {
      source: this.source!,
      writer: this.writer,
      sourceId: this.writer.source,
      stream: t.stream ?? this.cfg.stream ?? this.cfg.name,
      batchSize: this.cfg.batch_size,
      onSchemaChange: (table: string, from: string, to: string) => this.noteSchemaChange(table, state, from, to),
    };
  }

  /**
   * Runs `step` every `interval` until stopped; while it fails, backs off (doubling from retry.initial
   * up to retry.max), with the error, its first time and count in the state (and so in `status`).
   */
  private async poll(label: string, state: TableState, interval: number, step: () => Promise<void>, onError?: () => Promise<void>): Promise<void> {
    let backoff = this.cfg.retry.initial;
    while (!this.signal.aborted) {
      try {
        await step();
        state.polls++;
        state.lastPollAt = Date.now();
        if (state.errorSince !== null) this.log.info({ table: label, errors: state.errors }, 'table capture recovered');
        Object.assign(state, { errorSince: null, errors: 0, lastError: '' });
        backoff = this.cfg.retry.initial;
        await sleep(interval, undefined, { signal: this.signal }).catch(() => undefined);
      } catch (err) {
        if (this.signal.aborted) return;
        await onError?.();
        this.noteError(label, state, err);
        await sleep(backoff, undefined, { signal: this.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, this.cfg.retry.max);
      }
    }
  }

  /**
   * A table whose deletes cannot be looked for (a key that cannot be matched back) keeps being
   * captured: the refusal is shown in stats and logged, and tried again next interval. Database
   * errors go to the table's back-off as any other.
   */
  private async reconcile(table: string, state: TableState, run: () => Promise<number>): Promise<number> {
    try {
      const n = await run();
      state.reconcileError = '';
      return n;
    } catch (err) {
      if (!isErpEdgeError(err, 'ERP_COLLECTOR_FAILED')) throw err;
      state.reconcileError = err.message;
      const t = this.errorLog.take(`reconcile:${table}`);
      if (t) this.log.warn({ table, err: { message: err.message, code: err.code } }, 'deletes are not looked for in this table');
      return 0;
    }
  }

  /** Downstream mappings may need to follow a column change: one warning per change, counted in stats. */
  private noteSchemaChange(table: string, state: TableState, from: string, to: string): void {
    state.schemaChanges++;
    this.log.warn({ table, from, to }, 'table schema changed; the first records read with it are flagged schema_changed');
  }

  private noteError(table: string, state: TableState, err: unknown): void {
    const message = (err as Error).message;
    state.errorSince ??= Date.now();
    state.errors++;
    state.lastError = message;
    const t = this.errorLog.take(`${table}:${message}`);
    if (t) this.log.error({ table, err: { message, code: (err as { code?: unknown }).code }, errors: state.errors, repeats_since_last_line: t.suppressed }, 'table capture failed; retrying with back-off');
  }
}
