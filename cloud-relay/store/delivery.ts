import type { StoredEvent } from './stored-event.js';

/**
 * What the sinks keep in the store, beside the events they deliver (both stores implement it:
 * sqlite-delivery.ts, postgres-delivery.ts):
 *  - a delivery cursor per (sink, stream epoch): the highest seq the sink has passed (delivered,
 *    dead-lettered, or not matched), with a lease (owner, until) so that of several relay instances
 *    sharing a PostgreSQL store only one delivers a given (sink, stream) at a time. Advancing checks
 *    the owner (a fence): an instance whose lease was taken over cannot move the cursor.
 *  - the dead-letter table: events a sink gave up on, with the last error (and the field, for a
 *    transform failure), `dead` until `dlq retry` marks them `retry` for the sink to deliver again.
 *  - retention: segments older than an age are deleted once every sink's cursor passed them and no
 *    dead-letter row points into them.
 */

/** The lease row of a sink's dead-letter retries (one deliverer per sink): stream id 0 is no stream. */
export const RETRY_LEASE_STREAM = 0;

/** A stream epoch with stored seqs the sink has not passed. */
export interface PendingStream {
  id: number;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  /** The stream's highest seq held contiguously when listed. */
  last_seq: number;
  /** The sink's cursor (0 when it has none yet). */
  delivered_seq: number;
}

export interface CursorRow {
  sink: string;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  last_seq: number;
  delivered_seq: number;
  updated_at: number;
}

/** An event the sink gives up on. */
export interface DeadLetterInput {
  seq: number;
  event_id: string;
  attempts: number;
  error: string;
  /** The field a transform named, when it refused the event. */
  field: string | null;
}

export type DeadLetterStatus = 'dead' | 'retry';

export interface DeadLetterRow {
  id: number;
  sink: string;
  stream_id: number;
  site: string;
  agent: string;
  stream: string;
  epoch: string;
  seq: number;
  event_id: string;
  status: DeadLetterStatus;
  attempts: number;
  error: string;
  field: string | null;
  /** When it was (last) dead-lettered. */
  dead_at: number;
  updated_at: number;
}

/** Which dead-letter rows a `dlq` command acts on; absent fields match everything. */
export interface DeadLetterFilter {
  sink?: string | undefined;
  site?: string | undefined;
  agent?: string | undefined;
  stream?: string | undefined;
  status?: DeadLetterStatus | undefined;
  ids?: readonly number[] | undefined;
}

export interface DeadLetterStats {
  sink: string;
  /** Rows dead or waiting for a retry. */
  count: number;
  retrying: number;
  /** dead_at of the oldest row, null when none. */
  oldest_at: number | null;
}

export interface PruneResult {
  segments: number;
  records: number;
}

export interface DeliveryStore {
  /**
   * Stream epochs holding seqs above the sink's cursor (at most `limit`, oldest activity first); of
   * one stream's epochs only the earliest pending one, so a new epoch is delivered after the last.
   */
  pendingStreams(sink: string, limit: number): Promise<PendingStream[]>;
  /**
   * Takes (or renews) the lease of (sink, stream) for `owner` until now + leaseMs, creating the
   * cursor at 0; answers the cursor, or null while another owner's lease runs.
   */
  claim(sink: string, streamId: number, owner: string, now: number, leaseMs: number): Promise<number | null>;
  /** Gives the lease up (only the owner's). */
  release(sink: string, streamId: number, owner: string): Promise<void>;
  /** Stored events of a stream epoch after `after`, in seq order (records held as duplicates or skipped are absent). */
  read(streamId: number, after: number, limit: number): Promise<StoredEvent[]>;
  /**
   * In one transaction: moves the cursor up to `deliveredSeq` (never down), renews the lease and
   * stores the dead letters. False (nothing written) when `owner` no longer holds the lease.
   */
  advance(sink: string, streamId: number, owner: string, deliveredSeq: number, dead: readonly DeadLetterInput[], now: number, leaseMs: number): Promise<boolean>;
  cursors(): Promise<CursorRow[]>;
  listDeadLetters(f: DeadLetterFilter, limit: number): Promise<DeadLetterRow[]>;
  /** Marks matching `dead` rows `retry`; answers how many. */
  retryDeadLetters(f: DeadLetterFilter, now: number): Promise<number>;
  /** Deletes matching rows; answers how many. */
  discardDeadLetters(f: DeadLetterFilter): Promise<number>;
  /** After a retry: delivered (the row goes) or dead again with the new error. */
  settleRetry(id: number, delivered: boolean, failure: { attempts: number; error: string; field: string | null } | null, now: number): Promise<void>;
  deadLetterStats(): Promise<DeadLetterStats[]>;
  /**
   * Deletes up to `limit` segments received before `before` that every sink of `sinks` has passed
   * (a sink without a cursor on the stream has passed nothing) and no dead-letter row points into.
   */
  prune(before: number, sinks: readonly string[], limit: number): Promise<PruneResult>;
}

/**
 * The WHERE clause of a dead-letter filter over `dead_letters d JOIN streams s`, for either store:
 * `mark(n)` spells the n-th parameter (`?` or `$n`). Always a clause (`true` when the filter is empty).
 */
export function deadLetterWhere(f: DeadLetterFilter, mark: (n: number) => string, firstParam = 1): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  const eq = (column: string, v: unknown) => {
    params.push(v);
    parts.push(`${column} = ${mark(firstParam + params.length - 1)}`);
  };
  if (f.sink !== undefined) eq('d.sink', f.sink);
  if (f.site !== undefined) eq('s.site', f.site);
  if (f.agent !== undefined) eq('s.agent', f.agent);
  if (f.stream !== undefined) eq('s.stream', f.stream);
  if (f.status !== undefined) eq('d.status', f.status);
  if (f.ids !== undefined) {
    // An empty id list matches nothing (never everything).
    if (f.ids.length === 0) parts.push('1 = 0');
    for (const id of f.ids) params.push(id);
    if (f.ids.length > 0) parts.push(`d.id IN (${f.ids.map((_, i) => mark(firstParam + params.length - f.ids!.length + i)).join(', ')})`);
  }
  return { sql: parts.length === 0 ? '1 = 1' : parts.join(' AND '), params };
}
