import { z } from 'zod';
import { dirname, resolve } from 'node:path';
import { loadConfigFile } from '../common/config-file.js';
import { byteSize, durationMs } from '../common/duration.js';
import { ErpEdgeError } from '../common/errors.js';
import { alertsSchema } from './fleet/alerts/rules.js';
import { parsePasswordHash } from './auth/password.js';
import { checkTlsUrl, resolveTlsPaths, tlsSchema } from '../common/tls.js';
import { checkRoutingRefs, routingConfigKeys } from './mapping/config-schema.js';
import { retentionSchema, sinksSchema } from './sinks/config.js';

export const DEFAULT_EMBEDDED_BROKER_PORT = 11883;

const brokerUrl = z
  .strictObject({
    url: z.string().regex(/^(mqtts?|wss?|tcp|tls):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
    username: z.string().optional(),
    /** Use `${VAR}`: never written to a log or an error. */
    password: z.string().optional(),
    /** Certificates for mqtts:// (docs/security.md); files relative to this config file, read at start. */
    tls: tlsSchema.optional(),
    /**
     * Several relay instances: each subscribes to events as `$share/<group>/…` (Mosquitto ≥ 2.0,
     * EMQX, HiveMQ), so the broker hands each batch to one of them. Needs a store every instance
     * shares (`store.type: postgres`). Presence and health stay plain subscriptions: every instance
     * keeps the whole fleet view.
     */
    shared_group: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64): it becomes a topic level')
      .optional(),
  })
  .superRefine(checkTlsUrl);

/** `store:` the embedded SQLite file (the default; `type` may be left out, as release 0.1 wrote it). */
const sqliteStoreSchema = z.strictObject({
  type: z.literal('sqlite').optional(),
  path: z.string().min(1),
  synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
});

/** `store: {type: postgres}`: a PostgreSQL database every relay instance shares (store/postgres-store.ts). */
const postgresStoreSchema = z
  .strictObject({
    type: z.literal('postgres'),
    /** postgres://user:pass@host:port/db (use `${VAR}` for the password); or the fields below. */
    url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
    host: z.string().optional(),
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().optional(),
    user: z.string().optional(),
    /** Use `${VAR}`: never written to a log or an error. */
    password: z.string().optional(),
    /** Connections in the pool (ingest holds one per group commit; the API and fleet use the others). */
    pool_size: z.number().int().min(2).max(200).default(10),
    /** Tables live in this schema (created when missing). */
    schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier').default('erp_edge_relay'),
    /** `SET statement_timeout` for every connection. */
    statement_timeout: durationMs.default(30_000),
  })
  .refine((s) => s.url !== undefined || s.host !== undefined, 'give store.url or store.host');

export type PostgresStoreConfig = z.output<typeof postgresStoreSchema>;

/** `auth:` (issue #9 item 9): who may use the API, the live channel and the dashboard. */
const authSchema = z
  .strictObject({
    /** Explicit opt-out (tests, a relay behind an authenticating proxy): everything open, logged loudly at start. */
    disabled: z.boolean().default(false),
    /** Dashboard logins; hashes from `cloud-relay hash-password`. */
    users: z
      .array(
        z.strictObject({
          name: z.string().min(1).max(100),
          password_hash: z.string().refine((h) => parsePasswordHash(h) !== undefined, 'not a scrypt hash from `cloud-relay hash-password` (scrypt$N$r$p$salt$hash)'),
        }),
      )
      .refine((u) => new Set(u.map((x) => x.name)).size === u.length, 'list each user name once')
      .default([]),
    /** API clients: `Authorization: Bearer <token>`. */
    tokens: z
      .array(
        z.strictObject({
          name: z.string().min(1).max(100),
          token: z.string().min(16, 'use at least 16 characters (e.g. openssl rand -hex 32)'),
        }),
      )
      .default([]),
    /** /metrics and /healthz stay open (Prometheus scrapers, load balancers) unless this is true. */
    protect_metrics: z.boolean().default(false),
    /** A dashboard login lasts this long. */
    session_ttl: durationMs.refine((v) => v > 0, 'must be more than 0').default(12 * 3_600_000),
  })
  .prefault({});

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
  store: z.union([postgresStoreSchema, sqliteStoreSchema]),
  ingest: z
    .strictObject({
      /**
       * With `broker.shared_group`: a batch ahead of the stored cursor may be one whose predecessor
       * another instance is committing. Wait up to this long for the stream's watermark to reach it
       * before answering `gap` (0: answer at once). A single instance never waits.
       */
      gap_wait: durationMs.default(200),
    })
    .prefault({}),
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8470),
    })
    .prefault({}),
  /**
   * Wire versions accepted (docs/wire.md); batches of others are refused and counted
   * (`unsupported_version`). Announced in the relay's presence, so agents pick one of them.
   */
  wire_versions: z
    .array(z.union([z.literal(1), z.literal(2)]))
    .min(1, 'list at least one wire version')
    .refine((v) => new Set(v).size === v.length, 'list each wire version once')
    .transform((v) => [...v].sort((a, b) => a - b))
    .default([1, 2]),
  limits: z
    .strictObject({
      /** A v2 record whose JSON is larger is refused with a `rejected` ack (reason record_too_large). */
      max_record_bytes: byteSize.default(1024 * 1024),
      /**
       * A message (event batch, presence, health) whose payload is larger is refused unparsed and
       * counted (`too_large`); the embedded broker refuses such a publish (and drops its sender's
       * connection), as Mosquitto's `max_packet_size` does (config/mosquitto/erp-edge.conf).
       */
      max_message_bytes: byteSize.default(16 * 1024 * 1024),
    })
    .refine((l) => l.max_message_bytes >= l.max_record_bytes, { message: 'max_message_bytes must be at least max_record_bytes (a batch carries a whole record)', path: ['max_message_bytes'] })
    .prefault({}),
  dedupe: z
    .strictObject({
      /** How long a stored record id is remembered to recognise a record captured again; 0 turns it off. */
      window: durationMs.default(7 * 86_400_000),
    })
    .prefault({}),
  fleet: z
    .strictObject({
      /**
       * An online agent with no health message for this long is `stale` (its connection may be
       * half-open, or its health loop stuck). Three of the agent's default 15 s health intervals.
       */
      stale_after: durationMs.refine((v) => v > 0, 'must be more than 0').default(45_000),
      /** Health samples kept per agent for charts (GET /api/agents/:site/:agent `history`), oldest dropped first. */
      history_samples: z.number().int().min(1).max(100_000).default(240),
    })
    .prefault({}),
  /** Alert rules over the fleet, and the webhook that receives them (fleet/alerts/rules.ts). */
  alerts: alertsSchema,
  auth: authSchema,
  /** `mappings:` and `routes:` (mapping/config-schema.ts): canonical events and which sinks get what. */
  ...routingConfigKeys,
  /** Where stored events are delivered downstream (sinks/registry.ts); README "Sinks and dead-letter". */
  sinks: sinksSchema,
  retention: retentionSchema,
}).superRefine((cfg, ctx) => {
  checkRoutingRefs(cfg, ctx, new Set(cfg.sinks.map((s) => s.name)));
  if (cfg.broker !== 'embedded' && cfg.broker.shared_group !== undefined && cfg.store.type !== 'postgres') {
    ctx.addIssue({ code: 'custom', path: ['broker', 'shared_group'], message: 'several relay instances need one store they share: set store.type: postgres (a SQLite file belongs to one relay)' });
  }
  // Secure by default: a relay nobody configured auth for must not serve the fleet to anyone who asks.
  if (!cfg.auth.disabled && cfg.auth.users.length === 0 && cfg.auth.tokens.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['auth'], message: 'configure auth.users or auth.tokens (or set `auth: { disabled: true }` explicitly to leave the API and dashboard open)' });
  }
});

/** A relay config as written (or built by a caller): Relay.start validates it and applies the defaults. */
export type RelayConfig = z.input<typeof relayConfigSchema>;
/** A validated relay config, defaults applied. */
export type ResolvedRelayConfig = z.output<typeof relayConfigSchema>;

/** Validates a config object (defaults applied by the schema, the only place that holds them). */
export function resolveRelayConfig(cfg: RelayConfig): ResolvedRelayConfig {
  const r = relayConfigSchema.safeParse(cfg);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  throw new ErpEdgeError('ERP_CONFIG_INVALID', `invalid relay config: ${issues.join('; ')}`, { issues });
}

/** Loads and validates a relay config; relative paths are taken from the config file's folder. */
export function loadRelayConfig(path: string, env: NodeJS.ProcessEnv = process.env): ResolvedRelayConfig {
  const cfg = loadConfigFile(path, relayConfigSchema, env);
  const dir = dirname(path);
  const broker = cfg.broker === 'embedded' ? cfg.broker : { ...cfg.broker, tls: resolveTlsPaths(cfg.broker.tls, resolve(dir)) };
  const store = cfg.store.type === 'postgres' ? cfg.store : { ...cfg.store, path: resolve(dir, cfg.store.path) };
  const sinks = cfg.sinks.map((s) => (s.type === 'mqtt' ? { ...s, tls: resolveTlsPaths(s.tls, resolve(dir)) } : s));
  return { ...cfg, broker, store, sinks };
}
