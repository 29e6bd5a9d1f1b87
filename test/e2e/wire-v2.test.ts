/**
 * Wire v2 and record identity end to end (#16), and poison batches (#6): a real agent, a real relay
 * and a real broker, with the test's own MQTT client where an old peer is needed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { createLogger } from '../../common/logger.js';
import { ack as ackV1, eventsTopic } from '../../common/wire-v1.js';
import { health, presence } from '../../common/wire-v2.js';
import { loadAgentConfig } from '../../agent/config.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { Agent } from '../../agent/agent.js';
import { Relay } from '../../cloud-relay/relay.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/net.js';
import { runCliAsync } from '../helpers/cli.js';
import { relayYaml } from '../helpers/pipeline.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const SITE = 'site-w';
const AGENT = 'agent-w';

interface Ev {
  seq: number;
  id: string;
  key: string | null;
  source_ts: number | null;
  data: { file: string; line: number; fields: Record<string, string> };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tmp(): string {
  const { dir, cleanup } = makeTempDir('wire-v2-');
  cleanups.push(cleanup);
  return dir;
}

async function startRelay(dir: string, extra = '', brokerUrl?: string): Promise<Relay> {
  const path = join(dir, 'relay.yaml');
  writeFileSync(path, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: 0, embeddedPort: 0, brokerUrl, extra: brokerUrl ? '' : extra }));
  const relay = await Relay.start(loadRelayConfig(path), logger);
  cleanups.push(() => relay.stop());
  return relay;
}

function agentConfig(dir: string, url: string, collector = ''): string {
  const path = join(dir, 'agent.yaml');
  writeFileSync(
    path,
    `site: ${SITE}
agent: ${AGENT}
log_level: warn
data_dir: ./data
http:
  listen: 127.0.0.1:0
transport:
  url: ${url}
  ack_timeout: 3s
  health_interval: 300ms
collectors:
  - type: file-drop
    name: orders
    path: ./inbox
    stable_time: 100ms
${collector}`,
  );
  mkdirSync(join(dir, 'inbox'), { recursive: true });
  return path;
}

async function startAgent(configPath: string): Promise<Agent> {
  const agent = await Agent.start(loadAgentConfig(configPath), logger);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await agent.stop();
  };
  cleanups.push(stop);
  (agent as Agent & { stopOnce?: () => Promise<void> }).stopOnce = stop;
  return agent;
}

const stopAgent = (a: Agent) => (a as Agent & { stopOnce: () => Promise<void> }).stopOnce();

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Every stored event of a stream, every epoch. */
async function allEvents(httpUrl: string, stream = 'orders'): Promise<Ev[]> {
  const { streams } = await get<{ streams: { site: string; agent: string; stream: string; epoch: string }[] }>(`${httpUrl}/api/streams`);
  const out: Ev[] = [];
  for (const s of streams.filter((x) => x.site === SITE && x.agent === AGENT && x.stream === stream)) {
    let after = 0;
    for (;;) {
      const page = await get<{ events: Ev[]; next_after: number }>(
        `${httpUrl}/api/events?site=${SITE}&agent=${AGENT}&stream=${stream}&epoch=${s.epoch}&after=${after}&limit=5000`,
      );
      out.push(...page.events);
      if (page.events.length === 0) break;
      after = page.next_after;
    }
  }
  return out;
}

function drop(dir: string, name: string, text: string): void {
  writeFileSync(join(dir, 'inbox', `${name}.tmp`), text);
  // rename: the collector never reads a half-written file
  copyFileSync(join(dir, 'inbox', `${name}.tmp`), join(dir, 'inbox', name));
  rmSync(join(dir, 'inbox', `${name}.tmp`));
}

function csvRows(from: number, to: number, changed?: number): string {
  const rows = ['order_id,line,sku,qty'];
  for (let i = from; i <= to; i++) rows.push(`SO-${i},1,SKU-${i % 97},${i === changed ? 999 : i % 50}`);
  return `${rows.join('\n')}\n`;
}

describe('wire v2 end to end', () => {
  it('mixed versions: a v1 batch from an old agent is stored and v1-acked by the v2 relay; an agent facing a v1-only relay speaks v1; every record once', async () => {
    const dir = tmp();
    const relay = await startRelay(dir);
    // An agent of release 0.1, played by the test's client: a v1 batch on the v1 topic.
    const old = await mqtt.connectAsync(relay.brokerUrl, { clientId: 'old-agent' });
    cleanups.push(() => old.endAsync());
    await old.subscribeAsync(`erp-edge/v1/${SITE}/old-agent/ack`, { qos: 1 });
    const acked = new Promise<unknown>((r) => old.once('message', (_t, p) => r(JSON.parse(p.toString()))));
    const records = [1, 2, 3].map((seq) => ({ seq, id: `old-${seq}`, ts: Date.now(), source: 'file-drop:orders', correlation_id: null, data: { seq } }));
    await old.publishAsync(eventsTopic(SITE, 'old-agent', 'orders'), JSON.stringify({ v: 1, site: SITE, agent: 'old-agent', stream: 'orders', epoch: 'epoch-of-0.1-agent', sent_at: Date.now(), records }), { qos: 1 });
    expect(ackV1.parse(await acked)).toEqual({ v: 1, stream: 'orders', epoch: 'epoch-of-0.1-agent', upto: 3, status: 'ok' });
    const stored = await get<{ events: { id: string }[] }>(`${relay.httpUrl}/api/events?site=${SITE}&agent=old-agent&stream=orders`);
    expect(stored.events.map((e) => e.id)).toEqual(['old-1', 'old-2', 'old-3']);

    // A relay that accepts v1 only: the agent sees its presence and speaks v1.
    const dir2 = tmp();
    const v1relay = await startRelay(dir2, 'wire_versions: [1]\n');
    const agent = await startAgent(agentConfig(dir2, v1relay.brokerUrl));
    drop(dir2, 'a.csv', csvRows(1, 500));
    await waitFor('500 rows at the v1-only relay', async () => (await allEvents(v1relay.httpUrl)).length === 500, 20_000);
    expect(agent.forwarder.getStats().wire).toBe(1);
    const evs = await allEvents(v1relay.httpUrl);
    expect(new Set(evs.map((e) => e.id)).size).toBe(500);
    expect(evs.map((e) => e.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    await waitFor('acked at the agent', () => agent.outbox.ackedSeq('orders') === 500, 10_000);
  });

  it('a CSV exported twice with the same rows and key columns reaches the relay once; a changed row arrives as one new record with the same key', async () => {
    const dir = tmp();
    const relay = await startRelay(dir);
    const cfgPath = agentConfig(dir, relay.brokerUrl);
    writeFileSync(cfgPath, readFileSync(cfgPath, 'utf8').replace('stable_time: 100ms', 'stable_time: 100ms\n    key: [order_id, line]'));
    const agent = await startAgent(join(dir, 'agent.yaml'));
    expect(agent.forwarder).toBeDefined();
    drop(dir, 'open-orders-1.csv', csvRows(1, 200));
    await waitFor('first export at the relay', async () => (await allEvents(relay.httpUrl)).length === 200, 20_000);
    // The same rows again, in another file (another export time, rows in another order): other bytes.
    const reordered = csvRows(1, 200).split('\n');
    const header = reordered.shift()!;
    drop(dir, 'open-orders-2.csv', `${header}\n${reordered.filter(Boolean).reverse().join('\n')}\n`);
    // And one changed row among unchanged ones.
    drop(dir, 'open-orders-3.csv', csvRows(1, 200, 77));
    await waitFor('all three files acked', () => agent.outbox.ackedSeq('orders') === 600, 20_000);
    const evs = await allEvents(relay.httpUrl);
    expect(evs).toHaveLength(201);
    const so77 = evs.filter((e) => e.key === 'SO-77|1');
    expect(so77).toHaveLength(2);
    expect(so77[0]!.id).not.toBe(so77[1]!.id);
    expect(so77.map((e) => e.data.fields.qty)).toEqual(['27', '999']);
    expect(evs.every((e) => typeof e.source_ts === 'number')).toBe(true);
    const stats = await get<{ duplicate_ids: number }>(`${relay.httpUrl}/api/stats`);
    expect(stats.duplicate_ids).toBe(399);
  });

  it('outbox restored from an older copy: B reuses A’s seqs, A is captured again; the relay ends with A once and B once and counts 1 000 recognised duplicates', async () => {
    const dir = tmp();
    const relay = await startRelay(dir);
    const cfg = agentConfig(dir, relay.brokerUrl);
    const data = join(dir, 'data');
    const backup = join(dir, 'backup');
    // The copy is taken before A: a snapshot of a running site, restored later.
    let agent = await startAgent(cfg);
    await stopAgent(agent);
    mkdirSync(backup);
    for (const f of ['outbox.db', 'outbox.db-wal', 'outbox.db-shm']) if (existsSync(join(data, f))) copyFileSync(join(data, f), join(backup, f));

    const A = csvRows(1, 1_000);
    agent = await startAgent(cfg);
    drop(dir, 'a.csv', A);
    await waitFor('A at the relay', async () => (await allEvents(relay.httpUrl)).length === 1_000, 30_000);
    await waitFor('A acked', () => agent.outbox.ackedSeq('orders') === 1_000, 10_000);
    await stopAgent(agent);

    // Restore the copy: same epoch, seqs back to 0, the file ledger forgets A.
    for (const f of ['outbox.db', 'outbox.db-wal', 'outbox.db-shm']) rmSync(join(data, f), { force: true });
    for (const f of ['outbox.db', 'outbox.db-wal', 'outbox.db-shm']) if (existsSync(join(backup, f))) copyFileSync(join(backup, f), join(data, f));
    agent = await startAgent(cfg);
    drop(dir, 'b.csv', csvRows(5_001, 6_000));
    await waitFor('B at the relay', async () => (await allEvents(relay.httpUrl)).length === 2_000, 30_000);
    drop(dir, 'a-again.csv', A);
    await waitFor('A again acked by the relay', () => agent.outbox.ackedSeq('orders') === 2_000, 30_000);

    const evs = await allEvents(relay.httpUrl);
    expect(evs).toHaveLength(2_000);
    expect(new Set(evs.map((e) => e.id)).size).toBe(2_000);
    const orders = evs.map((e) => Number(e.data.fields.order_id!.slice(3))).sort((a, b) => a - b);
    expect(orders).toEqual([...Array.from({ length: 1_000 }, (_, i) => i + 1), ...Array.from({ length: 1_000 }, (_, i) => 5_001 + i)]);
    const stats = await get<{ duplicate_ids: number; conflict_acks: number }>(`${relay.httpUrl}/api/stats`);
    expect(stats.duplicate_ids).toBe(1_000);
    expect(stats.conflict_acks).toBeGreaterThanOrEqual(1);
    expect(agent.forwarder.getStats().rebases).toBe(1);
  });

  it('a record the relay rejects lands in the dead-letter table with its reason; the stream moves on past it; status and deadletter list show it', async () => {
    const dir = tmp();
    // Stricter than the agent (512 KB): records over 2 KB are refused by this relay.
    const relay = await startRelay(dir, 'limits:\n  max_record_bytes: 2KB\n');
    const cfgPath = agentConfig(dir, relay.brokerUrl);
    const agent = await startAgent(cfgPath);
    const rows = ['order_id,note'];
    for (let i = 1; i <= 50; i++) rows.push(`SO-${i},${i === 20 ? 'x'.repeat(3_000) : 'ok'}`);
    drop(dir, 'with-a-big-note.csv', `${rows.join('\n')}\n`);
    await waitFor('the rest acked past the rejected record', () => agent.outbox.ackedSeq('orders') === 50, 20_000);
    const evs = await allEvents(relay.httpUrl);
    expect(evs.map((e) => e.seq)).toEqual([...Array.from({ length: 19 }, (_, i) => i + 1), ...Array.from({ length: 30 }, (_, i) => 21 + i)]);
    const dead = agent.outbox.deadLetters.list();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ stream: 'orders', seq: 20, origin: 'relay' });
    expect(dead[0]!.reason).toMatch(/max_record_bytes|bytes/);
    // Later records arrive too.
    drop(dir, 'later.csv', 'order_id,note\nSO-51,ok\n');
    await waitFor('later record', async () => (await allEvents(relay.httpUrl)).length === 50, 20_000);
    // What IT sees.
    const status = await runCliAsync('edge-agent', ['status', '--config', cfgPath]);
    expect(status.stderr).toBe('');
    expect(status.stdout).toMatch(/^orders\t0\t0\t-\t51\t51\t\S+\t0\t1\t/m);
    expect(status.stdout).toMatch(/^dead_letter\t1\t/m);
    const list = await runCliAsync('edge-agent', ['deadletter', 'list', '--config', cfgPath]);
    expect(list.stdout).toMatch(/\torders\t20\trelay\t/);
    const streams = await get<{ streams: { stream: string; dead_lettered: number }[] }>(`${relay.httpUrl}/api/streams`);
    expect(streams.streams.find((s) => s.stream === 'orders')?.dead_lettered).toBe(1);
  });

  it.runIf(hasMosquitto)('a broker whose ACL allows only the v1 topics: the agent falls back to v1 and delivers everything', async () => {
    const dir = tmp();
    const acl = join(dir, 'acl');
    // As an ACL written for release 0.1 would be: erp-edge/v1 only.
    writeFileSync(acl, 'topic readwrite erp-edge/v1/#\n', { mode: 0o644 });
    chmodSync(dir, 0o755); // Mosquitto started as root reads it as the mosquitto user
    const broker = await MosquittoProcess.start(dir, undefined, [`acl_file ${acl}`]);
    cleanups.push(() => broker.stop());
    const relay = await startRelay(dir, '', broker.url);
    const agent = await startAgent(agentConfig(dir, broker.url));
    drop(dir, 'a.csv', csvRows(1, 300));
    // Mosquitto grants the v2 subscriptions and drops the messages: after two ack timeouts with no
    // v2 ack ever, the agent falls back to v1.
    await waitFor('300 rows at the relay', async () => (await allEvents(relay.httpUrl)).length === 300, 40_000);
    expect(agent.forwarder.getStats().wire).toBe(1);
    await waitFor('acked', () => agent.outbox.ackedSeq('orders') === 300, 10_000);
  });

  it('presence and health validate against the v2 schemas and the relay keeps the latest per agent', async () => {
    const dir = tmp();
    const relay = await startRelay(dir);
    const agent = await startAgent(agentConfig(dir, relay.brokerUrl));
    const watcher = await mqtt.connectAsync(relay.brokerUrl, { clientId: 'watcher' });
    cleanups.push(() => watcher.endAsync());
    const seen: { topic: string; body: unknown }[] = [];
    watcher.on('message', (topic, p) => p.length && seen.push({ topic, body: JSON.parse(p.toString()) }));
    await watcher.subscribeAsync([`erp-edge/v2/${SITE}/${AGENT}/status`, `erp-edge/v2/${SITE}/${AGENT}/health`], { qos: 1 });
    await waitFor('two health messages', () => seen.filter((s) => s.topic.endsWith('/health')).length >= 2, 10_000);
    const birth = presence.parse(seen.find((s) => s.topic.endsWith('/status'))!.body);
    expect(birth).toMatchObject({ online: true, boot: agent.boot, wire: [1, 2], collectors: [{ name: 'orders', type: 'file-drop', stream: 'orders' }] });
    const h = health.parse(seen.filter((s) => s.topic.endsWith('/health')).at(-1)!.body);
    expect(h.boot).toBe(agent.boot);
    expect(h.collectors).toEqual([expect.objectContaining({ name: 'orders', state: 'running' })]);
    expect(h.streams.map((s) => s.stream)).toEqual(['orders']);
    expect(h.exceptions.map((e) => e.kind).sort()).toEqual(['collector_error', 'dead_letter', 'file_error']);

    const list = await waitFor('agent known to the relay', async () => {
      const r = await get<{ agents: { site: string; agent: string; online: boolean; boot: string; health_at: number | null }[] }>(`${relay.httpUrl}/api/agents`);
      const a = r.agents.find((x) => x.site === SITE && x.agent === AGENT);
      return a && a.health_at ? a : undefined;
    }, 10_000);
    expect(list).toMatchObject({ online: true, boot: agent.boot });
    const one = await get<{ presence: unknown; health: unknown }>(`${relay.httpUrl}/api/agents/${SITE}/${AGENT}`);
    expect(presence.parse(one.presence).boot).toBe(agent.boot);
    expect(health.parse(one.health).boot).toBe(agent.boot);

    // A clean stop says offline with the same boot id.
    await stopAgent(agent);
    await waitFor('offline at the relay', async () => {
      const r = await get<{ agents: { agent: string; online: boolean }[] }>(`${relay.httpUrl}/api/agents`);
      return r.agents.find((x) => x.agent === AGENT)?.online === false;
    }, 10_000);
  });
});
