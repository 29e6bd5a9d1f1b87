import { SKIP_REASONS, WIRE_V2, type SkippedRange, type WireVersion } from '../../common/wire-v2.js';
import { WIRE_VERSION as WIRE_V1 } from '../../common/wire-v1.js';
import type { Outbox, PendingRow } from '../outbox/outbox.js';

/**
 * Builds event batches from outbox rows. Records are stored as wire JSON, so a batch is spliced,
 * not re-encoded: v2 records are v1 records plus optional fields, which v1 readers ignore, so rows
 * of either version go into an envelope of either version as they are.
 */
export interface BatchPlan {
  /** First seq the batch covers (a record or the start of a skipped range). */
  first: number;
  /** Last seq it covers. */
  last: number;
  rows: PendingRow[];
  skipped: SkippedRange[];
  /** v1 only: every seq up to this one is skipped (the v1 form of a hole before the batch). */
  droppedUpto?: number;
}

/** Far below the envelope's 10 000 (a hole can be classified into a few ranges). */
export const MAX_SKIPPED_PER_BATCH = 1_000;

export interface Envelope {
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  boot: string;
}

/**
 * The next batch after `after`, or undefined when there is nothing to send (or, in v1, when a hole
 * must wait until the relay has acked everything before it: v1 can only skip a prefix).
 */
export function planBatch(
  outbox: Outbox,
  stream: string,
  after: number,
  limits: { maxRecords: number; maxBytes: number },
  wire: WireVersion,
  relayCaughtUp: boolean,
): BatchPlan | undefined {
  let rows = outbox.readPending(stream, after, limits.maxRecords, limits.maxBytes);
  if (wire === 1) return planV1(outbox, stream, after, rows, relayCaughtUp);
  const skipped: SkippedRange[] = [];
  let expected = after + 1;
  let n = 0;
  for (; n < rows.length; n++) {
    const r = rows[n]!;
    if (r.seq > expected) {
      // The envelope takes at most 10 000 ranges: a batch ends early rather than exceed it.
      if (skipped.length >= MAX_SKIPPED_PER_BATCH) break;
      skipped.push(...classifyHole(outbox, stream, expected, r.seq - 1));
    }
    expected = r.seq + 1;
  }
  const truncated = n < rows.length;
  if (truncated) rows = rows.slice(0, n);
  // Seqs after the last row that no record will ever fill (dead-lettered at the tail of the stream).
  const lastSeq = outbox.lastSeq(stream);
  if (!truncated && lastSeq >= expected && !outbox.hasRecordsAfter(stream, expected - 1)) skipped.push(...classifyHole(outbox, stream, expected, lastSeq));
  if (rows.length === 0 && skipped.length === 0) return undefined;
  const last = Math.max(rows.length ? rows[rows.length - 1]!.seq : 0, skipped.length ? skipped[skipped.length - 1]!.to : 0);
  return { first: after + 1, last, rows, skipped };
}

function planV1(outbox: Outbox, stream: string, after: number, rows: PendingRow[], relayCaughtUp: boolean): BatchPlan | undefined {
  if (rows.length === 0) return undefined;
  const first = rows[0]!.seq;
  // A hole before the batch: only once the relay holds everything before it, as dropped_upto.
  if (first > after + 1 && !relayCaughtUp) return undefined;
  let n = 1;
  while (n < rows.length && rows[n]!.seq === rows[n - 1]!.seq + 1) n++;
  const consecutive = rows.slice(0, n);
  const plan: BatchPlan = { first: after + 1, last: consecutive[n - 1]!.seq, rows: consecutive, skipped: [] };
  if (first > after + 1) {
    plan.droppedUpto = first - 1;
    plan.skipped = classifyHole(outbox, stream, after + 1, first - 1);
  }
  return plan;
}

/**
 * Why seqs [from, to] carry no record: dropped by the cap policy (up to the stream's
 * dropped_upto), dead-lettered (the skips table), or else pruned here after an ack the relay has
 * since lost.
 */
export function classifyHole(outbox: Outbox, stream: string, from: number, to: number): SkippedRange[] {
  const out: SkippedRange[] = [];
  const push = (a: number, b: number, reason: string) => {
    if (b < a) return;
    const prev = out[out.length - 1];
    if (prev && prev.reason === reason && prev.to + 1 === a) prev.to = b;
    else out.push({ from: a, to: b, reason });
  };
  const droppedUpto = outbox.droppedUpto(stream);
  let cursor = from;
  if (droppedUpto >= cursor) {
    push(cursor, Math.min(droppedUpto, to), SKIP_REASONS.dropped);
    cursor = Math.min(droppedUpto, to) + 1;
  }
  for (const s of outbox.skipsBetween(stream, cursor, to)) {
    const a = Math.max(s.first, cursor);
    const b = Math.min(s.last, to);
    push(cursor, a - 1, SKIP_REASONS.pruned);
    push(a, b, s.reason);
    cursor = b + 1;
  }
  push(cursor, to, SKIP_REASONS.pruned);
  return out;
}

/** The batch's JSON, spliced from the stored record lines. */
export function encodeBatch(e: Envelope, plan: BatchPlan, wire: WireVersion, sentAt: number): string {
  const head = `"site":${JSON.stringify(e.site)},"agent":${JSON.stringify(e.agent)},"stream":${JSON.stringify(e.stream)},"epoch":${JSON.stringify(e.epoch)},`;
  const records = `"records":[${plan.rows.map((r) => r.payload).join(',')}]`;
  if (wire === 1) {
    const dropped = plan.droppedUpto !== undefined ? `"dropped_upto":${plan.droppedUpto},` : '';
    return `{"v":${WIRE_V1},${head}${dropped}"sent_at":${sentAt},${records}}`;
  }
  const skipped = plan.skipped.length ? `"skipped":${JSON.stringify(plan.skipped)},` : '';
  return `{"v":${WIRE_V2},${head}"boot":${JSON.stringify(e.boot)},"sent_at":${sentAt},${skipped}${records}}`;
}
