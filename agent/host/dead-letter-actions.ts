import type { Logger } from '../../common/logger.js';
import type { DeadLetter, DeadLetterQuery } from '../outbox/dead-letter.js';
import type { EncodedRecord, Outbox } from '../outbox/outbox.js';
import { encodeCapture } from './writer.js';

/**
 * The operator's actions on dead-lettered records (`edge-agent deadletter resend|discard`), run by
 * the agent itself when it is running (control socket) and directly on the outbox when it is not.
 */
export interface ResendResult {
  resent: number;
  /** Records that still fail the capture rules (they stay in the table). */
  refused: { id: number; reason: string }[];
  streams: Record<string, number>;
}

/**
 * Appends the selected records again as new records (new seqs, same ids, same capture data) and
 * deletes them from the dead-letter table in the same transaction. They pass the capture writer's
 * rules again first: a record refused at capture for good (say `ts: NaN`) stays where it is.
 */
export function resendDeadLetters(outbox: Outbox, q: DeadLetterQuery, maxRecordBytes: number, log: Logger): ResendResult {
  const rows = outbox.deadLetters.list({ ...q, limit: q.limit ?? Number.MAX_SAFE_INTEGER });
  const byStream = new Map<string, { ids: number[]; records: EncodedRecord[] }>();
  const refused: ResendResult['refused'] = [];
  for (const row of rows) {
    const checked = reencode(row, maxRecordBytes);
    if ('reason' in checked) {
      refused.push({ id: row.id, reason: checked.reason });
      continue;
    }
    const g = byStream.get(row.stream) ?? { ids: [], records: [] };
    g.ids.push(row.id);
    g.records.push(checked.encoded);
    byStream.set(row.stream, g);
  }
  const streams: Record<string, number> = {};
  let resent = 0;
  for (const [stream, g] of byStream) {
    outbox.appendEncoded(stream, g.records, [], { consumeDeadLetters: g.ids });
    streams[stream] = g.records.length;
    resent += g.records.length;
  }
  log.warn({ resent, refused: refused.length, streams }, 'dead-lettered records resent as new records');
  return { resent, refused, streams };
}

export function discardDeadLetters(outbox: Outbox, q: DeadLetterQuery, log: Logger): DeadLetter[] {
  const gone = outbox.deadLetters.discard(q);
  // Nothing leaves without a trace: which records, from where, and why they had been refused.
  log.warn(
    { discarded: gone.length, records: gone.slice(0, 100).map((d) => ({ stream: d.stream, seq: d.seq, id: d.recordId, reason: d.reason })) },
    'dead-lettered records discarded by the operator',
  );
  return gone;
}

function reencode(row: DeadLetter, maxRecordBytes: number): { encoded: EncodedRecord } | { reason: string } {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(row.payload) as Record<string, unknown>;
  } catch {
    return { reason: 'stored record is not JSON' };
  }
  if (record.preview_only === true) return { reason: 'only a preview of this record could be kept (JSON cannot carry its data): it cannot be resent' };
  delete record.seq;
  const r = encodeCapture(record as Record<string, unknown> & { ts: unknown }, 0, maxRecordBytes);
  return 'problem' in r ? { reason: `${r.problem.field}: ${r.problem.message}` } : { encoded: r };
}
