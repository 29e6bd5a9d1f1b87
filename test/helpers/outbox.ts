import { defaultOutboxConfig, outboxOptions } from '../../agent/config.js';
import type { OutboxOptions } from '../../agent/outbox/outbox.js';

/** Outbox options with the config schema's defaults (the one place they live), overridden per test. */
export function testOutboxOptions(path: string, overrides: Partial<OutboxOptions> = {}): OutboxOptions {
  return { ...outboxOptions(path, defaultOutboxConfig()), ...overrides };
}
