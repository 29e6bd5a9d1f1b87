import { cpuUsage, memoryUsage } from 'node:process';
import { EXCEPTION_KINDS, WIRE_V2, type ExceptionCount, type Health } from '../../common/wire-v2.js';
import type { CollectorStatus } from '../host/supervisor.js';
import type { Outbox, StreamStatus } from '../outbox/outbox.js';
import type { ForwarderStats } from '../transport/forwarder.js';
import type { DiskFigures, DiskGauge } from './disk.js';

/**
 * One place that gathers what the agent knows about itself: collector states and stats, forwarder
 * figures and outbox usage per stream. `edge-agent status` prints it, health messages carry it, and
 * the fleet view (#9) builds on it. It only reads: it never changes a collector, the outbox or the
 * forwarder.
 */
export interface StreamSnapshot {
  stream: string;
  epoch: string;
  /** Collectors writing to it (from the config). */
  collectors: string[];
  pending: number;
  pendingBytes: number;
  oldestPendingAt: number | null;
  lastSeq: number;
  ackedSeq: number;
  lastAckAt: number | null;
  dropped: number;
  deadLetters: number;
}

export interface AgentSnapshot {
  site: string;
  agent: string;
  version: string;
  /** False when read from the outbox file because the agent is not running. */
  running: boolean;
  boot: string | null;
  pid: number | null;
  startedAt: number | null;
  at: number;
  epoch: string;
  outboxPath: string;
  collectors: CollectorStatus[];
  streams: StreamSnapshot[];
  outbox: {
    bytes: number;
    events: number;
    maxBytes: number;
    maxEvents: number;
    capPolicy: string;
    full: boolean;
    dropped: number;
    waitingAppends: number;
    /** Appends wait for the disk (at the outbox's floor, or a write refused with SQLITE_FULL) since, and why (absent when read from the file). */
    diskFull?: { since: number; message: string } | null;
  } | null;
  deadLetters: { count: number; oldestAt: number | null };
  forwarder: (ForwarderStats & { captureRate: number; forwardRate: number }) | null;
  exceptions: ExceptionCount[];
  /** Free space on the data folder's disk and the outbox files' size; null when it cannot be read. */
  disk: DiskFigures | null;
}

export interface AgentStateSources {
  site: string;
  agent: string;
  version: string;
  boot: string;
  startedAt: number;
  outbox: Outbox;
  collectors: () => CollectorStatus[];
  forwarder: () => ForwarderStats;
  /** Streams the config names (shown before their first record). */
  configuredStreams: { stream: string; collector: string }[];
  disk: DiskGauge;
}

/** Capture and forward rates over the last minute, from counters sampled every few seconds. */
class RateMeter {
  private readonly samples: { at: number; captured: number; acked: number }[] = [];

  sample(at: number, captured: number, acked: number): void {
    this.samples.push({ at, captured, acked });
    while (this.samples.length > 2 && at - this.samples[0]!.at > 60_000) this.samples.shift();
  }

  rates(): { capture: number; forward: number } {
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    if (!a || !b || b.at <= a.at) return { capture: 0, forward: 0 };
    const s = (b.at - a.at) / 1000;
    return { capture: (b.captured - a.captured) / s, forward: (b.acked - a.acked) / s };
  }
}

export class AgentState {
  private readonly meter = new RateMeter();
  private readonly timer: NodeJS.Timeout;
  private lastCpu = { at: Date.now(), usage: cpuUsage() };

  constructor(private readonly src: AgentStateSources) {
    this.sampleRates();
    this.timer = setInterval(() => this.sampleRates(), 5_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sampleRates(): void {
    const captured = this.src.collectors().reduce((n, c) => n + c.writer.records, 0);
    this.meter.sample(Date.now(), captured, this.src.forwarder().recordsAcked);
  }

  snapshot(): AgentSnapshot {
    const { outbox } = this.src;
    const collectors = this.src.collectors();
    const usage = outbox.usage();
    const streams = mergeStreams(outbox.streamStatus(), this.src.configuredStreams, outbox.epoch);
    const dead = outbox.deadLetters.summary();
    const deadLetters = { count: dead.reduce((n, d) => n + d.count, 0), oldestAt: minOrNull(dead.map((d) => d.oldestAt)) };
    const rates = this.meter.rates();
    return {
      site: this.src.site,
      agent: this.src.agent,
      version: this.src.version,
      running: true,
      boot: this.src.boot,
      pid: process.pid,
      startedAt: this.src.startedAt,
      at: Date.now(),
      epoch: outbox.epoch,
      outboxPath: outbox.path,
      collectors,
      streams,
      outbox: {
        bytes: usage.bytes,
        events: usage.events,
        maxBytes: outbox.maxBytes,
        maxEvents: outbox.maxEvents,
        capPolicy: outbox.policy,
        full: usage.full,
        dropped: usage.dropped,
        waitingAppends: outbox.waitingAppends,
        diskFull: outbox.diskFullState(),
      },
      deadLetters,
      forwarder: { ...this.src.forwarder(), captureRate: rates.capture, forwardRate: rates.forward },
      exceptions: exceptionsOf(collectors, deadLetters),
      disk: this.src.disk.read(),
    };
  }

  /** The wire v2 health message. */
  health(): Health {
    const s = this.snapshot();
    const now = Date.now();
    const cpu = cpuUsage(this.lastCpu.usage);
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / Math.max(1, now - this.lastCpu.at)) * 100;
    this.lastCpu = { at: now, usage: cpuUsage() };
    return {
      v: WIRE_V2,
      boot: this.src.boot,
      at: s.at,
      uptime_s: (s.at - this.src.startedAt) / 1000,
      streams: s.streams.map((st) => ({
        stream: st.stream,
        epoch: st.epoch,
        pending: st.pending,
        pending_bytes: st.pendingBytes,
        oldest_pending_at: st.oldestPendingAt,
        oldest_pending_age_s: st.oldestPendingAt === null ? null : ageSeconds(s.at, st.oldestPendingAt),
        last_seq: st.lastSeq,
        acked_seq: st.ackedSeq,
        last_ack_at: st.lastAckAt,
        dropped: st.dropped,
        dead_letter: st.deadLetters,
      })),
      collectors: s.collectors.map((c) => ({
        name: c.name,
        type: c.type,
        stream: c.stream,
        state: c.state,
        since: c.since,
        failing_since: c.failingSince,
        last_error: c.lastError
          ? { message: c.lastError.message, ...(c.lastError.code ? { code: c.lastError.code } : {}), at: c.lastError.at, age_s: ageSeconds(s.at, c.lastError.at) }
          : null,
        error_count: c.errorCount,
        restarts: c.restarts,
        records: c.writer.records,
        ...errorFilesOf(c),
      })),
      exceptions: s.exceptions,
      outbox: s.outbox
        ? {
            bytes: s.outbox.bytes,
            events: s.outbox.events,
            max_bytes: Number.isFinite(s.outbox.maxBytes) ? s.outbox.maxBytes : null,
            max_events: Number.isFinite(s.outbox.maxEvents) ? s.outbox.maxEvents : null,
            full: s.outbox.full,
            dropped: s.outbox.dropped,
            ...(s.disk ? { file_bytes: s.disk.outboxFileBytes } : {}),
            ...(s.outbox.diskFull ? { disk_full: true } : {}),
          }
        : undefined,
      forwarder: s.forwarder
        ? {
            connected: s.forwarder.connected,
            wire: s.forwarder.wire,
            in_flight: s.forwarder.inFlight,
            last_ack_at: s.forwarder.lastAckAt,
            last_ack_age_s: s.forwarder.lastAckAt === null ? null : ageSeconds(s.at, s.forwarder.lastAckAt),
            connected_changed_at: s.forwarder.connectedChangedAt,
            ...(s.forwarder.clockOffsetMs !== null && s.forwarder.clockOffsetMs !== undefined ? { clock_offset_ms: s.forwarder.clockOffsetMs } : {}),
            capture_rate: Math.max(0, s.forwarder.captureRate),
            forward_rate: Math.max(0, s.forwarder.forwardRate),
          }
        : undefined,
      process: { rss_bytes: memoryUsage.rss(), cpu_percent: cpuPercent, heap_used_bytes: memoryUsage().heapUsed },
      ...(s.disk ? { disk: { free_bytes: s.disk.freeBytes, total_bytes: s.disk.totalBytes } } : {}),
    };
  }
}

/** Every stream the outbox has, plus those the config names that have no record yet. */
export function mergeStreams(fromOutbox: StreamStatus[], configured: { stream: string; collector: string }[], epoch: string): StreamSnapshot[] {
  const byStream = new Map<string, StreamSnapshot>();
  for (const s of fromOutbox) {
    byStream.set(s.stream, {
      stream: s.stream,
      epoch: s.epoch,
      collectors: [],
      pending: s.pending,
      pendingBytes: s.pendingBytes,
      oldestPendingAt: s.oldestPendingTs,
      lastSeq: s.lastSeq,
      ackedSeq: s.ackedSeq,
      lastAckAt: s.lastAckAt,
      dropped: s.dropped,
      deadLetters: s.deadLetters,
    });
  }
  for (const c of configured) {
    const s =
      byStream.get(c.stream) ??
      ({ stream: c.stream, epoch, collectors: [], pending: 0, pendingBytes: 0, oldestPendingAt: null, lastSeq: 0, ackedSeq: 0, lastAckAt: null, dropped: 0, deadLetters: 0 } satisfies StreamSnapshot);
    s.collectors.push(c.collector);
    byStream.set(c.stream, s);
  }
  return [...byStream.values()].sort((a, b) => a.stream.localeCompare(b.stream));
}

/** Open exceptions by kind, each with its count and the time of the oldest (exception aging). */
export function exceptionsOf(collectors: CollectorStatus[], deadLetters: { count: number; oldestAt: number | null }): ExceptionCount[] {
  const byKind = new Map<string, ExceptionCount>();
  const add = (kind: string, count: number, oldestAt: number | null) => {
    const e = byKind.get(kind) ?? { kind, count: 0, oldest_at: null };
    e.count += count;
    if (count > 0 && oldestAt !== null) e.oldest_at = e.oldest_at === null ? oldestAt : Math.min(e.oldest_at, oldestAt);
    byKind.set(kind, e);
  };
  add(EXCEPTION_KINDS.deadLetter, deadLetters.count, deadLetters.oldestAt);
  const failing = collectors.filter((c) => c.state === 'error' || c.state === 'backing-off');
  add(EXCEPTION_KINDS.collectorError, failing.length, minOrNull(failing.map((c) => c.since)));
  for (const c of collectors) for (const e of c.exceptions) add(e.kind, e.count, e.oldest_at);
  return [...byKind.values()];
}

/** Ages on the agent's own clock: the relay need not trust the two clocks to agree. */
function ageSeconds(now: number, at: number): number {
  return Math.max(0, (now - at) / 1000);
}

/** Files waiting in a file-drop collector's error/ folder (its file_error exceptions; counted by the collector, not here). */
function errorFilesOf(c: CollectorStatus): { error_files?: number } {
  const e = c.exceptions.find((x) => x.kind === EXCEPTION_KINDS.fileError);
  return e ? { error_files: e.count } : {};
}

function minOrNull(values: number[]): number | null {
  return values.length === 0 ? null : Math.min(...values);
}
