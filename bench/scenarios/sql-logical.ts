import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { defaultOutboxConfig, outboxOptions } from '../../agent/config.js';
import { Outbox, readOutboxStatus } from '../../agent/outbox/outbox.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import { freePort } from '../lib/net.js';
import { startPgCluster, type BenchPgCluster } from '../lib/pg-cluster.js';
import { agentDataDir, outboxPath, startAgent, waitCollectorRunning } from '../lib/pipeline.js';
import { cpuSeconds, sampleRss } from '../lib/proc-stats.js';
import type { CliProcess } from '../lib/processes.js';
import type { Scenario, ScenarioContext } from '../types.js';

const COLLECTOR = 'erp';
const SLOT = `erp_edge_${COLLECTOR}`;
const TABLE = 'order_lines';
const MB = 2 ** 20;
/** Rows per inserting transaction. */
const TXN_ROWS = 100;
/** The collector's poll_interval here (its default is 5 s): the capture lag is bounded below by it. */
const POLL_INTERVAL = '1s';
/** Key offset per load phase: a record's phase is its key / PHASE_KEYS. */
const PHASE_KEYS = 1_000_000_000;

/**
 * Issue #8: the rate of `logical` capture under a steady insert load.
 *
 * A PostgreSQL cluster of the scenario's own (initdb, wal_level=logical, fsync off: the server's
 * durability is not what is measured) with an empty order-lines table (the sql-snapshot shapes).
 * Per repeat: the compiled agent (service Node flags), one `sql` collector with the table under
 * `logical:` (slot + publication created by the agent, batch_size 1 000, poll_interval 1 s),
 * broker unreachable (capture only). Once the slot exists, the bench process inserts at a fixed
 * offered rate, transactions of 100 rows, for each rate in turn; after each phase it waits until
 * the outbox holds every row. From the outbox afterwards: per record, its outbox stamp `ts` against
 * its transaction's `committed_at`.
 */
export const sqlLogical: Scenario = {
  name: 'sql-logical',
  description: 'PostgreSQL logical capture (sql collector, `logical:` table, compiled agent) under a steady insert load at fixed offered rates: capture rate, lag, slot lag, agent RSS',
  async run(ctx: ScenarioContext) {
    const seconds = ctx.quick ? 3 : 15;
    // Whole transactions a rate; at tiny scales the two rates can become one (run once).
    const rates = [...new Set([2_000, 10_000].map((r) => Math.max(TXN_ROWS, Math.round((r * ctx.scale) / TXN_ROWS) * TXN_ROWS)))];
    const t0 = performance.now();
    const cluster = await startPgCluster({ wal_level: 'logical', fsync: 'off', max_replication_slots: '4', max_wal_senders: '4' });
    ctx.log(`own PostgreSQL ${cluster.version} cluster (wal_level=logical) on port ${cluster.port} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const admin = new pg.Client(cluster.connection);
    try {
      await admin.connect();
      await admin.query(`CREATE TABLE ${TABLE} (
        id bigint PRIMARY KEY,
        order_no text NOT NULL,
        sku text NOT NULL,
        qty int NOT NULL,
        price numeric(12,2) NOT NULL,
        warehouse text NOT NULL,
        updated_at timestamp(6) NOT NULL)`);
      ctx.param('postgresql', `${cluster.version}, own cluster, wal_level=logical, fsync=off`);
      ctx.param('collector', `sql, driver pg, logical: [public.${TABLE}, initial: none] (pgoutput, slot ${SLOT}), batch_size 1000, poll_interval ${POLL_INTERVAL}; outbox synchronous=${defaultOutboxConfig().synchronous}; broker unreachable`);
      ctx.param('load', `INSERT … SELECT generate_series, ${TXN_ROWS} rows a transaction, one client, paced to ${rates.join(' then ')} rows/s for ${seconds} s each`);
      for (let r = 0; r < ctx.repeats; r++) {
        await admin.query(`TRUNCATE ${TABLE}`);
        await runAgent(ctx, cluster, admin, join(ctx.dir, `agent-${r}`), rates, seconds);
        await admin.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
        await admin.query(`DROP PUBLICATION IF EXISTS ${SLOT}`);
      }
    } finally {
      await admin.end().catch(() => undefined);
      cluster.destroy();
    }
    ctx.note(`capture rate = a phase's rows / (load start → its last record's outbox stamp), rows the agent committed into the outbox; the ratio is to the offered rate the bench achieved (rows / the load's nominal length, or start → last commit if the inserts overran it): when capture keeps up the ratio is length / (length + the last rows' lag), below 1 by the poll interval's share. Lag = record's outbox stamp \`ts\` − its transaction's \`committed_at\` (ms resolution, one machine clock); the collector polls every ${POLL_INTERVAL}, so a lag of up to that is the design, not a backlog`);
    ctx.note('slot lag = pg_current_wal_lsn() − confirmed_flush_lsn of the collector\'s slot, read by the bench the moment the load stops (WAL the agent has yet to confirm); agent RSS is the max over the run (/proc, every 100 ms); CPU figures are over a phase, load start → every row in the outbox; issue #8 sets no bound for any of these: "reference"');
  },
};

interface Phase {
  rate: number;
  rows: number;
  /** Epoch ms the load began (transaction 0 due). */
  loadStart: number;
  /** Epoch ms of the last commit. */
  loadEnd: number;
  /** The load's length: its nominal length (transactions × interval), or start → last commit if it overran. */
  loadSeconds: number;
  slotLagBytes: number;
  agentCpu: number;
  /** CPU of the server process serving the collector's logical connection (it decodes the WAL), % of a core; undefined if unreadable. */
  pgCpu: number | undefined;
}

async function runAgent(ctx: ScenarioContext, cluster: BenchPgCluster, admin: pg.Client, dir: string, rates: number[], seconds: number): Promise<void> {
  const unreachable = `mqtt://127.0.0.1:${await freePort()}`;
  const agent = startAgent(dir, { brokerUrl: unreachable, total: 0, rate: 0, batch: 1, collectorsYaml: collectorYaml(cluster) });
  const rss = sampleRss(agent.pid!);
  const load = new pg.Client({ ...cluster.connection, application_name: 'erp-edge-bench-load' });
  await load.connect();
  const phases: Phase[] = [];
  try {
    await waitCollectorRunning(dir, COLLECTOR, 60_000);
    // Capture starts at the slot's creation: no row may be inserted before it.
    const until = Date.now() + 30_000;
    while ((await admin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [SLOT])).rowCount === 0) {
      if (Date.now() > until || !agent.running) throw new Error(`the agent created no slot ${SLOT}; its log: ${tail(join(dir, 'agent.log'))}`);
      await sleep(100);
    }
    let total = 0;
    for (const [p, rate] of rates.entries()) {
      const cpu0 = cpuSeconds(agent.pid!);
      const backend = await logicalBackendPid(admin);
      const pg0 = backend === undefined ? undefined : cpuOf(backend);
      const w0 = performance.now();
      const l = await insertLoad(load, (p + 1) * PHASE_KEYS, rate, seconds);
      const slotLagBytes = await slotLag(admin);
      total += l.rows;
      await waitCaptured(ctx, dir, agent, total, 120_000 + l.rows);
      const wall = (performance.now() - w0) / 1000;
      const agentCpu = ((cpuSeconds(agent.pid!) - cpu0) / wall) * 100;
      const pg1 = backend === undefined ? undefined : cpuOf(backend);
      const pgCpu = pg0 === undefined || pg1 === undefined ? undefined : ((pg1 - pg0) / wall) * 100;
      phases.push({ rate, ...l, slotLagBytes, agentCpu, pgCpu });
      ctx.log(`${rate} rows/s offered: ${l.rows} rows (${(l.rows / l.loadSeconds).toFixed(0)} rows/s achieved), slot lag at load end ${slotLagBytes} B`);
    }
    const rssMb = rss.stop().max / MB;
    await agent.kill('SIGTERM');
    const byPhase = readRecords(dir, total);
    for (const [p, ph] of phases.entries()) {
      const recs = byPhase.get(p + 1) ?? [];
      if (recs.length !== ph.rows) throw new Error(`phase ${ph.rate} rows/s: ${recs.length} records in the outbox for ${ph.rows} rows inserted`);
      const lastTs = recs.reduce((m, x) => Math.max(m, x.ts), 0);
      const offered = ph.rows / ph.loadSeconds;
      const rate = ph.rows / ((lastTs - ph.loadStart) / 1000);
      const lags = recs.map((x) => x.lag).sort((a, b) => a - b);
      const at = `at ${ph.rate.toLocaleString('en-US')} rows/s offered`;
      ctx.record(`offered insert rate achieved ${at}`, 'rows/s', offered, 'reference');
      ctx.record(`capture rate into the outbox ${at}`, 'rows/s', rate, 'reference');
      ctx.record(`capture rate / offered ${at}`, 'x', rate / offered, 'reference');
      ctx.record(`capture lag p50 (committed_at → outbox) ${at}`, 'ms', quantile(lags, 0.5), 'reference');
      ctx.record(`capture lag p99 (committed_at → outbox) ${at}`, 'ms', quantile(lags, 0.99), 'reference');
      ctx.record(`capture lag max ${at}`, 'ms', lags.at(-1)!, 'reference');
      ctx.record(`load end → last row in the outbox ${at}`, 's', (lastTs - ph.loadEnd) / 1000, 'reference');
      ctx.record(`slot lag when the load stops ${at}`, 'bytes', ph.slotLagBytes, 'reference');
      ctx.record(`agent CPU (100 = one core) ${at}`, '%', ph.agentCpu, 'reference');
      if (ph.pgCpu !== undefined) ctx.record(`PostgreSQL backend CPU of the collector's slot connection (decoding) ${at}`, '%', ph.pgCpu, 'reference');
    }
    ctx.record('agent RSS during logical capture (max, service flags)', 'MB', rssMb, 'reference');
  } finally {
    rss.stop();
    await load.end().catch(() => undefined);
    await agent.kill('SIGTERM');
  }
}

function collectorYaml(cluster: BenchPgCluster): string {
  const c = cluster.connection;
  return `  - type: sql
    name: ${COLLECTOR}
    driver: pg
    poll_interval: ${POLL_INTERVAL}
    connection:
      host: ${c.host}
      port: ${c.port}
      database: ${c.database}
      user: ${c.user}
    logical:
      tables:
        - table: public.${TABLE}
          initial: none   # the table starts empty; this scenario measures change capture
`;
}

/**
 * Inserts at `rate` rows/s for `seconds`, TXN_ROWS rows a transaction (one INSERT … SELECT
 * generate_series statement, autocommitted), paced against the clock: transaction k starts at
 * start + k × TXN_ROWS / rate (at once if behind). Keys from `base + 1`.
 */
async function insertLoad(c: pg.Client, base: number, rate: number, seconds: number): Promise<{ rows: number; loadStart: number; loadEnd: number; loadSeconds: number }> {
  const txns = Math.round((rate * seconds) / TXN_ROWS);
  const every = (TXN_ROWS / rate) * 1000;
  const start = performance.now();
  const epoch0 = Date.now() - start;
  let lastCommit = start;
  for (let k = 0; k < txns; k++) {
    const due = start + k * every;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const lo = base + k * TXN_ROWS + 1;
    await c.query(
      `INSERT INTO ${TABLE}
       SELECT i,
              'SO-2026-' || lpad((4000000 + i / 8)::text, 10, '0'),
              'SKU-' || lpad(((i * 7919) % 2500000)::text, 7, '0') || '-' || (ARRAY['BLK','WHT','RED','BLU','GRN'])[i % 5 + 1] || '-' || (ARRAY['S','M','L','XL'])[i % 4 + 1],
              1 + (i * 31) % 200,
              ((i * 1237) % 1000000) / 100.0,
              'WH-' || (ARRAY['NORTH','SOUTH','EAST','WEST'])[i % 4 + 1] || '-DC' || lpad((i % 12)::text, 2, '0'),
              localtimestamp
       FROM generate_series($1::bigint, $2::bigint) AS i`,
      [lo, lo + TXN_ROWS - 1],
    );
    lastCommit = performance.now();
  }
  return { rows: txns * TXN_ROWS, loadStart: epoch0 + start, loadEnd: epoch0 + lastCommit, loadSeconds: Math.max(txns * every, lastCommit - start) / 1000 };
}

/** The server process of the collector's own logical connection (application_name erp-edge-logical). */
async function logicalBackendPid(c: pg.Client): Promise<number | undefined> {
  const r = await c.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'erp-edge-logical'");
  return r.rows[0]?.pid;
}

function cpuOf(pid: number): number | undefined {
  try {
    return cpuSeconds(pid);
  } catch {
    return undefined; // ended, or not readable
  }
}

async function slotLag(c: pg.Client): Promise<number> {
  const r = await c.query<{ lag: string | null }>('SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8::text AS lag FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
  return Number(r.rows[0]?.lag ?? Number.NaN);
}

/** Polls the outbox (read-only) until the stream holds `n` records; fails at once if the agent exits or the collector reports an error. */
async function waitCaptured(ctx: ScenarioContext, dir: string, agent: CliProcess, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nextCheck = Date.now() + 5_000;
  for (;;) {
    const held = readOutboxStatus(outboxPath(dir)).streams.find((s) => s.stream === COLLECTOR)?.lastSeq ?? 0;
    if (held >= n) return;
    if (!agent.running) throw new Error(`the agent exited; its log: ${tail(join(dir, 'agent.log'))}`);
    if (Date.now() > nextCheck) {
      nextCheck = Date.now() + 5_000;
      const s = await controlRequest<AgentSnapshot>(controlSocketPath(agentDataDir(dir)), 'GET', '/status').catch(() => undefined);
      const c = s?.collectors.find((x) => x.name === COLLECTOR);
      const err = Object.entries(c?.counters ?? {}).find(([k]) => k.endsWith('.error'));
      if (err) throw new Error(`collector ${COLLECTOR}: ${String(err[1])}`);
      ctx.log(`outbox holds ${held} of ${n} records`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: the outbox holds ${held} of ${n} records`);
    await sleep(100);
  }
}

interface Rec {
  ts: number;
  data: { op: string; committed_at: string; values: { id: number | string } };
}

/** Every record of the stream (the agent has stopped), by phase: outbox stamp and lag. */
function readRecords(dir: string, n: number): Map<number, { ts: number; lag: number }[]> {
  const outbox = new Outbox(outboxOptions(outboxPath(dir), defaultOutboxConfig()));
  const out = new Map<number, { ts: number; lag: number }[]>();
  try {
    let after = 0;
    while (after < n) {
      const page = outbox.readPending(COLLECTOR, after, 10_000);
      if (page.length === 0) break;
      for (const row of page) {
        const rec = JSON.parse(row.payload) as Rec;
        if (rec.data.op !== 'insert') throw new Error(`unexpected record: ${row.payload.slice(0, 300)}`);
        const phase = Math.floor(Number(rec.data.values.id) / PHASE_KEYS);
        const list = out.get(phase) ?? [];
        list.push({ ts: rec.ts, lag: rec.ts - Date.parse(rec.data.committed_at) });
        out.set(phase, list);
      }
      after = page.at(-1)!.seq;
    }
    return out;
  } finally {
    outbox.close();
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function tail(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').slice(-2_000).trim() : '(no log)';
}
