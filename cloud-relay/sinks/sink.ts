import type { StoredEvent } from '../store/store.js';

/**
 * The interface every sink implements (webhook.ts, mqtt.ts; the pull API is the third way out and
 * needs none), and the two hooks routing and mapping (cloud-relay/mapping/) plug into: `match`
 * chooses the events a sink gets, `transform` turns an event into what the sink delivers.
 *
 * The delivery loop (delivery.ts) owns order, retries, the cursor and the dead-letter table; a
 * sink only delivers one batch of one stream and says whether it arrived.
 */

/** The stream an event belongs to: one delivery cursor per (sink, stream). */
export interface StreamRef {
  site: string;
  agent: string;
  stream: string;
  epoch: string;
}

/** A stored event with the stream it came from: what `match` and `transform` see. */
export interface SinkEvent extends StoredEvent, StreamRef {}

/** What a transform answers: the value to deliver, or the field at fault and why (the event is dead-lettered). */
export type TransformResult = { ok: true; value: unknown } | { ok: false; field: string; reason: string };

/** Applied before delivery, one event at a time; must not throw (a throw is dead-lettered as field `(transform)`). */
export type SinkTransform = (event: SinkEvent) => TransformResult;

/** Whether a sink gets this event at all; an event it does not match is passed (the cursor moves on). */
export type SinkMatch = (event: SinkEvent) => boolean;

/** The default transform: the stored event as the API serves it, without the stream fields (they travel once per batch). */
export const identityTransform: SinkTransform = (e) => ({
  ok: true,
  value: {
    seq: e.seq,
    id: e.id,
    ts: e.ts,
    source: e.source,
    correlation_id: e.correlation_id,
    source_ts: e.source_ts,
    key: e.key,
    txn: e.txn,
    data: e.data,
    received_at: e.received_at,
  },
});

export const matchAll: SinkMatch = () => true;

/** One event as a sink delivers it: its id (the idempotency key), its seq, and the transformed value. */
export interface OutgoingEvent {
  id: string;
  seq: number;
  correlation_id: string | null;
  value: unknown;
}

/** Events of one stream, in seq order, delivered as one request or one run of publishes. */
export interface DeliveryBatch {
  sink: string;
  stream: StreamRef;
  events: readonly OutgoingEvent[];
}

/**
 * A sink of one configured name. `deliver` resolves once the receiver has the whole batch and
 * throws otherwise (the loop retries with back-off, then dead-letters); it must stop promptly when
 * `signal` aborts (relay stopping). The stream's worker never gives it two batches of one stream
 * at once; a dead-lettered event `dlq retry` marked may go alongside one (it is out of stream order).
 */
export interface Sink {
  readonly name: string;
  readonly type: string;
  deliver(batch: DeliveryBatch, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** A sink with the hooks routing and mapping set on it (identity and match-all by default). */
export interface SinkHooks {
  match: SinkMatch;
  transform: SinkTransform;
}

/**
 * How the relay's composition root gives each configured sink its hooks (routing and mapping build
 * them from the YAML); a sink it leaves out keeps the defaults.
 */
export type SinkHooksFor = (sink: { name: string; type: string }) => Partial<SinkHooks>;
