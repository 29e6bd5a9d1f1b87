import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RelayConfig } from '../../cloud-relay/config.js';
import { Relay } from '../../cloud-relay/relay.js';
import { ErpEdgeError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { ack as ackSchema, ackTopic, eventsTopic, type Ack, type EventBatch, type WireRecord } from '../../common/wire-v1.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { makeTempDir } from '../helpers/tmp.js';

// Under CI=true a missing mosquitto throws here and fails the file; elsewhere its test is skipped loudly.
const HAVE_MOSQUITTO = requireBinary('mosquitto', MOSQUITTO_INSTALL);

const SITE = 'plant-7';
const AGENT = 'edge-1';
const EPOCH = 'epoch-11111111';
const WAIT_MS = 15_000;

const silent = createLogger({ level: 'silent' });

function record(seq: number, tag = 'first', idPrefix = 'orders.csv#'): WireRecord {
  return {
    seq,
    id: `${idPrefix}${seq}`,
    ts: 1_700_000_000_000 + seq,
    source: 'file-drop:orders',
    correlation_id: seq % 2 === 0 ? `po-${seq}` : null,
    data: { seq, tag },
  };
}

function batch(from: number, to: number, o: { stream?: string; epoch?: string; dropped_upto?: number; tag?: string; idPrefix?: string } = {}): EventBatch {
  const records: WireRecord[] = [];
  for (let s = from; s <= to; s++) records.push(record(s, o.tag, o.idPrefix));
  return {
    v: 1,
    site: SITE,
    agent: AGENT,
    stream: o.stream ?? 'orders',
    epoch: o.epoch ?? EPOCH,
    ...(o.dropped_upto !== undefined ? { dropped_upto: o.dropped_upto } : {}),
    sent_at: Date.now(),
    records,
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

interface Stats {
  batches: number;
  records_stored: number;
  duplicates: number;
  gaps: number;
  dropped_at_agents: number;
  new_epochs: number;
  store_errors: number;
  duplicate_ids: number;
  rejected: Record<'invalid_json' | 'invalid_schema' | 'topic_mismatch' | 'bad_topic' | 'unsupported_version' | 'invalid_presence' | 'invalid_health', number>;
}

/** What /api/events serves for a v1 record: v2's optional fields as null. */
const served = (r: WireRecord) => ({ ...r, source_ts: null, key: null, txn: null });

interface EventsResponse {
  site: string;
  agent: string;
  stream: string;
  epoch: string | null;
  events: Array<{ seq: number; id: string; ts: number; source: string; correlation_id: string | null; source_ts: number | null; key: string | null; txn: string | null; data: unknown; received_at: number }>;
  next_after: number;
}

interface StreamsResponse {
  streams: Array<{ site: string; agent: string; stream: string; epoch: string; last_seq: number; dropped: number; current: boolean }>;
}

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

/** A raw mqtt.js client playing an edge agent: publishes batches, collects the acks. */
class TestAgent {
  readonly acks: Ack[] = [];
  readonly invalidAcks: string[] = [];
  private warmups = 0;

  private constructor(private readonly client: MqttClient) {}

  static async connect(url: string): Promise<TestAgent> {
    // No reconnects: a test that stops the broker must not leave a client knocking on a dead port.
    const client = await mqtt.connectAsync(url, { clientId: `test-agent-${randomUUID()}`, reconnectPeriod: 0, connectTimeout: 10_000 });
    const agent = new TestAgent(client);
    client.on('message', (_topic, payload) => {
      const text = payload.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const parsed = ackSchema.safeParse(json);
      if (parsed.success) agent.acks.push(parsed.data);
      else agent.invalidAcks.push(text);
    });
    await client.subscribeAsync(ackTopic(SITE, AGENT), { qos: 1 });
    return agent;
  }

  acksFor(stream: string, epoch = EPOCH): Ack[] {
    return this.acks.filter((a) => a.stream === stream && a.epoch === epoch);
  }

  async publishRaw(topic: string, payload: string | Buffer): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }

  async publish(b: EventBatch): Promise<void> {
    await this.publishRaw(eventsTopic(b.site, b.agent, b.stream), JSON.stringify(b));
  }

  /** Publishes a batch and waits for the next ack of its (stream, epoch). */
  async send(b: EventBatch): Promise<Ack> {
    const n = this.acksFor(b.stream, b.epoch).length;
    await this.publish(b);
    return waitFor(`ack #${n + 1} for ${b.stream}/${b.epoch}`, () => this.acksFor(b.stream, b.epoch)[n], WAIT_MS);
  }

  /**
   * Relay.start() returns before the relay's subscription is in place, so the first batches may find
   * no subscriber. Like a real agent, resend until an ack comes; each try uses a fresh `warmup-N`
   * stream so that no try can show up later as a duplicate or a gap in the counters.
   */
  async handshake(): Promise<void> {
    let lastTry = 0;
    await waitFor(
      'the relay to ack a warm-up batch',
      async () => {
        if (this.acks.some((a) => a.stream.startsWith('warmup-'))) return true;
        if (Date.now() - lastTry > 300) {
          lastTry = Date.now();
          await this.publish(batch(1, 1, { stream: `warmup-${++this.warmups}` }));
        }
        return false;
      },
      WAIT_MS,
    );
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
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
  let tmp: ReturnType<typeof makeTempDir>;
  let relays: Relay[];
  let agents: TestAgent[];
  let servers: Server[];
  let mosquittos: MosquittoProcess[];

  beforeEach(() => {
    tmp = makeTempDir('erp-edge-relay-');
    relays = [];
    agents = [];
    servers = [];
    mosquittos = [];
  });

  afterEach(async () => {
    // Clients first, so the embedded broker's close does not wait on them.
    for (const a of agents) await a.close().catch(() => undefined);
    for (const r of relays) await r.stop();
    for (const m of mosquittos) await m.stop();
    for (const s of servers) await closeServer(s);
    tmp.cleanup();
  });

  function config(over: Partial<RelayConfig> = {}): RelayConfig {
    return {
      id: `relay-${randomUUID()}`,
      log_level: 'info',
      broker: 'embedded',
      embedded_broker: { host: '127.0.0.1', port: 0 },
      store: { path: join(tmp.dir, 'relay', 'relay.db'), synchronous: 'FULL' },
      http: { host: '127.0.0.1', port: 0 },
      ...over,
    };
  }

  async function startRelay(over: Partial<RelayConfig> = {}): Promise<Relay> {
    const relay = await Relay.start(config(over), silent);
    relays.push(relay);
    return relay;
  }

  async function connectAgent(relay: Relay): Promise<TestAgent> {
    const agent = await TestAgent.connect(relay.brokerUrl);
    agents.push(agent);
    await agent.handshake();
    return agent;
  }

  const stats = async (relay: Relay) => {
    const { status, body } = await getJson<Stats>(`${relay.httpUrl}/api/stats`);
    expect(status).toBe(200);
    return body;
  };

  const eventsUrl = (relay: Relay, query: string) => `${relay.httpUrl}/api/events?${query}`;

  async function events(relay: Relay, stream = 'orders', extra = ''): Promise<EventsResponse> {
    const { status, body } = await getJson<EventsResponse>(eventsUrl(relay, `site=${SITE}&agent=${AGENT}&stream=${stream}${extra}`));
    expect(status).toBe(200);
    return body;
  }

  /** Streams the test made, leaving out the warm-up ones. */
  async function streams(relay: Relay) {
    const { status, body } = await getJson<StreamsResponse>(`${relay.httpUrl}/api/streams`);
    expect(status).toBe(200);
    return body.streams.filter((s) => !s.stream.startsWith('warmup-'));
  }

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
    expect(relay.store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 0, limit: 100 }).events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);

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
    expect(relay.store.listEvents({ site: SITE, agent: AGENT, stream: 'orders', after: 0, limit: 100 }).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
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

    const expected = { invalid_json: 3, invalid_schema: 7, topic_mismatch: 4, bad_topic: 2, unsupported_version: 0, invalid_presence: 0, invalid_health: 0 };
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
    expect(relay.store.listStreams().some((r) => r.site === 'plant-8' || r.agent === 'edge-2')).toBe(false);
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
    const notADir = join(tmp.dir, 'not-a-dir');
    writeFileSync(notADir, 'a file where the store folder should be');

    await expect(
      Relay.start(config({ embedded_broker: { host: '127.0.0.1', port: brokerPort }, store: { path: join(notADir, 'relay.db'), synchronous: 'FULL' } }), silent),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^(EEXIST|ENOTDIR)$/) });
    await closeServer(await listen(brokerPort));
  });

  it('stop() releases the broker and HTTP ports', async () => {
    const relay = await startRelay();
    const brokerPort = portOf(relay.brokerUrl);
    const httpPort = portOf(relay.httpUrl);
    const agent = await connectAgent(relay);
    await agent.close();

    relays.splice(relays.indexOf(relay), 1);
    await relay.stop();
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
    const mosquitto = await MosquittoProcess.start(tmp.dir);
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
