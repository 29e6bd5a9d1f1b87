import { z } from 'zod';
import { topicLevel } from '../../../common/wire-v1.js';

/** synthetic config: generates warehouse-like records at a set rate (load tests, trying a deployment). */
export const syntheticSchema = z.strictObject({
  type: z.literal('synthetic'),
  name: topicLevel,
  stream: topicLevel.optional(),
  /** Events per second; 0 means as fast as the outbox takes them. */
  rate: z.number().nonnegative().default(100),
  /** Stop after this many events in all (across restarts); 0 means never stop. */
  total: z.number().int().nonnegative().default(0),
  /** Records per outbox transaction. */
  batch: z.number().int().min(1).max(100_000).default(100),
});

export type SyntheticConfig = z.output<typeof syntheticSchema>;
