import { resolve } from 'node:path';
import type { Logger } from '../../common/logger.js';
import { createLogger } from '../../common/logger.js';
import { defaultOutboxConfig } from '../../agent/config.js';
import { sourceOf, streamOf, type BaseCollectorConfig, type CollectorContext } from '../../agent/host/collector.js';
import { CaptureWriter } from '../../agent/host/writer.js';
import type { Outbox } from '../../agent/outbox/outbox.js';

export interface TestHost {
  ctx: CollectorContext;
  writer: CaptureWriter;
  abort: AbortController;
  /** What the collector reported through ctx.fail. */
  failures: unknown[];
}

/** A collector context as the supervisor builds it (a real capture writer on `outbox`), without the supervisor. */
export function testHost(outbox: Outbox, cfg: BaseCollectorConfig, baseDir: string, opts: { maxRecordBytes?: number; logger?: Logger } = {}): TestHost {
  const logger = opts.logger ?? createLogger({ level: 'silent' });
  const writer = new CaptureWriter({
    outbox,
    source: sourceOf(cfg),
    stream: streamOf(cfg),
    maxRecordBytes: opts.maxRecordBytes ?? defaultOutboxConfig().max_record_bytes,
    logger,
  });
  const abort = new AbortController();
  const failures: unknown[] = [];
  const ctx: CollectorContext = {
    name: cfg.name,
    writer: writer.forInstance(abort.signal),
    logger,
    signal: abort.signal,
    resolvePath: (p) => resolve(baseDir, p),
    fail: (err) => failures.push(err),
  };
  return { ctx, writer, abort, failures };
}
