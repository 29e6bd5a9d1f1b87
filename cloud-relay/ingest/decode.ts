import { isUtf8 } from 'node:buffer';
import type { z } from 'zod';
import { eventBatch } from '../../common/wire-v1.js';
import { eventBatchV2Envelope, eventBatchV2Header, spanIssue, wireRecordV2, type WireVersion } from '../../common/wire-v2.js';
import { checkRecordV2 } from '../../common/record-check.js';

/** Why a whole message is refused (counted, logged, never acked). */
export type MessageRejectReason = 'invalid_json' | 'invalid_schema' | 'topic_mismatch' | 'bad_topic' | 'unsupported_version' | 'too_large' | 'internal_error';

/** Why one record of a v2 batch is refused (answered with a `rejected` ack naming it). */
export type RecordProblem = 'invalid_record' | 'record_too_large';

export interface DecodedRecord {
  seq: number;
  /** The record's id when it is a string (an invalid record may have none). */
  id: string | undefined;
  /**
   * The record as stored: its validated fields (seq included), as zod returned them (no second
   * copy). Undefined when the record has a problem.
   */
  value: object | undefined;
  /** v2: the value's JSON, made to measure the record against limits.max_record_bytes and reused to store it. */
  json?: string;
  problem?: { code: RecordProblem; detail: string };
}

export interface SkipRange {
  from: number;
  to: number;
  reason: string;
}

/** One event batch, v1 or v2, in the one shape ingest applies. */
export interface DecodedBatch {
  version: WireVersion;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  boot?: string | undefined;
  /** v2: when the agent sent the batch (its clock), echoed in the ack. */
  sentAt?: number | undefined;
  /** In seq order. v1's `dropped_upto` is the range 1..dropped_upto, reason `dropped`. */
  skipped: SkipRange[];
  /** In seq order. */
  records: DecodedRecord[];
}

export type DecodeResult = { ok: true; batch: DecodedBatch } | { ok: false; reason: MessageRejectReason; detail: string };

export interface DecodeOptions {
  /** `limits.max_record_bytes`: UTF-8 bytes of a v2 record's JSON. */
  maxRecordBytes: number;
  /** `limits.max_message_bytes`: a larger payload is refused before it is parsed (absent: no limit here). */
  maxMessageBytes?: number;
}

export interface EventsTopic {
  version: WireVersion;
  site: string;
  agent: string;
  stream: string;
}

function firstIssue(error: z.ZodError): string {
  const i = error.issues[0];
  return i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid';
}

/** Decodes an event batch payload that arrived on `topic` (already parsed, version accepted). */
export function decodeEventBatch(topic: EventsTopic, payload: Buffer, opts: DecodeOptions): DecodeResult {
  if (opts.maxMessageBytes !== undefined && payload.length > opts.maxMessageBytes) {
    return { ok: false, reason: 'too_large', detail: `${payload.length} bytes, over limits.max_message_bytes (${opts.maxMessageBytes})` };
  }
  // toString would turn invalid bytes into U+FFFD silently, and store text the agent never sent.
  if (!isUtf8(payload)) return { ok: false, reason: 'invalid_json', detail: 'not valid UTF-8' };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: 'invalid_json', detail: (err as Error).message };
  }
  const v = typeof json === 'object' && json !== null ? (json as { v?: unknown }).v : undefined;
  if (v !== topic.version) {
    return { ok: false, reason: 'invalid_schema', detail: `payload v ${JSON.stringify(v) ?? 'absent'} on a v${topic.version} topic` };
  }
  return topic.version === 1 ? decodeV1(topic, json) : decodeV2(topic, json, opts);
}

function mismatch(topic: EventsTopic, b: { site: string; agent: string; stream: string }): DecodeResult | undefined {
  if (b.site === topic.site && b.agent === topic.agent && b.stream === topic.stream) return undefined;
  return { ok: false, reason: 'topic_mismatch', detail: `envelope says ${b.site}/${b.agent}/${b.stream}` };
}

/** v1: the whole batch is checked strictly, as release 0.1 agents expect (no per-record answer exists in v1). */
function decodeV1(topic: EventsTopic, json: unknown): DecodeResult {
  const parsed = eventBatch.safeParse(json);
  if (!parsed.success) return { ok: false, reason: 'invalid_schema', detail: firstIssue(parsed.error) };
  const b = parsed.data;
  const wrong = mismatch(topic, b);
  if (wrong) return wrong;
  const records: DecodedRecord[] = new Array(b.records.length);
  for (let i = 0; i < b.records.length; i++) {
    const r = b.records[i]!;
    // Encoded here, not at the store: a record JSON cannot carry back (nested deeper than the
    // encoder's stack) is this message's fault, not the store's.
    const json = encode(r);
    if (json === undefined) return { ok: false, reason: 'invalid_schema', detail: `records.${i}.data: ${UNENCODABLE}` };
    records[i] = { seq: r.seq, id: r.id, value: r, json };
  }
  const skipped = b.dropped_upto !== undefined && b.dropped_upto > 0 ? [{ from: 1, to: b.dropped_upto, reason: 'dropped' }] : [];
  return { ok: true, batch: { version: 1, site: b.site, agent: b.agent, stream: b.stream, epoch: b.epoch, skipped, records } };
}

/**
 * v2: the envelope is checked (records only need a valid seq, the span must be contiguous), then
 * each record on its own, so that a bad record can be named in a `rejected` ack instead of the
 * whole batch being dropped.
 */
function decodeV2(topic: EventsTopic, json: unknown, opts: DecodeOptions): DecodeResult {
  const rawRecords = (json as { records?: unknown }).records;
  // The quick path: the header by zod (records are not in its shape, so not copied), the seqs and
  // the span by one walk. Any doubt, and zod checks the envelope on a projection ({seq} per record)
  // to say exactly what is wrong: the schema stays the one definition.
  const header = eventBatchV2Header.safeParse(json);
  const quick = header.success && Array.isArray(rawRecords) && rawRecords.every(hasSeq) && !spanIssue(header.data.skipped ?? [], rawRecords as { seq: number }[]);
  let b: { site: string; agent: string; stream: string; epoch: string; boot?: string | undefined; sent_at?: number | undefined; skipped?: SkipRange[] | undefined };
  if (quick) b = header.data;
  else {
    const projected = Array.isArray(rawRecords) ? { ...(json as object), records: rawRecords.map(seqOnly) } : json;
    const env = eventBatchV2Envelope.safeParse(projected);
    if (!env.success) return { ok: false, reason: 'invalid_schema', detail: firstIssue(env.error) };
    b = env.data;
  }
  const wrong = mismatch(topic, b);
  if (wrong) return wrong;
  const raws = rawRecords as unknown[];
  // A UTF-16 unit is at most 3 UTF-8 bytes: below this length no record needs measuring.
  const safeLength = Math.floor(opts.maxRecordBytes / 3);
  const records: DecodedRecord[] = new Array(raws.length);
  for (let i = 0; i < raws.length; i++) {
    const raw = raws[i] as { seq: number; id?: unknown };
    const id = typeof raw.id === 'string' ? raw.id : undefined;
    let value = checkRecordV2(raw);
    if (value === undefined) {
      const parsed = wireRecordV2.safeParse(raw);
      if (!parsed.success) {
        records[i] = { seq: raw.seq, id, value: undefined, problem: { code: 'invalid_record', detail: firstIssue(parsed.error) } };
        continue;
      }
      value = parsed.data;
    }
    const text = encode(value);
    if (text === undefined) {
      records[i] = { seq: raw.seq, id, value: undefined, problem: { code: 'invalid_record', detail: `data: ${UNENCODABLE}` } };
      continue;
    }
    if (text.length > safeLength && Buffer.byteLength(text, 'utf8') > opts.maxRecordBytes) {
      records[i] = { seq: raw.seq, id, value: undefined, problem: { code: 'record_too_large', detail: `over limits.max_record_bytes (${opts.maxRecordBytes})` } };
      continue;
    }
    records[i] = { seq: raw.seq, id, value, json: text };
  }
  if (!isAscending(records)) records.sort((x, y) => x.seq - y.seq);
  const skipped = (b.skipped ?? []).map((s) => ({ from: s.from, to: s.to, reason: s.reason }));
  if (!isAscendingRanges(skipped)) skipped.sort((x, y) => x.from - y.from);
  return { ok: true, batch: { version: 2, site: b.site, agent: b.agent, stream: b.stream, epoch: b.epoch, boot: b.boot, sentAt: b.sent_at, skipped, records } };
}

const UNENCODABLE = 'cannot be encoded again as JSON (nested too deeply)';

/**
 * JSON.parse takes any depth, JSON.stringify recurses and overflows the stack on a value nested
 * some thousands deep (a RangeError that used to escape ingest and end the relay): undefined then.
 */
function encode(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (err) {
    if (err instanceof RangeError) return undefined;
    throw err;
  }
}

function hasSeq(r: unknown): boolean {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return false;
  const seq = (r as { seq?: unknown }).seq;
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0;
}

function seqOnly(r: unknown): unknown {
  return typeof r === 'object' && r !== null && !Array.isArray(r) ? { seq: (r as { seq?: unknown }).seq } : r;
}

function isAscending(records: readonly DecodedRecord[]): boolean {
  for (let i = 1; i < records.length; i++) if (records[i]!.seq < records[i - 1]!.seq) return false;
  return true;
}

function isAscendingRanges(ranges: readonly SkipRange[]): boolean {
  for (let i = 1; i < ranges.length; i++) if (ranges[i]!.from < ranges[i - 1]!.from) return false;
  return true;
}
