import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createLogger } from '../../common/logger.js';
import { eventsTopicV2 } from '../../common/wire-v2.js';
import { Ingest } from '../../cloud-relay/ingest/ingest.js';
import { RelayMetrics } from '../../cloud-relay/metrics.js';
import { PostgresRelayStore } from '../../cloud-relay/store/postgres-store.js';
import { SqliteRelayStore } from '../../cloud-relay/store/sqlite-store.js';
import type { RelayStore } from '../../cloud-relay/store/store.js';
import { sampleRecord } from '../lib/payload.js';
import { ScenarioUnavailable, type Scenario, type ScenarioContext } from '../types.js';

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', password: '' };
const AGENTS = 20;
const BATCH = 250;
/** Batches an agent keeps in flight per stream (the forwarder's window). */
const WINDOW = 4;
const log = createLogger({ level: 'silent' });

interface Variant {
  name: string;
  store: 'sqlite' | 'postgres';
  instances: number;
  /** How batches are spread over instances: each batch to the next (Mosquitto's $share), or each agent to one (EMQX hash_clientid). */
  spread: 'round-robin' | 'sticky';
}

const VARIANTS: Variant[] = [
  { name: 'sqlite-1', store: 'sqlite', instances: 1, spread: 'sticky' },
  { name: 'postgres-1', store: 'postgres', instances: 1, spread: 'sticky' },
  { name: 'postgres-3-round-robin', store: 'postgres', instances: 3, spread: 'round-robin' },
  { name: 'postgres-3-sticky', store: 'postgres', instances: 3, spread: 'sticky' },
];

/** One stream's batches, prebuilt (payload building is the agent's cost, not the relay's). */
function payloads(agent: string, epoch: string, records: number): Buffer[] {
  const out: Buffer[] = [];
  for (let first = 1; first <= records; first += BATCH) {
    const recs: string[] = [];
    for (let s = first; s < first + BATCH && s <= records; s++) {
      const r = JSON.parse(sampleRecord(s)) as { id: string; correlation_id?: unknown };
      r.id = `${agent}:${s}`;
      delete r.correlation_id;
      recs.push(JSON.stringify(r));
    }
    out.push(Buffer.from(`{"v":2,"site":"bench","agent":"${agent}","stream":"load","epoch":"${epoch}","sent_at":${Date.now()},"records":[${recs.join(',')}]}`));
  }
  return out;
}

/**
 * Relay ingest with the store behind it, in one process: `instances` Ingest paths (each with its own
 * store connection / pool, as separate relays have), fed by 20 simulated agents that keep WINDOW
 * batches in flight, hand each batch to the instances in turn (what a round-robin `$share` does),
 * and rewind on a `gap` answer as the forwarder does. Measures events/s and the process's CPU per
 * 100 000 events; counts gap answers (rewinds) and gaps resolved by waiting for another instance.
 */
async function runVariant(ctx: ScenarioContext, v: Variant, perAgent: number, run: number): Promise<{ eventsPerS: number; cpuMsPer100k: number; rewinds: number; waited: number }> {
  const stores: RelayStore[] = [];
  let dbName: string | undefined;
  if (v.store === 'sqlite') {
    stores.push(new SqliteRelayStore({ path: join(ctx.dir, `relay-${v.name}-${run}.db`), synchronous: 'FULL', dedupeWindowMs: 7 * 86_400_000, log }));
  } else {
    dbName = `erp_edge_bench_${randomBytes(5).toString('hex')}`;
    const admin = new pg.Client({ ...PG, database: 'postgres' });
    try {
      await admin.connect();
    } catch (err) {
      throw new ScenarioUnavailable(`PostgreSQL at ${PG.host}:${PG.port} (user postgres) does not answer: ${(err as Error).message}`);
    }
    await admin.query(`CREATE DATABASE ${dbName}`);
    await admin.end();
    for (let i = 0; i < v.instances; i++) {
      stores.push(await PostgresRelayStore.open({ ...PG, database: dbName, poolSize: 4, schema: 'relay', statementTimeoutMs: 30_000, dedupeWindowMs: 7 * 86_400_000, log }));
    }
  }
  const metrics = stores.map(() => new RelayMetrics());
  const agents = Array.from({ length: AGENTS }, (_, i) => {
    const agent = `agent-${String(i).padStart(2, '0')}`;
    return { agent, home: i % v.instances, batches: payloads(agent, `epoch-${run}-${v.name}`, perAgent), acked: 0, next: 0, done: undefined as (() => void) | undefined };
  });
  const byAgent = new Map(agents.map((a) => [a.agent, a]));
  let turn = 0;
  const send = (a: (typeof agents)[number]) => {
    while (a.next < a.batches.length && a.next < a.acked + WINDOW) {
      const k = v.spread === 'sticky' ? a.home : turn++ % ingests.length;
      const p = a.batches[a.next++]!;
      ingests[k]!.onEvents({ version: 2, site: 'bench', agent: a.agent, stream: 'load' }, eventsTopicV2('bench', a.agent, 'load'), p);
    }
    if (a.acked === a.batches.length) a.done?.();
  };
  const onAck = (topic: string, payload: string) => {
    const agent = topic.split('/')[3]!;
    const a = byAgent.get(agent)!;
    const ack = JSON.parse(payload) as { upto: number; status: string };
    const ackedBatches = Math.floor(ack.upto / BATCH) + (ack.upto === perAgent && perAgent % BATCH !== 0 ? 1 : 0);
    if (ack.status === 'gap') a.next = ackedBatches; // rewind: resend from the relay's cursor
    if (ackedBatches > a.acked) a.acked = ackedBatches;
    if (a.next < a.acked) a.next = a.acked;
    setImmediate(() => send(a));
  };
  const ingests = stores.map(
    (store, i) =>
      new Ingest({
        store,
        metrics: metrics[i]!,
        log,
        wireVersions: [2],
        maxRecordBytes: 1 << 20,
        publish: onAck,
        gapWaitMs: v.instances > 1 ? 200 : 0,
      }),
  );
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    agents.map(
      (a) =>
        new Promise<void>((resolve) => {
          a.done = resolve;
          send(a);
        }),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  for (const i of ingests) await i.close();
  // Exact: every agent's records once, in order.
  const totals = await stores[0]!.streamTotals();
  const stored = totals.reduce((n, t) => n + t.stored, 0);
  for (const s of stores) await s.close();
  if (dbName) {
    const admin = new pg.Client({ ...PG, database: 'postgres' });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
  const total = AGENTS * perAgent;
  if (stored !== total) throw new Error(`${v.name}: stored ${stored} of ${total} records`);
  return {
    eventsPerS: total / seconds,
    cpuMsPer100k: ((cpu.user + cpu.system) / 1000) * (100_000 / total),
    rewinds: metrics.reduce((n, m) => n + m.gaps, 0),
    waited: metrics.reduce((n, m) => n + m.gapWaitsResolved, 0),
  };
}

export const relayStore: Scenario = {
  name: 'relay-store',
  description: 'relay ingest events/s and relay CPU per 100 000 events: SQLite vs PostgreSQL, one vs three instances (in one process, round-robin like $share), 20 simulated agents',
  async run(ctx: ScenarioContext) {
    const perAgent = Math.max(BATCH, Math.round((ctx.quick ? 2_500 : 10_000) * ctx.scale));
    ctx.param('agents', AGENTS);
    ctx.param('records_per_agent', perAgent);
    ctx.param('batch', BATCH);
    ctx.param('window', WINDOW);
    for (let r = 0; r < ctx.repeats; r++) {
      for (const v of VARIANTS) {
        const res = await runVariant(ctx, v, perAgent, r);
        ctx.log(`${v.name}: ${res.eventsPerS.toFixed(0)} events/s, ${res.cpuMsPer100k.toFixed(0)} ms CPU per 100k, ${res.rewinds} rewinds, ${res.waited} gaps waited out`);
        ctx.record(`${v.name}_events_per_s`, 'events/s', Math.round(res.eventsPerS));
        ctx.record(`${v.name}_cpu_ms_per_100k`, 'ms', Math.round(res.cpuMsPer100k));
        ctx.record(`${v.name}_rewinds`, 'count', res.rewinds);
      }
    }
    ctx.note('instances share one process here (each its own Ingest and store pool): CPU is the whole process, agents’ ack handling included; a multi-process run over Mosquitto is the e2e test’s job');
  },
};
