import mqtt, { type MqttClient } from 'mqtt';
import { z } from 'zod';
import { durationMs } from '../../common/duration.js';
import { ErpEdgeError } from '../../common/errors.js';
import { safeUrl, type Logger } from '../../common/logger.js';
import { LogThrottle } from '../../common/log-throttle.js';
import { checkTlsUrl, loadTls, tlsSchema } from '../../common/tls.js';
import { deliverySettings } from './delivery-settings.js';
import type { DeliveryBatch, Sink, StreamRef } from './sink.js';

const PLACEHOLDERS = ['site', 'agent', 'stream', 'epoch'] as const;

export const mqttSinkSchema = z
  .strictObject({
    type: z.literal('mqtt'),
    ...deliverySettings,
    /** The broker other consumers read from (not necessarily the relay's own). */
    url: z.string().regex(/^(mqtts?|wss?|tcp|tls):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
    username: z.string().optional(),
    /** Use `${VAR}`: never written to a log or an error. */
    password: z.string().optional(),
    tls: tlsSchema.optional(),
    /** MQTT client id; unique per relay instance (the broker drops a second connection with the same id). Random when absent. */
    client_id: z.string().min(1).max(128).optional(),
    /**
     * Topic of each event, with {site}, {agent}, {stream} and {epoch} filled in (a level taken from
     * the stream with `/`, `+` or `#` is refused by the agent already).
     */
    topic: z
      .string()
      .min(1)
      .refine((t) => !/[+#]/.test(t), 'a topic to publish to: no + or # wildcards')
      .refine((t) => [...t.matchAll(/\{([^}]*)\}/g)].every((m) => (PLACEHOLDERS as readonly string[]).includes(m[1]!)), `placeholders are ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`)
      .default('erp-edge/v1/cloud/{site}/{agent}/{stream}'),
    /** Publish with the retain flag (the last event of each topic stays for new subscribers). */
    retain: z.boolean().default(false),
    /** A run of publishes not all acknowledged (PUBACK) by then counts as a failure. */
    timeout: durationMs.refine((v) => v > 0, 'must be more than 0').default(10_000),
  })
  .superRefine(checkTlsUrl);
export type MqttSinkConfig = z.output<typeof mqttSinkSchema>;

/** One message per event. Versioned (`v`). */
export interface MqttSinkMessage extends StreamRef {
  v: 1;
  id: string;
  seq: number;
  correlation_id: string | null;
  value: unknown;
}

export function sinkTopic(template: string, s: StreamRef): string {
  return template.replace(/\{(site|agent|stream|epoch)\}/g, (_, k: keyof StreamRef) => s[k]);
}

/**
 * Re-publishes each event at QoS 1 to a cloud topic. A batch's messages go out in seq order on one
 * connection and the broker keeps that order per topic; the batch is delivered once every PUBACK
 * is in. While the broker is unreachable a batch fails at once (nothing queues in memory).
 */
export class MqttSink implements Sink {
  readonly type = 'mqtt';
  readonly name: string;
  private readonly client: MqttClient;
  private readonly target: string;
  private readonly errors = new LogThrottle(60_000);

  constructor(
    private readonly cfg: MqttSinkConfig,
    log: Logger,
  ) {
    this.name = cfg.name;
    this.target = safeUrl(cfg.url);
    const tls = cfg.tls ? loadTls(cfg.tls, `sinks.${cfg.name}.tls`) : undefined;
    for (const p of tls?.problems ?? []) log.error({ sink: this.name, err: { code: p.code, message: p.message } }, p.message);
    this.client = mqtt.connect(cfg.url, {
      ...(cfg.client_id !== undefined ? { clientId: cfg.client_id } : {}),
      clean: true,
      reconnectPeriod: 1_000,
      ...(cfg.username !== undefined ? { username: cfg.username } : {}),
      ...(cfg.password !== undefined ? { password: cfg.password } : {}),
      ...(tls?.options ?? {}),
    });
    this.client.on('error', (err) => {
      const t = this.errors.take(err.message);
      if (t) log.warn({ sink: this.name, broker: this.target, err: { message: err.message }, suppressed: t.suppressed }, 'mqtt sink: broker error; reconnecting');
    });
  }

  async deliver(batch: DeliveryBatch, signal: AbortSignal): Promise<void> {
    if (!this.client.connected) throw new ErpEdgeError('ERP_SINK_DELIVERY', `mqtt sink ${this.target}: not connected`, { sink: this.name, url: this.target });
    const topic = sinkTopic(this.cfg.topic, batch.stream);
    const acks = batch.events.map((e) => {
      const m: MqttSinkMessage = { v: 1, ...batch.stream, id: e.id, seq: e.seq, correlation_id: e.correlation_id, value: e.value };
      return this.client.publishAsync(topic, JSON.stringify(m), { qos: 1, retain: this.cfg.retain });
    });
    const stop = AbortSignal.any([signal, AbortSignal.timeout(this.cfg.timeout)]);
    let onAbort!: () => void;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new ErpEdgeError('ERP_SINK_DELIVERY', `mqtt sink ${this.target}: ${signal.aborted ? 'relay stopping' : `not acknowledged within ${this.cfg.timeout} ms`}`, { sink: this.name, url: this.target }));
      if (stop.aborted) onAbort();
      else stop.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([Promise.all(acks), aborted]);
    } catch (err) {
      if (err instanceof ErpEdgeError) throw err;
      throw new ErpEdgeError('ERP_SINK_DELIVERY', `mqtt sink ${this.target}: ${(err as Error).message}`, { sink: this.name, url: this.target });
    } finally {
      stop.removeEventListener('abort', onAbort);
      // The losers of the race settle later: never an unhandled rejection.
      for (const a of acks) a.catch(() => undefined);
      aborted.catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
