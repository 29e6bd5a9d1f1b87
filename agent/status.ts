import type { readOutboxStatus } from './outbox/outbox.js';

/** The `edge-agent status` table: one line per stream. */
export function formatStatus(s: ReturnType<typeof readOutboxStatus>, now: number): string {
  const lines = [`outbox epoch ${s.epoch}`, 'stream\tpending\tpending_bytes\toldest_pending_age_s\tlast_seq\tacked_seq\tlast_ack\tdropped'];
  for (const r of s.streams) {
    const age = r.oldestPendingTs === null ? '-' : ((now - r.oldestPendingTs) / 1000).toFixed(1);
    const lastAck = r.lastAckAt === null ? 'never' : new Date(r.lastAckAt).toISOString();
    lines.push([r.stream, r.pending, r.pendingBytes, age, r.lastSeq, r.ackedSeq, lastAck, r.dropped].join('\t'));
  }
  if (s.streams.length === 0) lines.push('(no streams yet)');
  return `${lines.join('\n')}\n`;
}
