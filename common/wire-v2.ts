import { z } from 'zod';
import { topicLevel } from './wire-v1.js';

/**
 * Wire format v2, shared by the agent and the relay. The spec, with the reasons behind each
 * field, is docs/wire.md; this file is its single executable form.
 *
 * Topics (v2 lives beside v1, so peers of either version never read the other's messages):
 *   erp-edge/v2/{site}/{agent}/events/{stream}   agent → relay, QoS 1, EventBatchV2
 *   erp-edge/v2/{site}/{agent}/ack               relay → agent, QoS 1, AckV2
 *   erp-edge/v2/{site}/{agent}/status            agent, retained: Presence (birth; the broker publishes the will)
 *   erp-edge/v2/{site}/{agent}/health            agent → relay, QoS 1, Health, every health_interval
 *   erp-edge/v1/relay/status                     relay, retained: RelayStatus (v1 shape + `wire`), read by every agent version
 *
 * Compatibility rules: unknown fields are ignored (zod objects strip them); statuses, skip
 * reasons and exception kinds are open strings, so a newer peer's value is logged, never a parse
 * failure that loops.
 */
export const WIRE_V2 = 2 as const;
export const TOPIC_ROOT_V2 = 'erp-edge/v2';
/** Wire versions this code speaks, oldest first. */
export const WIRE_VERSIONS = [1, 2] as const;
export type WireVersion = (typeof WIRE_VERSIONS)[number];

const seqNo = z.number().int().positive();
const epochMs = z.number().int().nonnegative();

/** Limits every peer applies (a relay may be configured stricter for records, never looser for ids). */
export const MAX_ID_LENGTH = 512;
export const MAX_KEY_LENGTH = 1024;

/**
 * A record as a collector captures it, before the outbox gives it a seq. The capture writer
 * checks every record against this, so a record the relay would refuse never enters the outbox.
 */
export const captureRecord = z.object({
  /** Stable identity of the fact the record stands for (rules per collector kind in docs/wire.md); the relay de-duplicates by it. */
  id: z.string().min(1).max(MAX_ID_LENGTH),
  /** Which collector produced it, "<type>:<name>"; stamped by the capture writer. */
  source: z.string().min(1).max(200),
  /** Capture time, epoch ms (agent clock). */
  ts: epochMs,
  /** The source's own time of the fact: ERP commit time, file mtime, scan time; null when unknown. */
  source_ts: epochMs.nullable().optional(),
  /** Business key (order id + line...), stable across versions of the same fact. */
  key: z.string().min(1).max(MAX_KEY_LENGTH).nullable().optional(),
  /** Source transaction id: records of one transaction share it and are contiguous in their stream. */
  txn: z.string().min(1).max(MAX_ID_LENGTH).nullable().optional(),
  /** Groups records of one origin (a file, a job run): a rule per collector kind. */
  correlation_id: z.string().max(MAX_ID_LENGTH).nullable().optional(),
  /** Any JSON; null when there is none. Undefined would vanish from the JSON and the record be refused downstream. */
  data: z.unknown().refine((v): boolean => v !== undefined, { message: 'required (null when the record has no data)' }),
});
export type CaptureRecord = z.infer<typeof captureRecord>;

export const wireRecordV2 = captureRecord.extend({ seq: seqNo });
export type WireRecordV2 = z.infer<typeof wireRecordV2>;

/** Why seqs were skipped: open set, known values listed. */
export const SKIP_REASONS = {
  /** Dropped at the agent by the `drop_oldest` cap policy. */
  dropped: 'dropped',
  /** Refused by the relay and moved to the agent's dead-letter table. */
  deadLetter: 'dead_letter',
  /** Acked, then pruned at the agent, and the relay has lost them since (store restored or lost). */
  pruned: 'pruned',
} as const;

export const seqRange = z
  .object({ from: seqNo, to: seqNo })
  .refine((r) => r.to >= r.from, { message: 'to must be >= from', path: ['to'] });
export type SeqRange = z.infer<typeof seqRange>;

export const skippedRange = z
  .object({ from: seqNo, to: seqNo, reason: z.string().min(1).max(64) })
  .refine((r) => r.to >= r.from, { message: 'to must be >= from', path: ['to'] });
export type SkippedRange = z.infer<typeof skippedRange>;

const envelopeFields = {
  v: z.literal(WIRE_V2),
  site: topicLevel,
  agent: topicLevel,
  stream: topicLevel,
  /** Sequence lineage of the stream: the outbox's epoch, or a newer one after a rebase (see conflict). */
  epoch: z.string().min(8).max(64),
  /** Boot id of the agent process that sent it (diagnostics only). */
  boot: z.string().max(64).optional(),
  sent_at: epochMs,
  /** Seqs of this batch's span that carry no record and never will, in order, not overlapping the records. */
  skipped: z.array(skippedRange).max(10_000).optional(),
};

/**
 * The span of a batch is every seq from its first (record or skipped) to its last: each is either
 * a record or inside a skipped range, exactly once, in ascending order. A batch may carry only
 * skipped ranges (records dead-lettered at the tail of a stream). Returns the first problem, or
 * undefined. Seqs must already be positive integers.
 */
export function spanIssue(
  skipped: readonly { from: number; to: number }[],
  records: readonly { seq: number }[],
): { path: (string | number)[]; message: string } | undefined {
  if (skipped.length === 0 && records.length === 0) return { path: ['records'], message: 'a batch carries at least one record or skipped range' };
  const gap = (path: (string | number)[]) => ({ path, message: 'records and skipped ranges must cover consecutive seqs exactly once' });
  // Agents send both in ascending order: one merge walk, no allocation. Anything else: sort and walk.
  if (ascending(records, (r) => r.seq) && ascending(skipped, (k) => k.from)) {
    let i = 0;
    let j = 0;
    let next: number | undefined;
    while (i < skipped.length || j < records.length) {
      const takeSkip = j >= records.length || (i < skipped.length && skipped[i]!.from < records[j]!.seq);
      const from = takeSkip ? skipped[i]!.from : records[j]!.seq;
      const to = takeSkip ? skipped[i]!.to : records[j]!.seq;
      // The path only when there is something to report (an array per record otherwise).
      if (next !== undefined && from !== next) return gap(takeSkip ? ['skipped', i] : ['records', j, 'seq']);
      next = to + 1;
      if (takeSkip) i++;
      else j++;
    }
    return undefined;
  }
  const items = [
    ...skipped.map((k, i) => ({ from: k.from, to: k.to, path: ['skipped', i] as (string | number)[] })),
    ...records.map((r, i) => ({ from: r.seq, to: r.seq, path: ['records', i, 'seq'] as (string | number)[] })),
  ].sort((x, y) => x.from - y.from);
  for (let i = 1; i < items.length; i++) if (items[i]!.from !== items[i - 1]!.to + 1) return gap(items[i]!.path);
  return undefined;
}

function ascending<T>(xs: readonly T[], key: (x: T) => number): boolean {
  for (let i = 1; i < xs.length; i++) if (key(xs[i]!) <= key(xs[i - 1]!)) return false;
  return true;
}

function checkSpan(b: { skipped?: SkippedRange[] | undefined; records: { seq: number }[] }, ctx: z.RefinementCtx): void {
  const issue = spanIssue(b.skipped ?? [], b.records);
  if (issue) ctx.addIssue({ code: 'custom', ...issue });
}

/** The envelope's fields without its records (a relay checks the records' seqs and span itself, then each record). */
export const eventBatchV2Header = z.object(envelopeFields);

/** Records as the envelope sees them: only `seq` is checked, so the relay can name each invalid record. */
const looseRecord = z.looseObject({ seq: seqNo });

/** The envelope alone (the relay validates each record separately with wireRecordV2). */
export const eventBatchV2Envelope = z.object({ ...envelopeFields, records: z.array(looseRecord) }).superRefine(checkSpan);
export type EventBatchV2Envelope = z.infer<typeof eventBatchV2Envelope>;

export const eventBatchV2 = z.object({ ...envelopeFields, records: z.array(wireRecordV2) }).superRefine(checkSpan);
export type EventBatchV2 = z.infer<typeof eventBatchV2>;

/** Ack statuses: open set, known values listed. An agent logs an unknown one once and does nothing else. */
export const ACK_STATUS = {
  /** Everything up to `upto` is held by the relay (stored, recognised as a duplicate, or skipped). */
  ok: 'ok',
  /** The batch did not follow `upto`: resend from upto + 1. */
  gap: 'gap',
  /** The records in `ranges` cannot be accepted (`reason`); nothing after the first of them was stored. */
  rejected: 'rejected',
  /**
   * The seqs in `ranges` are already held with other record ids: the agent's outbox went back in
   * time under the same epoch (VM snapshot, backup restore). Nothing of the batch was stored; the
   * relay refuses the rest of that epoch from the first conflicting seq. The agent moves the stream
   * to a new epoch and renumbers what it has not had acked.
   */
  conflict: 'conflict',
} as const;

export const rangeWithReason = z
  .object({ from: seqNo, to: seqNo, reason: z.string().max(2_000).optional() })
  .refine((r) => r.to >= r.from, { message: 'to must be >= from', path: ['to'] });

export const ackV2 = z.object({
  v: z.literal(WIRE_V2),
  stream: topicLevel,
  epoch: z.string().min(1).max(64),
  /** Highest seq the relay holds contiguously for (site, agent, stream, epoch); 0 when none. */
  upto: z.number().int().nonnegative(),
  status: z.string().min(1).max(32),
  /** rejected / conflict: the seqs concerned, each with its own reason when they differ. */
  ranges: z.array(rangeWithReason).max(10_000).optional(),
  /** rejected / conflict: the record ids concerned (at most 1 000; the ranges are complete). */
  ids: z.array(z.string()).max(1_000).optional(),
  reason: z.string().max(2_000).optional(),
  /** 0.4: the relay's clock when it answered, and the batch's `sent_at` echoed: the agent's clock offset from them. */
  at: epochMs.optional(),
  sent_at: epochMs.optional(),
});
export type AckV2 = z.infer<typeof ackV2>;

const collectorState = z.object({
  name: z.string(),
  type: z.string(),
  stream: z.string().optional(),
  /** starting | running | backing-off | error | stopped (open set). */
  state: z.string(),
  since: epochMs.optional(),
  /** age_s (0.4): seconds since `at` on the agent's clock, so clock skew does not age it. */
  last_error: z.object({ message: z.string(), code: z.string().optional(), at: epochMs, age_s: z.number().nonnegative().optional() }).nullable(),
  error_count: z.number().int().nonnegative(),
  restarts: z.number().int().nonnegative().optional(),
  // Added in 0.4 (optional: a relay of 0.3 strips them, a 0.3 agent's health still validates).
  /** Start of its current streak of failures; null while running. */
  failing_since: epochMs.nullable().optional(),
  /** Records it has captured since the agent started. */
  records: z.number().int().nonnegative().optional(),
  /** file-drop: files in its error/ folder, waiting for someone to fix them. */
  error_files: z.number().int().nonnegative().optional(),
});

/** Exception kinds: open set, known values listed. */
export const EXCEPTION_KINDS = {
  fileError: 'file_error',
  deadLetter: 'dead_letter',
  invalidScan: 'invalid_scan',
  collectorError: 'collector_error',
} as const;

export const exceptionCount = z.object({
  kind: z.string().min(1).max(64),
  count: z.number().int().nonnegative(),
  /** When the oldest one still open happened (agent clock, like `at`): its age is at - oldest_at. */
  oldest_at: epochMs.nullable(),
});
export type ExceptionCount = z.infer<typeof exceptionCount>;

/** Retained birth; the will carries only v, online: false, boot (and at: the connect time). */
export const presence = z.object({
  v: z.literal(WIRE_V2),
  online: z.boolean(),
  /** Random per agent process start: a will whose boot is not the latest birth's is stale. */
  boot: z.string().min(1).max(64),
  at: epochMs,
  agent_version: z.string().optional(),
  /** Wire versions the agent speaks. */
  wire: z.array(z.number().int().positive()).optional(),
  epoch: z.string().optional(),
  config_hash: z.string().optional(),
  collectors: z.array(z.object({ name: z.string(), type: z.string(), stream: z.string().optional() })).optional(),
  started_at: epochMs.optional(),
});
export type Presence = z.infer<typeof presence>;

export const streamHealth = z.object({
  stream: z.string(),
  epoch: z.string().optional(),
  pending: z.number().int().nonnegative(),
  pending_bytes: z.number().int().nonnegative(),
  oldest_pending_at: epochMs.nullable(),
  /** 0.4: the same as an age on the agent's clock (the relay's clock may differ). */
  oldest_pending_age_s: z.number().nonnegative().nullable().optional(),
  last_seq: z.number().int().nonnegative(),
  acked_seq: z.number().int().nonnegative(),
  last_ack_at: epochMs.nullable(),
  dropped: z.number().int().nonnegative(),
  dead_letter: z.number().int().nonnegative(),
});

export const health = z.object({
  v: z.literal(WIRE_V2),
  boot: z.string().min(1).max(64),
  at: epochMs,
  uptime_s: z.number().nonnegative(),
  streams: z.array(streamHealth),
  collectors: z.array(collectorState),
  exceptions: z.array(exceptionCount),
  outbox: z
    .object({
      bytes: z.number().nonnegative(),
      events: z.number().nonnegative(),
      max_bytes: z.number().nonnegative().nullable(),
      max_events: z.number().nonnegative().nullable(),
      full: z.boolean(),
      /** 0.4: events dropped by the drop_oldest policy since the outbox was created. */
      dropped: z.number().int().nonnegative().optional(),
      /** 0.4: the outbox's files (database, WAL) on disk. */
      file_bytes: z.number().int().nonnegative().optional(),
      /** 0.5: the disk refused an outbox write (no space) and no append has succeeded since: collectors are paused. Absent when not. */
      disk_full: z.boolean().optional(),
    })
    .optional(),
  forwarder: z
    .object({
      connected: z.boolean(),
      wire: z.number().int().positive(),
      in_flight: z.number().int().nonnegative(),
      last_ack_at: epochMs.nullable(),
      capture_rate: z.number().nonnegative(),
      forward_rate: z.number().nonnegative(),
      /** 0.4: seconds since last_ack_at on the agent's clock. */
      last_ack_age_s: z.number().nonnegative().nullable().optional(),
      /** 0.4: when `connected` last changed: how long the agent has been offline (or online). */
      connected_changed_at: epochMs.optional(),
      /** 0.4: relay clock minus agent clock, from acks (transport/clock-offset.ts); absent until known. */
      clock_offset_ms: z.number().optional(),
    })
    .optional(),
  process: z
    .object({ rss_bytes: z.number().nonnegative(), cpu_percent: z.number().nonnegative().optional(), heap_used_bytes: z.number().nonnegative().optional() })
    .optional(),
  /** 0.4: the data folder's file system (where the outbox grows). */
  disk: z.object({ free_bytes: z.number().nonnegative(), total_bytes: z.number().nonnegative() }).optional(),
});
export type Health = z.infer<typeof health>;

export function eventsTopicV2(site: string, agent: string, stream: string): string {
  return `${TOPIC_ROOT_V2}/${site}/${agent}/events/${stream}`;
}
export function ackTopicV2(site: string, agent: string): string {
  return `${TOPIC_ROOT_V2}/${site}/${agent}/ack`;
}
export function presenceTopic(site: string, agent: string): string {
  return `${TOPIC_ROOT_V2}/${site}/${agent}/status`;
}
export function healthTopic(site: string, agent: string): string {
  return `${TOPIC_ROOT_V2}/${site}/${agent}/health`;
}

export const EVENTS_SUBSCRIPTION_V2 = `${TOPIC_ROOT_V2}/+/+/events/#`;
export const PRESENCE_SUBSCRIPTION = `${TOPIC_ROOT_V2}/+/+/status`;
export const HEALTH_SUBSCRIPTION = `${TOPIC_ROOT_V2}/+/+/health`;

export type AgentTopicKind = 'events' | 'ack' | 'status' | 'health';

/** Parses any erp-edge/v1 or /v2 agent topic; undefined when it is not one. */
export function parseAgentTopic(topic: string): { version: WireVersion; site: string; agent: string; kind: AgentTopicKind; stream?: string } | undefined {
  const p = topic.split('/');
  if (p[0] !== 'erp-edge' || (p[1] !== 'v1' && p[1] !== 'v2')) return undefined;
  const version = p[1] === 'v1' ? 1 : 2;
  const [site, agent, kind, stream] = [p[2], p[3], p[4], p[5]];
  if (!site || !agent || !kind) return undefined;
  if (kind === 'events') return p.length === 6 && stream ? { version, site, agent, kind, stream } : undefined;
  if (p.length !== 5 || (kind !== 'ack' && kind !== 'status' && kind !== 'health')) return undefined;
  return { version, site, agent, kind };
}

/**
 * The JSON of a record without its seq: `"id":...,...,"data":...}`. The outbox stores records as
 * `{"seq":N,` + body, so a record is serialised once, at capture, and its seq can be spliced in
 * (or renumbered) without parsing it again. Absent optional fields are omitted, not null. Built
 * field by field (no intermediate object, no copy to drop a brace): this runs for every record
 * captured; test/common/record-check.test.ts checks it equals JSON.stringify of the record.
 * Throws when JSON cannot carry `data` (a BigInt, a cycle, or no JSON form at all).
 * `source` (as JSON: the capture writer encodes its own once) and `ts` may be given apart: the
 * writer stamps them on a collector's record.
 */
export function encodeRecordBody(r: CaptureRecord, sourceJson = JSON.stringify(r.source), ts = r.ts): string {
  let s = `"id":${jsonString(r.id)},"ts":${ts},"source":${sourceJson},"correlation_id":${r.correlation_id == null ? 'null' : jsonString(r.correlation_id)}`;
  if (r.source_ts != null) s += `,"source_ts":${r.source_ts}`;
  if (r.key != null) s += `,"key":${jsonString(r.key)}`;
  if (r.txn != null) s += `,"txn":${jsonString(r.txn)}`;
  const data = JSON.stringify(r.data) as string | undefined;
  // undefined, a function, a symbol: the record would reach the relay without data, and be refused.
  if (data === undefined) throw new TypeError(`data (${typeof r.data}) has no JSON form`);
  return `${s},"data":${data}}`;
}

/** Characters JSON.stringify would escape (or might: any surrogate): only strings with one go through it. */
const NEEDS_ESCAPING = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string's JSON: most ids and keys need no escaping, and quoting them is cheaper than a JSON.stringify call. */
function jsonString(v: string): string {
  return NEEDS_ESCAPING.test(v) ? JSON.stringify(v) : `"${v}"`;
}

export function recordLine(seq: number, body: string): string {
  return `{"seq":${seq},${body}`;
}
