import { transportSchema } from '../../agent/config.js';
import { Forwarder, type ForwarderOptions } from '../../agent/transport/forwarder.js';
import type { Outbox } from '../../agent/outbox/outbox.js';
import type { Logger } from '../../common/logger.js';

/** A forwarder with the config schema's transport defaults, overridden per test. */
export function testForwarder(o: { outbox: Outbox; site: string; agent: string; url: string; logger: Logger } & Partial<ForwarderOptions>): Forwarder {
  const t = transportSchema.parse({ url: o.url });
  return new Forwarder({
    boot: 'test-boot',
    batchMaxRecords: t.batch_max_records,
    batchMaxBytes: t.batch_max_bytes,
    maxInflight: t.max_inflight,
    ackTimeoutMs: t.ack_timeout,
    keepaliveMs: t.keepalive,
    reconnectPeriodMs: t.reconnect_period,
    ...o,
  });
}
