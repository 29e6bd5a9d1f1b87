import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { sourceOf, streamOf, type BaseCollectorConfig, type Collector, type CollectorContext, type CollectorKind } from '../../../agent/host/collector.js';
import { CollectorSupervisor, type CollectorStatus, type RestartPolicy } from '../../../agent/host/supervisor.js';
import { CaptureWriter } from '../../../agent/host/writer.js';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { ErpEdgeError } from '../../../common/errors.js';
import { createLogger, type Logger } from '../../../common/logger.js';
import { wireRecordV2 } from '../../../common/wire-v2.js';
import { waitFor } from '../../helpers/net.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
import { makeTempDir } from '../../helpers/tmp.js';

const RESTART: RestartPolicy = { initialMs: 50, maxMs: 400 };

let tmp: ReturnType<typeof makeTempDir>;
let outbox: Outbox;
let supervisors: CollectorSupervisor[];

beforeEach(() => {
  tmp = makeTempDir('supervisor-test-');
  outbox = new Outbox(testOutboxOptions(join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
  supervisors = [];
});

afterEach(async () => {
  await Promise.all(supervisors.map((s) => s.stop()));
  outbox.close();
  tmp.cleanup();
});

/** A tiny collector kind: a zod schema and a `load` giving `{ create }`. */
function kind(type: string, create: (cfg: BaseCollectorConfig, ctx: CollectorContext) => Collector): CollectorKind {
  const schema = z.object({ type: z.literal(type), name: z.string().min(1), stream: z.string().optional() });
  return { type, schema, load: async () => ({ create }) };
}

function captureLog(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  return { logger, lines };
}

function supervise(k: CollectorKind, name: string, opts: { restart?: RestartPolicy; stopTimeoutMs?: number; logger?: Logger } = {}): CollectorSupervisor {
  const config: BaseCollectorConfig = { type: k.type, name };
  const logger = opts.logger ?? createLogger({ level: 'silent' });
  const writer = new CaptureWriter({ outbox, source: sourceOf(config), stream: streamOf(config), maxRecordBytes: 64 * 1024, logger });
  const sup = new CollectorSupervisor({
    kind: k,
    config,
    writer,
    logger,
    resolvePath: (p) => resolve(tmp.dir, p),
    restart: opts.restart ?? RESTART,
    ...(opts.stopTimeoutMs !== undefined ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
  });
  supervisors.push(sup);
  return sup;
}

function inState(sup: CollectorSupervisor, state: CollectorStatus['state'], extra: (s: CollectorStatus) => boolean = () => true) {
  return waitFor(`${sup.name} ${state}`, () => {
    const s = sup.status();
    return s.state === state && extra(s) ? s : undefined;
  }, 10_000, 5);
}

/** A collector whose start always fails: the clock the "nothing happens later" checks wait on. */
function alwaysFailing(name: string): CollectorSupervisor {
  const sup = supervise(
    kind('always-failing', () => ({
      start: async () => {
        throw new Error('reference failure');
      },
      stop: async () => {},
    })),
    name,
  );
  void sup.start();
  return sup;
}

describe('a collector whose start fails', () => {
  it('backs off with its error, time and count, restarts with a doubling back-off capped at max, and runs once start succeeds', async () => {
    const log = captureLog();
    const starts: number[] = [];
    const stops: number[] = [];
    const k = kind('flaky', () => {
      const n = starts.length + 1;
      return {
        start: async () => {
          starts.push(performance.now());
          if (n <= 5) throw Object.assign(new Error(`cannot open the source (attempt ${n})`), { code: 'ECONNREFUSED' });
        },
        stop: async () => void stops.push(n),
      };
    });
    const sup = supervise(k, 'src', { logger: log.logger });
    const t0 = Date.now();
    const started = sup.start();

    const first = await inState(sup, 'backing-off');
    expect(first.lastError).toEqual({ message: 'cannot open the source (attempt 1)', code: 'ECONNREFUSED', at: expect.any(Number) });
    expect(first.lastError!.at).toBeGreaterThanOrEqual(t0);
    expect(first.lastError!.at).toBeLessThanOrEqual(Date.now());
    expect(first.errorCount).toBe(1);
    expect(first.restarts).toBe(0);
    expect(first.retryAt! - first.lastError!.at).toBeGreaterThanOrEqual(RESTART.initialMs);
    expect(first.retryAt! - first.lastError!.at).toBeLessThan(RESTART.initialMs + 100);

    const running = await inState(sup, 'running');
    expect(starts).toHaveLength(6);
    expect(running).toMatchObject({ errorCount: 5, restarts: 5, retryAt: null, lastError: { message: 'cannot open the source (attempt 5)', code: 'ECONNREFUSED' } });
    // Every failed instance was stopped before the next one started.
    expect(stops).toEqual([1, 2, 3, 4, 5]);

    // The waits it chose, as it logged them, and as measured between the start attempts.
    const waits = log.lines.filter((l) => l.retry_in_ms !== undefined).map((l) => l.retry_in_ms);
    expect(waits).toEqual([50, 100, 200, 400, 400]);
    const intervals = starts.slice(1).map((t, i) => t - starts[i]!);
    [50, 100, 200, 400, 400].forEach((w, i) => expect(intervals[i]).toBeGreaterThanOrEqual(w - 3));
    expect(intervals[1]).toBeGreaterThan(intervals[0]!);
    expect(intervals[2]).toBeGreaterThan(intervals[1]!);
    expect(intervals[3]).toBeGreaterThan(intervals[2]!);
    expect(intervals[4]).toBeLessThan(700); // capped at max (400), not doubled to 800
    await started;
  });

  it('start() returns after the first attempt, leaving the collector backing off (Agent.start awaits every supervisor)', async () => {
    const sup = supervise(
      kind('down', () => ({
        start: async () => {
          throw new Error('source down');
        },
        stop: async () => {},
      })),
      'down',
    );
    let returned = false;
    void sup.start().then(() => (returned = true));
    await inState(sup, 'backing-off');
    // It keeps failing for good: start() must not wait for the retries.
    await waitFor('start() to return while the collector backs off', () => returned, 2_000, 5);
    expect(sup.status().state).not.toBe('running');
  });

  it('stop() during back-off stops it for good: no later start', async () => {
    let creates = 0;
    const sup = supervise(
      kind('down', () => {
        creates++;
        return {
          start: async () => {
            throw new Error('source down');
          },
          stop: async () => {},
        };
      }),
      'down',
      { restart: { initialMs: 100, maxMs: 400 } },
    );
    void sup.start();
    const reference = alwaysFailing('reference');
    await inState(sup, 'backing-off');
    await sup.stop();
    expect(sup.status().state).toBe('stopped');
    // The reference collector goes through three back-offs (50 + 100 + 200 ms), more than this one's 100 ms.
    await inState(reference, 'backing-off', (s) => s.restarts >= 3);
    expect(creates).toBe(1);
    expect(sup.status()).toMatchObject({ state: 'stopped', restarts: 0, errorCount: 1 });
  });

  it('after stop() during back-off, status has no retryAt (it is set while backing off only)', async () => {
    const sup = supervise(
      kind('down', () => ({
        start: async () => {
          throw new Error('source down');
        },
        stop: async () => {},
      })),
      'down',
    );
    void sup.start();
    await inState(sup, 'backing-off');
    await sup.stop();
    expect(sup.status()).toMatchObject({ state: 'stopped', retryAt: null });
  });
});

describe('a collector whose loop dies', () => {
  it('is stopped (signal aborted) and restarted with back-off; restarts and errors are counted; a stopped instance cannot fail it again', async () => {
    const instances: { ctx: CollectorContext; stopped: boolean }[] = [];
    const sup = supervise(
      kind('poller', (_cfg, ctx) => {
        const inst = { ctx, stopped: false };
        instances.push(inst);
        return { start: async () => {}, stop: async () => void (inst.stopped = true), stats: () => ({ counters: { instance: instances.length } }) };
      }),
      'poller',
    );
    await sup.start();
    expect(sup.status()).toMatchObject({ state: 'running', restarts: 0, errorCount: 0, lastError: null, counters: { instance: 1 } });

    instances[0]!.ctx.fail(new ErpEdgeError('ERP_COLLECTOR_FAILED', 'poll loop died'));
    const off = await inState(sup, 'backing-off');
    expect(off).toMatchObject({ errorCount: 1, restarts: 0, lastError: { message: 'poll loop died', code: 'ERP_COLLECTOR_FAILED' } });
    expect(instances[0]!.stopped).toBe(true);
    expect(instances[0]!.ctx.signal.aborted).toBe(true);

    await inState(sup, 'running', (s) => s.restarts === 1);
    expect(instances).toHaveLength(2);
    expect(instances[1]!.ctx.signal.aborted).toBe(false);
    expect(sup.status().counters).toEqual({ instance: 2 });

    // A late failure from the old instance is ignored.
    instances[0]!.ctx.fail(new Error('late failure from the stopped instance'));
    expect(sup.status()).toMatchObject({ state: 'running', errorCount: 1, restarts: 1 });

    instances[1]!.ctx.fail(new Error('died again'));
    await inState(sup, 'running', (s) => s.restarts === 2);
    expect(instances).toHaveLength(3);
    expect(sup.status()).toMatchObject({ errorCount: 2, lastError: { message: 'died again' } });
  });
});

describe('a module that cannot be loaded', () => {
  it('ends in error with ERP_COLLECTOR_LOAD and is not retried', async () => {
    let loads = 0;
    const schema = z.object({ type: z.literal('erp-sql'), name: z.string() });
    const broken: CollectorKind = {
      type: 'erp-sql',
      schema,
      load: async () => {
        loads++;
        throw new Error("Cannot find module 'odbc'");
      },
    };
    const sup = supervise(broken, 'erp');
    const reference = alwaysFailing('reference');
    await sup.start();
    const s = sup.status();
    expect(s).toMatchObject({ state: 'error', errorCount: 1, restarts: 0, retryAt: null, lastError: { code: 'ERP_COLLECTOR_LOAD' } });
    expect(s.lastError!.message).toContain("Cannot find module 'odbc'");

    await inState(reference, 'backing-off', (r) => r.restarts >= 3);
    expect(loads).toBe(1);
    expect(sup.status()).toMatchObject({ state: 'error', errorCount: 1, restarts: 0 });
  });
});

describe('supervisors side by side', () => {
  it('one failing over and over never disturbs the other: its records keep arriving in the outbox', async () => {
    const generator = kind('gen', (cfg, ctx) => {
      let n = ctx.writer.getCheckpoint<number>('n') ?? 0;
      let loop: Promise<void> | undefined;
      return {
        start: async () => {
          loop = (async () => {
            while (!ctx.signal.aborted) {
              n++;
              await ctx.writer.append([{ id: `${cfg.name}:${n}`, data: { n } }], { key: 'n', value: n });
              await delay(5, undefined, { signal: ctx.signal }).catch(() => undefined);
            }
          })();
        },
        stop: async () => loop,
        stats: () => ({ counters: { records: n }, exceptions: [{ kind: 'file_error', count: 0, oldest_at: null }] }),
      };
    });
    const crashing = kind('crash', (_cfg, ctx) => {
      let timer: NodeJS.Timeout | undefined;
      return {
        start: async () => {
          timer = setTimeout(() => ctx.fail(new Error('driver crashed')), 10);
        },
        stop: async () => clearTimeout(timer),
      };
    });
    const good = supervise(generator, 'good');
    const bad = supervise(crashing, 'bad');
    await good.start();
    await bad.start(); // its start succeeds; its loop dies 10 ms later, every time

    for (let r = 1; r <= 3; r++) {
      const before = outbox.lastSeq('good');
      await inState(bad, 'running', (s) => s.restarts >= r);
      await waitFor('records of the healthy collector after a restart of the failing one', () => outbox.lastSeq('good') > before, 10_000, 5);
      expect(good.status()).toMatchObject({ state: 'running', errorCount: 0, restarts: 0, lastError: null });
    }
    expect(bad.status().errorCount).toBeGreaterThanOrEqual(3);
    expect(bad.status().lastError?.message).toBe('driver crashed');

    // The healthy collector's records are all there, in order, with its checkpoint.
    const last = outbox.lastSeq('good');
    const rows = outbox.readPending('good', 0, Number.MAX_SAFE_INTEGER).map((r) => wireRecordV2.parse(JSON.parse(r.payload)));
    expect(rows.slice(0, last).map((r) => r.id)).toEqual(Array.from({ length: last }, (_, i) => `good:${i + 1}`));
    expect(rows.every((r) => r.source === 'gen:good')).toBe(true);
    const st = good.status();
    expect(st.writer.records).toBeGreaterThanOrEqual(last);
    expect(st.counters.records).toBeGreaterThanOrEqual(last);
    expect(st.exceptions).toEqual([{ kind: 'file_error', count: 0, oldest_at: null }]);
    expect(outbox.getCheckpoint<number>('gen:good', 'n')).toBeGreaterThanOrEqual(last);
    expect(bad.status().writer.records).toBe(0);
  });
});

describe('stop()', () => {
  it('of a running collector aborts its ctx.signal and calls its stop, once', async () => {
    let inst: { signal: AbortSignal; stopCalls: number; abortedAtStop: boolean | undefined } | undefined;
    const sup = supervise(
      kind('ok', (_cfg, ctx) => {
        const i = { signal: ctx.signal, stopCalls: 0, abortedAtStop: undefined as boolean | undefined };
        inst = i;
        return {
          start: async () => {},
          stop: async () => {
            i.stopCalls++;
            i.abortedAtStop = ctx.signal.aborted;
          },
        };
      }),
      'ok',
    );
    await sup.start();
    expect(sup.status().state).toBe('running');
    expect(inst!.signal.aborted).toBe(false);
    await sup.stop();
    expect(inst!).toMatchObject({ stopCalls: 1, abortedAtStop: true });
    expect(inst!.signal.aborted).toBe(true);
    expect(sup.status().state).toBe('stopped');
    await sup.stop(); // idempotent
    expect(inst!.stopCalls).toBe(1);
  });

  it('lets a collector write what it still holds while its stop() runs, and nothing once it has stopped', async () => {
    let ctxOf: CollectorContext | undefined;
    const during: string[] = [];
    const sup = supervise(
      kind('holding', (_cfg, ctx) => {
        ctxOf = ctx;
        return {
          start: async () => {},
          // Scans read but not yet written when the stop came: they go in while there is room.
          stop: async () => {
            during.push(ctx.signal.aborted ? 'aborted' : 'live');
            await ctx.writer.append([{ id: 'held-1', data: { n: 1 } }], { key: 'pos', value: 1 });
          },
        };
      }),
      'holding',
    );
    await sup.start();
    await sup.stop();
    expect(during).toEqual(['aborted']);
    expect(outbox.readPending('holding', 0, 10).map((r) => wireRecordV2.parse(JSON.parse(r.payload)).id)).toEqual(['held-1']);
    expect(outbox.getCheckpoint('holding:holding', 'pos')).toBe(1);
    // Retired: a late append from the stopped instance is refused, even with room.
    await expect(ctxOf!.writer.append([{ id: 'late', data: null }])).rejects.toMatchObject({ name: 'AbortError' });
    expect(outbox.lastSeq('holding')).toBe(1);
  });

  it('abandons a collector whose stop() never resolves after stopTimeoutMs', async () => {
    const log = captureLog();
    let signal: AbortSignal | undefined;
    const sup = supervise(
      kind('stuck', (_cfg, ctx) => {
        signal = ctx.signal;
        return { start: async () => {}, stop: () => new Promise<void>(() => {}) };
      }),
      'stuck',
      { stopTimeoutMs: 150, logger: log.logger },
    );
    await sup.start();
    const t = performance.now();
    await sup.stop();
    const took = performance.now() - t;
    expect(took).toBeGreaterThanOrEqual(145);
    expect(took).toBeLessThan(5_000);
    expect(sup.status().state).toBe('stopped');
    expect(signal!.aborted).toBe(true);
    expect(log.lines).toContainEqual(expect.objectContaining({ msg: 'collector did not stop in time; abandoned', timeout_ms: 150 }));
  });
});

describe('failingSince (how long a collector has been failing, for /healthz)', () => {
  it('holds the first failure of a streak across backing-off → starting cycles, and is null once running', async () => {
    let fails = 3;
    const sup = supervise(
      kind('streak', () => ({
        start: async () => {
          if (fails-- > 0) throw new Error('source down');
        },
        stop: async () => {},
      })),
      'streak',
    );
    expect(sup.status().failingSince).toBeNull();
    const t0 = Date.now();
    const started = sup.start();
    const first = await inState(sup, 'backing-off');
    expect(first.failingSince).toBe(first.lastError!.at);
    expect(first.failingSince!).toBeGreaterThanOrEqual(t0);
    const third = await inState(sup, 'backing-off', (s) => s.errorCount === 3);
    // `since` moved with each state change; the streak's start did not.
    expect(third.since).toBeGreaterThan(first.since);
    expect(third.failingSince).toBe(first.failingSince);
    const running = await inState(sup, 'running');
    expect(running.failingSince).toBeNull();
    await started;
  });
});
