import { z } from 'zod';
import { dirname, resolve } from 'node:path';
import { loadConfigFile } from '../common/config-file.js';
import { byteSize, durationMs } from '../common/duration.js';
import { topicLevel } from '../common/wire-v1.js';
import { collectorConfigSchema } from './collectors/registry.js';

export const agentConfigSchema = z
  .strictObject({
    site: topicLevel,
    agent: topicLevel,
    log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    /** Folder for the outbox and other state; relative to this file. */
    data_dir: z.string().min(1),
    outbox: z
      .strictObject({
        synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
        max_bytes: byteSize.default(1024 ** 3),
        max_events: z.number().int().positive().default(10_000_000),
        /** block: collectors pause until acks free space; drop_oldest: oldest pending events are dropped and counted. */
        cap_policy: z.enum(['block', 'drop_oldest']).default('block'),
        replay_window: durationMs.default(3_600_000),
      })
      .prefault({}),
    transport: z.strictObject({
      url: z.string().regex(/^(mqtts?|wss?|tcp|tls):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
      username: z.string().optional(),
      password: z.string().optional(),
      client_id: z.string().min(1).optional(),
      batch_max_records: z.number().int().min(1).max(10_000).default(1_000),
      batch_max_bytes: byteSize.default(256 * 1024),
      max_inflight: z.number().int().min(1).max(256).default(8),
      ack_timeout: durationMs.default(15_000),
    }),
    collectors: z.array(collectorConfigSchema).min(1),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.collectors.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['collectors', i, 'name'], message: `duplicate collector name "${c.name}"` });
      seen.add(c.name);
    });
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;

export interface LoadedAgentConfig extends AgentConfig {
  /** Folder of the config file: relative paths in it are resolved from here. */
  configDir: string;
  outboxPath: string;
}

export function loadAgentConfig(path: string, env: NodeJS.ProcessEnv = process.env): LoadedAgentConfig {
  const cfg = loadConfigFile(path, agentConfigSchema, env);
  const configDir = dirname(resolve(path));
  const dataDir = resolve(configDir, cfg.data_dir);
  return { ...cfg, data_dir: dataDir, configDir, outboxPath: resolve(dataDir, 'outbox.db') };
}
