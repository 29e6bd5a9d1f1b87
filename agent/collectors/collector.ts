import type { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import type { Outbox } from '../outbox/outbox.js';

/** What a running collector gets from the agent. */
export interface CollectorContext {
  outbox: Outbox;
  logger: Logger;
  /** Resolves a path from the config as relative to the config file's folder. */
  resolvePath(p: string): string;
}

/** A running collector: captures changes and appends them to the outbox with its checkpoint. */
export interface Collector {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Counters for `status` and the fleet view (errors, files, lines...). */
  stats(): Record<string, number | string | boolean>;
}

/**
 * A collector type: its config schema (with `type` as a literal discriminator) and a factory.
 * Each type lives in its own module and is listed once, in registry.ts.
 */
export interface CollectorDefinition<S extends z.ZodType<{ type: string; name: string }> = z.ZodType<{ type: string; name: string }>> {
  readonly type: string;
  readonly schema: S;
  create(config: z.output<S>, ctx: CollectorContext): Collector;
}

/** Identity helper that keeps the schema's type for `create`. */
export function defineCollector<S extends z.ZodType<{ type: string; name: string }>>(def: CollectorDefinition<S>): CollectorDefinition<S> {
  return def;
}
