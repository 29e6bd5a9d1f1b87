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

/** A device id goes into record ids and checkpoint keys: letters, digits and `._-` only. */
const scannerDeviceId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, `.`, `_` and `-`, at most 64');

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
          id: scannerDeviceId,
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
