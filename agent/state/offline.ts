import { existsSync } from 'node:fs';
import type { LoadedAgentConfig } from '../config.js';
import { streamOf } from '../host/collector.js';
import { emptyWriterStats } from '../host/writer.js';
import { readOutboxStatus } from '../outbox/outbox.js';
import { AGENT_VERSION } from '../version.js';
import { exceptionsOf, mergeStreams, type AgentSnapshot } from './agent-state.js';
import { readDisk } from './disk.js';

/**
 * What `status` shows when the agent is not running: every configured collector (stopped) and
 * stream, with the backlog and dead letters read from the outbox file (read-only).
 */
export function offlineSnapshot(cfg: LoadedAgentConfig, now = Date.now()): AgentSnapshot {
  const file = existsSync(cfg.outboxPath) ? readOutboxStatus(cfg.outboxPath) : undefined;
  const collectors = cfg.collectors.map((c) => ({
    name: c.name,
    type: c.type,
    stream: streamOf(c),
    state: 'stopped' as const,
    since: now,
    failingSince: null,
    lastError: null,
    errorCount: 0,
    restarts: 0,
    retryAt: null,
    counters: {},
    exceptions: [],
    writer: emptyWriterStats(),
  }));
  const epoch = file?.epoch ?? '(no outbox yet)';
  const deadLetters = file?.deadLetters ?? { count: 0, oldestAt: null };
  return {
    site: cfg.site,
    agent: cfg.agent,
    version: AGENT_VERSION,
    running: false,
    boot: null,
    pid: null,
    startedAt: null,
    at: now,
    epoch,
    outboxPath: cfg.outboxPath,
    collectors,
    streams: mergeStreams(file?.streams ?? [], collectors.map((c) => ({ stream: c.stream, collector: c.name })), epoch),
    outbox: null,
    deadLetters,
    forwarder: null,
    exceptions: exceptionsOf([], deadLetters),
    disk: readDisk(cfg.data_dir, cfg.outboxPath),
  };
}
