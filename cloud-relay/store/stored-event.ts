/** A stored record as the API serves it: every field present (null when absent). */
export interface StoredEvent {
  seq: number;
  id: string;
  ts: number;
  source: string;
  correlation_id: string | null;
  source_ts: number | null;
  key: string | null;
  txn: string | null;
  data: unknown;
  received_at: number;
}

/** A record as both stores keep it in a segment's JSON: fields absent on the wire are absent here too. */
export interface SegmentRecord {
  seq: number;
  id: string;
  ts: number;
  source: string;
  correlation_id?: string | null;
  source_ts?: number | null;
  key?: string | null;
  txn?: string | null;
  data?: unknown;
}

/** The records of one stored segment after seq `after`, as served: every field, null when absent. */
export function* segmentEvents(records: string, receivedAt: number, after: number): Generator<StoredEvent> {
  for (const r of JSON.parse(records) as SegmentRecord[]) {
    if (r.seq <= after) continue;
    yield {
      seq: r.seq,
      id: r.id,
      ts: r.ts,
      source: r.source,
      correlation_id: r.correlation_id ?? null,
      source_ts: r.source_ts ?? null,
      key: r.key ?? null,
      txn: r.txn ?? null,
      data: r.data ?? null,
      received_at: receivedAt,
    };
  }
}
