import type { z } from 'zod';
import type { Logger } from '../../common/logger.js';
import type { ExceptionCount } from '../../common/wire-v2.js';
import type { Writer } from './writer.js';

/**
 * What a collector stands on. A collector captures changes from one source and hands them to
 * its capture writer; it never sees the outbox, the forwarder or another collector. The host
 * (supervisor) starts it, restarts it with back-off when it fails, and reports its state.
 */
export interface CollectorContext {
  /** The collector's name from the config. */
  readonly name: string;
  /** Validates, stamps and appends records with their checkpoint; waits for outbox space itself. */
  readonly writer: Writer;
  readonly logger: Logger;
  /** Aborted when this instance is stopped (agent stop, or a restart after a failure). */
  readonly signal: AbortSignal;
  /** Resolves a path from the config as relative to the config file's folder. */
  resolvePath(p: string): string;
  /**
   * The collector's loop died (an error it cannot handle itself): the supervisor stops this
   * instance and starts a new one with back-off. Errors a collector handles (a locked file, one
   * bad row) are not failures: it counts them in its stats instead.
   */
  fail(err: unknown): void;
}

/** A running collector instance. */
export interface Collector {
  /** Resolves once capturing; a rejection is a failed start (retried with back-off). */
  start(): Promise<void>;
  /** Stops capturing; must resolve even after a failure. */
  stop(): Promise<void>;
  /** Counters and open exceptions (e.g. files in error/) for status and health. */
  stats?(): CollectorStats;
}

export interface CollectorStats {
  counters?: Record<string, number | string | boolean>;
  exceptions?: ExceptionCount[];
}

/** What a collector module exports (loaded lazily: see collectors/registry.ts). */
export interface CollectorModule<C> {
  create(config: C, ctx: CollectorContext): Collector;
}

/** Every collector config has these; `stream` defaults to the name. */
export interface BaseCollectorConfig {
  type: string;
  name: string;
  stream?: string | undefined;
}

/**
 * A collector kind: its config schema (with `type` as the discriminator) and a lazy loader for
 * its implementation. The schema module imports no driver, so `validate` and `status` never load
 * one, and a driver that fails to load breaks only its own collectors.
 */
export interface CollectorKind<S extends z.ZodType<BaseCollectorConfig> = z.ZodType<BaseCollectorConfig>> {
  readonly type: string;
  readonly schema: S;
  load(): Promise<CollectorModule<z.output<S>>>;
  /**
   * Optional: whether two collectors of this kind would capture the same input (two file-drop
   * collectors taking the same file race for it). The config refuses such a pair. Pure, like the
   * schema: `validate` calls it without loading a driver.
   */
  overlap?(a: z.output<S>, b: z.output<S>): CollectorOverlap | undefined;
}

/** What two collectors of one kind both capture. */
export interface CollectorOverlap {
  /** The config key to point at in the second collector, e.g. `path`. */
  key: string;
  /** Completes "collectors "a" and "b" overlap: …", e.g. `both watch ./in and would both take a file named "orders.csv"`. */
  description: string;
}

/** Identity helper that keeps the schema's type for the loader. */
export function defineKind<S extends z.ZodType<BaseCollectorConfig>>(kind: CollectorKind<S>): CollectorKind<S> {
  return kind;
}

export function streamOf(cfg: BaseCollectorConfig): string {
  return cfg.stream ?? cfg.name;
}

export function sourceOf(cfg: BaseCollectorConfig): string {
  return `${cfg.type}:${cfg.name}`;
}
