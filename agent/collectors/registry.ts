import { z } from 'zod';
import { defineKind, type CollectorKind } from '../host/collector.js';
import { fileDropOverlap } from './file-drop/overlap.js';
import { fileDropSchema } from './file-drop/schema.js';
import { scannerSerialSchema, scannerTcpSchema, scannerWsSchema } from './scanner/schema.js';
import { scheduleSchema } from './schedule/schema.js';
import { sqlSchema } from './sql/schema.js';
import { syntheticSchema } from './synthetic/schema.js';

/**
 * The one place collector kinds are registered: a schema and a lazy loader each. Adding a kind is
 * one folder and one line here. Loading is lazy so that `validate` and `status` never load a
 * driver, and a driver that fails to load puts only its own collectors in `error`.
 */
export const collectorKinds = [
  defineKind({ type: 'file-drop', schema: fileDropSchema, load: () => import('./file-drop/file-drop.js'), overlap: fileDropOverlap }),
  defineKind({ type: 'scanner-serial', schema: scannerSerialSchema, load: () => import('./scanner/serial.js') }),
  defineKind({ type: 'scanner-tcp', schema: scannerTcpSchema, load: () => import('./scanner/tcp.js') }),
  defineKind({ type: 'schedule', schema: scheduleSchema, load: () => import('./schedule/schedule.js') }),
  defineKind({ type: 'scanner-ws', schema: scannerWsSchema, load: () => import('./scanner/websocket.js') }),
  defineKind({ type: 'sql', schema: sqlSchema, load: () => import('./sql/sql.js') }),
  defineKind({ type: 'synthetic', schema: syntheticSchema, load: () => import('./synthetic/synthetic.js') }),
] as const;

export type CollectorConfig = z.output<(typeof collectorKinds)[number]['schema']>;

/** Builds the config schema of a collector list from a set of kinds (tests pass their own). */
export function collectorConfigSchemaOf(kinds: readonly CollectorKind[]) {
  return z.discriminatedUnion('type', kinds.map((k) => k.schema) as unknown as [z.ZodObject<{ type: z.ZodLiteral<string>; name: z.ZodString }>]);
}

export const collectorConfigSchema = collectorConfigSchemaOf(collectorKinds as unknown as CollectorKind[]) as unknown as z.ZodType<CollectorConfig>;

export function findKind(kinds: readonly CollectorKind[], type: string): CollectorKind | undefined {
  return kinds.find((k) => k.type === type);
}
