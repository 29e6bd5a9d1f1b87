import { z } from 'zod';
import { durationMs } from '../../common/duration.js';

const positive = durationMs.refine((v) => v > 0, 'must be more than 0');

/**
 * What every sink's config has besides its own fields: its name and how the delivery loop
 * (delivery.ts) drives it. Defaults live here only.
 */
export const deliverySettings = {
  /** Names the sink in the cursors, the dead-letter table, logs and metrics: renaming a sink starts it over. */
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, "_", "." or "-" (at most 64)'),
  /** Events of one stream per request (webhook) or per run of publishes (mqtt). */
  batch_size: z.number().int().min(1).max(10_000).default(100),
  /** Failed deliveries of a batch before its events go to the dead-letter table and the stream moves on. */
  max_attempts: z.number().int().min(1).max(1_000).default(10),
  retry: z
    .strictObject({
      /** The first retry's delay, doubled after each failure up to `max`; each delay is jittered (half fixed, half random). */
      initial: positive.default(1_000),
      max: positive.default(300_000),
    })
    .prefault({}),
  /** Streams delivered at once by this sink (a stream waiting out its back-off does not hold a slot). */
  concurrency: z.number().int().min(1).max(1_000).default(16),
  /** How long an instance holds a (sink, stream) it delivers; renewed on every cursor move. Another instance takes it over after this. More than the sink's `timeout` (sinks/config.ts checks). */
  lease: positive.default(30_000),
  /** How often the sink looks for streams with events to deliver (new events also wake it). */
  poll: positive.default(1_000),
};

export const deliverySettingsSchema = z.strictObject(deliverySettings);
export type DeliverySettings = z.output<typeof deliverySettingsSchema>;
