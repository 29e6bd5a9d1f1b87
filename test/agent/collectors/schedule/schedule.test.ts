/**
 * The schedule collector under vitest's fake timers (node-cron 4 arms its own setTimeout and reads
 * the Date: faking both drives it): a job fires on its cron in its zone, never overlaps itself,
 * catches up once after downtime (and not at all without catch_up), a failing run is an outcome
 * and the next fire runs, a run over max_rows emits nothing. Real outbox, real files.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { create, type ScheduleCollector, type ScheduleDeps } from '../../../../agent/collectors/schedule/schedule.js';
import { scheduleSchema, type ScheduleConfig } from '../../../../agent/collectors/schedule/schema.js';
import type { JobSource } from '../../../../agent/collectors/schedule/source.js';
import type { QueryResult } from '../../../../agent/databases/dialect.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { testHost, type TestHost } from '../../../helpers/host.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';

const files = useOutboxFiles('schedule-');

/** Only the clock: the outbox and the file reads keep their real I/O. */
const CLOCK = { toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] as ('setTimeout' | 'clearTimeout' | 'setInterval' | 'clearInterval' | 'Date')[] };

interface Rec {
  seq: number;
  id: string;
  correlation_id: string | null;
  source_ts?: number;
  data: { op?: string; job: string; run: string; row?: number; rows?: number; scheduled_at?: string; values?: Record<string, unknown> };
}

function records(outbox: Outbox, stream = 'snap'): Rec[] {
  return outbox.readPending(stream, 0, 1_000_000).map((r) => JSON.parse(r.payload) as Rec);
}

function config(jobs: Record<string, unknown>[]): ScheduleConfig {
  return scheduleSchema.parse({ type: 'schedule', name: 'snap', jobs });
}

let running: ScheduleCollector[] = [];
afterEach(async () => {
  for (const c of running) {
    await c.stop().catch(() => undefined);
  }
  running = [];
});

async function startCollector(cfg: ScheduleConfig, outbox: Outbox, deps: ScheduleDeps = {}): Promise<{ c: ScheduleCollector; host: TestHost }> {
  const host = testHost(outbox, cfg, files.dir);
  const c = create(cfg, host.ctx, deps);
  running.push(c);
  await c.start();
  return { c, host };
}

async function stopCollector(c: ScheduleCollector, host: TestHost): Promise<void> {
  host.abort.abort();
  await c.stop();
  running = running.filter((x) => x !== c);
}

/** A source whose reads wait until the test releases them (a slow query), counting reads. */
function gatedSource(): JobSource & { reads: number; release(result?: QueryResult): void; pending: number } {
  const waiting: ((r: QueryResult) => void)[] = [];
  const s = {
    reads: 0,
    get pending() {
      return waiting.length;
    },
    read: () =>
      new Promise<QueryResult>((resolve) => {
        s.reads++;
        waiting.push(resolve);
      }),
    release(result: QueryResult = { columns: ['n'], schema: 'x', rows: [{ n: 1 }] }) {
      waiting.shift()!(result);
    },
    close: async () => undefined,
  };
  return s;
}

/** A source that counts its reads and answers one row, or fails while `failing` is set. */
function countingSource(): JobSource & { reads: number; failing: Error | undefined } {
  const s = {
    reads: 0,
    failing: undefined as Error | undefined,
    async read() {
      s.reads++;
      if (s.failing) throw s.failing;
      return { columns: ['n'], schema: 'x', rows: [{ n: s.reads }] };
    },
    close: async () => undefined,
  };
  return s;
}

describe('schedule: fires on its cron in its time zone', () => {
  for (const [season, before, fire] of [
    ['winter (CST, UTC-6)', '2026-01-15T07:59:59.000Z', '2026-01-15T08:00:00.000Z'],
    ['summer (CDT, UTC-5)', '2026-07-15T06:59:59.000Z', '2026-07-15T07:00:00.000Z'],
  ] as const) {
    it(`0 2 * * * in America/Chicago fires at ${fire.slice(11, 16)} UTC in ${season}, and emits one batch with markers`, async () => {
      vi.useFakeTimers(CLOCK);
      vi.setSystemTime(new Date(before));
      writeFileSync(join(files.dir, 'onhand.csv'), 'sku,qty\nA-1,5\nB-2,7\n');
      const outbox = files.open();
      const cfg = config([{ name: 'onhand', cron: '0 2 * * *', time_zone: 'America/Chicago', file: { path: 'onhand.csv' } }]);
      const { c } = await startCollector(cfg, outbox);
      expect(c.stats().counters!['onhand.next_run']).toBe(fire);

      await vi.advanceTimersByTimeAsync(999); // 1 ms before the fire time: nothing yet
      await c.jobs[0]!.idle();
      expect(records(outbox)).toHaveLength(0);

      await vi.advanceTimersByTimeAsync(1);
      await c.jobs[0]!.idle();
      const recs = records(outbox);
      const run = `onhand@${fire.replace('.000Z', 'Z')}`;
      expect(recs.map((r) => r.id)).toEqual([
        `schedule:snap/onhand/${run}/snapshot_start`,
        `schedule:snap/onhand/${run}/1`,
        `schedule:snap/onhand/${run}/2`,
        `schedule:snap/onhand/${run}/snapshot_end`,
      ]);
      expect(new Set(recs.map((r) => r.correlation_id))).toEqual(new Set([run]));
      expect(recs[0]!.data).toMatchObject({ op: 'snapshot_start', job: 'onhand', run, scheduled_at: fire });
      expect(recs[1]!.data).toEqual({ job: 'onhand', run, row: 1, values: { sku: 'A-1', qty: '5' } });
      expect(recs[3]!.data).toMatchObject({ op: 'snapshot_end', rows: 2 });
      const stats = c.stats().counters!;
      expect(stats).toMatchObject({ 'onhand.runs': 1, 'onhand.ok': 1, 'onhand.last_outcome': 'ok', 'onhand.last_rows': 2, 'onhand.last_run_id': run, 'onhand.overlapped': 0 });
      // The next fire is the next day at 02:00 Chicago time.
      expect(stats['onhand.next_run']).toBe(new Date(Date.parse(fire) + 86_400_000).toISOString());
    });
  }

  it('a JSON Lines file job keeps its values typed', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-03-02T09:59:00.000Z'));
    writeFileSync(join(files.dir, 'orders.jsonl'), '{"order":"SO-1","qty":3,"open":true}\n\n{"order":"SO-2","qty":1.5,"open":false}\n');
    const outbox = files.open();
    const { c } = await startCollector(config([{ name: 'orders', cron: '0 10 * * *', file: { path: 'orders.jsonl' } }]), outbox);
    await vi.advanceTimersByTimeAsync(60_000);
    await c.jobs[0]!.idle();
    const recs = records(outbox);
    expect(recs.map((r) => r.data.values ?? r.data.op)).toEqual(['snapshot_start', { order: 'SO-1', qty: 3, open: true }, { order: 'SO-2', qty: 1.5, open: false }, 'snapshot_end']);
  });
});

describe('schedule: never overlaps itself', () => {
  it('a fire while the previous run is still going is skipped and counted; the fire after it runs', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-05-01T00:00:00.500Z'));
    const outbox = files.open();
    const slow = gatedSource();
    const { c } = await startCollector(config([{ name: 'slow', cron: '*/10 * * * * *', file: { path: 'unused.csv' } }]), outbox, { source: () => slow });

    await vi.advanceTimersByTimeAsync(9_500); // 00:00:10: run 1 starts and hangs in its read
    expect(slow.reads).toBe(1);
    await vi.advanceTimersByTimeAsync(20_000); // 00:00:20 and 00:00:30: both skipped
    expect(slow.reads).toBe(1);
    expect(c.stats().counters).toMatchObject({ 'slow.overlapped': 2, 'slow.running': true, 'slow.runs': 1 });

    slow.release(); // run 1 finishes
    await c.jobs[0]!.idle();
    expect(records(outbox).filter((r) => r.data.op === 'snapshot_end').map((r) => r.data.run)).toEqual(['slow@2026-05-01T00:00:10Z']);

    await vi.advanceTimersByTimeAsync(10_000); // 00:00:40 runs again
    expect(slow.reads).toBe(2);
    slow.release();
    await c.jobs[0]!.idle();
    expect(records(outbox).filter((r) => r.data.op === 'snapshot_end').map((r) => r.data.run)).toEqual(['slow@2026-05-01T00:00:10Z', 'slow@2026-05-01T00:00:40Z']);
    expect(c.stats().counters).toMatchObject({ 'slow.overlapped': 2, 'slow.runs': 2, 'slow.ok': 2, 'slow.running': false });
  });
});

describe('schedule: catch-up after downtime', () => {
  /** Runs `0 2 * * *` (UTC) once on 2026-02-01, stops the agent for three days, restarts it. */
  async function downtime(catchUp: boolean) {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-02-01T01:59:00.000Z'));
    const outbox = files.open();
    const source = countingSource();
    const cfg = config([{ name: 'nightly', cron: '0 2 * * *', catch_up: catchUp, file: { path: 'unused.csv' } }]);
    const first = await startCollector(cfg, outbox, { source: () => source });
    await vi.advanceTimersByTimeAsync(60_000);
    await first.c.jobs[0]!.idle();
    expect(source.reads).toBe(1);
    await stopCollector(first.c, first.host);

    // Down over the fire times of Feb 2, 3 and 4; back at 12:00 on Feb 4.
    vi.setSystemTime(new Date('2026-02-04T12:00:00.000Z'));
    const second = await startCollector(cfg, outbox, { source: () => source });
    await second.c.jobs[0]!.idle();
    return { outbox, source, second };
  }

  it('catch_up: true runs once at start, for the latest missed fire time only', async () => {
    const { outbox, source, second } = await downtime(true);
    expect(source.reads).toBe(2);
    const ends = records(outbox).filter((r) => r.data.op === 'snapshot_end').map((r) => r.data.run);
    expect(ends).toEqual(['nightly@2026-02-01T02:00:00Z', 'nightly@2026-02-04T02:00:00Z']);
    expect(second.c.stats().counters).toMatchObject({ 'nightly.catch_up_runs': 1, 'nightly.runs': 1 });

    // Then the schedule goes on as usual: the next fire is Feb 5, 02:00, once.
    await vi.advanceTimersByTimeAsync(14 * 3_600_000);
    await second.c.jobs[0]!.idle();
    expect(source.reads).toBe(3);
    expect(records(outbox).filter((r) => r.data.op === 'snapshot_end').map((r) => r.data.run).at(-1)).toBe('nightly@2026-02-05T02:00:00Z');
  });

  it('catch_up: false runs nothing at start; the next fire time runs', async () => {
    const { outbox, source, second } = await downtime(false);
    expect(source.reads).toBe(1);
    expect(second.c.stats().counters).toMatchObject({ 'nightly.catch_up_runs': 0, 'nightly.runs': 0, 'nightly.next_run': '2026-02-05T02:00:00.000Z' });
    await vi.advanceTimersByTimeAsync(14 * 3_600_000);
    await second.c.jobs[0]!.idle();
    expect(records(outbox).filter((r) => r.data.op === 'snapshot_end').map((r) => r.data.run)).toEqual(['nightly@2026-02-01T02:00:00Z', 'nightly@2026-02-05T02:00:00Z']);
  });

  it('a restart with no fire time missed runs nothing, even with catch_up', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-02-01T01:59:00.000Z'));
    const outbox = files.open();
    const source = countingSource();
    const cfg = config([{ name: 'nightly', cron: '0 2 * * *', catch_up: true, file: { path: 'unused.csv' } }]);
    const first = await startCollector(cfg, outbox, { source: () => source });
    await vi.advanceTimersByTimeAsync(60_000);
    await first.c.jobs[0]!.idle();
    await stopCollector(first.c, first.host);
    vi.setSystemTime(new Date('2026-02-01T20:00:00.000Z')); // down for the evening only
    const second = await startCollector(cfg, outbox, { source: () => source });
    await second.c.jobs[0]!.idle();
    expect(source.reads).toBe(1);
  });

  it('a fire time missed before the first run ever is caught up too (the job was configured, the agent down)', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-02-01T01:00:00.000Z'));
    const outbox = files.open();
    const source = countingSource();
    const cfg = config([{ name: 'nightly', cron: '0 2 * * *', catch_up: true, file: { path: 'unused.csv' } }]);
    const first = await startCollector(cfg, outbox, { source: () => source });
    await stopCollector(first.c, first.host);
    vi.setSystemTime(new Date('2026-02-01T03:00:00.000Z'));
    const second = await startCollector(cfg, outbox, { source: () => source });
    await second.c.jobs[0]!.idle();
    expect(records(outbox).map((r) => r.data.run)[0]).toBe('nightly@2026-02-01T02:00:00Z');
  });
});

describe('schedule: outcomes', () => {
  it('a failing run is an error outcome in stats; the collector stays up and the next fire runs', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-04-01T00:00:59.000Z'));
    const outbox = files.open();
    const source = countingSource();
    source.failing = Object.assign(new Error('relation "onhand" does not exist'), { code: '42P01' });
    const { c, host } = await startCollector(config([{ name: 'inv', cron: '* * * * *', file: { path: 'unused.csv' } }]), outbox, { source: () => source });
    await vi.advanceTimersByTimeAsync(1_000);
    await c.jobs[0]!.idle();
    expect(c.stats().counters).toMatchObject({ 'inv.runs': 1, 'inv.failed': 1, 'inv.last_outcome': 'error', 'inv.last_error': '42P01: relation "onhand" does not exist', 'inv.last_rows': 0 });
    expect(records(outbox)).toHaveLength(0);
    expect(host.failures).toEqual([]);

    source.failing = undefined;
    await vi.advanceTimersByTimeAsync(60_000);
    await c.jobs[0]!.idle();
    expect(c.stats().counters).toMatchObject({ 'inv.runs': 2, 'inv.ok': 1, 'inv.failed': 1, 'inv.last_outcome': 'ok', 'inv.last_error': '', 'inv.last_rows': 1 });
    expect(records(outbox).map((r) => r.data.op ?? 'row')).toEqual(['snapshot_start', 'row', 'snapshot_end']);
  });

  it('a file over max_rows fails the run with a clear error and emits nothing', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-04-01T00:00:59.000Z'));
    writeFileSync(join(files.dir, 'big.csv'), `n\n${Array.from({ length: 11 }, (_, i) => i).join('\n')}\n`);
    const outbox = files.open();
    const { c } = await startCollector(config([{ name: 'big', cron: '* * * * *', max_rows: 10, file: { path: 'big.csv' } }]), outbox);
    await vi.advanceTimersByTimeAsync(1_000);
    await c.jobs[0]!.idle();
    expect(records(outbox)).toHaveLength(0);
    expect(c.stats().counters!['big.last_outcome']).toBe('error');
    expect(c.stats().counters!['big.last_error']).toMatch(/^ERP_QUERY_TOO_MANY_ROWS: the query returned more than max_rows \(10\) rows: nothing of this run was emitted/);
  });

  it('a missing file is an error outcome', async () => {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-04-01T00:00:59.000Z'));
    const outbox = files.open();
    const { c } = await startCollector(config([{ name: 'gone', cron: '* * * * *', file: { path: 'nowhere.csv' } }]), outbox);
    await vi.advanceTimersByTimeAsync(1_000);
    await c.jobs[0]!.idle();
    expect(c.stats().counters).toMatchObject({ 'gone.last_outcome': 'error' });
    expect(String(c.stats().counters!['gone.last_error'])).toMatch(/^ENOENT/);
  });
});

describe('schedule: a run cut short (crash mid-run)', () => {
  /**
   * A run of 2 500 rows takes three appends (RUN_CHUNK 1 000); the "crash" is an instance whose
   * second append never returns and that is abandoned, never stopped, as a killed process is.
   */
  async function cutShort(catchUp: boolean) {
    vi.useFakeTimers(CLOCK);
    vi.setSystemTime(new Date('2026-02-01T01:59:30.000Z'));
    const outbox = files.open();
    const rows = Array.from({ length: 2_500 }, (_, i) => ({ n: i + 1 }));
    const source: JobSource = { read: async () => ({ columns: ['n'], schema: 'x', rows }), close: async () => undefined };
    const cfg = config([{ name: 'nightly', cron: '0 2 * * *', catch_up: catchUp, file: { path: 'unused.csv' } }]);
    const host = testHost(outbox, cfg, files.dir);
    let appends = 0;
    const writer = { ...host.ctx.writer, append: (...a: Parameters<typeof host.ctx.writer.append>) => (++appends === 2 ? new Promise<never>(() => undefined) : host.ctx.writer.append(...a)) };
    const crashed = create(cfg, { ...host.ctx, writer }, { source: () => source });
    await crashed.start();
    await vi.advanceTimersByTimeAsync(30_000);
    await vi.waitFor(() => expect(appends).toBe(2));
    host.abort.abort(); // the process is gone: its timer fires no more

    const cut = records(outbox);
    expect(cut.map((r) => r.data.op ?? 'row').filter((op) => op !== 'row')).toEqual(['snapshot_start']);
    expect(cut).toHaveLength(1_000);

    vi.setSystemTime(new Date('2026-02-01T03:00:00.000Z'));
    const { c } = await startCollector(cfg, outbox, { source: () => source });
    await c.jobs[0]!.idle();
    return { outbox, c, cut };
  }

  it('catch_up: true runs the cut slot again at start as attempt 2, a snapshot of its own; the cut one stays without its end', async () => {
    const { outbox, c } = await cutShort(true);
    const recs = records(outbox);
    const markers = recs.filter((r) => r.data.op).map((r) => `${r.data.op} ${r.data.run}`);
    expect(markers).toEqual([
      'snapshot_start nightly@2026-02-01T02:00:00Z',
      'snapshot_start nightly@2026-02-01T02:00:00Z#2',
      'snapshot_end nightly@2026-02-01T02:00:00Z#2',
    ]);
    const second = recs.filter((r) => r.correlation_id === 'nightly@2026-02-01T02:00:00Z#2' && !r.data.op);
    expect(second.map((r) => r.data.row)).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1));
    expect(new Set(recs.map((r) => r.id)).size).toBe(recs.length); // no id of the cut run is reused
    expect(c.stats().counters).toMatchObject({ 'nightly.catch_up_runs': 1, 'nightly.last_run_id': 'nightly@2026-02-01T02:00:00Z#2' });
  });

  it('catch_up: false does not run it again: the next fire time runs', async () => {
    const { outbox, c } = await cutShort(false);
    expect(records(outbox)).toHaveLength(1_000);
    expect(c.stats().counters).toMatchObject({ 'nightly.runs': 0, 'nightly.next_run': '2026-02-02T02:00:00.000Z' });
  });
});
