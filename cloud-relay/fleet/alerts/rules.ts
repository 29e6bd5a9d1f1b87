import { z } from 'zod';
import { byteSize, durationMs } from '../../../common/duration.js';
import { parseVersion } from './version.js';

/**
 * The `alerts:` section of the relay config: rules the relay evaluates over its fleet registry,
 * and the webhook that receives each firing and resolution. Defaults live here only.
 */

/** How long the condition must hold before the alert fires; 0: at once. */
const forField = durationMs.default(0);
const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, "_", "." or "-" (at most 64)');

const agentOffline = z.strictObject({
  name,
  /** The agent's state is `offline` (its will or a clean stop) or `stale` (no health for fleet.stale_after). */
  kind: z.literal('agent_offline'),
  for: forField,
});
const oldestPendingAge = z.strictObject({
  name,
  /** A stream's oldest pending event is older than `above` at the agent's latest health (agent clock). */
  kind: z.literal('oldest_pending_age'),
  above: durationMs,
  for: forField,
});
const collectorError = z.strictObject({
  name,
  /** A collector's state is `error` in the agent's latest health (backing-off retries by itself and does not count). */
  kind: z.literal('collector_error'),
  for: forField,
});
const versionBelow = z.strictObject({
  name,
  /** The agent's version (from its birth) is below `version`, compared as numbers (semver). */
  kind: z.literal('agent_version_below'),
  version: z.string().refine((v) => parseVersion(v) !== undefined, 'expected a version such as "0.4.0"'),
  for: forField,
});
const diskFreeBelow = z.strictObject({
  name,
  /** Free disk where the agent's outbox grows (health `disk.free_bytes`, agents 0.4+) is below `bytes`. */
  kind: z.literal('disk_free_below'),
  bytes: byteSize,
  for: forField,
});

export const alertRule = z.discriminatedUnion('kind', [agentOffline, oldestPendingAge, collectorError, versionBelow, diskFreeBelow]);
export type AlertRule = z.output<typeof alertRule>;
export type AlertKind = AlertRule['kind'];

export const webhookSchema = z.strictObject({
  /** Receives each firing and resolution as a JSON POST. Logged without credentials or query string. */
  url: z.string().regex(/^https?:\/\//, 'must be an http:// or https:// URL'),
  /** Extra request headers (e.g. Authorization); never logged. */
  headers: z.record(z.string(), z.string()).default({}),
  /** One POST's deadline; a timed-out POST is retried. */
  timeout: durationMs.refine((v) => v > 0, 'must be more than 0').default(5_000),
  retry: z
    .strictObject({
      /** The first retry's delay, doubled after each failure up to `max`. */
      initial: durationMs.refine((v) => v > 0, 'must be more than 0').default(1_000),
      max: durationMs.refine((v) => v > 0, 'must be more than 0').default(300_000),
    })
    .prefault({}),
  /** Notifications waiting to be delivered; past this the oldest is dropped (and logged), so a webhook down for days costs bounded memory. */
  queue: z.number().int().min(1).max(1_000_000).default(10_000),
});
export type WebhookConfig = z.output<typeof webhookSchema>;

export const alertsSchema = z
  .strictObject({
    /** Rules are also evaluated on every presence and health message, for that agent. */
    evaluate_every: durationMs.refine((v) => v > 0, 'must be more than 0').default(15_000),
    /** Resolved alerts kept (store and GET /api/alerts), newest first. */
    resolved_kept: z.number().int().min(0).max(100_000).default(200),
    webhook: webhookSchema.optional(),
    rules: z
      .array(alertRule)
      .default([])
      .superRefine((rules, ctx) => {
        const seen = new Set<string>();
        rules.forEach((r, i) => {
          if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `rule name "${r.name}" is used twice` });
          seen.add(r.name);
        });
      }),
  })
  .prefault({});
export type AlertsConfig = z.output<typeof alertsSchema>;
