/**
 * Health messages across versions (#9): the fields 0.4 adds are optional, so a relay still on the
 * 0.3 schema accepts a 0.4 agent's health (zod objects strip unknown keys), and a 0.4 relay accepts
 * a 0.3 agent's.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { health } from '../../common/wire-v2.js';

/** The health schema as released in 0.3, frozen here: what relays in the field validate with. */
const epochMs = z.number().int().nonnegative();
const health04 = z.object({
  v: z.literal(2),
  boot: z.string().min(1).max(64),
  at: epochMs,
  uptime_s: z.number().nonnegative(),
  streams: z.array(
    z.object({
      stream: z.string(),
      epoch: z.string().optional(),
      pending: z.number().int().nonnegative(),
      pending_bytes: z.number().int().nonnegative(),
      oldest_pending_at: epochMs.nullable(),
      last_seq: z.number().int().nonnegative(),
      acked_seq: z.number().int().nonnegative(),
      last_ack_at: epochMs.nullable(),
      dropped: z.number().int().nonnegative(),
      dead_letter: z.number().int().nonnegative(),
    }),
  ),
  collectors: z.array(
    z.object({
      name: z.string(),
      type: z.string(),
      stream: z.string().optional(),
      state: z.string(),
      since: epochMs.optional(),
      last_error: z.object({ message: z.string(), code: z.string().optional(), at: epochMs }).nullable(),
      error_count: z.number().int().nonnegative(),
      restarts: z.number().int().nonnegative().optional(),
    }),
  ),
  exceptions: z.array(z.object({ kind: z.string().min(1).max(64), count: z.number().int().nonnegative(), oldest_at: epochMs.nullable() })),
  outbox: z
    .object({
      bytes: z.number().nonnegative(),
      events: z.number().nonnegative(),
      max_bytes: z.number().nonnegative().nullable(),
      max_events: z.number().nonnegative().nullable(),
      full: z.boolean(),
    })
    .optional(),
  forwarder: z
    .object({
      connected: z.boolean(),
      wire: z.number().int().positive(),
      in_flight: z.number().int().nonnegative(),
      last_ack_at: epochMs.nullable(),
      capture_rate: z.number().nonnegative(),
      forward_rate: z.number().nonnegative(),
    })
    .optional(),
  process: z.object({ rss_bytes: z.number().nonnegative(), cpu_percent: z.number().nonnegative().optional() }).optional(),
});

const at = 1_760_000_000_000;

/** What a 0.3 agent sends. */
const oldShape = {
  v: 2,
  boot: 'b-04',
  at,
  uptime_s: 3600,
  streams: [{ stream: 'orders', epoch: 'e1234567', pending: 12, pending_bytes: 3400, oldest_pending_at: at - 90_000, last_seq: 512, acked_seq: 500, last_ack_at: at - 1_000, dropped: 0, dead_letter: 1 }],
  collectors: [{ name: 'orders', type: 'file-drop', stream: 'orders', state: 'backing-off', since: at - 5_000, last_error: { message: 'EACCES', code: 'EACCES', at: at - 5_000 }, error_count: 3, restarts: 2 }],
  exceptions: [{ kind: 'file_error', count: 2, oldest_at: at - 86_400_000 }],
  outbox: { bytes: 3400, events: 12, max_bytes: 1e9, max_events: 1e7, full: false },
  forwarder: { connected: true, wire: 2, in_flight: 1, last_ack_at: at - 1_000, capture_rate: 4.5, forward_rate: 4.4 },
  process: { rss_bytes: 80e6, cpu_percent: 1.5 },
};

/** What a 0.4 agent sends: every added field filled. */
const newShape = {
  ...oldShape,
  boot: 'b-05',
  streams: [{ ...oldShape.streams[0]!, oldest_pending_age_s: 90 }],
  collectors: [
    { ...oldShape.collectors[0]!, failing_since: at - 60_000, last_error: { ...oldShape.collectors[0]!.last_error, age_s: 5 }, records: 10_000, error_files: 2 },
  ],
  outbox: { ...oldShape.outbox, dropped: 0, file_bytes: 8_192_000 },
  forwarder: { ...oldShape.forwarder, last_ack_age_s: 1, connected_changed_at: at - 3_000_000 },
  process: { ...oldShape.process, heap_used_bytes: 30e6 },
  disk: { free_bytes: 50e9, total_bytes: 200e9 },
};

describe('health message compatibility', () => {
  it('a 0.3 agent health validates with the current schema', () => {
    expect(health.safeParse(oldShape).success).toBe(true);
  });

  it('a 0.4 agent health validates with the current schema, keeping the added fields', () => {
    const r = health.parse(newShape);
    expect(r.disk).toEqual({ free_bytes: 50e9, total_bytes: 200e9 });
    expect(r.collectors[0]).toMatchObject({ error_files: 2, failing_since: at - 60_000, records: 10_000 });
    expect(r.streams[0]!.oldest_pending_age_s).toBe(90);
  });

  it('a 0.4 agent health validates with the 0.3 schema (a relay not yet upgraded), which drops what it does not know', () => {
    const r = health04.parse(newShape);
    expect(r).toEqual(health04.parse({ ...oldShape, boot: 'b-05' }));
  });

  it('the frozen 0.3 schema still matches the current one on a 0.3 message (the copy has not drifted)', () => {
    expect(health.parse(oldShape)).toEqual(health04.parse(oldShape));
  });
});
