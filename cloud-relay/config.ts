import { z } from 'zod';
import { dirname, resolve } from 'node:path';
import { loadConfigFile } from '../common/config-file.js';

export const DEFAULT_EMBEDDED_BROKER_PORT = 11883;

const brokerUrl = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?|tcp|tls):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
  username: z.string().optional(),
  password: z.string().optional(),
});

export const relayConfigSchema = z.strictObject({
  /** MQTT client id of this relay; stable, so the broker keeps its session across restarts. */
  id: z.string().min(1).default('erp-edge-relay'),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** `embedded` runs an Aedes broker in-process; otherwise the URL of Mosquitto/EMQX. */
  broker: z.union([z.literal('embedded'), brokerUrl]),
  embedded_broker: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(DEFAULT_EMBEDDED_BROKER_PORT),
    })
    .prefault({}),
  store: z.strictObject({
    path: z.string().min(1),
    synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
  }),
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8470),
    })
    .prefault({}),
});

export type RelayConfig = z.output<typeof relayConfigSchema>;

/** Loads and validates a relay config; relative paths are taken from the config file's folder. */
export function loadRelayConfig(path: string, env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const cfg = loadConfigFile(path, relayConfigSchema, env);
  return { ...cfg, store: { ...cfg.store, path: resolve(dirname(path), cfg.store.path) } };
}
