import mqtt, { type MqttClient } from 'mqtt';
import type { FastifyInstance } from 'fastify';
import { EVENTS_SUBSCRIPTION, RELAY_STATUS_TOPIC, WIRE_VERSION, type RelayStatus } from '../common/wire-v1.js';
import { EVENTS_SUBSCRIPTION_V2, HEALTH_SUBSCRIPTION, PRESENCE_SUBSCRIPTION, parseAgentTopic } from '../common/wire-v2.js';
import { disableNagle } from '../common/mqtt-socket.js';
import { safeUrl, type Logger } from '../common/logger.js';
import { LogThrottle } from '../common/log-throttle.js';
import { expirySoon, explainBrokerError, loadTls, type BrokerContext } from '../common/tls.js';
import { resolveRelayConfig, type RelayConfig, type ResolvedRelayConfig } from './config.js';
import { openRelayStore } from './store/open-store.js';
import type { RelayStore } from './store/store.js';
import { RelayMetrics } from './metrics.js';
import { CountersFile } from './counters-file.js';
import { Ingest } from './ingest/ingest.js';
import { FleetRegistry } from './fleet/fleet.js';
import { AlertEvaluator } from './fleet/alerts/evaluator.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
import { startHttpApi } from './api/http.js';
import { createRelayPrometheus, type RelayPrometheus } from './prometheus/registry.js';
import { FleetFeed } from './fleet/feed.js';
import { Authenticator } from './auth/auth.js';
import type { LiveOptions } from './api/live-routes.js';
import { Sinks } from './sinks/sinks.js';
import type { SinkHooksFor } from './sinks/sink.js';
import { routingHooks } from './mapping/sink-hooks.js';

export interface RelayStartOptions {
  /** The store's and the fleet registry's clock (tests: de-duplication window rotation). */
  clock?: () => number;
  /** The live channel's timings (tests: a quick stale check and heartbeat). */
  live?: LiveOptions & { stateCheckMs?: number };
  /** Each sink's match and transform (routing and mapping; tests). */
  sinkHooks?: SinkHooksFor;
}

/** What the relay subscribes to: events of both wire versions, v2 presence and health. */
/**
 * With `broker.shared_group`, events go to one instance of the group (`$share/<group>/…`); presence
 * and health stay plain subscriptions, so every instance keeps the whole fleet view (its registry is
 * in memory, written to the shared store by each: the same messages, the same rows).
 */
function eventsSubscription(topic: string, group: string | undefined): string {
  return group === undefined ? topic : `$share/${group}/${topic}`;
}

/**
 * Composition root of the relay: config → store → ingest and fleet → HTTP API → MQTT client.
 * Receives event batches (wire v1 and v2) from many agents, stores them in order per
 * (site, agent, stream, epoch) and acks each batch end to end only after its commit; keeps the
 * latest presence and health of each agent.
 */
export class Relay {
  private markReady!: () => void;
  /** Resolves once the relay has subscribed the first time. */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  private readonly startedAt = Date.now();
  private stopping = false;
  private counters: CountersFile | undefined;
  /** The sinks' delivery loops and retention (sinks/sinks.ts). */
  sinks: Sinks | undefined;

  private constructor(
    readonly metrics: RelayMetrics,
    readonly prometheus: RelayPrometheus,
    readonly store: RelayStore,
    readonly fleet: FleetRegistry,
    readonly alerts: AlertEvaluator,
    private readonly ingest: Ingest,
    private readonly client: MqttClient,
    private readonly http: FastifyInstance,
    private readonly broker: EmbeddedBroker | undefined,
    readonly brokerUrl: string,
    readonly httpUrl: string,
    readonly wireVersions: readonly number[],
    private readonly log: Logger,
    private readonly brokerContext: BrokerContext,
    /** `broker.shared_group`: one of several instances. */
    readonly sharedGroup: string | undefined,
    /** limits.max_message_bytes, for presence and health (ingest checks event batches). */
    private readonly maxMessageBytes: number,
  ) {}

  /** Broker errors repeat every reconnect: one line a minute per kind. */
  private readonly errorLog = new LogThrottle(60_000);

  static async start(input: RelayConfig, logger: Logger, opts: RelayStartOptions = {}): Promise<Relay> {
    const cfg: ResolvedRelayConfig = resolveRelayConfig(input);
    const log = logger.child({ component: 'relay' });
    const creds = cfg.broker === 'embedded' ? {} : { username: cfg.broker.username, password: cfg.broker.password };
    // Certificates before anything starts: a missing or wrong file stops the start (embedded broker: none).
    const tls = cfg.broker !== 'embedded' && cfg.broker.tls ? loadTls(cfg.broker.tls, 'broker.tls') : undefined;
    for (const p of tls?.problems ?? []) log.error({ err: { code: p.code, message: p.message } }, p.message);
    const soon = expirySoon(tls);
    if (soon) log.warn(soon);
    const broker = cfg.broker === 'embedded' ? await startEmbeddedBroker(cfg.embedded_broker.host, cfg.embedded_broker.port, log, cfg.limits.max_message_bytes) : undefined;
    const url = broker ? broker.url : (cfg.broker as { url: string }).url;
    const sharedGroup = cfg.broker === 'embedded' ? undefined : cfg.broker.shared_group;
    let store: RelayStore | undefined;
    let http: FastifyInstance | undefined;
    let counters: CountersFile | undefined;
    let sinks: Sinks | undefined;
    try {
      // Inside the try: a store that cannot be opened must not leave the embedded broker's port bound.
      store = await openRelayStore(cfg.store, { dedupeWindowMs: cfg.dedupe.window, log, clock: opts.clock });
      const metrics = new RelayMetrics();
      // What the store holds, so that a restart does not read as an empty relay.
      const totals = await store.streamTotals();
      metrics.seed(totals);
      // The traffic counters (batches, gaps, …) the store does not hold: saved beside a SQLite store.
      // A store without a stream is new (or was deleted): its counters start from 0, whatever file is
      // left. A PostgreSQL store is shared by instances, each with its own counters: from 0 at start.
      if (cfg.store.type !== 'postgres') {
        counters = new CountersFile(`${cfg.store.path}.counters.json`, metrics, log);
        if (totals.length > 0) counters.load();
      }
      const fleet = new FleetRegistry({
        store,
        metrics,
        log: log.child({ part: 'fleet' }),
        staleAfterMs: cfg.fleet.stale_after,
        historySamples: cfg.fleet.history_samples,
        ...(opts.clock ? { clock: opts.clock } : {}),
      });
      await fleet.load();
      const alerts = new AlertEvaluator({ config: cfg.alerts, fleet, store, relayId: cfg.id, log: log.child({ part: 'alerts' }), ...(opts.clock ? { clock: opts.clock } : {}) });
      const prometheus = createRelayPrometheus(fleet, metrics);
      const auth = new Authenticator(cfg.auth);
      const feed = new FleetFeed(fleet, { log: log.child({ part: 'live' }), ...(opts.live?.stateCheckMs ? { stateCheckMs: opts.live.stateCheckMs } : {}) });
      const api = { store, fleet, feed, auth, stats: () => metrics.snapshot(), prometheus: prometheus.registry, alerts: () => alerts.list(), sinks: cfg.sinks.map((x) => ({ name: x.name, type: x.type })), ...(opts.live ? { live: opts.live } : {}) };
      const started = await startHttpApi(cfg.http.host, cfg.http.port, api, log);
      http = started.app;
      // Before the MQTT client exists: retained presence is evaluated as it arrives (the store's
      // alerts are loaded by then).
      await alerts.start();
      fleet.start();
      const wire = cfg.wire_versions;
      // The broker keeps this session's subscriptions and queued QoS 1 messages across relay restarts.
      const offline: RelayStatus = { v: WIRE_VERSION, online: false, id: cfg.id, started_at: Date.now(), wire };
      // One of several instances: no persistent session (a broker may keep queueing a share's messages
      // to a dead member's session; lost in-flight batches are resent by their agents after the ack
      // timeout), and no offline will on the relays' common status topic (the group lives on while
      // one instance does; agents pause their resends while the relay is said to be offline).
      const client = mqtt.connect(url, {
        clientId: cfg.id,
        clean: sharedGroup !== undefined,
        reconnectPeriod: 1000,
        ...(sharedGroup === undefined ? { will: { topic: RELAY_STATUS_TOPIC, payload: Buffer.from(JSON.stringify(offline)), qos: 1 as const, retain: true } } : {}),
        ...creds,
        ...(tls?.options ?? {}),
      });
      disableNagle(client);
      const ingest = new Ingest({
        store,
        metrics,
        log: log.child({ part: 'ingest' }),
        wireVersions: wire,
        maxRecordBytes: cfg.limits.max_record_bytes,
        maxMessageBytes: cfg.limits.max_message_bytes,
        onStored: (records, storedAt, site, agent) => {
          prometheus.lag.observe(records, storedAt);
          fleet.onStored(site, agent, records, storedAt);
          sinks?.wake();
        },
        publish: (topic, payload) => client.publish(topic, payload, { qos: 1 }),
        // Only several instances need to wait for each other's commits.
        gapWaitMs: sharedGroup !== undefined ? cfg.ingest.gap_wait : 0,
      });
      const relay = new Relay(metrics, prometheus, store, fleet, alerts, ingest, client, started.app, broker, url, started.url, wire, log, {
        key: 'broker',
        url,
        tls,
        username: creds.username,
      }, sharedGroup, cfg.limits.max_message_bytes);
      relay.counters = counters;
      counters?.start();
      sinks = Sinks.start({ sinks: cfg.sinks, retention: cfg.retention, store: store.delivery, registry: prometheus.registry, relayId: cfg.id, hooksFor: opts.sinkHooks ?? routingHooks(cfg, log), log, clock: opts.clock });
      relay.sinks = sinks;
      // Nothing awaited from mqtt.connect to here: the client's first events must find their listeners.
      relay.wire();
      // With the embedded broker the first subscription is local and quick: be ready on return.
      if (broker) await relay.ready;
      if (auth.enabled) log.info({ users: auth.userCount, tokens: auth.tokenCount, protect_metrics: auth.protectMetrics }, 'relay API auth on');
      else log.warn({ http: started.url }, 'AUTH DISABLED (auth.disabled: true): the API, the live channel and the dashboard are open to anyone who can reach this port');
      log.info({ broker: safeUrl(url), http: started.url, wire_versions: wire, dedupe_window_ms: cfg.dedupe.window, max_record_bytes: cfg.limits.max_record_bytes }, 'relay started');
      return relay;
    } catch (err) {
      await sinks?.stop();
      counters?.stop();
      await http?.close();
      await store?.close();
      await broker?.close();
      throw err;
    }
  }

  private wire(): void {
    this.client.on('connect', (connack) => {
      this.log.info({ sessionPresent: connack.sessionPresent }, 'relay connected to broker');
      this.errorLog.reset();
      void this.subscribe();
    });
    this.client.on('close', () => this.log.debug('relay broker connection closed'));
    this.client.on('error', (err) => {
      // While stopping, a message delivered as the connection closes cannot be acknowledged
      // ("write after end"): expected, and the broker redelivers it to the persistent session.
      if (this.stopping) return this.log.debug({ err: { message: err.message } }, 'relay broker error while stopping');
      // Certificate and login problems said plainly, naming the setting and file at fault.
      const explained = explainBrokerError(err, this.brokerContext);
      const t = this.errorLog.take(explained ? `${explained.code}:${String(explained.context.reason)}` : err.message);
      if (!t) return;
      if (explained) this.log.error({ err: { code: explained.code, reason: explained.context.reason, message: explained.message }, suppressed: t.suppressed }, `${explained.message}; retrying`);
      else this.log.error({ err: { message: err.message, code: (err as { code?: unknown }).code }, suppressed: t.suppressed }, 'relay broker error; retrying');
    });
    this.client.on('message', (topic, payload) => {
      // A message must never end the relay: whatever one throws is logged and counted, and the next is read.
      try {
        this.route(topic, payload);
      } catch (err) {
        this.log.error({ topic: topic.slice(0, 300), bytes: payload.length, err: { message: (err as Error).message, stack: (err as Error).stack } }, 'message handling failed');
        this.ingest.reject('internal_error', topic, (err as Error).message);
      }
    });
  }

  private async subscribe(): Promise<void> {
    try {
      await this.client.subscribeAsync(eventsSubscription(EVENTS_SUBSCRIPTION, this.sharedGroup), { qos: 1 });
    } catch (err) {
      this.log.error({ err: { message: (err as Error).message } }, 'relay could not subscribe to events');
      return;
    }
    // Subscribed whatever wire_versions says: v2 batches a relay does not accept are counted, not unseen.
    const v2 = [eventsSubscription(EVENTS_SUBSCRIPTION_V2, this.sharedGroup), PRESENCE_SUBSCRIPTION, HEALTH_SUBSCRIPTION];
    const refused = await this.client.subscribeAsync(v2, { qos: 1 }).then(
      () => false,
      (err: Error) => {
        this.log.warn({ err: { message: err.message } }, 'the broker refused the wire v2 topics (an ACL for release 0.1?): accepting v1 only');
        return true;
      },
    );
    const wire = refused ? this.wireVersions.filter((v) => v !== 2) : [...this.wireVersions];
    // Only once subscribed: agents that see this resend their unacked events right away.
    const online: RelayStatus = { v: WIRE_VERSION, online: true, id: this.clientId, started_at: this.startedAt, wire };
    this.client.publish(RELAY_STATUS_TOPIC, JSON.stringify(online), { qos: 1, retain: true });
    this.markReady();
  }

  /** Every message goes to ingest (events) or the fleet registry (status, health). */
  private route(topic: string, payload: Buffer): void {
    const t = parseAgentTopic(topic);
    if (!t) return this.ingest.reject('bad_topic', topic, 'not an erp-edge agent topic');
    if (t.kind !== 'events' && payload.length > this.maxMessageBytes) {
      return this.ingest.reject('too_large', topic, `${payload.length} bytes, over limits.max_message_bytes (${this.maxMessageBytes})`);
    }
    if (t.kind === 'events') return this.ingest.onEvents({ version: t.version, site: t.site, agent: t.agent, stream: t.stream! }, topic, payload);
    if (t.version !== 2) return; // v1 agent status is not subscribed; nothing else to do with it
    if (t.kind === 'status') return this.fleet.onPresence(t.site, t.agent, payload);
    if (t.kind === 'health') return this.fleet.onHealth(t.site, t.agent, payload);
  }

  private get clientId(): string {
    return this.client.options.clientId ?? 'erp-edge-relay';
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.client.connected && this.sharedGroup === undefined) {
      const offline: RelayStatus = { v: WIRE_VERSION, online: false, id: this.clientId, started_at: this.startedAt, wire: [...this.wireVersions] };
      await this.client.publishAsync(RELAY_STATUS_TOPIC, JSON.stringify(offline), { qos: 1, retain: true }).catch(() => undefined);
    }
    // Ingest first: a group commit finishing after the client ended would publish its acks into a closed connection.
    await this.ingest.close();
    await this.sinks?.stop();
    this.counters?.stop();
    await this.client.endAsync();
    await this.http.close();
    await this.alerts.stop();
    await this.fleet.stop();
    await this.store.close();
    await this.broker?.close();
    this.log.info('relay stopped');
  }
}
