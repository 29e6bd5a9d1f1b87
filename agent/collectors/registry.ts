import { z } from 'zod';
import { fileDrop } from './file-drop.js';
import { synthetic } from './synthetic.js';
import type { CollectorDefinition } from './collector.js';

/** The one place collector types are registered. Adding a collector: one module, one line here. */
export const collectorDefinitions = [fileDrop, synthetic] as const;

export type CollectorConfig = z.output<(typeof collectorDefinitions)[number]['schema']>;

export const collectorConfigSchema = z.discriminatedUnion(
  'type',
  collectorDefinitions.map((d) => d.schema) as unknown as [(typeof collectorDefinitions)[number]['schema']],
);

export function findCollector(type: string): CollectorDefinition | undefined {
  return (collectorDefinitions as readonly CollectorDefinition[]).find((d) => d.type === type);
}
