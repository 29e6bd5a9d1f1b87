import { isIP } from 'node:net';
import { z } from 'zod';
import { byteSize, durationMs } from '../../../common/duration.js';
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

/** Reconnecting (a TCP device, a serial port that went away): the wait doubles from `initial` up to `max`, with jitter. */
export const reconnectSchema = z
  .strictObject({
    initial: durationMs.default(1_000),
    max: durationMs.default(30_000),
  })
  .refine((r) => r.initial > 0 && r.initial <= r.max, { message: 'reconnect.initial must be above 0 and at most reconnect.max' });

export type ReconnectConfig = z.output<typeof reconnectSchema>;

const tcpPort = z.number().int().min(1).max(65_535);
const ipAddress = z.string().refine((s) => isIP(s) !== 0, 'expected an IP address, e.g. 10.1.2.3');

/**
 * A device of scanner-tcp. `listen`: a connection is this device when it comes from `address` or
 * arrives on `local_port`. `connect`: the agent connects to `host`:`port` and keeps reconnecting.
 */
const tcpDevice = z.strictObject({
  id: deviceId,
  address: ipAddress.optional(),
  local_port: tcpPort.optional(),
  host: z.string().min(1).optional(),
  port: tcpPort.optional(),
});

/**
 * scanner-tcp: fixed-mount scanners and serial-to-Ethernet gateways that stream lines over TCP.
 * A scan's device is its prefix (`device_prefix`), else the connection's: the `devices` entry it
 * matches, else its remote address.
 */
export const scannerTcpSchema = z
  .strictObject({
    type: z.literal('scanner-tcp'),
    name: topicLevel,
    stream: topicLevel.optional(),
    /** `listen`: scanners connect to the agent; `connect`: the agent connects to each device (a gateway's server port). */
    mode: z.enum(['listen', 'connect']).default('listen'),
    /** listen: the address to listen on (scanners are on the network: all interfaces by default). */
    host: z.string().min(1).default('0.0.0.0'),
    /** listen: the port, or several (a device per port: `devices: [{id, local_port}]`). */
    port: z.union([tcpPort, z.array(tcpPort).min(1)]).optional(),
    devices: z.array(tcpDevice).default([]),
    /** listen: connections past this are refused (counted). */
    max_connections: z.number().int().min(1).max(10_000).default(256),
    /**
     * A connection silent this long is closed (`0`: never): a half-open one (the device gone without
     * a FIN) is found this way, or by TCP keep-alive. listen: the device reconnects when it next
     * scans; connect: the agent reconnects at once.
     */
    idle_timeout: durationMs.default(600_000),
    /** TCP keep-alive probes start after this much silence (`0`: off). */
    keepalive: durationMs.default(60_000),
    /** connect: a connection attempt gives up after this. */
    connect_timeout: durationMs.default(10_000),
    reconnect: reconnectSchema.prefault({}),
    ...streamFields,
    ...scanFields,
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.devices.forEach((d, i) => {
      const path = ['devices', i];
      if (seen.has(d.id)) ctx.addIssue({ code: 'custom', path: [...path, 'id'], message: `duplicate device id "${d.id}"` });
      seen.add(d.id);
      if (c.mode === 'listen') {
        if ((d.address === undefined) === (d.local_port === undefined)) ctx.addIssue({ code: 'custom', path, message: 'in listen mode a device has either `address` or `local_port`' });
        if (d.host !== undefined || d.port !== undefined) ctx.addIssue({ code: 'custom', path, message: '`host` and `port` are for connect mode; use `address` or `local_port`' });
        if (d.local_port !== undefined && !listenPorts(c.port).includes(d.local_port))
          ctx.addIssue({ code: 'custom', path: [...path, 'local_port'], message: `port ${d.local_port} is not one the collector listens on` });
      } else {
        if (d.host === undefined || d.port === undefined) ctx.addIssue({ code: 'custom', path, message: 'in connect mode a device has `host` and `port`' });
        if (d.address !== undefined || d.local_port !== undefined) ctx.addIssue({ code: 'custom', path, message: '`address` and `local_port` are for listen mode' });
      }
    });
    if (c.mode === 'listen' && c.port === undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'listen mode needs `port`' });
    if (c.mode === 'connect' && c.devices.length === 0) ctx.addIssue({ code: 'custom', path: ['devices'], message: 'connect mode needs at least one device `{id, host, port}`' });
    if (c.mode === 'connect' && c.port !== undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'connect mode takes each device\'s `port`, not a listen port' });
  });

export type ScannerTcpConfig = z.output<typeof scannerTcpSchema>;

/** The ports a listen-mode collector listens on. */
export function listenPorts(port: number | number[] | undefined): number[] {
  return port === undefined ? [] : Array.isArray(port) ? port : [port];
}

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
    /** Opening the port again after it went away or could not be opened. */
    reconnect: reconnectSchema.prefault({}),
    ...streamFields,
    ...scanFields,
  });

export type ScannerSerialConfig = z.output<typeof scannerSerialSchema>;

/**
 * scanner-ws: a WebSocket endpoint for handheld apps (see docs/scanner-ws.md). Plain `ws://` only:
 * TLS comes with #12 (until then, put a TLS-terminating proxy in front when the Wi-Fi is not trusted).
 */
export const scannerWsSchema = z
  .strictObject({
    type: z.literal('scanner-ws'),
    name: topicLevel,
    stream: topicLevel.optional(),
    /** Handhelds reach the agent over the site network; every connection needs a device token. */
    host: z.string().min(1).default('0.0.0.0'),
    /** 0: the OS picks one (tests). */
    port: z.number().int().min(0).max(65_535),
    /** URL path of the endpoint; other paths are answered 404. */
    path: z.string().regex(/^\/[^?#\s]*$/, 'a URL path starting with `/`').default('/scans'),
    /**
     * One entry per handheld. The token authenticates the device and decides its id: write it as
     * `${VAR}` (the environment) so it is never in the config file or a log.
     */
    devices: z
      .array(
        z.strictObject({
          id: deviceId,
          token: z.string().min(16, 'at least 16 characters (use a random token)').max(512),
        }),
      )
      .min(1),
    /** Largest WebSocket message; a larger one closes the connection (code 1009). */
    max_message_bytes: byteSize.default(64 * 1024),
    /** A client that has not answered the previous ping by the next one is dropped. */
    ping_interval: durationMs.pipe(z.number().min(100, 'at least 100ms')).default(30_000),
    /** Told to clients whose scan was refused because the outbox is full (`retry_after_ms`). */
    retry_after: durationMs.default(5_000),
    ...scanFields,
  })
  .superRefine((cfg, ctx) => {
    const ids = new Set<string>();
    const tokens = new Set<string>();
    cfg.devices.forEach((d, i) => {
      if (ids.has(d.id)) ctx.addIssue({ code: 'custom', path: ['devices', i, 'id'], message: `device "${d.id}" is listed twice` });
      // Not quoted: the token is a secret.
      if (tokens.has(d.token)) ctx.addIssue({ code: 'custom', path: ['devices', i, 'token'], message: 'the same token is given to two devices; each device needs its own' });
      ids.add(d.id);
      tokens.add(d.token);
    });
  });

export type ScannerWsConfig = z.output<typeof scannerWsSchema>;
