import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';

/**
 * Scanner configs (scanner-tcp, scanner-serial, scanner-ws). No driver imports here: `validate`
 * loads schemas only. What every scanner kind shares comes first.
 */

/** GS1 reading and repeat marking, the same for every scanner kind. */
export const scanFields = {
  gs1: z
    .strictObject({
      /** One character the scanner sends in place of the group separator (keyboard-wedge setups lose GS). */
      gs_replacement: z.string().length(1).optional(),
      /** Read codes without an AIM symbology identifier as GS1 element strings. */
      assume: z.boolean().default(false),
    })
    .default({ assume: false }),
  /** The same code from the same device again within this window is marked `repeat: true` (still recorded). */
  repeat_window: durationMs.default(2_000),
};

/** Hex bytes, optionally separated by spaces or colons: `0d0a`, `1e 04`, `1E:04`. */
const hexBytes = z
  .string()
  .transform((s) => s.replace(/[\s:]/g, '').toLowerCase())
  .pipe(z.string().regex(/^(?:[0-9a-f]{2}){1,8}$/, 'expected 1 to 8 bytes as hex, e.g. "0d0a" or "1e 04"'));

/**
 * How a byte stream (TCP, serial) is cut into scans. `cr` and `lf` tolerate the other half of a CRLF
 * (a scanner configured for CRLF does not yield empty scans or a stray byte at a scan's start or end);
 * `crlf` wants both; `etx` is ASCII 3; `{hex: '…'}` any byte sequence. `fixed_length` cuts every N
 * bytes instead. `stx`: a scan starts after an STX (ASCII 2), which is not part of it.
 */
export const framingSchema = z
  .strictObject({
    terminator: z.union([z.enum(['cr', 'lf', 'crlf', 'etx']), z.strictObject({ hex: hexBytes })]).default('cr'),
    fixed_length: z.number().int().min(1).max(65_536).optional(),
    stx: z.boolean().default(false),
    /** A longer frame is discarded (counted and logged): a sender that never ends a line cannot fill memory. */
    max_length: z.number().int().min(1).max(1_048_576).default(4_096),
  })
  .refine((f) => f.fixed_length === undefined || f.fixed_length <= f.max_length, { message: 'fixed_length must not exceed max_length', path: ['fixed_length'] });

export type FramingConfig = z.output<typeof framingSchema>;

/**
 * Several devices on one connection or port (a multiplexer, a gateway) put their id in front of each
 * scan: `DEV01|0123…`. A scan without a usable prefix keeps the connection's device id.
 */
export const devicePrefixSchema = z.strictObject({
  separator: z.string().min(1).max(8).default('|'),
});

export type DevicePrefixConfig = z.output<typeof devicePrefixSchema>;

/** What every byte-stream scanner kind (TCP, serial) shares: framing and an optional device prefix. */
export const streamFields = {
  framing: framingSchema.prefault({}),
  device_prefix: devicePrefixSchema.optional(),
};

/** A device id as it appears in record ids (`<source>/<device>/…`): no `/`; `:` for IPv6 addresses. */
export const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const deviceId = z.string().regex(DEVICE_ID, 'a device id is 1 to 64 letters, digits, "_", ".", ":" or "-"');
