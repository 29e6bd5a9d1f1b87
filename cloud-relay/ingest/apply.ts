import { MAX_ID_LENGTH } from '../../common/wire-v2.js';
import type { RelayStore, StoreTx } from '../store/store.js';
import type { DecodedBatch, DecodedRecord, RecordProblem } from './decode.js';

/** Newly skipped seqs by reason; unknown reasons (the set is open) count as `other`. */
export interface SkipCounts {
  dropped: number;
  dead_letter: number;
  pruned: number;
  other: number;
}

export interface AckRange {
  from: number;
  to: number;
  reason?: string;
}

export type OutcomeStatus = 'ok' | 'gap' | 'rejected' | 'conflict';

/** What applying one batch did, and what to answer. */
export interface BatchOutcome {
  status: OutcomeStatus;
  /** Highest seq held contiguously for the batch's (site, agent, stream, epoch) afterwards. */
  upto: number;
  stored: number;
  /** The records stored, in seq order (the segment written: no copy), and the store time they were stored at. */
  storedRecords: readonly DecodedRecord[];
  storedAt: number;
  /** Records resent at seqs already held (by seq). */
  duplicates: number;
  /** Records not stored because their id was stored before (by id, across epochs, within the window). */
  duplicateIds: number;
  /** Resent seqs held with another record id (v1: skipped and counted; v2: the batch is refused). */
  conflicts: number;
  skipped: SkipCounts;
  /** Records refused, by problem (status `rejected`). */
  rejectedRecords: Record<RecordProblem, number>;
  /** The first batch of an epoch when the stream had others (the agent's outbox was re-created). */
  newEpoch: boolean;
  previousEpochs: string[];
  /** gap: the first seq that did not follow `upto`. */
  gapAt?: number;
  /** conflict: the seq from which the epoch is refused. */
  forkedFrom?: number;
  /** rejected / conflict: the seqs concerned, their ids (at most MAX_ACK_IDS) and a summary. */
  ranges?: AckRange[];
  ids?: string[];
  reason?: string;
}

/** Ack limits (ackV2): ids are capped, the ranges complete up to MAX_ACK_RANGES. */
export const MAX_ACK_IDS = 1_000;
export const MAX_ACK_RANGES = 10_000;
const MAX_REASON = 300;

const SKIP_KEYS = new Set(['dropped', 'dead_letter', 'pruned']);

function emptyOutcome(): BatchOutcome {
  return {
    status: 'ok',
    upto: 0,
    stored: 0,
    storedRecords: [],
    storedAt: 0,
    duplicates: 0,
    duplicateIds: 0,
    conflicts: 0,
    skipped: { dropped: 0, dead_letter: 0, pruned: 0, other: 0 },
    rejectedRecords: { invalid_record: 0, record_too_large: 0 },
    newEpoch: false,
    previousEpochs: [],
  };
}

/** Several batches in one store transaction (one commit, one fsync): the group commit. Results in order. */
export function applyBatches(store: RelayStore, batches: readonly DecodedBatch[]): Promise<BatchOutcome[]> {
  // Streams are locked as they are opened: in one order (by stream, arrival order kept within one),
  // so two relays committing groups over the same streams never wait on each other in a cycle.
  const order = batches.map((_, i) => i);
  if (batches.length > 1) order.sort((i, j) => compareStreams(batches[i]!, batches[j]!) || i - j);
  return store.transaction(async (tx) => {
    const out = new Array<BatchOutcome>(batches.length);
    for (const i of order) out[i] = await applyBatch(tx, batches[i]!);
    return out;
  });
}

function compareStreams(a: DecodedBatch, b: DecodedBatch): number {
  const x = `${a.site}\u0000${a.agent}\u0000${a.stream}\u0000${a.epoch}`;
  const y = `${b.site}\u0000${b.agent}\u0000${b.stream}\u0000${b.epoch}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Applies one batch against the stored cursor of its (site, agent, stream, epoch), walking
 * skipped ranges and records in seq order (docs/wire.md):
 *  - a skipped range that starts after last + 1 is a gap; otherwise the cursor moves past it;
 *  - a record at or below the cursor is a resend; its id is compared with the stored one
 *    (v1: a different id is counted and skipped; v2: the batch is refused with `conflict`);
 *  - the record at last + 1 is refused with `rejected` when invalid (v2), not stored when its id
 *    was stored before (de-duplication by id), stored otherwise;
 *  - a record beyond last + 1 is a gap.
 */
export async function applyBatch(tx: StoreTx, b: DecodedBatch): Promise<BatchOutcome> {
  const out = emptyOutcome();
  const s = await tx.openStream(b.site, b.agent, b.stream, b.epoch);
  out.newEpoch = s.created && s.otherEpochs.length > 0;
  if (out.newEpoch) out.previousEpochs = s.otherEpochs;
  let last = s.last;
  out.upto = last;
  const recs = b.records;
  const span = spanOf(b);

  // Resent records: those already held must be the same records (same ids) as held. A seq held
  // without a record (skipped by the agent) must get none either: a valid record there is another
  // lineage too. (An invalid or id-less record is a stale copy of one refused before: a duplicate.)
  let resentEnd = 0;
  while (resentEnd < recs.length && recs[resentEnd]!.seq <= last) resentEnd++;
  const conflicting: DecodedRecord[] = [];
  if (resentEnd > 0) {
    const from = recs[0]!.seq;
    const to = recs[resentEnd - 1]!.seq;
    const heldIds = await tx.storedIds(s.id, from, to);
    const skipped = b.version === 2 ? await tx.skippedRanges(s.id, from, to) : [];
    for (let i = 0; i < resentEnd; i++) {
      const r = recs[i]!;
      const held = heldIds.get(r.seq);
      if (r.id === undefined || r.problem) continue;
      if (held !== undefined ? held !== r.id : skipped.some((k) => k.from <= r.seq && r.seq <= k.to)) conflicting.push(r);
    }
  }

  // v2: an epoch that went back in time is refused from its fork point on, whatever the batch holds
  // there (copies sent before the agent saw the conflict); below it, resends are compared as ever.
  if (b.version === 2 && (conflicting.length > 0 || (s.forkedFrom !== null && span.to >= s.forkedFrom))) {
    const forkedFrom = Math.min(conflicting[0]?.seq ?? Number.POSITIVE_INFINITY, s.forkedFrom ?? Number.POSITIVE_INFINITY);
    out.conflicts = conflicting.length;
    if (forkedFrom !== s.forkedFrom || conflicting.length > 0) {
      await tx.updateStream(s.id, { last, stored: 0, dropped: 0, deadLettered: 0, skippedOther: 0, pruned: 0, duplicateIds: 0, conflicts: conflicting.length, rejectedRecords: 0, rejectedTooLarge: 0, forkedFrom });
    }
    const concerned = recs.filter((r) => r.seq >= forkedFrom);
    const why =
      conflicting.length > 0
        ? `${conflicting.length} seq(s) from ${conflicting[0]!.seq} are held with other records: the agent outbox went back in time under epoch ${b.epoch}`
        : `epoch ${b.epoch} is refused from seq ${forkedFrom}: it went back in time`;
    return conflictOutcome(out, forkedFrom, [{ from: Math.max(span.from, forkedFrom), to: span.to }], concerned, `${why}; nothing of the batch was stored; continue the stream under a new epoch`);
  }
  out.conflicts = conflicting.length; // v1: counted, and skipped as duplicates (release 0.1 behaviour)

  // Records that follow the cursor, in order; whether each is stored or recognised by id is decided
  // after the walk (it does not change the walk: a recognised record holds its seq too).
  const fresh: DecodedRecord[] = [];
  let ri = 0;
  let si = 0;
  const skips = b.skipped;
  let invalidAt = -1;
  while (ri < recs.length || si < skips.length) {
    const r = recs[ri];
    const k = skips[si];
    if (k !== undefined && (r === undefined || k.from < r.seq)) {
      si++;
      if (k.from > last + 1) {
        out.status = 'gap';
        out.gapAt = k.from;
        break;
      }
      if (k.to > last) {
        countSkip(out.skipped, k.reason, k.to - last);
        if (b.version === 2) await tx.holdSkipped(s.id, last + 1, k.to, k.reason);
        last = k.to;
      }
      continue;
    }
    ri++;
    const rec = r!;
    if (rec.seq <= last) {
      out.duplicates++;
      continue;
    }
    if (rec.seq > last + 1) {
      out.status = 'gap';
      out.gapAt = rec.seq;
      break;
    }
    if (rec.problem || rec.value === undefined) {
      invalidAt = ri - 1;
      break;
    }
    fresh.push(rec);
    last = rec.seq;
  }

  const segment = fresh.length > 0 ? await notSeenBefore(tx, s.key, fresh) : fresh;
  out.duplicateIds = fresh.length - segment.length;
  // A recognised record holds its seq without being stored: keep its id there, so that a resend at
  // that seq is compared as for a stored one.
  if (out.duplicateIds > 0) {
    const stored = new Set(segment);
    await tx.holdIds(s.id, fresh.filter((r) => !stored.has(r)).map((r) => ({ seq: r.seq, id: r.id! })));
  }
  if (segment.length > 0) await tx.insertSegment(s.id, segment[0]!.seq, segment[segment.length - 1]!.seq, encodeSegment(segment));
  out.stored = segment.length;
  out.storedRecords = segment;
  out.storedAt = tx.now;
  if (invalidAt >= 0) rejectedOutcome(out, recs, invalidAt);
  const rejected = out.rejectedRecords.invalid_record + out.rejectedRecords.record_too_large;
  const sk = out.skipped;
  if (last !== s.last || out.duplicateIds > 0 || out.conflicts > 0 || rejected > 0) {
    await tx.updateStream(s.id, {
      last,
      stored: out.stored,
      dropped: sk.dropped,
      deadLettered: sk.dead_letter,
      skippedOther: sk.pruned + sk.other,
      pruned: sk.pruned,
      duplicateIds: out.duplicateIds,
      conflicts: out.conflicts,
      rejectedRecords: rejected,
      rejectedTooLarge: out.rejectedRecords.record_too_large,
    });
  }
  out.upto = last;
  return out;
}

/**
 * De-duplication by id: the records not recognised. A record with a business key is recognised
 * when its id is the one last stored for its key (an unchanged row exported again; a row that
 * changes and changes back is stored again, so the latest version of a key is the source's); one
 * without a key, when its id was stored before. Ids over MAX_ID_LENGTH (v1 only) are not indexed.
 */
async function notSeenBefore(tx: StoreTx, key: number, fresh: DecodedRecord[]): Promise<DecodedRecord[]> {
  const indexed = fresh.every((r) => r.id!.length <= MAX_ID_LENGTH) ? fresh : fresh.filter((r) => r.id!.length <= MAX_ID_LENGTH);
  if (indexed.length === 0) return fresh;
  // Every id is remembered, in order (a record without a key is judged by this); a keyed record is
  // judged by its key's latest id instead.
  const isNew = await tx.rememberIds(
    key,
    indexed.map((r) => r.id!),
  );
  const keyed: { i: number; key: string; id: string }[] = [];
  for (let i = 0; i < indexed.length; i++) {
    const k = (indexed[i]!.value as { key?: unknown }).key;
    if (typeof k === 'string') keyed.push({ i, key: k, id: indexed[i]!.id! });
  }
  if (keyed.length > 0) {
    const latest = await tx.rememberLatest(key, keyed);
    keyed.forEach((k, j) => (isNew[k.i] = latest[j]!));
  }
  if (!isNew.includes(false)) return fresh;
  const seen = new Set<DecodedRecord>();
  for (let i = 0; i < indexed.length; i++) if (!isNew[i]) seen.add(indexed[i]!);
  return fresh.filter((r) => !seen.has(r));
}

/** The segment's JSON array: v2 records were encoded once already (to measure them); v1 records are encoded here in one call. */
function encodeSegment(records: readonly DecodedRecord[]): string {
  if (records[0]!.json === undefined) return JSON.stringify(records.map((r) => r.value));
  let out = '[';
  for (let i = 0; i < records.length; i++) out += i === 0 ? records[i]!.json! : `,${records[i]!.json!}`;
  return `${out}]`;
}

function spanOf(b: DecodedBatch): { from: number; to: number } {
  let from = Number.POSITIVE_INFINITY;
  let to = 0;
  const first = b.records[0];
  const lastRec = b.records[b.records.length - 1];
  if (first) from = first.seq;
  if (lastRec) to = lastRec.seq;
  for (const k of b.skipped) {
    if (k.from < from) from = k.from;
    if (k.to > to) to = k.to;
  }
  return { from, to };
}

function countSkip(c: SkipCounts, reason: string, n: number): void {
  if (SKIP_KEYS.has(reason)) c[reason as keyof SkipCounts] += n;
  else c.other += n;
}

function idsOf(records: readonly DecodedRecord[]): string[] {
  const ids: string[] = [];
  for (const r of records) {
    if (ids.length >= MAX_ACK_IDS) break;
    if (r.id !== undefined && r.id.length <= MAX_ID_LENGTH) ids.push(r.id);
  }
  return ids;
}

/** Consecutive seqs with the same reason merge into one range; at most MAX_ACK_RANGES. */
function toRanges(items: ReadonlyArray<{ seq: number; reason?: string }>): AckRange[] {
  const ranges: AckRange[] = [];
  for (const it of items) {
    const prev = ranges[ranges.length - 1];
    if (prev && prev.to + 1 === it.seq && prev.reason === it.reason) {
      prev.to = it.seq;
    } else {
      if (ranges.length >= MAX_ACK_RANGES) break;
      ranges.push(it.reason === undefined ? { from: it.seq, to: it.seq } : { from: it.seq, to: it.seq, reason: it.reason });
    }
  }
  return ranges;
}

function conflictOutcome(out: BatchOutcome, forkedFrom: number, ranges: AckRange[], concerned: readonly DecodedRecord[], reason: string): BatchOutcome {
  out.status = 'conflict';
  out.forkedFrom = forkedFrom;
  out.duplicates = 0;
  out.ranges = ranges;
  out.ids = idsOf(concerned);
  out.reason = reason;
  return out;
}

/** Every invalid record from the first one the cursor reached: stored is the valid prefix only. */
function rejectedOutcome(out: BatchOutcome, recs: readonly DecodedRecord[], from: number): void {
  const invalid: DecodedRecord[] = [];
  for (let i = from; i < recs.length; i++) {
    const r = recs[i]!;
    if (r.problem) {
      invalid.push(r);
      out.rejectedRecords[r.problem.code]++;
    }
  }
  out.status = 'rejected';
  out.ranges = toRanges(invalid.map((r) => ({ seq: r.seq, reason: `${r.problem!.code}: ${r.problem!.detail}`.slice(0, MAX_REASON) })));
  out.ids = idsOf(invalid);
  const parts = Object.entries(out.rejectedRecords)
    .filter(([, n]) => n > 0)
    .map(([code, n]) => `${code}: ${n}`);
  out.reason = `${invalid.length} record(s) refused (${parts.join(', ')}); nothing from seq ${invalid[0]!.seq} on was stored`;
}
