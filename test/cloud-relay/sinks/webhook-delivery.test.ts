import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { retentionSchema } from '../../../cloud-relay/sinks/config.js';
import { sinkConfigSchema, type SinkConfig } from '../../../cloud-relay/sinks/registry.js';
import { Sinks } from '../../../cloud-relay/sinks/sinks.js';
import type { SinkHooksFor } from '../../../cloud-relay/sinks/sink.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { createLogger } from '../../../common/logger.js';
import { runCliAsync } from '../../helpers/cli.js';
import { waitFor } from '../../helpers/net.js';
import { parsePromText, sample } from '../../helpers/prom-text.js';
import { postgresStoreFactory, sqliteStoreFactory, type StoreFactory } from '../../helpers/relay-stores.js';
import { range } from '../../helpers/relay-wire.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { FlakyReceiver } from './receiver.js';
import { storeBatch } from './store-feed.js';

const silent = createLogger({ level: 'silent' });
const pgFactory = postgresStoreFactory();
const factories: StoreFactory[] = [sqliteStoreFactory(), pgFactory];
afterAll(async () => {
  for (const f of factories) await f.dispose();
});

const SECRET = 'test-signing-secret-0123456789';

function webhook(url: string, over: Record<string, unknown> = {}): SinkConfig {
  return sinkConfigSchema.parse({
    type: 'webhook',
    name: 'erp',
    url,
    secret: SECRET,
    // Long: an answer the client gave up on is delivered again (at least once), and on a loaded
    // CI machine a request can take longer than a short timeout without the receiver being slow.
    // The test of slow answers sets its own.
    timeout: '5s',
    batch_size: 10,
    max_attempts: 60,
    retry: { initial: '10ms', max: '80ms' },
    poll: '50ms',
    ...over,
  });
}

/** The ids a stream's events carry, in seq order. */
const promValue = (text: string, name: string, labels: Record<string, string>) => sample(parsePromText(text), name, labels);
const ids = (from: number, to: number, prefix = 'orders.csv#') => range(from, to).map((s) => `${prefix}${s}`);

describe.each(factories)('webhook sink on the $name store', (factory) => {
  let place: string;
  let tmp: ReturnType<typeof makeTempDir>;
  const stores: RelayStore[] = [];
  const running: Sinks[] = [];
  const receivers: FlakyReceiver[] = [];
  const openStore = async () => {
    const s = await factory.open(place, { dedupeWindowMs: 0, log: silent });
    stores.push(s);
    return s;
  };
  const startSinks = (store: RelayStore, sinks: SinkConfig[], hooksFor?: SinkHooksFor, registry = new Registry(), relayId = 'relay-1') => {
    const s = Sinks.start({ sinks, retention: retentionSchema.parse({}), store: store.delivery, registry, relayId, hooksFor, log: silent });
    running.push(s);
    return s;
  };
  const receiver = async (o: Parameters<typeof FlakyReceiver.start>[0]) => {
    const r = await FlakyReceiver.start(o);
    receivers.push(r);
    return r;
  };
  /** A relay.yaml on this test's store, for the dlq CLI. */
  const configFile = async (): Promise<string> => {
    const path = join(tmp.dir, 'relay.yaml');
    let store: string;
    if (factory.name === 'sqlite') store = `store: { path: ${JSON.stringify(place)} }`;
    else {
      const c = (await pgFactory.database()).connection;
      store = `store: { type: postgres, host: ${c.host}, port: ${c.port}, database: ${c.database}, user: ${c.user}, schema: ${place} }`;
    }
    writeFileSync(path, `broker: embedded\n${store}\nauth: { disabled: true }\n`);
    return path;
  };

  beforeEach(async () => {
    place = await factory.place();
    tmp = makeTempDir('erp-edge-sinks-');
  });
  afterEach(async () => {
    for (const s of running.splice(0)) await s.stop();
    for (const r of receivers.splice(0)) await r.stop();
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    tmp.cleanup();
  });

  it('delivers every event once per idempotency key and in seq order per stream through a receiver failing 30 % of requests and answering some too late', async () => {
    const store = await openStore();
    const rx = await receiver({ seed: 13, failRate: 0.3, slowRate: 0.08, slowMs: 600, secret: SECRET });
    const registry = new Registry();
    startSinks(store, [webhook(rx.url, { timeout: '300ms' })], undefined, registry);
    const streams = ['orders', 'returns', 'moves', 'counts'];
    // 4 streams × 75 events, stored while the sink delivers (batches of 5 to 15 events).
    for (let from = 1; from <= 75; ) {
      const to = Math.min(75, from + 4 + (from % 11));
      for (const stream of streams) await storeBatch(store, from, to, { stream, idPrefix: `${stream}#` });
      from = to + 1;
    }
    await rx.until('300 events', () => rx.total === 300);
    for (const stream of streams) {
      expect(rx.streams.get(`plant-7/edge-1/${stream}`)!.map((e) => e.id)).toEqual(ids(1, 75, `${stream}#`));
    }
    // The faults happened, and every request was signed right.
    expect(rx.counts.failed).toBeGreaterThan(0);
    expect(rx.counts.slow).toBeGreaterThan(0);
    expect(rx.counts.repeats).toBeGreaterThan(0);
    expect(rx.counts.badSignature).toBe(0);
    // A retried batch carries its key again: every repeat came with a key seen before.
    expect(new Set(rx.idempotencyKeys).size).toBeLessThan(rx.idempotencyKeys.length);
    // Caught up: the cursors reach each stream's end; nothing dead-lettered.
    await waitFor('cursors at 75', async () => (await store.delivery.pendingStreams('erp', 10)).length === 0, 60_000);
    expect(await store.delivery.listDeadLetters({}, 10)).toEqual([]);
    const text = await registry.metrics();
    expect(promValue(text, 'erp_edge_relay_sink_delivered_events_total', { sink: 'erp' })).toBeGreaterThanOrEqual(300);
    expect(promValue(text, 'erp_edge_relay_sink_failed_attempts_total', { sink: 'erp' })).toBeGreaterThan(0);
    expect(promValue(text, 'erp_edge_relay_sink_dead_letters', { sink: 'erp' })).toBe(0);
  }, 180_000);

  it('a relay restarted on this host takes its leases back at once; the same id on another host holds its own', async () => {
    const store = await openStore();
    const rx = await receiver({ seed: 5 });
    await storeBatch(store, 1, 3, { stream: 'mine', idPrefix: 'mine#' });
    await storeBatch(store, 1, 3, { stream: 'theirs', idPrefix: 'theirs#' });
    const pending = await store.delivery.pendingStreams('erp', 10);
    const idOf = (stream: string) => pending.find((p) => p.stream === stream)!.id;
    // Leases an hour long: this relay's previous life on this host, and an instance elsewhere left on the same id.
    expect(await store.delivery.claim('erp', idOf('mine'), `relay-1@${hostname()}`, Date.now(), 3_600_000)).toBe(0);
    expect(await store.delivery.claim('erp', idOf('theirs'), 'relay-1@another-host', Date.now(), 3_600_000)).toBe(0);
    startSinks(store, [webhook(rx.url)], undefined, new Registry(), 'relay-1');
    await rx.until('the stream this host held', () => rx.seqs('mine').length === 3);
    expect(rx.seqs('theirs')).toEqual([]);
  });

  it('with two relay instances on one store, one at a time delivers a stream: each event once, in order', async () => {
    const a = await openStore();
    const b = await openStore();
    const rx = await receiver({ seed: 11, failRate: 0.1 });
    startSinks(a, [webhook(rx.url, { batch_size: 5 })], undefined, new Registry(), 'relay-1');
    startSinks(b, [webhook(rx.url, { batch_size: 5 })], undefined, new Registry(), 'relay-2');
    const streams = ['s1', 's2', 's3', 's4'];
    for (let from = 1; from <= 40; from += 8) {
      for (const [i, stream] of streams.entries()) await storeBatch(i % 2 === 0 ? a : b, from, from + 7, { stream, idPrefix: `${stream}#` });
    }
    await rx.until('160 events', () => rx.total === 160);
    for (const stream of streams) expect(rx.seqs(stream)).toEqual(range(1, 40));
    // A lost answer (none here: no slow answers, a timeout no loaded machine reaches) is the only way an event arrives twice.
    expect(rx.counts.repeats).toBe(0);
  }, 180_000);

  it('keeps its cursor across a restart: the events delivered before are not sent again', async () => {
    let store = await openStore();
    const rx = await receiver({ seed: 5 });
    let sinks = startSinks(store, [webhook(rx.url)]);
    await storeBatch(store, 1, 25);
    await rx.until('25 events', () => rx.total === 25);
    await waitFor('cursor at 25', async () => (await store.delivery.pendingStreams('erp', 10)).length === 0, 60_000);
    await sinks.stop();
    running.splice(running.indexOf(sinks), 1);
    await store.close();
    stores.splice(0);
    const requestsBefore = rx.counts.requests;

    store = await openStore();
    await storeBatch(store, 26, 40);
    sinks = startSinks(store, [webhook(rx.url)]);
    await rx.until('40 events', () => rx.total === 40);
    expect(rx.streams.get('plant-7/edge-1/orders')!.map((e) => e.id)).toEqual(ids(1, 40));
    expect(rx.counts.repeats).toBe(0);
    expect(rx.counts.requests - requestsBefore).toBe(2); // 26..35 and 36..40
  }, 120_000);

  it('dead-letters a permanently failing stream without blocking the others; `dlq retry` delivers it once the receiver is fixed', async () => {
    const store = await openStore();
    const rx = await receiver({ seed: 7 });
    rx.broken.add('returns');
    const registry = new Registry();
    startSinks(store, [webhook(rx.url, { max_attempts: 3, batch_size: 100 })], undefined, registry);
    await storeBatch(store, 1, 6, { stream: 'returns', idPrefix: 'returns#' });
    await storeBatch(store, 1, 20);
    // The other stream goes on while returns fails.
    await rx.until('orders 1..20', () => rx.total === 20);
    await waitFor('returns dead-lettered', async () => (await store.delivery.listDeadLetters({ stream: 'returns' }, 100)).length === 6, 60_000);
    expect(rx.counts.brokenRefused).toBe(3);
    const dead = await store.delivery.listDeadLetters({ sink: 'erp' }, 100);
    expect(dead.map((d) => [d.seq, d.event_id, d.status, d.attempts])).toEqual(range(1, 6).map((s) => [s, `returns#${s}`, 'dead', 3]));
    expect(dead[0]!.error).toMatch(/HTTP 500/);
    // The stream moved on: returns 7.. are delivered.
    await storeBatch(store, 7, 8, { stream: 'returns', idPrefix: 'returns#' });
    rx.broken.delete('returns');
    await rx.until('returns 7..8', () => rx.total === 22);
    expect(rx.streams.get('plant-7/edge-1/returns')!.map((e) => e.id)).toEqual(ids(7, 8, 'returns#'));
    const text = await registry.metrics();
    expect(promValue(text, 'erp_edge_relay_sink_dead_letters', { sink: 'erp' })).toBe(6);
    expect(promValue(text, 'erp_edge_relay_sink_dead_letter_oldest_age_seconds', { sink: 'erp' })).toBeGreaterThanOrEqual(0);
    expect(promValue(text, 'erp_edge_relay_sink_dead_lettered_events_total', { sink: 'erp' })).toBe(6);

    const config = await configFile();
    const list = await runCliAsync('cloud-relay', ['dlq', 'list', '--config', config, '--stream', 'returns']);
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout.trim().split('\n')).toHaveLength(7);
    expect(list.stdout).toMatch(/erp\tplant-7\/edge-1\/returns\tepoch-aaaaaaaa\t1\treturns#1\tdead\t3\t.*HTTP 500/);
    const retry = await runCliAsync('cloud-relay', ['dlq', 'retry', '--config', config, '--sink', 'erp', '--site', 'plant-7']);
    expect(retry.status, retry.stderr).toBe(0);
    expect(retry.stdout).toMatch(/^6 dead-lettered event\(s\) marked for retry/);
    await rx.until('returns 1..6 retried', () => rx.total === 28);
    expect(rx.streams.get('plant-7/edge-1/returns')!.map((e) => e.id)).toEqual([...ids(7, 8, 'returns#'), ...ids(1, 6, 'returns#')]);
    await waitFor('dead-letter table empty', async () => (await store.delivery.listDeadLetters({}, 10)).length === 0, 60_000);
    expect(rx.counts.repeats).toBe(0);
    if (factory.name === 'sqlite') {
      // Deleting rows for good needs a filter or --all (refused before the store is opened).
      const discard = await runCliAsync('cloud-relay', ['dlq', 'discard', '--config', config]);
      expect(discard.status).toBe(2);
      expect(discard.stderr).toMatch(/give a filter .* or --all/);
    }
  }, 180_000);

  it('applies match and transform before delivery: an unmatched event is passed, a refused one dead-lettered with its field and reason', async () => {
    const store = await openStore();
    const rx = await receiver({ seed: 3 });
    const hooksFor: SinkHooksFor = () => ({
      match: (e) => e.stream === 'orders',
      transform: (e) =>
        e.seq % 4 === 0 ? { ok: false, field: 'data.qty', reason: `not a number: "${e.seq}x"` } : { ok: true, value: { order: e.id, qty: (e.data as { seq: number }).seq, correlation_id: e.correlation_id } },
    });
    startSinks(store, [webhook(rx.url)], hooksFor);
    await storeBatch(store, 1, 5, { stream: 'noise', idPrefix: 'noise#' });
    await storeBatch(store, 1, 9);
    await rx.until('orders delivered', () => rx.total === 7);
    expect(rx.streams.get('plant-7/edge-1/orders')!).toEqual(
      [1, 2, 3, 5, 6, 7, 9].map((s) => ({ id: `orders.csv#${s}`, seq: s, value: { order: `orders.csv#${s}`, qty: s, correlation_id: s % 2 === 0 ? `file:${s}` : null } })),
    );
    await waitFor('every stream passed', async () => (await store.delivery.pendingStreams('erp', 10)).length === 0, 60_000);
    expect(rx.streams.has('plant-7/edge-1/noise')).toBe(false);
    expect((await store.delivery.listDeadLetters({}, 10)).map((d) => [d.stream, d.seq, d.field, d.error, d.attempts])).toEqual([
      ['orders', 4, 'data.qty', 'transform refused data.qty: not a number: "4x"', 0],
      ['orders', 8, 'data.qty', 'transform refused data.qty: not a number: "8x"', 0],
    ]);
  }, 120_000);
});
