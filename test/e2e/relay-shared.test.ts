import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackTopicV2, eventsTopicV2 } from '../../common/wire-v2.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { CliProcess, fetchAllEvents, waitForHttp } from '../helpers/pipeline.js';
import { freePort, waitFor } from '../helpers/net.js';
import { batchV2, range } from '../helpers/relay-wire.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { createTestDatabase, type TestDatabase } from '../helpers/sql-databases.js';
import { makeTempDir } from '../helpers/tmp.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const AGENTS = 20;
const RECORDS = 600;
const BATCH = 50;
const WINDOW = 3;
const ACK_TIMEOUT_MS = 2_000;

/**
 * A simulated agent over real MQTT: one v2 stream, WINDOW batches in flight, resends from the
 * relay's cursor on a `gap` answer (rewind) and after ACK_TIMEOUT_MS without progress (a batch
 * handed to a relay that died), as the forwarder does.
 */
class SimAgent {
  acked = 0;
  private next = 1;
  private progressAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  rewinds = 0;
  private constructor(
    readonly site: string,
    readonly agent: string,
    private readonly client: MqttClient,
  ) {}

  static async start(url: string, site: string, agent: string): Promise<SimAgent> {
    const client = await mqtt.connectAsync(url, { clientId: `${site}-${agent}`, clean: true, reconnectPeriod: 500 });
    const a = new SimAgent(site, agent, client);
    client.on('message', (_t, payload) => a.onAck(JSON.parse(payload.toString()) as { upto: number; status: string }));
    await client.subscribeAsync(ackTopicV2(site, agent), { qos: 1 });
    return a;
  }

  get done(): boolean {
    return this.acked >= RECORDS;
  }

  run(): void {
    this.pump();
    this.timer = setInterval(() => {
      if (this.done || Date.now() - this.progressAt < ACK_TIMEOUT_MS) return;
      this.progressAt = Date.now();
      this.next = this.acked + 1;
      this.pump();
    }, 200);
  }

  private onAck(ack: { upto: number; status: string }): void {
    if (ack.upto > this.acked) {
      this.acked = ack.upto;
      this.progressAt = Date.now();
    }
    if (ack.status === 'gap') {
      this.rewinds++;
      this.next = this.acked + 1;
    }
    if (this.next <= this.acked) this.next = this.acked + 1;
    this.pump();
  }

  private pump(): void {
    while (this.next <= RECORDS && this.next < this.acked + 1 + WINDOW * BATCH) {
      const from = this.next;
      const to = Math.min(RECORDS, from + BATCH - 1);
      this.next = to + 1;
      const b = batchV2(from, to, { site: this.site, agent: this.agent, idPrefix: `${this.agent}#` });
      void this.client.publishAsync(eventsTopicV2(this.site, this.agent, 'orders'), JSON.stringify(b), { qos: 1 }).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.client.endAsync();
  }
}

describe.skipIf(!hasMosquitto)('three relay processes on one Mosquitto shared subscription and one PostgreSQL store', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let broker: MosquittoProcess;
  let db: TestDatabase;
  const relays: { proc: CliProcess; http: string }[] = [];

  beforeAll(async () => {
    tmp = makeTempDir('erp-edge-relay-shared-');
    broker = await MosquittoProcess.start(tmp.dir);
    db = await createTestDatabase('pg');
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const yaml = [
        `id: relay-shared-${i}`,
        `log_level: ${process.env.ERP_EDGE_TEST_LOG ?? 'warn'}`,
        'broker:',
        `  url: ${broker.url}`,
        '  shared_group: relays',
        'store:',
        '  type: postgres',
        `  host: ${db.connection.host}`,
        `  port: ${db.connection.port}`,
        `  database: ${db.connection.database}`,
        `  user: ${db.connection.user}`,
        '  pool_size: 4',
        'http:',
        `  port: ${port}`,
        'auth:',
        '  disabled: true',
        '',
      ].join('\n');
      writeFileSync(join(tmp.dir, `relay-${i}.yaml`), yaml);
      const proc = new CliProcess('cloud-relay', join(tmp.dir, `relay-${i}.yaml`), join(tmp.dir, `relay-${i}.log`));
      proc.start();
      relays.push({ proc, http: `http://127.0.0.1:${port}` });
    }
    for (const r of relays) await waitForHttp(r.http, 30_000);
  }, 60_000);

  afterAll(async () => {
    for (const r of relays) await r.proc.kill('SIGTERM');
    await broker?.stop();
    await db?.drop();
    tmp?.cleanup();
  });

  async function runAgents(site: string, midRun?: () => Promise<void>): Promise<SimAgent[]> {
    const agents = await Promise.all(range(1, AGENTS).map((i) => SimAgent.start(broker.url, site, `agent-${String(i).padStart(2, '0')}`)));
    for (const a of agents) a.run();
    if (midRun) {
      await waitFor('a third of the records acked', () => agents.reduce((n, a) => n + a.acked, 0) >= (AGENTS * RECORDS) / 3, 30_000);
      await midRun();
    }
    await waitFor('every agent acked to its last record', () => agents.every((a) => a.done), 60_000);
    for (const a of agents) await a.stop();
    return agents;
  }

  async function expectExact(site: string, http: string): Promise<void> {
    for (const i of range(1, AGENTS)) {
      const agent = `agent-${String(i).padStart(2, '0')}`;
      const events = await fetchAllEvents<{ seq: number; id: string }>(http, site, agent, 'orders');
      expect(events.map((e) => e.seq), `${site}/${agent}`).toEqual(range(1, RECORDS));
      expect(events.map((e) => e.id)).toEqual(range(1, RECORDS).map((s) => `${agent}#${s}`));
    }
  }

  it('20 agents: the store is exact, in order, no duplicates; batches were spread over the instances', async () => {
    await runAgents('site-a');
    await expectExact('site-a', relays[0]!.http);
    // Each instance applied some of the batches (round-robin $share).
    const batches = await Promise.all(relays.map(async (r) => ((await (await fetch(`${r.http}/api/stats`)).json()) as { batches: number }).batches));
    expect(batches.filter((n) => n > 0), `batches per relay: ${batches.join(", ")}`).toHaveLength(3);
  }, 90_000);

  it('kill -9 of one relay mid-run: still exact', async () => {
    await runAgents('site-b', async () => {
      await relays[2]!.proc.kill('SIGKILL');
    });
    await expectExact('site-b', relays[1]!.http);
  }, 90_000);
});
