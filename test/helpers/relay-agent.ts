import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { ack as ackV1Schema, ackTopic, eventsTopic, RELAY_STATUS_TOPIC, relayStatus, type Ack, type RelayStatus } from '../../common/wire-v1.js';
import { ackTopicV2, ackV2 as ackV2Schema, eventsTopicV2, healthTopic, presenceTopic, type AckV2 } from '../../common/wire-v2.js';
import { waitFor } from './net.js';
import { AGENT, SITE } from './relay-wire.js';

const WAIT_MS = 15_000;

interface Envelope {
  v: number;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
}

/**
 * A raw mqtt.js client playing an edge agent against the relay: publishes batches of either wire
 * version, collects the acks of both (each checked against its schema: a malformed ack lands in
 * `invalidAcks`), and can publish presence and health.
 */
export class RelayTestAgent {
  readonly acks: Ack[] = [];
  readonly acksV2: AckV2[] = [];
  readonly invalidAcks: string[] = [];
  readonly relayStatuses: RelayStatus[] = [];
  private warmups = 0;

  private constructor(
    readonly client: MqttClient,
    readonly site: string,
    readonly agent: string,
  ) {}

  static async connect(url: string, o: { site?: string; agent?: string; will?: { payload: string } } = {}): Promise<RelayTestAgent> {
    const site = o.site ?? SITE;
    const agent = o.agent ?? AGENT;
    // No reconnects: a test that stops the broker must not leave a client knocking on a dead port.
    const client = await mqtt.connectAsync(url, {
      clientId: `test-agent-${randomUUID()}`,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...(o.will ? { will: { topic: presenceTopic(site, agent), payload: Buffer.from(o.will.payload), qos: 1, retain: true } } : {}),
    });
    const a = new RelayTestAgent(client, site, agent);
    client.on('message', (topic, payload) => {
      const text = payload.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      if (topic === RELAY_STATUS_TOPIC) {
        const s = relayStatus.safeParse(json);
        if (s.success) a.relayStatuses.push(s.data);
        return;
      }
      const parsed = topic === ackTopic(site, agent) ? ackV1Schema.safeParse(json) : ackV2Schema.safeParse(json);
      if (!parsed.success) a.invalidAcks.push(`${topic}: ${text}`);
      else if (topic === ackTopic(site, agent)) a.acks.push(parsed.data as Ack);
      else a.acksV2.push(parsed.data as AckV2);
    });
    await client.subscribeAsync([ackTopic(site, agent), ackTopicV2(site, agent), RELAY_STATUS_TOPIC], { qos: 1 });
    return a;
  }

  acksFor(stream: string, epoch: string): Ack[] {
    return this.acks.filter((x) => x.stream === stream && x.epoch === epoch);
  }

  acksV2For(stream: string, epoch: string): AckV2[] {
    return this.acksV2.filter((x) => x.stream === stream && x.epoch === epoch);
  }

  async publishRaw(topic: string, payload: string | Buffer, retain = false): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1, retain });
  }

  async publish(b: Envelope): Promise<void> {
    const topic = b.v === 2 ? eventsTopicV2(b.site, b.agent, b.stream) : eventsTopic(b.site, b.agent, b.stream);
    await this.publishRaw(topic, JSON.stringify(b));
  }

  /** Publishes a v1 batch and waits for the next v1 ack of its (stream, epoch). */
  async send(b: Envelope & { v: 1 }): Promise<Ack> {
    const n = this.acksFor(b.stream, b.epoch).length;
    await this.publish(b);
    return waitFor(`v1 ack #${n + 1} for ${b.stream}/${b.epoch}`, () => this.acksFor(b.stream, b.epoch)[n], WAIT_MS);
  }

  /**
   * Publishes a v2 batch and waits for the next v2 ack of its (stream, epoch). The ack's clock
   * fields (`at`, and `sent_at` echoing the batch's) are checked here and left out of the answer,
   * so tests compare what the ack says of the stream.
   */
  async sendV2(b: Envelope & { v: 2 }): Promise<AckV2> {
    const n = this.acksV2For(b.stream, b.epoch).length;
    const before = Date.now();
    await this.publish(b);
    const ack = await waitFor(`v2 ack #${n + 1} for ${b.stream}/${b.epoch}`, () => this.acksV2For(b.stream, b.epoch)[n], WAIT_MS);
    const { at, sent_at: sentAt, ...rest } = ack;
    if (at === undefined || at < before || at > Date.now()) throw new Error(`v2 ack without the relay's time (at: ${at})`);
    const sentByBatch = (b as { sent_at?: unknown }).sent_at;
    if (sentByBatch !== undefined && sentAt !== sentByBatch) throw new Error(`v2 ack echoes sent_at ${sentAt}, the batch said ${String(sentByBatch)}`);
    return rest;
  }

  async presence(msg: unknown, retain = true): Promise<void> {
    await this.publishRaw(presenceTopic(this.site, this.agent), typeof msg === 'string' ? msg : JSON.stringify(msg), retain);
  }

  async health(msg: unknown): Promise<void> {
    await this.publishRaw(healthTopic(this.site, this.agent), typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /**
   * Relay.start() with an external broker returns before the relay's subscription is in place,
   * so the first batches may find no subscriber. Like a real agent, resend until an ack comes;
   * each try uses a fresh `warmup-N` stream so no try shows up later as a duplicate or a gap.
   */
  async handshake(): Promise<void> {
    let lastTry = 0;
    await waitFor(
      'the relay to ack a warm-up batch',
      async () => {
        if (this.acks.some((x) => x.stream.startsWith('warmup-'))) return true;
        if (Date.now() - lastTry > 300) {
          lastTry = Date.now();
          const stream = `warmup-${++this.warmups}`;
          await this.publish({
            v: 1,
            site: this.site,
            agent: this.agent,
            stream,
            epoch: 'epoch-warmup00',
            sent_at: Date.now(),
            records: [{ seq: 1, id: `${stream}:1`, ts: Date.now(), source: 'test:warmup', correlation_id: null, data: null }],
          } as Envelope);
        }
        return false;
      },
      WAIT_MS,
    );
  }

  /** Drops the connection without a DISCONNECT, so the broker publishes the will. */
  kill(): void {
    this.client.stream.destroy();
    this.client.end(true);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
