import { defaultOutboxConfig } from '../../agent/config.js';
import { sourceOf, streamOf, type BaseCollectorConfig } from '../../agent/host/collector.js';
import { CaptureWriter, type Writer } from '../../agent/host/writer.js';
import type { Outbox } from '../../agent/outbox/outbox.js';
import { createLogger } from '../../common/logger.js';

/**
 * A collector's writer as the supervisor builds it (agent/host: a CaptureWriter on the outbox with
 * the config's record size limit, scoped to one instance's stop signal), for scenarios that drive
 * a collector's code in-process, without the agent around it.
 */
export function benchWriter(outbox: Outbox, cfg: BaseCollectorConfig, signal: AbortSignal): { writer: Writer; capture: CaptureWriter } {
  const capture = new CaptureWriter({
    outbox,
    source: sourceOf(cfg),
    stream: streamOf(cfg),
    maxRecordBytes: defaultOutboxConfig().max_record_bytes,
    logger: createLogger({ level: 'silent' }),
  });
  return { writer: capture.forInstance(signal), capture };
}
