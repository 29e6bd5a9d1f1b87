import { z } from 'zod';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadConfigFile } from '../common/config-file.js';
import { byteSize, durationMs } from '../common/duration.js';
import { topicLevel } from '../common/wire-v1.js';
import { checkTlsUrl, resolveTlsPaths, tlsSchema } from '../common/tls.js';
import type { Logger } from '../common/logger.js';
import type { BaseCollectorConfig, CollectorKind } from './host/collector.js';
import { collectorConfigSchemaOf, collectorKinds, type CollectorConfig } from './collectors/registry.js';
import type { OutboxOptions } from './outbox/outbox.js';
import type { ForwarderOptions } from './transport/forwarder.js';

/**
 * The agent's config schema: the one place every default lives (the outbox, forwarder and host
 * take their settings from here, never from defaults of their own).
 */
export const outboxSchema = z.strictObject({
  synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
  max_bytes: byteSize.default(1024 ** 3),
  max_events: z.number().int().positive().default(10_000_000),
  /** block: collectors pause until acks free space; drop_oldest: oldest pending events are dropped and counted. */
  cap_policy: z.enum(['block', 'drop_oldest']).default('block'),
  replay_window: durationMs.default(3_600_000),
  /**
   * Largest record (its JSON) the capture writer lets in. Brokers cap messages (EMQX: 1 MB by
   * default, AWS IoT: 128 KB), and the relay has a limit of its own: a record over it would be
   * refused downstream, so it is refused (or dead-lettered) at capture.
   */
  max_record_bytes: byteSize.default(512 * 1024),
  /**
   * Space kept beside the outbox (a file, `outbox.db-reserve`) and given up when a write finds the
   * disk full anyway (another program filled it): room for acks and pruning, so a full disk is
   * recovered from, not deadlocked on. Capture waits until the reserve can be made again. 0: none.
   */
  disk_reserve: byteSize.default(4 * 1024 ** 2),
  /**
   * Free space capture leaves on the outbox's file system: appends pause (as under `block`) before
   * they would take it below this plus the room the outbox keeps for its write-ahead log, so acks and
   * pruning always have room to write (agent/outbox/disk-room.ts).
   */
  disk_min_free: byteSize.default(32 * 1024 ** 2),
});

export const transportSchema = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?|tcp|tls):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
  username: z.string().optional(),
  /** Use `${VAR}`: never written to a log, `status` or an error. */
  password: z.string().optional(),
  /** Certificates for mqtts:// (docs/security.md); files relative to this config file, read at start. */
  tls: tlsSchema.optional(),
  client_id: z.string().min(1).optional(),
  batch_max_records: z.number().int().min(1).max(10_000).default(1_000),
  batch_max_bytes: byteSize.default(256 * 1024),
  max_inflight: z.number().int().min(1).max(256).default(8),
  /** No relay ack this long: resend from the last acked seq; a second time in a row with no broker PUBACK either, drop the connection and open a new one (a dead link). */
  ack_timeout: durationMs.default(15_000),
  /** MQTT keep-alive: a dead link (no FIN) is noticed after 1.5× this; the fleet's "offline" is only as fast. */
  keepalive: durationMs.default(60_000),
  reconnect_period: durationMs.default(1_000),
  /** How often the agent publishes its health (backlog, collectors, exceptions). */
  health_interval: durationMs.default(15_000),
}).superRefine(checkTlsUrl);

export const restartSchema = z.strictObject({
  /** A failed collector is restarted after this, doubling up to `max`. */
  initial: durationMs.default(1_000),
  max: durationMs.default(300_000),
});

/** The endpoints' default address: loopback only, so nothing is exposed until a site chooses to. */
export const DEFAULT_HTTP_LISTEN = '127.0.0.1:9465';

/** `HOST:PORT` (`[::1]:9465` for IPv6) → host and port; `false` or `off` → no endpoints. */
export const listenAddress = z.union([z.literal(false), z.literal('off'), z.string()]).transform((v, ctx) => {
  if (v === false || v === 'off') return null;
  const m = /^\s*(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})\s*$/.exec(v);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65_535) {
    ctx.addIssue({ code: 'custom', message: `expected HOST:PORT such as "127.0.0.1:9465", or false / off to turn the endpoints off, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return { host: (m[1] ?? m[2])!, port };
});

/** When GET /healthz answers 503 (a site's own monitoring polls it). */
export const healthzSchema = z.strictObject({
  /** A collector in `error` or `backing-off` for longer than this is unhealthy (shorter: a restart in progress). */
  collector_failing_for: durationMs.default(300_000),
  /** Not connected to the broker for longer than this is unhealthy (capture goes on, but nothing leaves). */
  disconnected_for: durationMs.default(300_000),
  /** Free space on the data folder's disk below this is unhealthy (SQLite needs room to commit). */
  min_disk_free: byteSize.default(1024 ** 3),
});

export const httpSchema = z.strictObject({
  /** Address of GET /healthz and GET /metrics; `false` or `off` turns them off. */
  listen: listenAddress.prefault(DEFAULT_HTTP_LISTEN),
  healthz: healthzSchema.prefault({}),
});

function agentSchema(kinds: readonly CollectorKind[]) {
  return z
    .strictObject({
      site: topicLevel,
      agent: topicLevel,
      log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
      /** Folder for the outbox and other state; relative to this file. */
      data_dir: z.string().min(1),
      outbox: outboxSchema.prefault({}),
      transport: transportSchema,
      collector_restart: restartSchema.prefault({}),
      http: httpSchema.prefault({}),
      collectors: z.array(collectorConfigSchemaOf(kinds)).min(1),
    })
    .superRefine((cfg, ctx) => {
      const seen = new Set<string>();
      cfg.collectors.forEach((c, i) => {
        if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['collectors', i, 'name'], message: `duplicate collector name "${c.name}"` });
        seen.add(c.name);
      });
      for (const o of overlaps(cfg.collectors, kinds)) {
        ctx.addIssue({ code: 'custom', path: ['collectors', o.second, o.key], message: o.message });
      }
    });
}

interface OverlapIssue {
  /** Index of the second collector of the pair. */
  second: number;
  key: string;
  message: string;
}

/**
 * Pairs of collectors of one kind that would capture the same input (the kind's `overlap` hook),
 * reported at the second of each pair so the message points at the collector added last.
 */
function overlaps(collectors: readonly BaseCollectorConfig[], kinds: readonly CollectorKind[]): OverlapIssue[] {
  const found: OverlapIssue[] = [];
  collectors.forEach((b, j) => {
    const check = kinds.find((k) => k.type === b.type)?.overlap;
    if (!check) return;
    collectors.slice(0, j).forEach((a) => {
      const o = a.type === b.type ? check(a, b) : undefined;
      if (o) found.push({ second: j, key: o.key, message: `collectors "${a.name}" and "${b.name}" overlap: ${o.description}` });
    });
  });
  return found;
}

export const agentConfigSchema = agentSchema(collectorKinds as unknown as CollectorKind[]);

export type AgentConfig = Omit<z.output<typeof agentConfigSchema>, 'collectors'> & { collectors: CollectorConfig[] };

export interface LoadedAgentConfig extends AgentConfig {
  /** Folder of the config file: relative paths in it are resolved from here. */
  configDir: string;
  outboxPath: string;
  /** SHA-256 of the config file's text (presence: tells the fleet which config an agent runs). */
  configHash: string;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Collector kinds to accept (tests add their own); the registry's by default. */
  kinds?: readonly CollectorKind[];
}

export function loadAgentConfig(path: string, opts: LoadOptions = {}): LoadedAgentConfig {
  const schema = opts.kinds ? agentSchema(opts.kinds) : agentConfigSchema;
  const cfg = loadConfigFile(path, schema, opts.env ?? process.env) as AgentConfig;
  const configDir = dirname(resolve(path));
  const dataDir = resolve(configDir, cfg.data_dir);
  const configHash = createHash('sha256').update(readFileSync(path)).digest('hex');
  const transport = { ...cfg.transport, tls: resolveTlsPaths(cfg.transport.tls, configDir) };
  return { ...cfg, transport, data_dir: dataDir, configDir, outboxPath: resolve(dataDir, 'outbox.db'), configHash };
}

export type OutboxConfig = z.output<typeof outboxSchema>;

/** Outbox settings with every default (tests and tools that open an outbox without a config file). */
export function defaultOutboxConfig(overrides: z.input<typeof outboxSchema> = {}): OutboxConfig {
  return outboxSchema.parse(overrides);
}

export function outboxOptions(path: string, o: OutboxConfig, logger?: Logger): OutboxOptions {
  return {
    path,
    synchronous: o.synchronous,
    maxBytes: o.max_bytes,
    maxEvents: o.max_events,
    capPolicy: o.cap_policy,
    replayWindowMs: o.replay_window,
    diskReserveBytes: o.disk_reserve,
    diskMinFreeBytes: o.disk_min_free,
    logger,
  };
}

export type HttpConfig = z.output<typeof httpSchema>;
export type HealthzConfig = z.output<typeof healthzSchema>;

export type TransportConfig = z.output<typeof transportSchema>;

/** The forwarder's settings from the transport config (its parts: outbox, identity, presence, logger, come from the agent). */
export function forwarderSettings(t: TransportConfig): Pick<
  ForwarderOptions,
  'url' | 'username' | 'password' | 'clientId' | 'batchMaxRecords' | 'batchMaxBytes' | 'maxInflight' | 'ackTimeoutMs' | 'keepaliveMs' | 'reconnectPeriodMs'
> {
  return {
    url: t.url,
    // `${VAR:-}` yields an empty string: treat it as not set.
    username: t.username || undefined,
    password: t.password || undefined,
    clientId: t.client_id,
    batchMaxRecords: t.batch_max_records,
    batchMaxBytes: t.batch_max_bytes,
    maxInflight: t.max_inflight,
    ackTimeoutMs: t.ack_timeout,
    keepaliveMs: t.keepalive,
    reconnectPeriodMs: t.reconnect_period,
  };
}
