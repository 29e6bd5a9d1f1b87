import { z } from 'zod';
import { address, code, decimal, instant, party, quantity, uom } from './fields.js';

/** `shipment` v1: goods that left a warehouse for a customer, with their carrier and parcels. */
export const shipmentLineV1 = z.strictObject({
  sku: code,
  quantity: quantity.positive('must be more than 0'),
  uom,
  order_number: code.optional(),
  order_line: z.number().int().positive().optional(),
  lot: code.optional(),
});

export const packageV1 = z.strictObject({
  tracking_number: code.optional(),
  weight: decimal.optional(),
  weight_uom: z.enum(['KGM', 'LBR', 'GRM']).optional(),
});

export const shipmentV1 = z.strictObject({
  shipment_number: code,
  order_number: code.optional(),
  status: z.enum(['packed', 'shipped', 'delivered', 'returned']).optional(),
  site: code.optional(),
  warehouse: code,
  customer: party.optional(),
  ship_to: address.optional(),
  carrier: party.optional(),
  service: z.string().min(1).optional(),
  tracking_number: code.optional(),
  shipped_at: instant,
  delivered_at: instant.optional(),
  packages: z.array(packageV1).optional(),
  lines: z.array(shipmentLineV1).min(1, 'a shipment has at least one line'),
});

export type ShipmentV1 = z.infer<typeof shipmentV1>;
