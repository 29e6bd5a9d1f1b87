import { randomUUID } from 'node:crypto';
import { EXCEPTION_KINDS, type ExceptionCount } from '../../../common/wire-v2.js';
import type { CaptureInput, CheckpointInput, Writer } from '../../host/writer.js';
import { parseBarcode, type Gs1Options } from './gs1.js';

/** One scan as a scanner collector received it, before it is numbered. */
export interface ScanInput {
  /** Device id (from the config, the connection or the scan's prefix). */
  device: string;
  /** The scan's bytes, without the frame terminator. */
  raw: Buffer;
  /** Agent clock when the scan was received. */
  receivedAt: number;
  /** The device's own time of the scan, when it sent one. */
  deviceTs?: number | undefined;
  location?: string | undefined;
  /** The client's own id for the scan (scanner-ws): a retried message keeps its record id. */
  messageId?: string | undefined;
}

export interface ScanBookOptions {
  gs1: Gs1Options;
  /** Reads of the same code from the same device within this many ms of the last are marked `repeat`. */
  repeatWindowMs: number;
}

/** A batch of scans as records, with the checkpoints that must be stored in the same append. */
export interface StampedBatch {
  records: CaptureInput[];
  checkpoints: CheckpointInput[];
  /** The per-device sequence each scan got, in input order. */
  seqs: number[];
  /** Call after the append committed: the book keeps the new sequences (a refused append gives them back). */
  commit(): void;
}

/** Lineage of this outbox's scan ids, kept with the sequences: a wiped outbox starts new ids. */
const RUN_KEY = 'run';
const DEVICE_KEY = 'device:';
/** Invalid scans stay an open exception for a day (they are records; this is the operator's nudge). */
const INVALID_WINDOW_MS = 86_400_000;
const INVALID_KEPT = 10_000;

/**
 * What every scanner collector shares once a scan is read: a per-device sequence kept in the
 * collector's checkpoints (stored with the scans, so a restart continues it), GS1 parsing, repeat
 * marking and the counts `status` shows. A scan is never dropped here: an unreadable one is a
 * record with `valid: false` and its reasons.
 */
export class ScanBook {
  private readonly run: string;
  private readonly seq = new Map<string, number>();
  private readonly lastRead = new Map<string, Map<string, number>>();
  private readonly invalidAt: number[] = [];
  private readonly counters = { scans: 0, invalid: 0, repeats: 0 };

  constructor(
    private readonly writer: Pick<Writer, 'source' | 'getCheckpoint' | 'listCheckpoints'>,
    private readonly opts: ScanBookOptions,
  ) {
    this.run = writer.getCheckpoint<string>(RUN_KEY) ?? randomUUID().slice(0, 8);
    for (const { key, value } of writer.listCheckpoints<number>()) if (key.startsWith(DEVICE_KEY)) this.seq.set(key.slice(DEVICE_KEY.length), value);
  }

  /** Numbers and describes a batch; nothing changes until `commit()`. */
  stamp(inputs: readonly ScanInput[]): StampedBatch {
    const next = new Map<string, number>();
    const records: CaptureInput[] = [];
    const seqs: number[] = [];
    const reads: { device: string; code: string; at: number; repeat: boolean; valid: boolean }[] = [];
    // This batch's last read of each code per device: a lookup, not a scan back over the batch
    // (a group commit holds a thousand scans).
    const inBatch = new Map<string, Map<string, number>>();
    for (const s of inputs) {
      const seq = (next.get(s.device) ?? this.seq.get(s.device) ?? 0) + 1;
      next.set(s.device, seq);
      seqs.push(seq);
      const text = decode(s.raw);
      const parsed = parseBarcode(text, this.opts.gs1);
      const repeat = this.isRepeat(s.device, parsed.text, s.receivedAt, inBatch);
      reads.push({ device: s.device, code: parsed.text, at: s.receivedAt, repeat, valid: parsed.valid });
      records.push({
        id: s.messageId !== undefined ? `${this.writer.source}/${s.device}/m/${s.messageId}` : `${this.writer.source}/${s.device}/${this.run}/${seq}`,
        ts: s.receivedAt,
        source_ts: s.deviceTs ?? s.receivedAt,
        correlation_id: s.device,
        data: {
          device: s.device,
          seq,
          barcode: parsed.text,
          raw: s.raw.toString('base64'),
          symbology: parsed.symbology,
          gs1: parsed.gs1,
          ...(parsed.gs1 ? { elements: parsed.elements } : {}),
          valid: parsed.valid,
          ...(parsed.reasons.length > 0 ? { reasons: parsed.reasons } : {}),
          repeat,
          received_at: s.receivedAt,
          ...(s.deviceTs !== undefined ? { device_ts: s.deviceTs } : {}),
          ...(s.location !== undefined ? { location: s.location } : {}),
        },
      });
    }
    const checkpoints: CheckpointInput[] = [...next].map(([device, seq]) => ({ key: DEVICE_KEY + device, value: seq }));
    if (this.writer.getCheckpoint(RUN_KEY) === undefined) checkpoints.push({ key: RUN_KEY, value: this.run });
    return { records, checkpoints, seqs, commit: () => this.commit(next, reads) };
  }

  stats(): { scans: number; invalid: number; repeats: number; devices: number } {
    return { ...this.counters, devices: this.seq.size };
  }

  /** Invalid scans of the last day, as an open exception for health and status. */
  exceptions(now = Date.now()): ExceptionCount[] {
    while (this.invalidAt.length > 0 && now - this.invalidAt[0]! > INVALID_WINDOW_MS) this.invalidAt.shift();
    return [{ kind: EXCEPTION_KINDS.invalidScan, count: this.invalidAt.length, oldest_at: this.invalidAt[0] ?? null }];
  }

  private commit(next: Map<string, number>, reads: readonly { device: string; code: string; at: number; repeat: boolean; valid: boolean }[]): void {
    for (const [device, seq] of next) this.seq.set(device, seq);
    for (const r of reads) {
      this.counters.scans++;
      if (r.repeat) this.counters.repeats++;
      if (!r.valid) {
        this.counters.invalid++;
        this.invalidAt.push(r.at);
        if (this.invalidAt.length > INVALID_KEPT) this.invalidAt.shift();
      }
      this.remember(r.device, r.code, r.at);
    }
  }

  /** Whether `code` was read by `device` within the window before `at` (earlier in this batch, or committed reads); notes this read in `batch`. */
  private isRepeat(device: string, code: string, at: number, batch: Map<string, Map<string, number>>): boolean {
    const w = this.opts.repeatWindowMs;
    if (w <= 0) return false;
    let codes = batch.get(device);
    if (!codes) batch.set(device, (codes = new Map()));
    const last = codes.get(code) ?? this.lastRead.get(device)?.get(code);
    codes.set(code, at);
    return last !== undefined && at - last <= w;
  }

  private remember(device: string, code: string, at: number): void {
    let codes = this.lastRead.get(device);
    if (!codes) this.lastRead.set(device, (codes = new Map()));
    codes.delete(code); // re-inserted last: the map stays in read order, oldest first
    codes.set(code, at);
    for (const [c, t] of codes) {
      if (at - t <= this.opts.repeatWindowMs && codes.size <= 1_000) break;
      codes.delete(c);
    }
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Scanners send ASCII, sometimes UTF-8 (QR codes); bytes that are not UTF-8 are read as Latin-1, never lost (raw keeps them). */
function decode(raw: Buffer): string {
  try {
    return utf8.decode(raw);
  } catch {
    return raw.toString('latin1');
  }
}
