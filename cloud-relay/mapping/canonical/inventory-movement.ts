import { z } from 'zod';
import { code, instant, quantity, uom } from './fields.js';

/**
 * `inventory_movement` v1: stock that moved or was counted at a warehouse. `quantity` is signed as
 * the stock changed at `warehouse` (an issue is negative); a `count` gives the quantity counted.
 */
export const inventoryMovementV1 = z
  .strictObject({
    movement_id: code.optional(),
    movement_type: z.enum(['receipt', 'issue', 'transfer', 'adjustment', 'count']),
    sku: code,
    quantity,
    uom,
    site: code.optional(),
    warehouse: code,
    location: code.optional(),
    /** transfer: where the stock went. */
    to_warehouse: code.optional(),
    to_location: code.optional(),
    lot: code.optional(),
    serial_number: code.optional(),
    /** The order, receipt or shipment the movement belongs to. */
    reference: code.optional(),
    reason: z.string().min(1).optional(),
    occurred_at: instant,
  })
  .refine((m) => m.movement_type !== 'transfer' || m.to_warehouse !== undefined || m.to_location !== undefined, {
    message: 'a transfer names where the stock went (to_warehouse or to_location)',
    path: ['to_warehouse'],
  });

export type InventoryMovementV1 = z.infer<typeof inventoryMovementV1>;
