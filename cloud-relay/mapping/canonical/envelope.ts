import { z } from 'zod';
import { topicLevel } from '../../../common/wire-v1.js';
import { instant } from './fields.js';

/**
 * What a receiver gets for a mapped event: the canonical data (`data`, of `type` at `version`)
 * and where it came from. `idempotency_key` is `<site>/<agent>/<stream>/<record id>` (record ids
 * are unique per stream only; sinks/event-key.ts), the webhook sink's Idempotency-Key for a batch of
 * one; `correlation_id` is the record's own, carried from the
 * collector unchanged (a file-drop record's is `file:<content hash>`, one per file), or the record's
 * id when the collector gave none, so every event has one. The envelope is the same for every type.
 */
export const canonicalEnvelope = z.strictObject({
  type: z.string().min(1),
  version: z.number().int().positive(),
  idempotency_key: z.string().min(1),
  correlation_id: z.string().min(1),
  origin: z.strictObject({
    site: topicLevel,
    agent: topicLevel,
    stream: topicLevel,
    seq: z.number().int().positive(),
    /** The collector that captured it, e.g. `file-drop:orders`. */
    source: z.string().min(1),
    captured_at: instant,
    /** When the source says the record was written (a file's mtime, a row's timestamp), if it says. */
    source_at: instant.optional(),
  }),
  data: z.unknown(),
});

export type CanonicalEnvelope = z.infer<typeof canonicalEnvelope>;
