import { MAX_ID_LENGTH, MAX_KEY_LENGTH, type WireRecordV2 } from '../../common/wire-v2.js';

/**
 * A quick path past zod for the common case, a valid v2 record: zod's per-record parse is a
 * large share of the relay's cost per event. It returns the record exactly as
 * `wireRecordV2.parse` would (known fields only) when the record certainly passes the schema,
 * and undefined otherwise; then zod decides and names the problem. The schema stays the one
 * definition: test/cloud-relay/ingest/record-check.test.ts probes every field of wireRecordV2
 * with values on both sides of each limit and fails when this check and the schema disagree
 * (a field added, a limit changed).
 */

/** The fields of wireRecordV2 this check knows (the test compares them with the schema's shape). */
export const CHECKED_RECORD_FIELDS = ['id', 'source', 'ts', 'source_ts', 'key', 'txn', 'correlation_id', 'data', 'seq'] as const;

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

export function checkRecordV2(r: unknown): WireRecordV2 | undefined {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return undefined;
  const o = r as Record<string, unknown>;
  const { id, source, ts, seq } = o;
  if (!isText(id, 1, MAX_ID_LENGTH) || !isText(source, 1, MAX_SOURCE_LENGTH) || !isEpochMs(ts)) return undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) return undefined;
  if (!('data' in o)) return undefined;
  const out: WireRecordV2 = { id, source, ts, data: o.data, seq };
  const { source_ts, key, txn, correlation_id } = o;
  if (source_ts !== undefined) {
    if (source_ts !== null && !isEpochMs(source_ts)) return undefined;
    out.source_ts = source_ts;
  } else if ('source_ts' in o) out.source_ts = undefined; // as zod: a key present stays present
  if (key !== undefined) {
    if (key !== null && !isText(key, 1, MAX_KEY_LENGTH)) return undefined;
    out.key = key;
  } else if ('key' in o) out.key = undefined; // as zod: a key present stays present
  if (txn !== undefined) {
    if (txn !== null && !isText(txn, 1, MAX_ID_LENGTH)) return undefined;
    out.txn = txn;
  } else if ('txn' in o) out.txn = undefined; // as zod: a key present stays present
  if (correlation_id !== undefined) {
    if (correlation_id !== null && !isText(correlation_id, 0, MAX_ID_LENGTH)) return undefined;
    out.correlation_id = correlation_id;
  } else if ('correlation_id' in o) out.correlation_id = undefined; // as zod: a key present stays present
  return out;
}
