import mqtt, { type MqttClient } from 'mqtt';
import type { FastifyInstance } from 'fastify';
import {
  ackTopic,
  eventBatch,
  EVENTS_SUBSCRIPTION,
  parseEventsTopic,
  RELAY_STATUS_TOPIC,
  WIRE_VERSION,
  type Ack,
  type EventBatch,
  type RelayStatus,
} from '../common/wire-v1.js';
import { disableNagle } from '../common/mqtt-socket.js';
import { safeUrl, type Logger } from '../common/logger.js';
import type { RelayConfig } from './config.js';
import { RelayStore, type BatchResult } from './store.js';
import { RelayMetrics, type RejectReason } from './metrics.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import { startHttpApi } from './api.js';

/**
 * Receives event batches from many agents, validates them, stores them in order per
 * (site, agent, stream, epoch) and acks each batch end to end only after its commit.
 */
export class Relay {
  private markReady!: () => void;
  /** Resolves once the relay has subscribed to events the first time. */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  private readonly startedAt = Date.now();
  private pending: EventBatch[] = [];

  private constructor(
    readonly metrics: RelayMetrics,
    readonly store: RelayStore,
    private readonly client: MqttClient,
    private readonly http: FastifyInstance,
    private readonly broker: EmbeddedBroker | undefined,
    readonly brokerUrl: string,
    readonly httpUrl: string,
    private readonly log: Logger,
  ) {}

  static async start(cfg: RelayConfig, logger: Logger): Promise<Relay> {
    const log = logger.child({ component: 'relay' });
    const broker = cfg.broker === 'embedded' ? await startEmbeddedBroker(cfg.embedded_broker.host, cfg.embedded_broker.port, log) : undefined;
    const url = broker ? broker.url : (cfg.broker as { url: string }).url;
    const creds = cfg.broker === 'embedded' ? {} : { username: cfg.broker.username, password: cfg.broker.password };
    let store: RelayStore | undefined;
    let http: FastifyInstance | undefined;
    try {
      // Inside the try: a store that cannot be opened must not leave the embedded broker's port bound.
      store = new RelayStore(cfg.store.path, log, cfg.store.synchronous);
      const metrics = new RelayMetrics();
      const started = await startHttpApi(cfg.http.host, cfg.http.port, store, () => metrics.snapshot(), log);
      http = started.app;
      // The broker keeps this session's subscription and queued QoS 1 messages across relay restarts.
      const offline: RelayStatus = { v: WIRE_VERSION, online: false, id: cfg.id, started_at: Date.now() };
      const client = mqtt.connect(url, {
        clientId: cfg.id,
        clean: false,
        reconnectPeriod: 1000,
        will: { topic: RELAY_STATUS_TOPIC, payload: Buffer.from(JSON.stringify(offline)), qos: 1, retain: true },
        ...creds,
      });
      disableNagle(client);
      const relay = new Relay(metrics, store, client, started.app, broker, url, started.url, log);
      relay.wire();
      // With the embedded broker the first subscription is local and quick: be ready on return.
      if (broker) await relay.ready;
      log.info({ broker: safeUrl(url), http: started.url }, 'relay started');
      return relay;
    } catch (err) {
      await http?.close();
      store?.close();
      await broker?.close();
      throw err;
    }
  }

  private wire(): void {
    this.client.on('connect', (connack) => {
      this.log.info({ sessionPresent: connack.sessionPresent }, 'relay connected to broker');
      this.client.subscribe(EVENTS_SUBSCRIPTION, { qos: 1 }, (err) => {
        if (err) return this.log.error({ err: { message: err.message } }, 'relay could not subscribe to events');
        // Only once subscribed: agents that see this resend their unacked events right away.
        const online: RelayStatus = { v: WIRE_VERSION, online: true, id: this.clientId, started_at: this.startedAt };
        this.client.publish(RELAY_STATUS_TOPIC, JSON.stringify(online), { qos: 1, retain: true });
        this.markReady();
      });
    });
    this.client.on('close', () => this.log.debug('relay broker connection closed'));
    this.client.on('error', (err) => this.log.error({ err: { message: err.message } }, 'relay broker error'));
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  private reject(reason: RejectReason, topic: string, detail: string): void {
    this.metrics.rejected[reason]++;
    this.log.warn({ topic, reason, detail: detail.slice(0, 500) }, 'rejected message');
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parts = parseEventsTopic(topic);
    if (!parts) return this.reject('bad_topic', topic, 'not an erp-edge/v1 events topic');
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return this.reject('invalid_json', topic, (err as Error).message);
    }
    const parsed = eventBatch.safeParse(json);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      return this.reject('invalid_schema', topic, first ? `${first.path.join('.')}: ${first.message}` : 'invalid');
    }
    const batch = parsed.data;
    if (batch.site !== parts.site || batch.agent !== parts.agent || batch.stream !== parts.stream) {
      return this.reject('topic_mismatch', topic, `envelope says ${batch.site}/${batch.agent}/${batch.stream}`);
    }
    this.handleBatch(batch);
  }

  /**
   * Group commit: batches that arrive together (one socket read often carries several) are
   * stored in one transaction, so they share one fsync; each is acked after that commit.
   */
  private handleBatch(batch: EventBatch): void {
    this.pending.push(batch);
    if (this.pending.length === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const batches = this.pending;
    this.pending = [];
    let results;
    try {
      results = this.store.applyBatches(batches);
    } catch (err) {
      // Not acked: the agents resend after their ack timeout.
      this.metrics.storeErrors += batches.length;
      this.log.error({ batches: batches.length, err: { message: (err as Error).message } }, 'store failed; batches not acked');
      return;
    }
    batches.forEach((batch, i) => this.acknowledge(batch, results[i]!));
  }

  private acknowledge(batch: EventBatch, result: BatchResult): void {
    const m = this.metrics;
    m.batches++;
    m.recordsStored += result.stored;
    m.duplicates += result.duplicates;
    m.conflicts += result.conflicts;
    m.droppedAtAgents += result.droppedAtAgent;
    if (result.newEpoch) m.newEpochs++;
    if (result.status === 'gap') {
      m.gaps++;
      this.log.info({ site: batch.site, agent: batch.agent, stream: batch.stream, expected: result.upto + 1, got: batch.records[0]!.seq }, 'gap: asking the agent to resend');
    }
    const a: Ack = { v: WIRE_VERSION, stream: batch.stream, epoch: batch.epoch, upto: result.upto, status: result.status };
    this.client.publish(ackTopic(batch.site, batch.agent), JSON.stringify(a), { qos: 1 });
  }

  private get clientId(): string {
    return this.client.options.clientId ?? 'erp-edge-relay';
  }

  async stop(): Promise<void> {
    if (this.client.connected) {
      const offline: RelayStatus = { v: WIRE_VERSION, online: false, id: this.clientId, started_at: this.startedAt };
      await this.client.publishAsync(RELAY_STATUS_TOPIC, JSON.stringify(offline), { qos: 1, retain: true }).catch(() => undefined);
    }
    await this.client.endAsync();
    await this.http.close();
    this.store.close();
    await this.broker?.close();
    this.log.info('relay stopped');
  }
}
