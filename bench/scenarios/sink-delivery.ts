import { once } from 'node:events';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import mqtt from 'mqtt';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { applyBatches } from '../../cloud-relay/ingest/apply.js';
import { decodeEventBatch } from '../../cloud-relay/ingest/decode.js';
import { retentionSchema } from '../../cloud-relay/sinks/config.js';
import { sinkConfigSchema } from '../../cloud-relay/sinks/registry.js';
import { Sinks } from '../../cloud-relay/sinks/sinks.js';
import { PostgresRelayStore } from '../../cloud-relay/store/postgres-store.js';
import { SqliteRelayStore } from '../../cloud-relay/store/sqlite-store.js';
import type { RelayStore } from '../../cloud-relay/store/store.js';
import { MosquittoProcess } from '../lib/mosquitto.js';
import { sampleRecord } from '../lib/payload.js';
import { ScenarioUnavailable, type Scenario, type ScenarioContext } from '../types.js';

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', password: '' };
const STREAMS = 20;
const STORE_BATCH = 250;
const log = createLogger({ level: 'silent' });

interface Variant {
  name: string;
  store: 'sqlite' | 'postgres';
  sink: 'webhook' | 'mqtt';
}

const VARIANTS: Variant[] = [
  { name: 'sqlite-webhook', store: 'sqlite', sink: 'webhook' },
  { name: 'postgres-webhook', store: 'postgres', sink: 'webhook' },
  { name: 'sqlite-mqtt', store: 'sqlite', sink: 'mqtt' },
];

async function openStore(ctx: ScenarioContext, v: Variant, run: number): Promise<{ store: RelayStore; drop: () => Promise<void> }> {
  if (v.store === 'sqlite') {
    return { store: new SqliteRelayStore({ path: join(ctx.dir, `relay-${v.name}-${run}.db`), synchronous: 'FULL', dedupeWindowMs: 0, log }), drop: async () => undefined };
  }
  const db = `erp_edge_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ ...PG, database: 'postgres' });
  try {
    await admin.connect();
  } catch (err) {
    throw new ScenarioUnavailable(`PostgreSQL at ${PG.host}:${PG.port} (user postgres) does not answer: ${(err as Error).message}`);
  }
  await admin.query(`CREATE DATABASE ${db}`);
  await admin.end();
  const store = await PostgresRelayStore.open({ ...PG, database: db, poolSize: 10, schema: 'relay', statementTimeoutMs: 30_000, dedupeWindowMs: 0, log });
  return {
    store,
    drop: async () => {
      const a = new pg.Client({ ...PG, database: 'postgres' });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Fills the store through ingest's own path: STREAMS streams × perStream events. */
async function fill(store: RelayStore, perStream: number): Promise<void> {
  for (let s = 0; s < STREAMS; s++) {
    const stream = `stream-${String(s).padStart(2, '0')}`;
    for (let first = 1; first <= perStream; first += STORE_BATCH) {
      const recs: string[] = [];
      for (let q = first; q < first + STORE_BATCH && q <= perStream; q++) {
        const r = JSON.parse(sampleRecord(q)) as { id: string };
        r.id = `${stream}:${q}`;
        recs.push(JSON.stringify(r));
      }
      const payload = Buffer.from(`{"v":2,"site":"bench","agent":"a","stream":"${stream}","epoch":"epoch-00000001","sent_at":${Date.now()},"records":[${recs.join(',')}]}`);
      const d = decodeEventBatch({ version: 2, site: 'bench', agent: 'a', stream }, payload, { maxRecordBytes: 1 << 20 });
      if (!d.ok) throw new Error(d.detail);
      await applyBatches(store, [d.batch]);
    }
  }
}

/** A receiver that counts events: an HTTP server (webhook) or an MQTT subscription; resolves once `total` arrived. */
async function receiver(v: Variant, total: number, broker: MosquittoProcess | undefined): Promise<{ url: string; done: Promise<void>; close: () => Promise<void> }> {
  let n = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  if (v.sink === 'webhook') {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        n += (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: unknown[] }).events.length;
        res.writeHead(200).end();
        if (n >= total) resolve();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const addr = server.address();
    return {
      url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`,
      done,
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }
  const sub = await mqtt.connectAsync(broker!.url, { clientId: `bench-sub-${randomBytes(3).toString('hex')}` });
  sub.on('message', () => {
    if (++n >= total) resolve();
  });
  await sub.subscribeAsync('bench-cloud/#', { qos: 1 });
  return { url: broker!.url, done, close: () => sub.endAsync() };
}

async function runVariant(ctx: ScenarioContext, v: Variant, perStream: number, run: number, broker: MosquittoProcess | undefined): Promise<{ eventsPerS: number; cpuMsPer100k: number }> {
  const { store, drop } = await openStore(ctx, v, run);
  const total = STREAMS * perStream;
  try {
    await fill(store, perStream);
    const rx = await receiver(v, total, broker);
    const cfg = sinkConfigSchema.parse(
      v.sink === 'webhook'
        ? { type: 'webhook', name: 'bench', url: rx.url, secret: 'bench-signing-secret-0123', batch_size: 100 }
        : { type: 'mqtt', name: 'bench', url: rx.url, topic: 'bench-cloud/{stream}', batch_size: 100 },
    );
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const sinks = Sinks.start({ sinks: [cfg], retention: retentionSchema.parse({}), store: store.delivery, registry: new Registry(), relayId: 'bench', log });
    await rx.done;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    await sinks.stop();
    await rx.close();
    return { eventsPerS: total / seconds, cpuMsPer100k: ((cpu.user + cpu.system) / 1000) * (100_000 / total) };
  } finally {
    await store.close();
    await drop();
  }
}

export const sinkDelivery: Scenario = {
  name: 'sink-delivery',
  description: 'sink delivery events/s and CPU per 100 000 events from a filled store: webhook (SQLite, PostgreSQL) and mqtt (SQLite, Mosquitto), 20 streams, batches of 100',
  async run(ctx: ScenarioContext) {
    const perStream = Math.max(100, Math.round((ctx.quick ? 1_000 : 5_000) * ctx.scale));
    ctx.param('streams', STREAMS);
    ctx.param('events_per_stream', perStream);
    ctx.param('batch_size', 100);
    ctx.param('concurrency', 16);
    const broker = await MosquittoProcess.start(ctx.dir);
    try {
      for (let r = 0; r < ctx.repeats; r++) {
        for (const v of VARIANTS) {
          const res = await runVariant(ctx, v, perStream, r, v.sink === 'mqtt' ? broker : undefined);
          ctx.log(`${v.name}: ${res.eventsPerS.toFixed(0)} events/s, ${res.cpuMsPer100k.toFixed(0)} ms CPU per 100k`);
          ctx.record(`${v.name}_events_per_s`, 'events/s', Math.round(res.eventsPerS));
          ctx.record(`${v.name}_cpu_ms_per_100k`, 'ms', Math.round(res.cpuMsPer100k));
        }
      }
    } finally {
      await broker.stop();
    }
    ctx.note('receiver in the same process: CPU covers the relay side (read, transform, sign, send, cursor) and the receiver’s parse; the mqtt variant’s broker is a separate process (not counted)');
  },
};
