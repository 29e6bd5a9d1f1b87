import { z } from 'zod';
import { durationMs } from '../../common/duration.js';
import { sinkConfigSchema } from './registry.js';

/** `sinks:` in the relay YAML: each configured sink, by unique name (none by default). */
export const sinksSchema = z
  .array(sinkConfigSchema)
  .superRefine((sinks, ctx) => {
    const seen = new Set<string>();
    sinks.forEach((s, i) => {
      if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `sink name "${s.name}" is used twice: each sink keeps its own cursors under its name` });
      seen.add(s.name);
      // The lease is renewed when the cursor moves, after a delivery: a delivery still running when
      // its lease ends lets another relay instance deliver the same stream at the same time.
      if (s.timeout >= s.lease) ctx.addIssue({ code: 'custom', path: [i, 'timeout'], message: `must be shorter than lease (${s.lease} ms): a delivery still running when its lease ends lets another relay instance deliver the stream at the same time` });
    });
  })
  .default([]);

/**
 * `retention:` how long the relay keeps stored events. Without `max_age` nothing is pruned. An
 * event older than `max_age` goes once every configured sink has passed it and no dead-letter row
 * points at it (the pull API's readers are not tracked: they must read within `max_age`).
 */
export const retentionSchema = z
  .strictObject({
    max_age: durationMs.refine((v) => v > 0, 'must be more than 0').optional(),
    /** How often pruning runs (each run deletes up to `batch` segments at a time until nothing is due). */
    every: durationMs.refine((v) => v > 0, 'must be more than 0').default(600_000),
    batch: z.number().int().min(1).max(100_000).default(1_000),
  })
  .prefault({});
export type RetentionConfig = z.output<typeof retentionSchema>;
