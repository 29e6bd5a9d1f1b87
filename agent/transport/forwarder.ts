import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import {
  ack as ackSchema,
  ackTopic,
  eventsTopic,
  RELAY_STATUS_TOPIC,
  relayStatus,
  statusTopic,
  WIRE_VERSION,
  type Ack,
} from '../../common/wire-v1.js';
import { disableNagle } from '../../common/mqtt-socket.js';
import { safeUrl, type Logger } from '../../common/logger.js';
import { isErpEdgeError } from '../../common/errors.js';
import { LogThrottle } from '../../common/log-throttle.js';
import { setTimeout as delay } from 'node:timers/promises';
import type { Outbox } from '../outbox/outbox.js';

export interface ForwarderOptions {
  outbox: Outbox;
  site: string;
  agent: string;
  url: string;
  username?: string;
  password?: string;
  clientId?: string;
  batchMaxRecords?: number;
  batchMaxBytes?: number;
  /** Batches per stream published but not yet acked by the relay. */
  maxInflight?: number;
  /** With no relay ack for this long, resend from the last acked seq (the relay de-duplicates). */
  ackTimeoutMs?: number;
  reconnectPeriodMs?: number;
  version?: string;
  logger: Logger;
}

interface InflightBatch {
  first: number;
  last: number;
  sentAt: number;
}

interface StreamState {
  /** Highest seq published in the current pass; rewound to the acked seq on reconnect, gap or timeout. */
  sentUpto: number;
  inflight: InflightBatch[];
  rewoundTo: number;
  rewoundAt: number;
  /** Ack timeouts in a row without progress: each one doubles the wait (up to 32x). */
  timeoutsInARow: number;
}

export interface ForwarderStats {
  connected: boolean;
  batchesSent: number;
  recordsSent: number;
  acks: number;
  gaps: number;
  timeouts: number;
}

/**
 * Forwards the outbox over MQTT, in order per stream, with a window of in-flight batches.
 * Nothing is deleted on a broker PUBACK: only the relay's end-to-end ack advances the outbox.
 * mqtt.js's own in-memory store is not relied on for durability; the outbox is the truth,
 * and every (re)connect resends from the first unacked seq.
 */
export class Forwarder {
  private client: MqttClient | undefined;
  private readonly streams = new Map<string, StreamState>();
  private readonly opts: Required<Omit<ForwarderOptions, 'username' | 'password' | 'clientId' | 'version'>> &
    Pick<ForwarderOptions, 'username' | 'password' | 'clientId' | 'version'>;
  private readonly log: Logger;
  private ready = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly stats: ForwarderStats = { connected: false, batchesSent: 0, recordsSent: 0, acks: 0, gaps: 0, timeouts: 0 };
  private readonly onAppended = (stream: string) => this.pump(stream);
  private readonly errorLog = new LogThrottle(60_000);
  /** The relay's last known presence (retained status): no ack timeouts while it is known offline. */
  private relayOnline: boolean | undefined;

  constructor(opts: ForwarderOptions) {
    this.opts = {
      batchMaxRecords: 500,
      batchMaxBytes: 256 * 1024,
      maxInflight: 8,
      ackTimeoutMs: 15_000,
      reconnectPeriodMs: 1_000,
      ...opts,
    };
    this.log = opts.logger.child({ component: 'forwarder' });
  }

  start(): void {
    const { site, agent, outbox } = this.opts;
    const status = statusTopic(site, agent);
    const options: IClientOptions = {
      clientId: this.opts.clientId ?? `erp-edge-${site}-${agent}`,
      username: this.opts.username,
      password: this.opts.password,
      clean: true,
      resubscribe: false,
      reconnectPeriod: this.opts.reconnectPeriodMs,
      connectTimeout: 10_000,
      queueQoSZero: false,
      will: { topic: status, payload: Buffer.from(JSON.stringify({ v: WIRE_VERSION, online: false })), qos: 1, retain: true },
    };
    this.log.info({ url: safeUrl(this.opts.url), clientId: options.clientId }, 'connecting to broker');
    const client = mqtt.connect(this.opts.url, options);
    this.client = client;
    disableNagle(client);
    client.on('connect', () => void this.onConnect(client, status));
    client.on('close', () => {
      if (this.ready) this.log.warn('broker connection lost; capturing continues, replay resumes on reconnect');
      this.ready = false;
      this.stats.connected = false;
    });
    client.on('error', (err) => this.logBrokerError(err));
    client.on('message', (topic, payload, packet) => {
      if (topic === RELAY_STATUS_TOPIC) this.onRelayStatus(payload, packet.retain);
      else this.onMessage(topic, payload);
    });
    outbox.on('appended', this.onAppended);
    this.timer = setInterval(() => this.checkTimeouts(), Math.min(1000, this.opts.ackTimeoutMs));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.opts.outbox.off('appended', this.onAppended);
    if (this.timer) clearInterval(this.timer);
    const client = this.client;
    this.client = undefined;
    this.ready = false;
    if (!client) return;
    if (client.connected) {
      const { site, agent } = this.opts;
      // Bounded: if the link drops now, mqtt.js would hold this QoS 1 publish until a reconnect.
      const offline = client.publishAsync(statusTopic(site, agent), JSON.stringify({ v: WIRE_VERSION, online: false }), { qos: 1, retain: true });
      await Promise.race([offline.catch(() => undefined), delay(2_000, undefined, { ref: false })]);
    }
    await client.endAsync(true);
  }

  /** While the broker is unreachable mqtt.js retries every second: one line a minute per error. */
  private logBrokerError(err: Error): void {
    const t = this.errorLog.take(`broker:${err.message}`);
    if (t) this.log.error({ err: { message: err.message, code: (err as { code?: unknown }).code }, suppressed: t.suppressed }, 'broker error; retrying');
  }

  getStats(): ForwarderStats {
    return { ...this.stats };
  }

  private async onConnect(client: MqttClient, status: string): Promise<void> {
    const { site, agent, outbox } = this.opts;
    try {
      await client.subscribeAsync([ackTopic(site, agent), RELAY_STATUS_TOPIC], { qos: 1 });
      await client.publishAsync(
        status,
        JSON.stringify({ v: WIRE_VERSION, online: true, version: this.opts.version ?? null, epoch: outbox.epoch, at: Date.now() }),
        { qos: 1, retain: true },
      );
    } catch (err) {
      this.log.error({ err: { message: (err as Error).message } }, 'could not subscribe to acks; will retry on reconnect');
      return;
    }
    if (client !== this.client) return;
    this.ready = true;
    this.stats.connected = true;
    this.errorLog.reset();
    this.log.info('connected to broker; resuming from the first unacked seq of every stream');
    for (const stream of outbox.streamNames()) {
      this.rewind(stream);
      this.state(stream).timeoutsInARow = 0;
      this.pump(stream);
    }
  }

  private state(stream: string): StreamState {
    let s = this.streams.get(stream);
    if (!s) {
      const acked = this.opts.outbox.ackedSeq(stream);
      s = { sentUpto: acked, inflight: [], rewoundTo: -1, rewoundAt: 0, timeoutsInARow: 0 };
      this.streams.set(stream, s);
    }
    return s;
  }

  /** Forget what is in flight and resend from the first unacked seq (or from `from`). */
  private rewind(stream: string, from?: number): void {
    const s = this.state(stream);
    s.sentUpto = from ?? this.opts.outbox.ackedSeq(stream);
    s.inflight = [];
    s.rewoundTo = s.sentUpto;
    s.rewoundAt = Date.now();
  }

  private pump(stream: string): void {
    try {
      this.publishPending(stream);
    } catch (err) {
      // E.g. the outbox was closed during shutdown, or a disk error: the next ack, reconnect or timeout retries.
      this.log.error({ stream, err: { message: (err as Error).message } }, 'could not read the outbox to forward');
    }
  }

  private publishPending(stream: string): void {
    const client = this.client;
    if (!this.ready || !client) return;
    const { outbox, site, agent, batchMaxRecords, batchMaxBytes, maxInflight } = this.opts;
    const s = this.state(stream);
    const topic = eventsTopic(site, agent, stream);
    while (s.inflight.length < maxInflight) {
      const rows = outbox.readPending(stream, s.sentUpto, batchMaxRecords, batchMaxBytes);
      if (rows.length === 0) return;
      const first = rows[0]!.seq;
      const last = rows[rows.length - 1]!.seq;
      const dropped = first > s.sentUpto + 1 ? this.missingBefore(stream, s.sentUpto, first) : 0;
      // Records are stored as v1 wire JSON: the batch is spliced, not re-encoded.
      const payload =
        `{"v":${WIRE_VERSION},"site":${JSON.stringify(site)},"agent":${JSON.stringify(agent)},` +
        `"stream":${JSON.stringify(stream)},"epoch":${JSON.stringify(outbox.epoch)},` +
        (dropped > 0 ? `"dropped_upto":${dropped},` : '') +
        `"sent_at":${Date.now()},"records":[${rows.map((r) => r.payload).join(',')}]}`;
      const batch: InflightBatch = { first, last, sentAt: Date.now() };
      client.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) this.log.debug({ stream, first, last, err: { message: err.message } }, 'publish not confirmed by broker; the ack timeout resends');
        // The relay's clock starts when the broker has the batch: a slow uplink is not a lost ack.
        else batch.sentAt = Date.now();
      });
      s.inflight.push(batch);
      s.sentUpto = last;
      this.stats.batchesSent++;
      this.stats.recordsSent += rows.length;
    }
  }

  /**
   * Seqs below `first` that this outbox no longer holds. Normally dropped by the cap policy; if
   * the relay is further behind than that (its store was restored or lost), the records were
   * already pruned here after their ack: they cannot be sent again, and the relay must skip them
   * rather than ask for them forever.
   */
  private missingBefore(stream: string, sentUpto: number, first: number): number {
    const dropped = this.opts.outbox.droppedUpto(stream);
    if (first - 1 > dropped) {
      this.log.error(
        { stream, relay_expects: sentUpto + 1, oldest_held: first },
        'the relay expects events this outbox pruned after they were acked (relay store lost or restored?): they are skipped',
      );
    }
    return Math.max(dropped, first - 1);
  }

  private onMessage(topic: string, payload: Buffer): void {
    let parsed: Ack;
    try {
      parsed = ackSchema.parse(JSON.parse(payload.toString('utf8')));
    } catch (err) {
      this.log.warn({ topic, err: { message: (err as Error).message } }, 'ignoring malformed ack');
      return;
    }
    if (parsed.epoch !== this.opts.outbox.epoch) {
      this.log.debug({ stream: parsed.stream, epoch: parsed.epoch }, 'ignoring ack for another outbox epoch');
      return;
    }
    this.handleAck(parsed);
  }

  /**
   * A relay that has just subscribed (a live, not retained, online status) may have missed what
   * was published before: resend everything unacked now rather than after the ack timeout.
   */
  private onRelayStatus(payload: Buffer, retained: boolean): void {
    const parsed = relayStatus.safeParse(safeJson(payload));
    if (!parsed.success) return;
    this.relayOnline = parsed.data.online;
    if (!parsed.data.online || retained || !this.ready) return;
    this.log.info({ relay: parsed.data.id }, 'relay (re)subscribed; resending unacked events');
    for (const [stream, s] of this.streams) {
      this.rewind(stream);
      s.timeoutsInARow = 0;
      this.pump(stream);
    }
  }

  private handleAck(a: Ack): void {
    const { outbox } = this.opts;
    const s = this.state(a.stream);
    this.stats.acks++;
    this.relayOnline = true; // an ack proves it, whatever a stale retained status says
    try {
      outbox.ack(a.stream, a.upto);
    } catch (err) {
      const beyond = isErpEdgeError(err, 'ERP_OUTBOX_SEQ');
      this.log.error(
        { stream: a.stream, upto: a.upto, err: { message: (err as Error).message } },
        beyond ? 'relay acked seqs this outbox never wrote (outbox restored from an older copy?); ack ignored' : 'could not record the ack',
      );
      return;
    }
    if (s.inflight.length > 0 && s.inflight[0]!.last <= a.upto) s.timeoutsInARow = 0;
    while (s.inflight.length > 0 && s.inflight[0]!.last <= a.upto) s.inflight.shift();
    if (a.status === 'gap') {
      // Batches already in flight behind the gap answer with the same gap: rewind once for it.
      const repeat = a.upto === s.rewoundTo && Date.now() - s.rewoundAt < this.opts.ackTimeoutMs;
      if (!repeat) {
        this.stats.gaps++;
        this.log.warn({ stream: a.stream, expected: a.upto + 1 }, 'relay reported a gap; resending from the seq it expects');
        this.rewind(a.stream, a.upto);
      }
    }
    this.pump(a.stream);
  }

  /**
   * Resends from the last acked seq when the relay has not acked in time. Not while the relay is
   * known to be offline (its online status triggers the resend), and backing off while timeouts
   * repeat, so an absent relay does not get the same batches queued at the broker over and over.
   */
  private checkTimeouts(): void {
    if (!this.ready || this.relayOnline === false) return;
    const now = Date.now();
    for (const [stream, s] of this.streams) {
      const oldest = s.inflight[0];
      const wait = this.opts.ackTimeoutMs * 2 ** Math.min(s.timeoutsInARow, 5);
      if (oldest && now - oldest.sentAt > wait) {
        this.stats.timeouts++;
        s.timeoutsInARow++;
        this.log.warn({ stream, first: oldest.first, waitedMs: now - oldest.sentAt }, 'no relay ack in time; resending from the last acked seq');
        this.rewind(stream);
        this.pump(stream);
      }
    }
  }
}

function safeJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}
