import { z } from 'zod';

/**
 * Field shapes the canonical events share. Conventions (docs: README "Routing and canonical
 * events"): instants are ISO 8601 UTC (`…Z`); amounts are decimals as strings (no binary float);
 * quantities are JSON numbers with their unit of measure beside them; codes are the ERP's own.
 */

/** An instant, ISO 8601 in UTC (`2026-03-01T08:30:00.000Z`): what the mapping's `date` step writes. */
export const instant = z.iso.datetime({ message: 'must be an ISO 8601 UTC date-time (…Z): use a date step' });

/** A code or number as the ERP writes it (order number, SKU, warehouse code). */
export const code = z.string().trim().min(1, 'must not be empty').max(100);

/** An exact decimal as text (`12.50`, `-3`): what the mapping's `cast … to: decimal` writes. */
export const decimal = z.string().regex(/^-?\d+(\.\d+)?$/, 'must be a decimal as text (e.g. "12.50"): cast to decimal');

/** Unit of measure: UN/ECE Recommendation 20 codes (EA, KGM, MTR…) or the ERP's own (PCS, BOX). */
export const uom = z.string().trim().min(1, 'must not be empty').max(10);

/** A quantity in `uom`; positive where the event says so. */
export const quantity = z.number({ message: 'must be a number: cast to number or integer' }).finite();

/** ISO 3166-1 alpha-2 country code. */
export const country = z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 code (FR, DE, US)');

/** ISO 4217 currency code. */
export const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code (EUR, USD)');

export const address = z.strictObject({
  name: z.string().min(1).optional(),
  lines: z.array(z.string()).max(4).optional(),
  city: z.string().min(1).optional(),
  postal_code: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
  country: country.optional(),
});

/** A customer, carrier or supplier: the ERP's id, its name, or both. */
export const party = z
  .strictObject({
    id: code.optional(),
    name: z.string().trim().min(1).optional(),
  })
  .refine((p) => p.id !== undefined || p.name !== undefined, 'give the id or the name (or both)');
