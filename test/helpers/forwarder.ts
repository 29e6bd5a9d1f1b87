import { forwarderSettings, transportSchema } from '../../agent/config.js';
import { Forwarder, type ForwarderOptions } from '../../agent/transport/forwarder.js';
import type { Outbox } from '../../agent/outbox/outbox.js';
import type { Logger } from '../../common/logger.js';

/** A forwarder with the config schema's transport defaults, overridden per test. */
export function testForwarder(o: { outbox: Outbox; site: string; agent: string; url: string; logger: Logger } & Partial<ForwarderOptions>): Forwarder {
  return new Forwarder({ boot: 'test-boot', ...forwarderSettings(transportSchema.parse({ url: o.url })), ...o });
}
