import { z } from 'zod';

/**
 * Wire format v1, shared by the agent (producer) and the relay (consumer).
 *
 * Topics:
 *   erp-edge/v1/{site}/{agent}/events/{stream}   agent → relay, QoS 1, an EventBatch
 *   erp-edge/v1/{site}/{agent}/ack               relay → agent, QoS 1, an Ack
 */
export const WIRE_VERSION = 1 as const;
export const TOPIC_ROOT = 'erp-edge/v1';

/** Site, agent and stream names become MQTT topic levels: no wildcards, no separators. */
export const topicLevel = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, "_", "." or "-" (it is used as an MQTT topic level)');

export const wireRecord = z.object({
  seq: z.number().int().positive(),
  /** Stable id of the captured record (e.g. file hash + row), for downstream idempotency. */
  id: z.string().min(1),
  /** Capture time, epoch milliseconds. */
  ts: z.number().int().nonnegative(),
  /** Which collector produced it, e.g. "file-drop:orders". */
  source: z.string().min(1),
  correlation_id: z.string().nullable(),
  data: z.unknown(),
});
export type WireRecord = z.infer<typeof wireRecord>;

export const eventBatch = z
  .object({
    v: z.literal(WIRE_VERSION),
    site: topicLevel,
    agent: topicLevel,
    stream: topicLevel,
    /** Random id made when the agent's outbox was created: a wiped outbox gets a new one. */
    epoch: z.string().min(8).max(64),
    /**
     * Seqs up to and including this were dropped at the agent by its `drop_oldest` cap policy
     * and will never be sent; the relay moves its cursor past them and counts them.
     */
    dropped_upto: z.number().int().nonnegative().optional(),
    sent_at: z.number().int().nonnegative(),
    records: z.array(wireRecord).min(1),
  })
  .superRefine((b, ctx) => {
    for (let i = 1; i < b.records.length; i++) {
      if (b.records[i]!.seq !== b.records[i - 1]!.seq + 1) {
        ctx.addIssue({ code: 'custom', path: ['records', i, 'seq'], message: 'records in a batch must have consecutive seqs' });
        return;
      }
    }
  });
export type EventBatch = z.infer<typeof eventBatch>;

export const ack = z.object({
  v: z.literal(WIRE_VERSION),
  stream: topicLevel,
  epoch: z.string(),
  /** Highest seq stored contiguously at the relay for (site, agent, stream, epoch); 0 when none. */
  upto: z.number().int().nonnegative(),
  /** "gap": the batch did not follow `upto`; the agent must resend from upto + 1. */
  status: z.enum(['ok', 'gap']),
});
export type Ack = z.infer<typeof ack>;

export function eventsTopic(site: string, agent: string, stream: string): string {
  return `${TOPIC_ROOT}/${site}/${agent}/events/${stream}`;
}

export function ackTopic(site: string, agent: string): string {
  return `${TOPIC_ROOT}/${site}/${agent}/ack`;
}

export const EVENTS_SUBSCRIPTION = `${TOPIC_ROOT}/+/+/events/#`;

export interface EventsTopicParts {
  site: string;
  agent: string;
  stream: string;
}

/** Parses an events topic; undefined when it is not one. */
export function parseEventsTopic(topic: string): EventsTopicParts | undefined {
  const parts = topic.split('/');
  if (parts.length !== 6 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT || parts[4] !== 'events') return undefined;
  const [, , site, agent, , stream] = parts as [string, string, string, string, string, string];
  return { site, agent, stream };
}

/** Retained presence of an agent: `{v, online, version?, epoch?, at?}`; the broker publishes the offline will. */
export function statusTopic(site: string, agent: string): string {
  return `${TOPIC_ROOT}/${site}/${agent}/status`;
}

/**
 * Retained presence of the relay: `{v, online, id, started_at}`. Agents watch it so that when a
 * relay (re)starts they resend what is unacked at once, instead of after their ack timeout.
 */
export const RELAY_STATUS_TOPIC = `${TOPIC_ROOT}/relay/status`;

export const relayStatus = z.object({
  v: z.literal(WIRE_VERSION),
  online: z.boolean(),
  id: z.string(),
  started_at: z.number().int(),
  /**
   * Wire versions the relay accepts (added with v2; an older relay omits it and speaks v1 only).
   * The status stays in the v1 shape, on the v1 topic, so agents of every version find it.
   */
  wire: z.array(z.number().int().positive()).optional(),
});
export type RelayStatus = z.infer<typeof relayStatus>;
