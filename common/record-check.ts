import { MAX_ID_LENGTH, MAX_KEY_LENGTH, type WireRecordV2 } from './wire-v2.js';

/**
 * A quick path past zod for the common case, a valid record: zod's per-record parse is a large
 * share of the cost per event, at the relay (every record it receives) and at the agent (every
 * record the capture writer lets in). These checks say yes only when the record certainly passes
 * the schema; otherwise zod decides and names the problem. The schemas stay the one definition:
 * test/common/record-check.test.ts probes every field of captureRecord and wireRecordV2 with values
 * on both sides of each limit and fails when a check and its schema disagree (a field added, a
 * limit changed).
 */

/** The fields of wireRecordV2 these checks know (the test compares them with the schema's shape). */
export const CHECKED_RECORD_FIELDS = ['id', 'source', 'ts', 'source_ts', 'key', 'txn', 'correlation_id', 'data', 'seq'] as const;

/**
 * Whether `k` is one of CHECKED_RECORD_FIELDS. A switch rather than a Set: it runs for every key of
 * every record (at the relay, ~6 keys a record), and comparing a for-in key (an internalized string)
 * with these literals costs less than a hash lookup. The test holds it to CHECKED_RECORD_FIELDS.
 */
export function isCheckedField(k: string): boolean {
  switch (k) {
    case 'id':
    case 'source':
    case 'ts':
    case 'source_ts':
    case 'key':
    case 'txn':
    case 'correlation_id':
    case 'data':
    case 'seq':
      return true;
    default:
      return false;
  }
}

/** captureRecord's `source` limit (a literal in common/wire-v2.ts). */
const MAX_SOURCE_LENGTH = 200;

function isEpochMs(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** zod measures strings in code points: a surrogate pair counts once, a lone surrogate as one. */
function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    if ((s.charCodeAt(i) & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n--;
      i++;
    }
  }
  return n;
}

function isText(v: unknown, min: number, max: number): v is string {
  if (typeof v !== 'string') return false;
  const units = v.length;
  // A code point is one or two units: only a string longer than `max` units, or shorter than
  // twice `min`, needs counting.
  if (units < min) return false;
  if (units < min * 2 && codePoints(v) < min) return false;
  return units <= max || codePoints(v) <= max;
}

/** The optional fields: absent, undefined, null or valid. */
function optionalOk(source_ts: unknown, key: unknown, txn: unknown, correlation_id: unknown): boolean {
  return (
    (source_ts == null || isEpochMs(source_ts)) &&
    (key == null || isText(key, 1, MAX_KEY_LENGTH)) &&
    (txn == null || isText(txn, 1, MAX_ID_LENGTH)) &&
    (correlation_id == null || isText(correlation_id, 0, MAX_ID_LENGTH))
  );
}

/** Whether these capture fields certainly pass `captureRecord` (any `data` but undefined does). No allocation. */
export function captureFieldsOk(id: unknown, source: unknown, ts: unknown, source_ts: unknown, key: unknown, txn: unknown, correlation_id: unknown): boolean {
  return isText(id, 1, MAX_ID_LENGTH) && isText(source, 1, MAX_SOURCE_LENGTH) && isEpochMs(ts) && optionalOk(source_ts, key, txn, correlation_id);
}

/** Returns the record exactly as `wireRecordV2.parse` would (known fields only), or undefined: then ask zod. */
export function checkRecordV2(r: unknown): WireRecordV2 | undefined {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return undefined;
  const o = r as Record<string, unknown>;
  const { id, source, ts, seq, source_ts, key, txn, correlation_id } = o;
  if (!captureFieldsOk(id, source, ts, source_ts, key, txn, correlation_id)) return undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) return undefined;
  if (o.data === undefined) return undefined;
  // Only known fields (what agents send): the record itself is what zod would return.
  let known = 0;
  for (const k in o) {
    if (!isCheckedField(k)) {
      known = -1;
      break;
    }
    known++;
  }
  if (known > 0) return o as WireRecordV2;
  const out = { id, source, ts, data: o.data, seq } as WireRecordV2;
  // As zod: a key present stays present (with its value, undefined included).
  if ('source_ts' in o) out.source_ts = source_ts as number | null | undefined;
  if ('key' in o) out.key = key as string | null | undefined;
  if ('txn' in o) out.txn = txn as string | null | undefined;
  if ('correlation_id' in o) out.correlation_id = correlation_id as string | null | undefined;
  return out;
}
