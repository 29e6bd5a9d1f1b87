import { ackTopic, WIRE_VERSION, type Ack } from '../../common/wire-v1.js';
import { ackTopicV2, WIRE_V2, type AckV2 } from '../../common/wire-v2.js';
import type { BatchOutcome } from './apply.js';
import type { DecodedBatch } from './decode.js';

/**
 * The answer to a batch, in the batch's wire version, on that version's ack topic.
 * v1 knows only ok and gap: a v1 batch never yields another status (apply skips v1 conflicts and
 * v1 has no per-record rejection).
 */
export function ackFor(b: DecodedBatch, o: BatchOutcome, now: number = Date.now()): { topic: string; ack: Ack | AckV2 } {
  if (b.version === 1) {
    const status = o.status === 'gap' ? 'gap' : 'ok';
    return { topic: ackTopic(b.site, b.agent), ack: { v: WIRE_VERSION, stream: b.stream, epoch: b.epoch, upto: o.upto, status } };
  }
  // The relay's time and the batch's own sent_at let the agent estimate its clock offset (NTP-style).
  const ack: AckV2 = { v: WIRE_V2, stream: b.stream, epoch: b.epoch, upto: o.upto, status: o.status, at: now, ...(b.sentAt !== undefined ? { sent_at: b.sentAt } : {}) };
  if (o.status === 'rejected' || o.status === 'conflict') {
    ack.ranges = o.ranges ?? [];
    ack.ids = o.ids ?? [];
    if (o.reason !== undefined) ack.reason = o.reason;
  }
  return { topic: ackTopicV2(b.site, b.agent), ack };
}
