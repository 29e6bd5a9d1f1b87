import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultOutboxConfig, outboxOptions } from '../../agent/config.js';
import { connect } from '../../agent/databases/dialects/pg.js';
import type { SqlSource } from '../../agent/databases/dialect.js';
import type { TableCapture } from '../../agent/collectors/sql/incremental.js';
import { pollQuery } from '../../agent/collectors/sql/query.js';
import { incrementalTables, sqlSchema, type QueryConfig, type SqlConfig } from '../../agent/collectors/sql/schema.js';
import { initialLoad } from '../../agent/collectors/sql/snapshot.js';
import { streamOf } from '../../agent/host/collector.js';
import type { Writer } from '../../agent/host/writer.js';
import { Outbox, readOutboxStatus } from '../../agent/outbox/outbox.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import { benchWriter } from '../lib/capture-writer.js';
import { freePort } from '../lib/net.js';
import { backendPids, createPgDatabase, fillOrderLines, ORDER_LINES_TABLE, plainCursorRead, type BenchPgDatabase } from '../lib/pg-order-lines.js';
import { agentDataDir, outboxPath, startAgent, waitCollectorRunning } from '../lib/pipeline.js';
import { cpuSeconds, sampleRss } from '../lib/proc-stats.js';
import type { CliProcess } from '../lib/processes.js';
import type { Scenario, ScenarioContext } from '../types.js';

const COLLECTOR = 'erp';
const MB = 2 ** 20;
/** The plain read's rows per FETCH. */
const CURSOR_FETCH = 10_000;

/**
 * Issue #8: the initial snapshot of a 1 M-row PostgreSQL order-lines table into the outbox,
 * against the same rows read by a plain streamed SELECT in the same run (the ratio is the figure).
 *
 * Per repeat, on one table loaded once:
 * 1. reference: `SELECT * FROM order_lines` through a server-side cursor, FETCH 10 000;
 * 2. the collector's own keyset pages alone (dialects/pg.ts readSnapshot, batch_size rows each),
 *    nothing written: what the read design costs;
 * 3. measured: the compiled agent (service Node flags, as `npm run bench` runs it) with one `sql`
 *    collector on the table, defaults everywhere (batch_size 1 000, outbox synchronous=FULL), its
 *    broker unreachable so only capture runs: snapshot_start marker → snapshot_end record's capture
 *    stamp, agent RSS and CPU, and the PostgreSQL backend's CPU;
 * 4. the same initialLoad in-process with a CaptureWriter on an Outbox (FULL), timed in parts:
 *    the page reads, the capture writer's checks and encoding, the outbox transaction (SQLite + fsync).
 */
export const sqlSnapshot: Scenario = {
  name: 'sql-snapshot',
  description: 'snapshot of a 1 M-row PostgreSQL order-lines table into the outbox (sql collector, defaults), against a plain streamed SELECT of the same rows; agent peak RSS; mode query over the same rows',
  async run(ctx: ScenarioContext) {
    const rows = Math.max(1_000, Math.round((ctx.quick ? 100_000 : 1_000_000) * ctx.scale));
    const db = await createPgDatabase();
    try {
      const t0 = performance.now();
      const { tableBytes } = await fillOrderLines(db, rows);
      ctx.log(`${rows} rows in ${ORDER_LINES_TABLE} (${(tableBytes / MB).toFixed(1)} MB) loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const cfg = collectorConfig(db);
      ctx.param('rows', rows);
      ctx.param('table_bytes', tableBytes);
      ctx.param('collector', `sql, driver pg, mode incremental with initial snapshot, batch_size ${cfg.batch_size}, pool_size ${cfg.connection.pool_size}; outbox synchronous=${defaultOutboxConfig().synchronous}`);
      ctx.param('reference', `DECLARE CURSOR FOR SELECT * FROM ${ORDER_LINES_TABLE}; FETCH ${CURSOR_FETCH}`);
      // mode query pages by (version, key), as a site's statement over an indexed change column would.
      await indexVersion(db);
      ctx.param('query', QUERY);
      for (let r = 0; r < ctx.repeats; r++) {
        const plain = await plainCursorRead(db, CURSOR_FETCH);
        if (plain.rows !== rows) throw new Error(`the plain read returned ${plain.rows} rows, expected ${rows}`);
        const plainRate = rows / plain.seconds;
        ctx.record(`plain streamed SELECT (cursor, FETCH ${CURSOR_FETCH})`, 'rows/s', plainRate, 'reference');

        const keyset = await keysetReadAlone(db, cfg);
        if (keyset.rows !== rows) throw new Error(`the keyset read returned ${keyset.rows} rows, expected ${rows}`);
        ctx.record(`collector's keyset pages alone (${cfg.batch_size} rows, nothing written)`, 'rows/s', rows / keyset.seconds);

        const a = await agentSnapshot(ctx, db, join(ctx.dir, `agent-${r}`), rows);
        const rate = rows / a.seconds;
        ctx.record('snapshot into the outbox (agent, service flags)', 'rows/s', rate);
        ctx.record('ratio to the plain SELECT', 'x', rate / plainRate);
        ctx.record('agent RSS during the snapshot (max)', 'MB', a.rssMb, 'flat');
        ctx.record('agent CPU during the snapshot (100 = one core)', '%', a.agentCpu);
        if (a.pgCpu !== undefined) ctx.record('PostgreSQL backend CPU during the snapshot', '%', a.pgCpu);
        ctx.log(`agent: ${rows} rows in ${a.seconds.toFixed(1)} s; plain read ${plain.seconds.toFixed(1)} s`);

        const p = await inProcessSnapshot(db, cfg, join(ctx.dir, `in-process-${r}`), rows);
        ctx.record('snapshot into the outbox (in-process, same code)', 'rows/s', rows / p.seconds);
        ctx.record('in-process: reading (max version, pages: query + row mapping)', '% of time', (p.read / p.seconds) * 100);
        ctx.record('in-process: capture writer checks + encoding', '% of time', (p.encode / p.seconds) * 100);
        ctx.record('in-process: outbox transaction (SQLite + fsync)', '% of time', (p.commit / p.seconds) * 100);
        ctx.record('in-process: building records (the rest)', '% of time', ((p.seconds - p.read - p.encode - p.commit) / p.seconds) * 100);

        const q = await inProcessQuery(db, cfg, join(ctx.dir, `query-${r}`), rows);
        ctx.record('mode query, the whole table from start (in-process)', 'rows/s', rows / q.seconds);
        ctx.record('mode query: ratio to the plain SELECT', 'x', rows / q.seconds / plainRate);
      }
    } finally {
      await db.drop();
    }
    ctx.note(`reference: a plain streamed SELECT * (no ORDER BY: a sequential scan) through a server-side cursor, FETCH ${CURSOR_FETCH} per round trip, rows parsed by node-postgres with its default type parsers and dropped; the fairest plain read of the same rows (the whole table, the same driver and parsing), without the key order a resumable snapshot needs`);
    ctx.note('the measured figure is the compiled agent (service Node flags) running the sql collector with its defaults, its broker unreachable (capture only; the forwarder idles): rows / (snapshot_end capture stamp - snapshot_start time), both from the outbox; RSS and CPU sampled from /proc over the snapshot');
    ctx.note('"in-process" runs the same initialLoad in the bench process (tsx, no service flags) with a CaptureWriter on an Outbox (synchronous=FULL); its parts are wall-clock shares, timed around the source reads, the writer append, and the outbox commit inside it');
    ctx.note(`mode query: pollQuery in the bench process on \`${QUERY}\` (start 1970-01-01, key id, version_column updated_at, an index on (updated_at, id)), the same CaptureWriter and Outbox (synchronous=FULL): the first poll, which reads every row as the derived table's keyset pages`);
    ctx.note('issue #8 also asks for the rate of `logical` capture under a steady insert load: the sql-logical scenario measures it');
  },
};

/** The collector's config as a site would write it: one table, every default. */
function collectorConfig(db: BenchPgDatabase): SqlConfig {
  return sqlSchema.parse({
    type: 'sql',
    name: COLLECTOR,
    driver: 'pg',
    connection: { host: db.connection.host, port: db.connection.port, database: db.database, user: db.connection.user, password: db.connection.password },
    tables: [{ table: ORDER_LINES_TABLE, key: ['id'], mode: 'incremental', version_column: 'updated_at' }],
  });
}

function collectorYaml(cfg: SqlConfig): string {
  const c = cfg.connection;
  const t = incrementalTables(cfg)[0]!;
  return `  - type: sql
    name: ${cfg.name}
    driver: pg
    connection:
      host: ${c.host}
      port: ${c.port ?? 5432}
      database: ${c.database}
      user: ${c.user}
${c.password ? `      password: ${JSON.stringify(c.password)}\n` : ''}    tables:
      - table: ${t.table}
        key: [${t.key.join(', ')}]
        mode: incremental
        version_column: ${t.version_column}
`;
}

async function pgSource(cfg: SqlConfig): Promise<SqlSource> {
  const c = cfg.connection;
  return connect({ host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, poolSize: c.pool_size, connectTimeoutMs: c.connect_timeout });
}

/** The collector's snapshot reads alone: the pg dialect's keyset pages, the collector's page size, nothing written. */
async function keysetReadAlone(db: BenchPgDatabase, cfg: SqlConfig): Promise<{ rows: number; seconds: number }> {
  const source = await pgSource(cfg);
  const t = incrementalTables(cfg)[0]!;
  try {
    const t0 = performance.now();
    let rows = 0;
    let after: unknown[] | undefined;
    for (;;) {
      const page = await source.readSnapshot({ table: t.table, key: t.key, versionColumn: t.version_column, after, limit: cfg.batch_size });
      rows += page.length;
      if (page.length < cfg.batch_size) break;
      after = t.key.map((k) => page.at(-1)!.values[k]);
    }
    return { rows, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await source.close();
  }
}

interface AgentRun {
  seconds: number;
  rssMb: number;
  agentCpu: number;
  pgCpu?: number;
}

interface Rec {
  ts: number;
  data: { op: string; started_at?: string; rows?: number };
}

/** One run of the compiled agent: a fresh data folder, so its snapshot starts from scratch. */
async function agentSnapshot(ctx: ScenarioContext, db: BenchPgDatabase, dir: string, rows: number): Promise<AgentRun> {
  const cfg = collectorConfig(db);
  const unreachable = `mqtt://127.0.0.1:${await freePort()}`;
  const agent = startAgent(dir, { brokerUrl: unreachable, total: 0, rate: 0, batch: 1, collectorsYaml: collectorYaml(cfg) });
  const rss = sampleRss(agent.pid!);
  try {
    await waitCollectorRunning(dir, COLLECTOR, 60_000);
    const w0 = performance.now();
    const cpu0 = cpuSeconds(agent.pid!);
    const pids = await backendPids(db, 'erp-edge').catch(() => []);
    const pg0 = pgCpu(pids);
    const expected = rows + 2; // snapshot_start, the rows, snapshot_end
    await waitCaptured(ctx, dir, agent, expected, 120_000 + rows);
    const wall = (performance.now() - w0) / 1000;
    const agentCpu = ((cpuSeconds(agent.pid!) - cpu0) / wall) * 100;
    const pg1 = pgCpu(pids);
    const rssMb = rss.stop().max / MB;
    await agent.kill('SIGTERM');
    const [first, last] = firstAndLast(dir, expected);
    if (first.data.op !== 'snapshot_start' || last.data.op !== 'snapshot_end' || last.data.rows !== rows) {
      throw new Error(`unexpected outbox contents: first ${JSON.stringify(first.data)}, last ${JSON.stringify(last.data)}`);
    }
    const seconds = (last.ts - Date.parse(first.data.started_at!)) / 1000;
    const pgUsed = pgCpuUsed(pg0, pg1);
    return { seconds, rssMb, agentCpu, pgCpu: pgUsed === undefined ? undefined : (pgUsed / wall) * 100 };
  } finally {
    rss.stop();
    await agent.kill('SIGTERM');
  }
}

/** CPU seconds of each server process /proc still shows (an idle pooled connection may have ended). */
function pgCpu(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, cpuSeconds(pid));
    } catch {
      /* ended, or not readable */
    }
  }
  return out;
}

/** CPU seconds the processes used between two readings (those gone by the second count nothing); undefined without any reading. */
function pgCpuUsed(before: Map<number, number>, after: Map<number, number>): number | undefined {
  if (after.size === 0) return undefined;
  let used = 0;
  for (const [pid, end] of after) used += end - (before.get(pid) ?? end);
  return used;
}

/** Polls the outbox (read-only, as `edge-agent status`; 4 times a second: the figure comes from the records' stamps, not from this) until the stream holds `n` records; fails at once if the agent exits or the collector reports an error. */
async function waitCaptured(ctx: ScenarioContext, dir: string, agent: CliProcess, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nextCheck = Date.now() + 10_000;
  for (;;) {
    const held = readOutboxStatus(outboxPath(dir)).streams.find((s) => s.stream === COLLECTOR)?.lastSeq ?? 0;
    if (held >= n) return;
    if (!agent.running) throw new Error(`the agent exited; its log: ${tail(join(dir, 'agent.log'))}`);
    if (Date.now() > nextCheck) {
      nextCheck = Date.now() + 10_000;
      const s = await controlRequest<AgentSnapshot>(controlSocketPath(agentDataDir(dir)), 'GET', '/status').catch(() => undefined);
      const c = s?.collectors.find((x) => x.name === COLLECTOR);
      if (c?.lastError) throw new Error(`collector ${COLLECTOR} ${c.state}: ${c.lastError.code ?? ''} ${c.lastError.message}`);
      const tableError = Object.entries(c?.counters ?? {}).find(([k]) => k.endsWith('.error'));
      if (tableError) throw new Error(`collector ${COLLECTOR}: ${String(tableError[1])}`);
      ctx.log(`outbox holds ${held} of ${n} records`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: the outbox holds ${held} of ${n} records`);
    await sleep(250);
  }
}

/** The first and the last record of the collector's stream (the agent has stopped). */
function firstAndLast(dir: string, n: number): [Rec, Rec] {
  const outbox = new Outbox(outboxOptions(outboxPath(dir), defaultOutboxConfig()));
  try {
    const first = outbox.readPending(COLLECTOR, 0, 1)[0];
    const last = outbox.readPending(COLLECTOR, n - 1, 1)[0];
    if (!first || !last) throw new Error(`the outbox holds no record ${first ? n : 1} of stream ${COLLECTOR}`);
    return [JSON.parse(first.payload) as Rec, JSON.parse(last.payload) as Rec];
  } finally {
    outbox.close();
  }
}

interface InProcessRun {
  seconds: number;
  /** Wall seconds in each part. */
  read: number;
  encode: number;
  commit: number;
}

/** initialLoad in this process, with the source's reads, the writer's appends and the outbox commits timed. */
async function inProcessSnapshot(db: BenchPgDatabase, cfg: SqlConfig, dir: string, rows: number): Promise<InProcessRun> {
  const outbox = new Outbox(outboxOptions(join(dir, 'outbox.db'), defaultOutboxConfig()));
  const source = await pgSource(cfg);
  const parts = { read: 0, append: 0, commit: 0 };
  const timedAsync = async <T>(part: keyof typeof parts, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      parts[part] += (performance.now() - t0) / 1000;
    }
  };
  // The outbox's commit (SQLite insert of the chunk, checkpoint, fsync) inside the writer's append.
  const appendEncoded = outbox.appendEncoded.bind(outbox);
  outbox.appendEncoded = (...args: Parameters<Outbox['appendEncoded']>) => {
    const t0 = performance.now();
    try {
      return appendEncoded(...args);
    } finally {
      parts.commit += (performance.now() - t0) / 1000;
    }
  };
  const abort = new AbortController();
  try {
    const { writer } = benchWriter(outbox, cfg, abort.signal);
    const timedWriter: Writer = { ...writer, append: (records, checkpoint, opts) => timedAsync('append', () => writer.append(records, checkpoint, opts)) };
    const timedSource: SqlSource = {
      ...source,
      readSnapshot: (page) => timedAsync('read', () => source.readSnapshot(page)),
      maxVersion: (table, column) => timedAsync('read', () => source.maxVersion(table, column)),
    };
    const t = incrementalTables(cfg)[0]!;
    const capture: TableCapture = { table: t, source: timedSource, writer: timedWriter, sourceId: writer.source, stream: t.stream ?? streamOf(cfg), batchSize: cfg.batch_size };
    const t0 = performance.now();
    const emitted = await initialLoad(capture, abort.signal);
    const seconds = (performance.now() - t0) / 1000;
    if (emitted !== rows + 1) throw new Error(`initialLoad emitted ${emitted} records, expected ${rows + 1} (the rows and snapshot_end)`);
    return { seconds, read: parts.read, encode: parts.append - parts.commit, commit: parts.commit };
  } finally {
    await source.close();
    outbox.close();
  }
}

const QUERY = `SELECT * FROM ${ORDER_LINES_TABLE} WHERE updated_at >= CAST(:last AS timestamp)`;

async function indexVersion(db: BenchPgDatabase): Promise<void> {
  const c = await db.client();
  try {
    await c.query(`CREATE INDEX IF NOT EXISTS order_lines_version ON ${ORDER_LINES_TABLE} (updated_at, id)`);
    await c.query(`ANALYZE ${ORDER_LINES_TABLE}`);
  } finally {
    await c.end();
  }
}

/** One poll of `mode: query` over the whole table (its first: `:last` = start), in this process. */
async function inProcessQuery(db: BenchPgDatabase, base: SqlConfig, dir: string, rows: number): Promise<{ seconds: number }> {
  const cfg = sqlSchema.parse({ ...base, tables: [{ mode: 'query', name: 'order_lines_q', query: QUERY, key: ['id'], version_column: 'updated_at', start: '1970-01-01 00:00:00' }] });
  const outbox = new Outbox(outboxOptions(join(dir, 'outbox.db'), defaultOutboxConfig()));
  const source = await pgSource(cfg);
  const abort = new AbortController();
  try {
    const { writer } = benchWriter(outbox, cfg, abort.signal);
    const query = cfg.tables[0] as QueryConfig;
    const t0 = performance.now();
    const emitted = await pollQuery({ query, source, writer, sourceId: writer.source, stream: streamOf(cfg), batchSize: cfg.batch_size }, abort.signal);
    const seconds = (performance.now() - t0) / 1000;
    if (emitted !== rows) throw new Error(`mode query emitted ${emitted} records, expected ${rows}`);
    return { seconds };
  } finally {
    await source.close();
    outbox.close();
  }
}

function tail(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').slice(-2_000).trim() : '(no log)';
}
