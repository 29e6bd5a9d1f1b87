import type { z } from 'zod';
import { inventoryMovementV1 } from './inventory-movement.js';
import { orderV1 } from './order.js';
import { shipmentV1 } from './shipment.js';

/**
 * The canonical event types a mapping may produce, by name and version. A version's shape never
 * changes once released: a change is a new version beside it, and a mapping names the version it
 * writes, so a relay upgrade never changes what a receiver gets. A new type is one file and one line.
 */
export const CANONICAL: Record<string, Record<number, z.ZodType>> = {
  order: { 1: orderV1 },
  inventory_movement: { 1: inventoryMovementV1 },
  shipment: { 1: shipmentV1 },
};

export function canonicalSchema(type: string, version: number): z.ZodType | undefined {
  return Object.hasOwn(CANONICAL, type) ? CANONICAL[type]![version] : undefined;
}

/** For config errors: `order (1), inventory_movement (1), shipment (1)`. */
export function describeCatalog(): string {
  return Object.entries(CANONICAL)
    .map(([type, versions]) => `${type} (${Object.keys(versions).join(', ')})`)
    .join(', ');
}
