import type { FramingConfig } from './schema.js';

/**
 * Cuts a scanner's byte stream into scans. A TCP read or a serial read is not a scan: one scan can
 * arrive in several reads and several scans in one read, so the bytes are held until a frame is
 * complete. Nothing here is unbounded: a frame longer than `max_length` is dropped while it streams
 * (only a terminator's worth of its tail is kept, to find where it ends) and reported once with its
 * length, so a sender that never ends a line costs at most about `max_length` bytes.
 */

/** What a push yields, in stream order. */
export type FrameEvent =
  /** One complete scan: the frame without its terminator (and without a leading STX). */
  | { kind: 'scan'; bytes: Buffer }
  /** A frame over `max_length`, discarded; `length` is its full length in bytes. */
  | { kind: 'oversize'; length: number };

const CR = 0x0d;
const LF = 0x0a;
const STX = 0x02;
const ETX = 0x03;

/** The terminator as bytes; `cr` / `lf` also name which half of a CRLF is tolerated. */
export function terminatorBytes(t: FramingConfig['terminator']): Buffer {
  if (typeof t === 'object') return Buffer.from(t.hex.replace(/[\s:]/g, ''), 'hex');
  switch (t) {
    case 'cr':
      return Buffer.from([CR]);
    case 'lf':
      return Buffer.from([LF]);
    case 'crlf':
      return Buffer.from([CR, LF]);
    case 'etx':
      return Buffer.from([ETX]);
  }
}

export class Framer {
  private readonly term: Buffer;
  private readonly fixed: number | undefined;
  private readonly max: number;
  private readonly stx: boolean;
  /** `cr`: a scanner that sends CRLF leaves an LF at the start of the next frame: skip it. */
  private readonly skipLeadingLf: boolean;
  /** `lf`: a scanner that sends CRLF leaves a CR at the end of each frame: strip it. */
  private readonly stripTrailingCr: boolean;
  /** Bytes of a frame kept beyond `max_length` before it is known to be over: a terminator's start, a tolerated CR. */
  private readonly slack: number;
  /** The current frame's bytes held so far (or, while discarding, only its tail). */
  private held: Buffer;
  private heldLen = 0;
  /** Bytes of the current frame already thrown away because it is over `max_length`. */
  private discarded = 0;
  /** The previous frame ended with CR (`cr` mode): an LF first in the next read belongs to it. */
  private afterCr = false;

  constructor(cfg: FramingConfig) {
    this.term = terminatorBytes(cfg.terminator);
    this.fixed = cfg.fixed_length;
    this.max = cfg.fixed_length ?? cfg.max_length;
    this.stx = cfg.stx;
    this.skipLeadingLf = cfg.fixed_length === undefined && cfg.terminator === 'cr';
    this.stripTrailingCr = cfg.fixed_length === undefined && cfg.terminator === 'lf';
    this.slack = this.term.length - 1 + (this.stripTrailingCr ? 1 : 0);
    this.held = Buffer.allocUnsafe(Math.min(256, this.max + this.slack + 1));
  }

  /** Bytes held for an unfinished frame: bounded by `max_length` plus a terminator's length. */
  get pending(): number {
    return this.heldLen;
  }

  /** Feeds one read; returns the frames it completed, in order. */
  push(chunk: Buffer): FrameEvent[] {
    const out: FrameEvent[] = [];
    if (this.fixed !== undefined) return this.pushFixed(chunk, out);
    let pos = 0;
    if (this.afterCr && chunk.length > 0) {
      this.afterCr = false;
      if (chunk[0] === LF) pos = 1;
    }
    // A terminator that began in the previous read and ends in this one.
    if (this.heldLen > 0 && this.term.length > 1) {
      const k = this.spanningTerminator(chunk);
      if (k > 0) {
        const frame = Buffer.from(this.held.subarray(0, this.heldLen - k));
        this.heldLen = 0;
        this.emit(frame, out);
        pos = this.term.length - k;
        if (this.skipLeadingLf && chunk[pos] === LF) pos++;
      }
    }
    while (pos < chunk.length) {
      const at = chunk.indexOf(this.term, pos);
      if (at < 0) break;
      const frame = this.heldLen > 0 ? Buffer.concat([this.held.subarray(0, this.heldLen), chunk.subarray(pos, at)]) : chunk.subarray(pos, at);
      this.heldLen = 0;
      this.emit(frame, out);
      pos = at + this.term.length;
      if (this.skipLeadingLf) {
        if (pos === chunk.length) this.afterCr = true;
        else if (chunk[pos] === LF) pos++;
      }
    }
    if (pos < chunk.length) this.hold(chunk.subarray(pos));
    return out;
  }

  /**
   * The stream ended (connection closed, port gone): an unfinished frame is not a scan. Returns
   * its length (0 when none) and starts over.
   */
  end(): number {
    const partial = this.discarded + this.heldLen;
    this.discarded = 0;
    this.heldLen = 0;
    this.afterCr = false;
    return partial;
  }

  private pushFixed(chunk: Buffer, out: FrameEvent[]): FrameEvent[] {
    const n = this.fixed!;
    let pos = 0;
    if (this.heldLen > 0) {
      const take = Math.min(n - this.heldLen, chunk.length);
      this.hold(chunk.subarray(0, take));
      pos = take;
      if (this.heldLen < n) return out;
      this.heldLen = 0;
      this.emit(Buffer.from(this.held.subarray(0, n)), out);
    }
    for (; pos + n <= chunk.length; pos += n) this.emit(chunk.subarray(pos, pos + n), out);
    if (pos < chunk.length) this.hold(chunk.subarray(pos));
    return out;
  }

  private emit(frame: Buffer, out: FrameEvent[]): void {
    let f = frame;
    if (this.stripTrailingCr && f.length > 0 && f[f.length - 1] === CR) f = f.subarray(0, f.length - 1);
    const length = this.discarded + f.length;
    this.discarded = 0;
    if (length > this.max) {
      out.push({ kind: 'oversize', length });
      return;
    }
    // Bytes before the STX are what the device sent after the last frame's terminator (a block
    // check character, a CR LF): not part of the scan.
    if (this.stx) {
      const s = f.indexOf(STX);
      if (s >= 0) f = f.subarray(s + 1);
    }
    if (f.length === 0) return;
    // A copy when the frame is a slice of a larger read: the read's buffer is not kept alive by it.
    out.push({ kind: 'scan', bytes: f.byteOffset === 0 && f.length === f.buffer.byteLength ? f : Buffer.from(f) });
  }

  /** Keeps the unfinished frame's bytes; past `max_length` only the tail that could start a terminator. */
  private hold(bytes: Buffer): void {
    const total = this.heldLen + bytes.length;
    if (this.discarded > 0 || total > this.max + this.slack) {
      const keep = Math.min(this.slack, total);
      const tail = Buffer.concat([this.held.subarray(0, this.heldLen), bytes.subarray(Math.max(0, bytes.length - keep))]);
      const kept = tail.subarray(tail.length - keep);
      this.discarded += total - keep;
      kept.copy(this.held, 0);
      this.heldLen = keep;
      return;
    }
    if (total > this.held.length) {
      const grown = Buffer.allocUnsafe(Math.min(Math.max(total, this.held.length * 2), this.max + this.slack + 1));
      this.held.copy(grown, 0, 0, this.heldLen);
      this.held = grown;
    }
    bytes.copy(this.held, this.heldLen);
    this.heldLen = total;
  }

  /** How many of the terminator's bytes end the held bytes such that the rest start `chunk` (0: none). */
  private spanningTerminator(chunk: Buffer): number {
    const t = this.term;
    for (let k = Math.min(t.length - 1, this.heldLen); k >= 1; k--) {
      const rest = t.length - k;
      if (chunk.length < rest) continue;
      if (this.held.compare(t, 0, k, this.heldLen - k, this.heldLen) !== 0) continue;
      if (chunk.compare(t, k, t.length, 0, rest) !== 0) continue;
      return k;
    }
    return 0;
  }
}
