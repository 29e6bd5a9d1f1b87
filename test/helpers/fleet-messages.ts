/** Presence and health messages (wire v2) as agents send them, for the relay's fleet tests. */

export function birthMsg(boot: string, at: number, over: Record<string, unknown> = {}) {
  return {
    v: 2,
    online: true,
    boot,
    at,
    agent_version: '0.4.0',
    wire: [1, 2],
    epoch: 'epoch-aaaaaaaa',
    config_hash: 'cfg-1234',
    collectors: [{ name: 'orders', type: 'file-drop', stream: 'orders' }],
    started_at: at - 1_000,
    ...over,
  };
}

export const willMsg = (boot: string, at: number) => ({ v: 2, online: false, boot, at });

export interface StreamSpec {
  stream: string;
  pending: number;
  /** Age of the oldest pending event at `at`, ms; null when none. */
  oldestAgeMs: number | null;
}

export interface CollectorSpec {
  name: string;
  state: string;
  errors?: number;
}

export function healthMsg(boot: string, at: number, streams: StreamSpec[], o: { collectors?: CollectorSpec[]; rss?: number; rates?: [number, number] } = {}) {
  return {
    v: 2,
    boot,
    at,
    uptime_s: 60,
    streams: streams.map((s) => ({
      stream: s.stream,
      pending: s.pending,
      pending_bytes: s.pending * 250,
      oldest_pending_at: s.oldestAgeMs === null ? null : at - s.oldestAgeMs,
      last_seq: 1_000,
      acked_seq: 1_000 - s.pending,
      last_ack_at: at - 100,
      dropped: 0,
      dead_letter: 0,
    })),
    collectors: (o.collectors ?? [{ name: 'orders', state: 'running' }]).map((c) => ({
      name: c.name,
      type: 'file-drop',
      stream: c.name,
      state: c.state,
      last_error: c.state === 'error' ? { message: 'inbox not readable', code: 'EACCES', at: at - 5_000 } : null,
      error_count: c.errors ?? 0,
    })),
    exceptions: [{ kind: 'file_error', count: 2, oldest_at: at - 60_000 }],
    outbox: { bytes: 4096, events: 10, max_bytes: null, max_events: null, full: false },
    forwarder: { connected: true, wire: 2, in_flight: 0, last_ack_at: at - 100, capture_rate: o.rates?.[0] ?? 12.5, forward_rate: o.rates?.[1] ?? 11 },
    process: { rss_bytes: o.rss ?? 80_000_000, cpu_percent: 1.5 },
    disk: { free_bytes: 7_000_000_000, total_bytes: 20_000_000_000 },
  };
}
