import { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import { MqttSink, mqttSinkSchema } from './mqtt.js';
import type { Sink } from './sink.js';
import { WebhookSink, webhookSinkSchema } from './webhook.js';

/**
 * One line per sink type: its config schema and how to make one. (The pull API, GET
 * /api/streams/…/events, is the third way out; it needs no delivery.)
 */
export const SINK_TYPES = {
  webhook: { schema: webhookSinkSchema, create: (cfg: z.output<typeof webhookSinkSchema>) => new WebhookSink(cfg) },
  mqtt: { schema: mqttSinkSchema, create: (cfg: z.output<typeof mqttSinkSchema>, log: Logger) => new MqttSink(cfg, log) },
} as const;

/** One entry of `sinks:` in the relay YAML, told apart by `type`. */
export const sinkConfigSchema = z.discriminatedUnion('type', [SINK_TYPES.webhook.schema, SINK_TYPES.mqtt.schema]);
export type SinkConfig = z.output<typeof sinkConfigSchema>;

export function createSink(cfg: SinkConfig, log: Logger): Sink {
  switch (cfg.type) {
    case 'webhook':
      return SINK_TYPES.webhook.create(cfg);
    case 'mqtt':
      return SINK_TYPES.mqtt.create(cfg, log);
  }
}
