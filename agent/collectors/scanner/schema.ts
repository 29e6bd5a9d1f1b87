import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';
import { topicLevel } from '../../../common/wire-v1.js';

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

/**
 * scanner-serial: a scanner on a serial port (RS-232 or a USB adapter). The line settings must
 * match the scanner's; the defaults are the common 9600 8N1 without flow control.
 */
export const scannerSerialSchema = z
  .strictObject({
    type: z.literal('scanner-serial'),
    name: topicLevel,
    stream: topicLevel.optional(),
    /** `/dev/ttyUSB0`, `/dev/serial/by-id/…` (stable across replugging), `COM3`. */
    path: z.string().min(1),
    baud_rate: z.number().int().positive().default(9_600),
    data_bits: z.literal([5, 6, 7, 8]).default(8),
    stop_bits: z.literal([1, 1.5, 2]).default(1),
    parity: z.enum(['none', 'even', 'odd', 'mark', 'space']).default('none'),
    /** Hardware flow control: while reading is paused (outbox full) the scanner is told to hold its data. */
    rts_cts: z.boolean().default(false),
    /** The scans' device id (default: the collector's name); a `device_prefix` in a scan overrides it. */
    device: deviceId.optional(),
    /** First wait before opening the port again after it went away or could not be opened; doubles per failure. */
    reopen_delay: durationMs.default(1_000),
    /** The longest wait between attempts to open the port. */
    reopen_max_delay: durationMs.default(30_000),
    ...streamFields,
    ...scanFields,
  })
  .refine((c) => c.reopen_max_delay >= c.reopen_delay, { message: 'reopen_max_delay must not be less than reopen_delay', path: ['reopen_max_delay'] });

export type ScannerSerialConfig = z.output<typeof scannerSerialSchema>;
