import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Relay } from '../../cloud-relay/relay.js';
import { ErpEdgeError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { eventsTopic } from '../../common/wire-v1.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { getJson, relayHarness, type ServedEvent } from '../helpers/relay-harness.js';
import { AGENT, EPOCH_A as EPOCH, SITE, batchV1 as batch, batchV2, range, recordV1 as record, servedV1 as served } from '../helpers/relay-wire.js';

const WAIT_MS = 15_000;
const silent = createLogger({ level: 'silent' });

// Under CI=true a missing mosquitto throws here and fails the file; elsewhere its test is skipped loudly.
const HAVE_MOSQUITTO = requireBinary('mosquitto', MOSQUITTO_INSTALL);

interface EventsResponse {
  site: string;
  agent: string;
  stream: string;
  epoch: string | null;
  events: ServedEvent[];
  next_after: number;
}

interface StreamsResponse {
  streams: Array<{ site: string; agent: string; stream: string; epoch: string; last_seq: number; dropped: number; current: boolean }>;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

function listen(port: number, host = '127.0.0.1'): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv));
  });
}

function closeServer(srv: Server): Promise<void> {
  return new Promise((resolve) => srv.close(() => resolve()));
}

async function expectStartFails(p: Promise<Relay>): Promise<ErpEdgeError> {
  const outcome = await p.then(
    async (relay) => {
      await relay.stop();
      return new Error('Relay.start() succeeded but was expected to fail');
    },
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(ErpEdgeError);
  return outcome as ErpEdgeError;
}

describe('Relay', () => {
  const h = relayHarness();
  const { config, startRelay, connectAgent, stats, streams } = h;
  const events = (relay: Relay, stream = 'orders', extra = ''): Promise<EventsResponse> =>
    h.events(relay, stream, extra) as Promise<EventsResponse>;
  let servers: Server[];
  let mosquittos: MosquittoProcess[];

  beforeEach(() => {
    h.setup();
    servers = [];
    mosquittos = [];
  });

  afterEach(async () => {
    // Clients first, so the embedded broker's close does not wait on them.
    await h.cleanup();
    for (const m of mosquittos) await m.stop();
    for (const s of servers) await closeServer(s);
  });

  const eventsUrl = (relay: Relay, query: string) => `${relay.httpUrl}/api/events?${query}`;

  it('acks a valid batch with status ok and the last stored seq, and serves it over HTTP', async () => {
    const relay = await startRelay();
    expect(relay.brokerUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(portOf(relay.brokerUrl)).toBeGreaterThan(0);
    const agent = await connectAgent(relay);
    const before = await stats(relay);

    expect(await agent.send(batch(1, 3))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 3, status: 'ok' });
    expect(await agent.send(batch(4, 4))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 4, status: 'ok' });

    const res = await events(relay);
    expect(res).toMatchObject({ site: SITE, agent: AGENT, stream: 'orders', epoch: EPOCH, next_after: 4 });
    expect(res.events.map(({ received_at: _r, ...e }) => e)).toEqual([record(1), record(2), record(3), record(4)].map(served));
    // The ack came after the commit: the store already has the records.
    expect((await relay.store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 0, limit: 100 })).events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);

    expect(await streams(relay)).toEqual([
      expect.objectContaining({ site: SITE, agent: AGENT, stream: 'orders', epoch: EPOCH, last_seq: 4, dropped: 0, current: true }),
    ]);
    const after = await stats(relay);
    expect(after.batches - before.batches).toBe(2);
    expect(after.records_stored - before.records_stored).toBe(4);
    expect(after).toMatchObject({ duplicates: 0, gaps: 0, new_epochs: 0, store_errors: 0, rejected: { invalid_json: 0, invalid_schema: 0, topic_mismatch: 0, bad_topic: 0 } });
    expect(agent.invalidAcks).toEqual([]);
  });

  it('a forged batch that skips seqs is answered with the expected seq and nothing out of order is stored', async () => {
    const relay = await startRelay();
    const agent = await connectAgent(relay);

    expect(await agent.send(batch(1, 2))).toMatchObject({ status: 'ok', upto: 2 });
    expect(await agent.send(batch(3, 5))).toMatchObject({ status: 'ok', upto: 5 });

    const gap = await agent.send(batch(8, 10, { tag: 'forged' }));
    expect(gap).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 5, status: 'gap' });
    // The agent resends from upto + 1.
    expect(gap.upto + 1).toBe(6);
    expect((await relay.store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 0, limit: 100 })).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await events(relay)).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await stats(relay)).gaps).toBe(1);

    expect(await agent.send(batch(6, 10, { tag: 'resent' }))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 10, status: 'ok' });
    const res = await events(relay);
    expect(res.events.map((e) => e.seq)).toEqual(range(1, 10));
    expect(res.next_after).toBe(10);
    // Nothing of the forged batch was kept: 8..10 are the resent copies.
    expect(res.events.map((e) => (e.data as { tag: string }).tag)).toEqual([...Array(5).fill('first'), ...Array(5).fill('resent')]);
    expect((await streams(relay))[0]).toMatchObject({ stream: 'orders', last_seq: 10 });
  });

  it('re-acks a duplicate batch with the last stored seq and stores it once', async () => {
    const relay = await startRelay();
    const agent = await connectAgent(relay);
    const before = await stats(relay);

    expect(await agent.send(batch(1, 5))).toMatchObject({ status: 'ok', upto: 5 });
    expect(await agent.send(batch(1, 5, { tag: 'again' }))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 5, status: 'ok' });
    expect(await agent.send(batch(2, 3, { tag: 'again' }))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 5, status: 'ok' });
    expect(await agent.send(batch(4, 7, { tag: 'again' }))).toMatchObject({ status: 'ok', upto: 7 });

    const res = await events(relay);
    expect(res.events.map((e) => e.seq)).toEqual(range(1, 7));
    expect(res.events.map((e) => (e.data as { tag: string }).tag)).toEqual(['first', 'first', 'first', 'first', 'first', 'again', 'again']);
    const after = await stats(relay);
    expect(after.duplicates - before.duplicates).toBe(5 + 2 + 2);
    expect(after.records_stored - before.records_stored).toBe(7);
    expect(after.gaps).toBe(0);
  });

  it('keeps a new epoch apart and counts it; dropped_upto moves the cursor and is counted', async () => {
    const relay = await startRelay();
    const agent = await connectAgent(relay);
    const EPOCH2 = 'epoch-22222222';

    expect(await agent.send(batch(1, 3, { tag: 'old' }))).toMatchObject({ status: 'ok', upto: 3 });
    // Other records in the new epoch (the relay de-duplicates by id across epochs: same ids would not be stored).
    expect(await agent.send(batch(1, 2, { epoch: EPOCH2, tag: 'new', idPrefix: 'new#' }))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH2, upto: 2, status: 'ok' });
    expect(await agent.send(batch(6, 7, { epoch: EPOCH2, dropped_upto: 5, tag: 'new', idPrefix: 'new#' }))).toMatchObject({ status: 'ok', upto: 7 });

    const current = await events(relay);
    expect(current.epoch).toBe(EPOCH2);
    expect(current.events.map((e) => e.seq)).toEqual([1, 2, 6, 7]);
    const old = await events(relay, 'orders', `&epoch=${EPOCH}`);
    expect(old.epoch).toBe(EPOCH);
    expect(old.events.map((e) => [e.seq, (e.data as { tag: string }).tag])).toEqual([
      [1, 'old'],
      [2, 'old'],
      [3, 'old'],
    ]);

    const s = await stats(relay);
    expect(s.new_epochs).toBe(1);
    expect(s.dropped_at_agents).toBe(3);
    expect(s.duplicates).toBe(0);
    const rows = await streams(relay);
    expect(rows).toHaveLength(2);
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ epoch: EPOCH, last_seq: 3, dropped: 0, current: false }),
        expect.objectContaining({ epoch: EPOCH2, last_seq: 7, dropped: 3, current: true }),
      ]),
    );
  });

  it('rejects and counts invalid messages by reason, storing nothing and acking nothing', async () => {
    const relay = await startRelay();
    const agent = await connectAgent(relay);
    const ordersTopic = eventsTopic(SITE, AGENT, 'orders');
    const acksBefore = agent.acks.length;

    // invalid_json
    await agent.publishRaw(ordersTopic, 'not json at all');
    await agent.publishRaw(ordersTopic, '{"v":1,"site":');
    await agent.publishRaw(ordersTopic, Buffer.from([0xff, 0xfe, 0x00, 0x7b]));

    // invalid_schema
    const { records: _r, ...noRecords } = batch(1, 1);
    const nonConsecutive = batch(1, 3);
    nonConsecutive.records[2] = record(5);
    const shortEpoch = { ...batch(1, 1), epoch: 'short' };
    await agent.publishRaw(ordersTopic, JSON.stringify({ ...batch(1, 1), v: 2 }));
    await agent.publishRaw(ordersTopic, JSON.stringify(noRecords));
    await agent.publishRaw(ordersTopic, JSON.stringify({ ...batch(1, 1), records: [] }));
    await agent.publishRaw(ordersTopic, JSON.stringify(nonConsecutive));
    await agent.publishRaw(ordersTopic, JSON.stringify(shortEpoch));
    await agent.publishRaw(ordersTopic, JSON.stringify({ ...batch(1, 1), records: [{ ...record(1), seq: 0 }] }));
    await agent.publishRaw(ordersTopic, JSON.stringify([batch(1, 1)]));

    // topic_mismatch: a valid batch whose envelope names another site, agent or stream than its topic
    await agent.publishRaw(ordersTopic, JSON.stringify({ ...batch(1, 1), stream: 'returns' }));
    await agent.publishRaw(ordersTopic, JSON.stringify({ ...batch(1, 1), site: 'plant-8' }));
    await agent.publishRaw(ordersTopic, JSON.stringify({ ...batch(1, 1), agent: 'edge-2' }));
    await agent.publishRaw(eventsTopic(SITE, 'edge-2', 'orders'), JSON.stringify(batch(1, 1)));

    // bad_topic: matched by erp-edge/v1/+/+/events/# but not an events topic
    await agent.publishRaw(`erp-edge/v1/${SITE}/${AGENT}/events`, JSON.stringify(batch(1, 1)));
    await agent.publishRaw(`${ordersTopic}/extra`, JSON.stringify(batch(1, 1)));

    const expected = { invalid_json: 3, invalid_schema: 7, topic_mismatch: 4, bad_topic: 2, unsupported_version: 0, too_large: 0, internal_error: 0, invalid_presence: 0, invalid_health: 0 };
    const total = Object.values(expected).reduce((a, b) => a + b, 0);
    const s = await waitFor(
      `${total} rejected messages to be counted`,
      async () => {
        const cur = await stats(relay);
        const sum = Object.values(cur.rejected).reduce((a, b) => a + b, 0);
        return sum >= total ? cur : undefined;
      },
      WAIT_MS,
    );
    expect(s.rejected).toEqual(expected);

    // A valid batch after them is processed normally: every message before it has been handled.
    expect(await agent.send(batch(1, 1, { stream: 'sentinel' }))).toMatchObject({ status: 'ok', upto: 1 });
    expect((await stats(relay)).rejected).toEqual(expected);

    expect((await streams(relay)).map((r) => r.stream)).toEqual(['sentinel']);
    for (const stream of ['orders', 'returns']) expect((await events(relay, stream)).events).toEqual([]);
    expect((await relay.store.listStreams()).some((r) => r.site === 'plant-8' || r.agent === 'edge-2')).toBe(false);
    // Only the sentinel was acked; a rejected message gets no ack.
    expect(agent.acks.slice(acksBefore).map((a) => a.stream)).toEqual(['sentinel']);
    expect(agent.invalidAcks).toEqual([]);
  });

  it('answers a bad /api/events query with 400', async () => {
    const relay = await startRelay();
    const agent = await connectAgent(relay);
    await agent.send(batch(1, 3));
    const base = `site=${SITE}&agent=${AGENT}&stream=orders`;

    const bad = [
      `agent=${AGENT}&stream=orders`, // no site
      `site=${SITE}&stream=orders`, // no agent
      `site=${SITE}&agent=${AGENT}`, // no stream
      `site=a%2Fb&agent=${AGENT}&stream=orders`, // not a topic level
      `site=%2B&agent=${AGENT}&stream=orders`, // a wildcard
      `${base}&after=-1`,
      `${base}&after=abc`,
      `${base}&after=1.5`,
      `${base}&limit=0`,
      `${base}&limit=10001`,
      `${base}&limit=ten`,
      `${base}&color=red`, // unknown parameter
    ];
    for (const q of bad) {
      const { status, body } = await getJson<{ error: string; issues: string[] }>(eventsUrl(relay, q));
      expect({ q, status }).toEqual({ q, status: 400 });
      expect(body.error).toBe('invalid query');
      expect(body.issues.length).toBeGreaterThan(0);
    }

    // The same endpoint with a good query still answers.
    const ok = await getJson<EventsResponse>(eventsUrl(relay, `${base}&after=1&limit=1`));
    expect(ok.status).toBe(200);
    expect(ok.body.events.map((e) => e.seq)).toEqual([2]);
    expect(ok.body.next_after).toBe(2);
    const unknown = await getJson<EventsResponse>(eventsUrl(relay, `site=${SITE}&agent=${AGENT}&stream=nothing`));
    expect(unknown).toEqual({ status: 200, body: { site: SITE, agent: AGENT, stream: 'nothing', epoch: null, events: [], next_after: 0 } });
  });

  it('fails with ERP_PORT_IN_USE naming embedded_broker.port when the broker port is taken', async () => {
    const taken = await listen(0);
    servers.push(taken);
    const port = (taken.address() as { port: number }).port;
    const httpPort = await freePort();

    const err = await expectStartFails(Relay.start(config({ embedded_broker: { host: '127.0.0.1', port }, http: { host: '127.0.0.1', port: httpPort } }), silent));
    expect(err.code).toBe('ERP_PORT_IN_USE');
    expect(err.message).toContain('`embedded_broker.port`');
    expect(err.message).toContain(String(port));
    expect(err.context).toMatchObject({ port, setting: 'embedded_broker.port' });
    // The failed start left the HTTP port alone.
    await closeServer(await listen(httpPort));
  });

  it('fails with ERP_PORT_IN_USE naming http.port when the API port is taken, and releases the broker port', async () => {
    const taken = await listen(0);
    servers.push(taken);
    const port = (taken.address() as { port: number }).port;
    const brokerPort = await freePort();

    const err = await expectStartFails(Relay.start(config({ embedded_broker: { host: '127.0.0.1', port: brokerPort }, http: { host: '127.0.0.1', port } }), silent));
    expect(err.code).toBe('ERP_PORT_IN_USE');
    expect(err.message).toContain('`http.port`');
    expect(err.message).toContain(String(port));
    expect(err.context).toMatchObject({ port, setting: 'http.port' });
    // The embedded broker that had started was closed again.
    await closeServer(await listen(brokerPort));
  });

  it('releases the embedded broker port when the store cannot be opened', async () => {
    const brokerPort = await freePort();
    const notADir = join(h.dir, 'not-a-dir');
    writeFileSync(notADir, 'a file where the store folder should be');

    await expect(
      Relay.start(config({ embedded_broker: { host: '127.0.0.1', port: brokerPort }, store: { path: join(notADir, 'relay.db'), synchronous: 'FULL' } }), silent),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^(EEXIST|ENOTDIR)$/) });
    await closeServer(await listen(brokerPort));
  });

  it('after a restart on the same store, /api/stats and /metrics count what the store holds (not 0); traffic counters go on from the saved ones', async () => {
    const cfg = { limits: { max_record_bytes: 2048 } };
    const relay = await startRelay(cfg);
    const agent = await connectAgent(relay);
    expect(await agent.sendV2(batchV2(1, 5))).toMatchObject({ status: 'ok', upto: 5 });
    // 6 dropped at the agent's cap, 7 pruned, 8 dead-lettered; 9..10 stored.
    const skips = [{ from: 6, to: 6, reason: 'dropped' }, { from: 7, to: 7, reason: 'pruned' }, { from: 8, to: 8, reason: 'dead_letter' }];
    expect(await agent.sendV2(batchV2(9, 10, { skipped: skips }))).toMatchObject({ status: 'ok', upto: 10 });
    // 11 carries the id of seq 1 (recognised, not stored); 12 is stored.
    const dup = batchV2(11, 12);
    dup.records[0]!.id = 'orders.csv#1';
    expect(await agent.sendV2(dup)).toMatchObject({ status: 'ok', upto: 12 });
    // 13 over the relay's size limit, on stream `stock` one record without its ts.
    const big = batchV2(13, 13);
    big.records[0]!.data = { note: 'x'.repeat(3_000) };
    expect(await agent.sendV2(big)).toMatchObject({ status: 'rejected', upto: 12 });
    const bad = batchV2(1, 2, { stream: 'stock' });
    bad.records[1]!.ts = null;
    expect(await agent.sendV2(bad)).toMatchObject({ status: 'rejected', upto: 1 });
    // A v1 resend with another id at a held seq: a conflict (v1: counted, and skipped as a duplicate).
    expect(await agent.send(batch(5, 5, { idPrefix: 'other#' }))).toMatchObject({ status: 'ok', upto: 12 });

    const storeBacked = (s: Awaited<ReturnType<typeof stats>>) => ({
      records_stored: s.records_stored,
      duplicate_ids: s.duplicate_ids,
      conflicts: s.conflicts,
      dropped_at_agents: s.dropped_at_agents,
      skipped: s.skipped,
      rejected_records: s.rejected_records,
    });
    const before = await stats(relay);
    const warmup = (await getJson<StreamsResponse>(`${relay.httpUrl}/api/streams`)).body.streams.filter((s) => s.stream.startsWith('warmup-')).length;
    expect(storeBacked(before)).toEqual({
      records_stored: 5 + 2 + 1 + 1 + warmup,
      duplicate_ids: 1,
      conflicts: 1,
      dropped_at_agents: 1,
      skipped: { dropped: 1, dead_letter: 1, pruned: 1, other: 0 },
      rejected_records: { invalid_record: 1, record_too_large: 1 },
    });
    expect(before.batches).toBeGreaterThan(0);
    await agent.close();
    await h.stopRelay(relay);

    // The harness gives every relay of a test the same store file.
    const again = await startRelay(cfg);
    const after = await stats(again);
    expect(storeBacked(after)).toEqual(storeBacked(before));
    // The traffic counters were saved at the stop (counters-file.ts) and go on.
    expect(after).toMatchObject({ batches: before.batches, gaps: before.gaps, duplicates: before.duplicates, rejected_acks: before.rejected_acks, counted_since: before.counted_since });
    expect(after.started_at).toBeGreaterThanOrEqual(before.started_at);
    const metrics = await (await fetch(`${again.httpUrl}/metrics`)).text();
    expect(metrics).toContain(`erp_edge_relay_events_stored_total{site="${SITE}",agent="${AGENT}",stream="orders"} 8`);
    expect(metrics).toContain('erp_edge_relay_skipped_seqs_total{reason="pruned"} 1');
    expect(metrics).toContain('erp_edge_relay_records_rejected_total{reason="record_too_large"} 1');
    // And they go on from there.
    const next = await connectAgent(again);
    expect(await next.sendV2(batchV2(13, 14, { skipped: [] }))).toMatchObject({ status: 'ok', upto: 14 });
    expect(await (await fetch(`${again.httpUrl}/metrics`)).text()).toContain(`erp_edge_relay_events_stored_total{site="${SITE}",agent="${AGENT}",stream="orders"} 10`);
  });

  it('stop() releases the broker and HTTP ports', async () => {
    const relay = await startRelay();
    const brokerPort = portOf(relay.brokerUrl);
    const httpPort = portOf(relay.httpUrl);
    const agent = await connectAgent(relay);
    await agent.close();

    await h.stopRelay(relay);
    const a = await listen(brokerPort);
    const b = await listen(httpPort);
    await closeServer(a);
    await closeServer(b);

    // The same ports and store serve a new relay, with the data kept.
    const again = await startRelay({ embedded_broker: { host: '127.0.0.1', port: brokerPort }, http: { host: '127.0.0.1', port: httpPort } });
    expect(again.brokerUrl).toBe(relay.brokerUrl);
    expect(again.httpUrl).toBe(relay.httpUrl);
    expect((await getJson<StreamsResponse>(`${again.httpUrl}/api/streams`)).body.streams.length).toBeGreaterThanOrEqual(1);
  });

  it.runIf(HAVE_MOSQUITTO)('works against an external Mosquitto: ok, gap and resend', async () => {
    const mosquitto = await MosquittoProcess.start(h.dir);
    mosquittos.push(mosquitto);
    const relay = await startRelay({ broker: { url: mosquitto.url } });
    expect(relay.brokerUrl).toBe(mosquitto.url);
    const agent = await connectAgent(relay);

    expect(await agent.send(batch(1, 5))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 5, status: 'ok' });
    expect(await agent.send(batch(8, 10))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 5, status: 'gap' });
    expect((await events(relay)).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await agent.send(batch(6, 10))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 10, status: 'ok' });
    expect(await agent.send(batch(9, 10))).toEqual({ v: 1, stream: 'orders', epoch: EPOCH, upto: 10, status: 'ok' });
    expect((await events(relay)).events.map((e) => e.seq)).toEqual(range(1, 10));

    await agent.publishRaw(eventsTopic(SITE, AGENT, 'orders'), 'garbage');
    const s = await waitFor('the invalid message to be counted', async () => {
      const cur = await stats(relay);
      return cur.rejected.invalid_json > 0 ? cur : undefined;
    }, WAIT_MS);
    expect(s).toMatchObject({ gaps: 1, duplicates: 2, rejected: { invalid_json: 1, invalid_schema: 0, topic_mismatch: 0, bad_topic: 0 } });
  });
});
