import type { EventBatch, WireRecord } from '../../common/wire-v1.js';
import type { SkippedRange } from '../../common/wire-v2.js';

/**
 * Event batches as agents send them, v1 and v2, for the relay's tests. Records carry a `tag` in
 * their data so that two sends of one seq can be told apart, and ids `<idPrefix><seq>`.
 */
export const SITE = 'plant-7';
export const AGENT = 'edge-1';
export const EPOCH_A = 'epoch-aaaaaaaa';
export const EPOCH_B = 'epoch-bbbbbbbb';

export interface RecordOpts {
  tag?: string;
  /** Record ids are `${idPrefix}${seq}` (default `orders.csv#`). */
  idPrefix?: string;
}

export interface BatchOpts extends RecordOpts {
  site?: string;
  agent?: string;
  stream?: string;
  epoch?: string;
}

export function recordV1(seq: number, o: RecordOpts = {}): WireRecord {
  return {
    seq,
    id: `${o.idPrefix ?? 'orders.csv#'}${seq}`,
    ts: 1_700_000_000_000 + seq,
    source: 'file-drop:orders',
    correlation_id: seq % 2 === 0 ? `po-${seq}` : null,
    data: { seq, tag: o.tag ?? 'first', lines: [{ sku: `SKU-${seq}`, qty: seq * 2 }] },
  };
}

export function batchV1(from: number, to: number, o: BatchOpts & { dropped_upto?: number } = {}): EventBatch {
  const records: WireRecord[] = [];
  for (let s = from; s <= to; s++) records.push(recordV1(s, o));
  return {
    v: 1,
    site: o.site ?? SITE,
    agent: o.agent ?? AGENT,
    stream: o.stream ?? 'orders',
    epoch: o.epoch ?? EPOCH_A,
    ...(o.dropped_upto !== undefined ? { dropped_upto: o.dropped_upto } : {}),
    sent_at: 1_700_000_100_000,
    records,
  };
}

/** A v2 record with every optional field set on even seqs (absent on odd ones, as agents omit them). */
export function recordV2(seq: number, o: RecordOpts = {}): Record<string, unknown> {
  const r: Record<string, unknown> = {
    seq,
    id: `${o.idPrefix ?? 'orders.csv#'}${seq}`,
    ts: 1_700_000_000_000 + seq,
    source: 'file-drop:orders',
    correlation_id: seq % 2 === 0 ? `file:${seq}` : null,
    data: { seq, tag: o.tag ?? 'first' },
  };
  if (seq % 2 === 0) {
    r.source_ts = 1_699_999_000_000 + seq;
    r.key = `SO-${seq}|1`;
    r.txn = `txn-${Math.floor(seq / 10)}`;
  }
  return r;
}

export interface BatchV2 {
  v: 2;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  boot?: string;
  sent_at: number;
  skipped?: SkippedRange[];
  records: Array<Record<string, unknown>>;
}

export function batchV2(from: number, to: number, o: BatchOpts & { skipped?: SkippedRange[] } = {}): BatchV2 {
  const records: Array<Record<string, unknown>> = [];
  for (let s = from; s <= to; s++) records.push(recordV2(s, o));
  return {
    v: 2,
    site: o.site ?? SITE,
    agent: o.agent ?? AGENT,
    stream: o.stream ?? 'orders',
    epoch: o.epoch ?? EPOCH_A,
    boot: 'boot-1',
    sent_at: 1_700_000_100_000,
    ...(o.skipped ? { skipped: o.skipped } : {}),
    records,
  };
}

/** A batch of only skipped ranges (records dead-lettered at the tail of a stream). */
export function skipOnlyV2(skipped: SkippedRange[], o: BatchOpts = {}): BatchV2 {
  return { ...batchV2(1, 0, o), skipped };
}

/** What a served event holds for a sent v2 record: every field, null when absent. */
export function servedV2(r: Record<string, unknown>): Record<string, unknown> {
  return {
    seq: r.seq,
    id: r.id,
    ts: r.ts,
    source: r.source,
    correlation_id: r.correlation_id ?? null,
    source_ts: r.source_ts ?? null,
    key: r.key ?? null,
    txn: r.txn ?? null,
    data: r.data ?? null,
  };
}

/** The same for a v1 record (v2's fields null). */
export function servedV1(r: WireRecord): Record<string, unknown> {
  return { ...r, source_ts: null, key: null, txn: null };
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
