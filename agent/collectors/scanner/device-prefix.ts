import { DEVICE_ID, type DevicePrefixConfig } from './schema.js';

/**
 * Reads the device id a multiplexer or gateway puts in front of a scan (`DEV01|0123…`). A frame
 * without the separator, or whose prefix is not a usable device id (noise, a barcode that happens
 * to hold the separator far in), is not split: the scan keeps all its bytes and the connection's id.
 */
export class DevicePrefix {
  private readonly sep: Buffer;

  constructor(cfg: DevicePrefixConfig) {
    this.sep = Buffer.from(cfg.separator, 'utf8');
  }

  split(frame: Buffer): { device: string; raw: Buffer } | undefined {
    // A device id is at most 64 bytes: look no further than that for the separator.
    const at = frame.subarray(0, 64 + this.sep.length).indexOf(this.sep);
    // `DEV01|` alone is not a scan of DEV01 with no code: it stays whole, as read.
    if (at <= 0 || at + this.sep.length >= frame.length) return undefined;
    const device = frame.toString('latin1', 0, at);
    if (!DEVICE_ID.test(device)) return undefined;
    return { device, raw: frame.subarray(at + this.sep.length) };
  }
}
