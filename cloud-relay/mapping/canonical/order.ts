import { z } from 'zod';
import { address, code, currency, decimal, instant, party, quantity, uom } from './fields.js';

/**
 * `order` v1: a customer (sales), purchase, transfer or return order as a warehouse sees it. One
 * captured record gives one event: an export with one row per order line gives one order event per
 * line (with `lines[0]`); grouping rows is the receiver's job, keyed by `order_number`.
 */
export const orderLineV1 = z.strictObject({
  line_number: z.number().int().positive().optional(),
  sku: code,
  description: z.string().optional(),
  quantity: quantity.positive('must be more than 0'),
  uom,
  unit_price: decimal.optional(),
  lot: code.optional(),
});

export const orderV1 = z.strictObject({
  order_number: code,
  order_type: z.enum(['sales', 'purchase', 'transfer', 'return']).optional(),
  status: z.enum(['open', 'released', 'picking', 'shipped', 'closed', 'cancelled']).optional(),
  customer: party,
  ship_to: address.optional(),
  /** The site (distribution centre) the order is fulfilled from. */
  site: code.optional(),
  /** The warehouse within the site (ERP code). */
  warehouse: code.optional(),
  currency: currency.optional(),
  ordered_at: instant.optional(),
  requested_delivery_at: instant.optional(),
  lines: z.array(orderLineV1).min(1, 'an order has at least one line'),
});

export type OrderV1 = z.infer<typeof orderV1>;
