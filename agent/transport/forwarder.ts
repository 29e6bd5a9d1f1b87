import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { setTimeout as delay } from 'node:timers/promises';
import { ack as ackV1Schema, ackTopic as ackTopicV1, eventsTopic as eventsTopicV1, RELAY_STATUS_TOPIC, relayStatus } from '../../common/wire-v1.js';
import { ClockOffset } from './clock-offset.js';
import { ACK_STATUS, ackTopicV2, ackV2, eventsTopicV2, type WireVersion } from '../../common/wire-v2.js';
import { disableNagle } from '../../common/mqtt-socket.js';
import { safeUrl, type Logger } from '../../common/logger.js';
import { LogThrottle } from '../../common/log-throttle.js';
import { StateChangeLog } from '../../common/state-log.js';
import { explainBrokerError, type TlsMaterial } from '../../common/tls.js';
import type { Outbox } from '../outbox/outbox.js';
import { encodeBatch, planBatch } from './batch.js';
import type { Presence } from './presence.js';

export interface ForwarderOptions {
  outbox: Outbox;
  site: string;
  agent: string;
  /** Random per process start; goes into v2 batches and presence. */
  boot: string;
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  /** Certificates read at start (common/tls.ts), for mqtts://. */
  tls?: TlsMaterial | undefined;
  clientId?: string | undefined;
  batchMaxRecords: number;
  batchMaxBytes: number;
  /** Batches per stream published but not yet acked by the relay. */
  maxInflight: number;
  /** With no relay ack for this long, resend from the last acked seq (the relay de-duplicates). */
  ackTimeoutMs: number;
  keepaliveMs: number;
  reconnectPeriodMs: number;
  presence?: Presence;
  logger: Logger;
}

interface InflightBatch {
  first: number;
  last: number;
  sentAt: number;
  /** The broker confirmed it (PUBACK): the connection carried it, whatever the relay does. */
  brokerAcked: boolean;
}

interface StreamState {
  /** Sequence lineage: the outbox epoch, or the stream's own after a rebase. */
  epoch: string;
  /** Highest seq published in the current pass; rewound to the acked seq on reconnect, gap or timeout. */
  sentUpto: number;
  /**
   * Highest seq published since this process started (in this epoch). Acks are acted on only up
   * to it: a forged or stale ack cannot acknowledge, or dead-letter, what was never sent.
   */
  maxSent: number;
  inflight: InflightBatch[];
  rewoundTo: number;
  rewoundAt: number;
  /**
   * Ack timeouts in a row without progress: each one doubles the wait (up to 32x) while the broker
   * confirms what is sent (a slow or absent relay); the second one with the broker silent too
   * drops the connection (dead link).
   */
  timeoutsInARow: number;
}

export interface ForwarderStats {
  connected: boolean;
  /** Wire version spoken now (from the relay's presence). */
  wire: WireVersion;
  batchesSent: number;
  recordsSent: number;
  recordsAcked: number;
  acks: number;
  gaps: number;
  timeouts: number;
  /** Connections dropped and re-opened because a second ack timeout in a row found the broker silent (dead link). */
  deadLinkReconnects: number;
  /** Records moved to the dead-letter table after a relay rejection. */
  deadLettered: number;
  /** Streams moved to a new epoch after a relay conflict, or an ok beyond the outbox's last seq. */
  rebases: number;
  /** Acks ignored because they named seqs this agent had not sent (forged or stale). */
  ignoredAcks: number;
  inFlight: number;
  lastAckAt: number | null;
  /** Relay clock minus this agent's, from acks (clock-offset.ts); null until known. */
  clockOffsetMs: number | null;
  /** When `connected` last changed (the forwarder's start before the first connect): how long it has been so. */
  connectedChangedAt: number;
  /** Why the last connection attempt failed (certificate, login, network), until the next connect; for `status`. */
  lastBrokerError: string | null;
}

/** An ack of either wire version, as the forwarder acts on it. */
interface AckIn {
  version: WireVersion;
  stream: string;
  epoch: string;
  upto: number;
  status: string;
  ranges?: { from: number; to: number; reason?: string | undefined }[] | undefined;
  ids?: string[] | undefined;
  reason?: string | undefined;
}

/**
 * Forwards the outbox over MQTT, in order per stream, with a window of in-flight batches.
 * Nothing is deleted on a broker PUBACK: only the relay's end-to-end ack advances the outbox.
 * mqtt.js's own in-memory store is not relied on for durability; the outbox is the truth,
 * and every (re)connect resends from the first unacked seq.
 *
 * Speaks wire v2 when the relay's presence says it can, v1 otherwise (docs/wire.md), and listens
 * for acks of both.
 */
export class Forwarder {
  private client: MqttClient | undefined;
  private readonly streams = new Map<string, StreamState>();
  private readonly opts: ForwarderOptions;
  private readonly log: Logger;
  private ready = false;
  private readyChangedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private wire: WireVersion = 1;
  /**
   * False when the broker refused the v2 ack topic, or let v2 batches vanish (an ACL written for
   * release 0.1: Mosquitto grants the subscription and drops the messages): v1 it stays.
   */
  private v2Allowed = true;
  /** A v2 ack has come since this process started: v2 gets through. */
  private v2AckSeen = false;
  private readonly clock = new ClockOffset();
  private readonly stats = {
    batchesSent: 0,
    recordsSent: 0,
    recordsAcked: 0,
    acks: 0,
    gaps: 0,
    timeouts: 0,
    deadLinkReconnects: 0,
    deadLettered: 0,
    rebases: 0,
    ignoredAcks: 0,
    lastAckAt: null as number | null,
  };
  private readonly onAppended = (stream: string) => this.pump(stream);
  private readonly errorLog = new LogThrottle(60_000);
  private lastBrokerError: string | null = null;
  private readonly ackLog = new LogThrottle(60_000);
  /** A flapping link must not log a line per flap: one a minute, with the count of the others. */
  private readonly linkLog = new StateChangeLog<'connected' | 'lost'>(60_000, (state, suppressed) => {
    const n = suppressed > 0 ? { changes_not_logged: suppressed } : {};
    if (state === 'connected') this.log.info({ wire: this.wire, ...n }, 'connected to broker; resuming from the first unacked seq of every stream');
    else this.log.warn(n, 'broker connection lost; capturing continues, replay resumes on reconnect');
  });
  private readonly unknownStatuses = new Set<string>();
  /** The relay's last known presence (retained status): no ack timeouts while it is known offline. */
  private relayOnline: boolean | undefined;

  constructor(opts: ForwarderOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'forwarder' });
  }

  start(): void {
    const { site, agent, outbox } = this.opts;
    const options: IClientOptions = {
      clientId: this.opts.clientId ?? `erp-edge-${site}-${agent}`,
      username: this.opts.username,
      password: this.opts.password,
      clean: true,
      resubscribe: false,
      reconnectPeriod: this.opts.reconnectPeriodMs,
      keepalive: Math.max(1, Math.round(this.opts.keepaliveMs / 1000)),
      connectTimeout: 10_000,
      queueQoSZero: false,
      ...(this.opts.tls?.options ?? {}),
      ...(this.opts.presence ? { will: this.opts.presence.will() } : {}),
    };
    this.log.info({ url: safeUrl(this.opts.url), clientId: options.clientId }, 'connecting to broker');
    const client = mqtt.connect(this.opts.url, options);
    this.client = client;
    disableNagle(client);
    client.on('connect', () => void this.onConnect(client));
    client.on('close', () => {
      if (this.ready) this.linkLog.change('lost');
      this.setReady(false);
      this.opts.presence?.onDisconnect();
    });
    client.on('error', (err) => this.logBrokerError(err));
    client.on('message', (topic, payload, packet) => {
      if (topic === RELAY_STATUS_TOPIC) this.onRelayStatus(payload, packet.retain);
      else this.onMessage(topic, payload);
    });
    outbox.on('appended', this.onAppended);
    // A tenth of the ack timeout (at most 1 s): a dead link is dropped close to 2 × ack_timeout.
    this.timer = setInterval(() => this.checkTimeouts(), Math.max(20, Math.min(1000, Math.round(this.opts.ackTimeoutMs / 10))));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.opts.outbox.off('appended', this.onAppended);
    if (this.timer) clearInterval(this.timer);
    this.opts.presence?.onDisconnect();
    const client = this.client;
    this.client = undefined;
    this.setReady(false);
    if (!client) return;
    const presence = this.opts.presence;
    if (client.connected && presence) {
      // Bounded: if the link drops now, mqtt.js would hold this QoS 1 publish until a reconnect.
      const offline = client.publishAsync(presence.topic, presence.offlineMessage(), { qos: 1, retain: true });
      await Promise.race([offline.catch(() => undefined), delay(2_000, undefined, { ref: false })]);
    }
    await client.endAsync(true);
    this.linkLog.flush();
  }

  /**
   * While the broker is unreachable mqtt.js retries every second: one line a minute per error.
   * Certificate and login problems are said plainly, naming the setting and file at fault.
   */
  private logBrokerError(err: Error): void {
    const explained = explainBrokerError(err, { key: 'transport', url: this.opts.url, tls: this.opts.tls, username: this.opts.username });
    this.lastBrokerError = explained?.message ?? err.message;
    if (explained) {
      const t = this.errorLog.take(`broker:${explained.code}:${String(explained.context.reason)}`);
      if (t) this.log.error({ err: { code: explained.code, reason: explained.context.reason, message: explained.message }, suppressed: t.suppressed }, `${explained.message}; retrying`);
      return;
    }
    const t = this.errorLog.take(`broker:${err.message}`);
    if (t) this.log.error({ err: { message: err.message, code: (err as { code?: unknown }).code }, suppressed: t.suppressed }, 'broker error; retrying');
  }

  getStats(): ForwarderStats {
    let inFlight = 0;
    for (const s of this.streams.values()) inFlight += s.inflight.length;
    return { connected: this.ready, connectedChangedAt: this.readyChangedAt, wire: this.wire, inFlight, clockOffsetMs: this.clock.ms, lastBrokerError: this.lastBrokerError, ...this.stats };
  }

  private setReady(ready: boolean): void {
    if (ready !== this.ready) this.readyChangedAt = Date.now();
    this.ready = ready;
  }

  private async onConnect(client: MqttClient): Promise<void> {
    const { site, agent, outbox } = this.opts;
    try {
      await client.subscribeAsync([ackTopicV1(site, agent), RELAY_STATUS_TOPIC], { qos: 1 });
    } catch (err) {
      this.log.error({ err: { message: (err as Error).message } }, 'could not subscribe to acks; will retry on reconnect');
      return;
    }
    // v2 acks: a broker ACL that allows only the v1 topics must not stop v1 from working.
    this.v2Allowed = await client.subscribeAsync(ackTopicV2(site, agent), { qos: 1 }).then(
      () => true,
      (err: Error) => {
        this.log.warn({ err: { message: err.message } }, 'the broker refused the v2 ack topic: speaking wire v1 (check the broker ACL)');
        return false;
      },
    );
    if (!this.v2Allowed) this.wire = 1;
    // Presence is not on the data path: a slow or refused birth must not hold up forwarding.
    this.opts.presence?.onConnect(client).catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'could not publish presence'));
    if (client !== this.client) return;
    this.setReady(true);
    this.errorLog.reset();
    this.lastBrokerError = null;
    this.linkLog.change('connected');
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
      s = { epoch: this.opts.outbox.streamEpoch(stream), sentUpto: acked, maxSent: acked, inflight: [], rewoundTo: -1, rewoundAt: 0, timeoutsInARow: 0 };
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
    const { outbox, site, agent, boot, batchMaxRecords, batchMaxBytes, maxInflight } = this.opts;
    const s = this.state(stream);
    while (s.inflight.length < maxInflight) {
      const wire = this.wire;
      // v1 only (it can skip a hole only once the relay holds everything before it).
      const caughtUp = wire === 1 && s.inflight.length === 0 && outbox.ackedSeq(stream) >= s.sentUpto;
      const plan = planBatch(outbox, stream, s.sentUpto, { maxRecords: batchMaxRecords, maxBytes: batchMaxBytes }, wire, caughtUp);
      if (!plan) return;
      const pruned = plan.skipped.filter((k) => k.reason === 'pruned');
      if (pruned.length > 0) {
        // The relay is further behind than this outbox holds (its store was restored or lost):
        // those records were pruned here after their ack and cannot be sent again.
        this.log.error(
          { stream, relay_expects: s.sentUpto + 1, skipped: pruned },
          'the relay expects events this outbox pruned after they were acked (relay store lost or restored?): they are skipped',
        );
      }
      const now = Date.now();
      const payload = encodeBatch({ site, agent, stream, epoch: s.epoch, boot }, plan, wire, now);
      const topic = wire === 1 ? eventsTopicV1(site, agent, stream) : eventsTopicV2(site, agent, stream);
      const batch: InflightBatch = { first: plan.first, last: plan.last, sentAt: now, brokerAcked: false };
      client.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) this.log.debug({ stream, first: batch.first, last: batch.last, err: { message: err.message } }, 'publish not confirmed by broker; the ack timeout resends');
        else {
          // The relay's clock starts when the broker has the batch: a slow uplink is not a lost ack.
          batch.sentAt = Date.now();
          batch.brokerAcked = true;
        }
      });
      s.inflight.push(batch);
      s.sentUpto = plan.last;
      s.maxSent = Math.max(s.maxSent, plan.last);
      this.stats.batchesSent++;
      this.stats.recordsSent += plan.rows.length;
    }
  }

  private onMessage(topic: string, payload: Buffer): void {
    const { site, agent } = this.opts;
    const json = safeJson(payload);
    let a: AckIn | undefined;
    if (topic === ackTopicV2(site, agent)) {
      const p = ackV2.safeParse(json);
      if (p.success) {
        a = { version: 2, ...p.data };
        this.v2AckSeen = true;
        if (p.data.at !== undefined && p.data.sent_at !== undefined) this.clock.add(p.data.at, p.data.sent_at, Date.now());
      }
      else return this.malformedAck(topic, p.error.issues[0]?.message);
    } else if (topic === ackTopicV1(site, agent)) {
      const p = ackV1Schema.safeParse(json);
      if (p.success) a = { version: 1, ...p.data };
      else return this.malformedAck(topic, p.error.issues[0]?.message);
    }
    if (!a) return;
    const s = this.streams.get(a.stream);
    if (!s || a.epoch !== s.epoch) {
      this.log.debug({ stream: a.stream, epoch: a.epoch }, 'ignoring ack for another epoch or a stream this process has not sent');
      return;
    }
    this.handleAck(a, s);
  }

  private malformedAck(topic: string, why: string | undefined): void {
    const t = this.ackLog.take(`malformed:${topic}`);
    if (t) this.log.warn({ topic, problem: why, suppressed: t.suppressed }, 'ignoring malformed ack');
  }

  /**
   * A relay that has just subscribed (a live, not retained, online status) may have missed what
   * was published before: resend everything unacked now rather than after the ack timeout. The
   * status also says which wire versions the relay accepts.
   */
  private onRelayStatus(payload: Buffer, retained: boolean): void {
    const parsed = relayStatus.safeParse(safeJson(payload));
    if (!parsed.success) return;
    this.relayOnline = parsed.data.online;
    if (parsed.data.online) {
      const wire: WireVersion = parsed.data.wire?.includes(2) && this.v2Allowed ? 2 : 1;
      if (wire !== this.wire) this.log.info({ relay: parsed.data.id, from: this.wire, to: wire }, 'wire version changed to what the relay accepts');
      this.wire = wire;
    }
    if (!parsed.data.online || retained || !this.ready) return;
    this.log.info({ relay: parsed.data.id }, 'relay (re)subscribed; resending unacked events');
    for (const [stream, s] of this.streams) {
      this.rewind(stream);
      s.timeoutsInARow = 0;
      this.pump(stream);
    }
  }

  private handleAck(a: AckIn, s: StreamState): void {
    this.stats.acks++;
    this.relayOnline = true; // an ack proves it, whatever a stale retained status says
    switch (a.status) {
      case ACK_STATUS.ok:
      case ACK_STATUS.gap:
        return this.onProgress(a, s);
      case ACK_STATUS.rejected:
        return this.onRejected(a, s);
      case ACK_STATUS.conflict:
        return this.onConflict(a, s);
      default:
        // A newer relay's status: never a reason to loop; said once.
        if (!this.unknownStatuses.has(a.status)) {
          this.unknownStatuses.add(a.status);
          this.log.warn({ stream: a.stream, status: a.status }, 'ignoring an ack status this agent does not know (newer relay?)');
        }
    }
  }

  /** Never act on seqs this process has not sent: a forged or stale ack must not delete anything. */
  private beyondSent(a: AckIn, s: StreamState, upto: number): boolean {
    if (upto <= s.maxSent) return false;
    // The relay holds more than this outbox ever wrote (it was restored from an older copy and the
    // relay compared what was resent): what was sent is held. Without this the backlog would be
    // resent and ignored forever. A forged ack gains nothing by it it had not already.
    if (a.status === ACK_STATUS.ok && a.version === 2 && upto > this.opts.outbox.lastSeq(a.stream) && s.maxSent > this.opts.outbox.ackedSeq(a.stream)) {
      return false;
    }
    this.stats.ignoredAcks++;
    const t = this.ackLog.take(`beyond:${a.stream}`);
    if (t) {
      this.log.warn(
        { stream: a.stream, status: a.status, upto, sent_upto: s.maxSent, suppressed: t.suppressed },
        'ignoring an ack for seqs this agent has not sent (forged, or the outbox was restored from an older copy)',
      );
    }
    return true;
  }

  private recordAck(a: AckIn, s: StreamState, ackUpto: number): boolean {
    if (this.beyondSent(a, s, ackUpto)) return false;
    const upto = Math.min(ackUpto, s.maxSent);
    try {
      const newly = this.opts.outbox.ack(a.stream, upto);
      this.stats.recordsAcked += newly;
      if (newly > 0) this.stats.lastAckAt = Date.now();
    } catch (err) {
      this.log.error({ stream: a.stream, upto, err: { message: (err as Error).message } }, 'could not record the ack');
      return false;
    }
    if (s.inflight.length > 0 && s.inflight[0]!.last <= upto) s.timeoutsInARow = 0;
    while (s.inflight.length > 0 && s.inflight[0]!.last <= upto) s.inflight.shift();
    // A late ack past a rewind: what it covers needs no resending.
    s.sentUpto = Math.max(s.sentUpto, upto);
    return true;
  }

  private onProgress(a: AckIn, s: StreamState): void {
    if (!this.recordAck(a, s, a.upto)) return;
    if (a.status === ACK_STATUS.ok && a.version === 2 && a.upto > this.opts.outbox.lastSeq(a.stream)) {
      // The relay holds seqs this outbox never wrote: it went back in time (restored from an older
      // copy). Records appended from here would reuse seqs the relay holds with other records: move
      // to a new epoch now, before any of them is sent, rather than after a conflict.
      this.rebase(a, s, `relay holds up to ${a.upto}, beyond this outbox's last seq`);
      return;
    }
    if (a.status === ACK_STATUS.gap) {
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

  /** Only the seqs of `ranges` this agent has sent and not had acked. */
  private sentUnacked(a: AckIn, s: StreamState): { from: number; to: number; reason: string }[] {
    const acked = this.opts.outbox.ackedSeq(a.stream);
    const out: { from: number; to: number; reason: string }[] = [];
    for (const r of a.ranges ?? []) {
      const from = Math.max(r.from, acked + 1);
      const to = Math.min(r.to, s.maxSent);
      if (to >= from) out.push({ from, to, reason: r.reason ?? a.reason ?? 'rejected by the relay' });
    }
    return out;
  }

  /** The relay cannot accept these records: keep them in the dead-letter table, move the stream past them. */
  private onRejected(a: AckIn, s: StreamState): void {
    const ranges = this.sentUnacked(a, s);
    if (ranges.length === 0) {
      this.stats.ignoredAcks++;
      return;
    }
    if (this.beyondSent(a, s, a.upto)) return;
    // Records before the first rejected one were stored.
    this.recordAck(a, s, a.upto);
    let moved = 0;
    try {
      moved = this.opts.outbox.deadLetterPending(a.stream, ranges);
    } catch (err) {
      // Not now (a full disk?): the ack timeout resends, backing off, and the relay rejects again.
      const t = this.errorLog.take(`deadletter:${a.stream}`);
      if (t) this.log.error({ stream: a.stream, err: { message: (err as Error).message }, suppressed: t.suppressed }, 'could not move rejected records to the dead-letter table; retrying after the ack timeout');
      return;
    }
    this.stats.deadLettered += moved;
    this.log.error(
      { stream: a.stream, records: moved, ranges, ids: a.ids?.slice(0, 10), reason: a.reason },
      'relay rejected records: moved to the dead-letter table (edge-agent deadletter list); the stream goes on',
    );
    this.rewind(a.stream);
    this.pump(a.stream);
  }

  /**
   * The relay holds other records under seqs this outbox reuses: it went back in time under the
   * same epoch (VM snapshot, backup restore). Move the stream to a new epoch, renumbering what is
   * not acked; the relay's id de-duplication recognises anything captured twice.
   */
  private onConflict(a: AckIn, s: StreamState): void {
    const ranges = this.sentUnacked(a, s);
    if (ranges.length === 0) {
      this.stats.ignoredAcks++;
      return;
    }
    this.rebase(a, s, 'relay holds other records under these seqs');
  }

  /**
   * Moves the stream to a new epoch. Everything not acked moves, not only what an ack names:
   * nothing the relay has not acknowledged is deleted, and its id de-duplication recognises what
   * it already holds.
   */
  private rebase(a: AckIn, s: StreamState, why: string): void {
    const from = this.opts.outbox.ackedSeq(a.stream) + 1;
    let epoch: string;
    try {
      epoch = this.opts.outbox.rebaseStream(a.stream, from);
    } catch (err) {
      this.log.error({ stream: a.stream, why, err: { message: (err as Error).message } }, 'could not move the stream to a new epoch');
      return;
    }
    this.stats.rebases++;
    this.log.error(
      { stream: a.stream, from, relay_upto: a.upto, status: a.status, old_epoch: s.epoch, epoch, ids: a.ids?.slice(0, 10) },
      `${why} (outbox restored from an older copy?): the stream continues in a new epoch`,
    );
    this.streams.delete(a.stream);
    this.pump(a.stream);
  }

  /**
   * Resends from the last acked seq when the relay has not acked in time. Not while the relay is
   * known to be offline (its online status triggers the resend), and backing off while timeouts
   * repeat, so an absent relay does not get the same batches queued at the broker over and over.
   *
   * A batch the broker never confirmed (no PUBACK) points at the link, not the relay: no back-off
   * then, and the second such timeout in a row drops the connection and opens a new one rather
   * than resending into it. A link that died without a FIN or RST (a dead NAT entry, a cut WAN
   * line) is otherwise noticed only by the MQTT keep-alive, 1.5 × `transport.keepalive`.
   */
  private checkTimeouts(): void {
    if (!this.ready || this.relayOnline === false) return;
    const now = Date.now();
    let deadLink: { stream: string; first: number; waitedMs: number } | undefined;
    for (const [stream, s] of this.streams) {
      const oldest = s.inflight[0];
      if (!oldest) continue;
      const wait = oldest.brokerAcked ? this.opts.ackTimeoutMs * 2 ** Math.min(s.timeoutsInARow, 5) : this.opts.ackTimeoutMs;
      if (now - oldest.sentAt <= wait) continue;
      this.stats.timeouts++;
      s.timeoutsInARow++;
      if (!oldest.brokerAcked && s.timeoutsInARow >= 2) {
        deadLink = { stream, first: oldest.first, waitedMs: now - oldest.sentAt };
        continue;
      }
      if (this.wire === 2 && !this.v2AckSeen && s.timeoutsInARow >= 2) {
        // The relay says it speaks v2, yet no v2 ack ever came: the broker drops v2 (its ACL).
        this.v2Allowed = false;
        this.wire = 1;
        this.log.warn({ stream }, 'no v2 ack ever came although the relay accepts v2: the broker drops erp-edge/v2 (check its ACL); speaking wire v1');
      }
      this.log.warn({ stream, first: oldest.first, waitedMs: now - oldest.sentAt }, 'no relay ack in time; resending from the last acked seq');
      this.rewind(stream);
      this.pump(stream);
    }
    if (deadLink) this.dropDeadLink(deadLink);
  }

  /**
   * Closes the socket under mqtt.js (no DISCONNECT: nothing would carry it). Its 'close' handler
   * marks the forwarder not ready and reconnects after `reconnect_period`; the new connection's
   * onConnect rewinds every stream to its first unacked seq.
   */
  private dropDeadLink(at: { stream: string; first: number; waitedMs: number }): void {
    const client = this.client;
    if (!client) return;
    this.stats.deadLinkReconnects++;
    this.log.warn(
      { ...at, timeouts_in_a_row: this.state(at.stream).timeoutsInARow },
      'second ack timeout in a row and the broker confirmed nothing: the connection is dead; opening a new one',
    );
    this.setReady(false);
    client.stream?.destroy();
  }
}

function safeJson(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}
