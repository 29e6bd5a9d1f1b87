import { formatBytes } from '../common/format-bytes.js';
import type { DeadLetter } from './outbox/dead-letter.js';
import { EXCEPTION_KINDS } from '../common/wire-v2.js';
import type { AgentSnapshot } from './state/agent-state.js';

/**
 * `edge-agent status` as text: the agent, its forwarder, every configured collector (state, last
 * error), every stream (tab-separated, one line each: easy to grep and to paste) and the open
 * exceptions with their age.
 */
export function formatStatus(s: AgentSnapshot, now: number): string {
  const out: string[] = [];
  const head = s.running
    ? `running (pid ${s.pid}, boot ${s.boot}, up ${age(now - (s.startedAt ?? now))})`
    : 'not running (read from the outbox file)';
  out.push(`agent ${s.site}/${s.agent} ${head}; version ${s.version}; outbox epoch ${s.epoch}`);
  if (s.forwarder) {
    const f = s.forwarder;
    const lastAck = f.lastAckAt === null ? 'no ack yet' : `last ack ${age(now - f.lastAckAt)} ago`;
    out.push(
      `forwarder: ${f.connected ? 'connected' : 'NOT connected'}, wire v${f.wire}, in flight ${f.inFlight}, ${lastAck}, capture ${rate(f.captureRate)}/s, forward ${rate(f.forwardRate)}/s, dead-lettered ${f.deadLettered}, rebased ${f.rebases}, ignored acks ${f.ignoredAcks}`,
    );
    // Why it is not connected (a certificate, a login, the network), as the log says it.
    if (!f.connected && f.lastBrokerError) out.push(`  broker: ${f.lastBrokerError}`);
  }
  if (s.outbox) {
    const o = s.outbox;
    const waiting = o.waitingAppends > 0 ? `, ${o.waitingAppends} append(s) waiting for room` : '';
    out.push(`outbox: ${o.events} events, ${o.bytes} bytes of ${o.maxEvents} / ${o.maxBytes} (${o.capPolicy})${o.full ? ' FULL: collectors paused' : ''}${waiting}, dropped ${o.dropped}`);
    if (o.diskFull) out.push(`outbox DISK FULL since ${new Date(o.diskFull.since).toISOString()}: collectors paused until acked records are pruned or space is freed (${o.diskFull.message})`);
  }
  if (s.disk) out.push(`disk: ${formatBytes(s.disk.freeBytes, 1000)} free of ${formatBytes(s.disk.totalBytes, 1000)} on the data folder's file system; outbox files ${formatBytes(s.disk.outboxFileBytes, 1000)}`);
  out.push('', 'collectors', 'name\ttype\tstream\tstate\tsince\terrors\trestarts\terror_files\tlast_error');
  for (const c of s.collectors) {
    const err = c.lastError ? `${c.lastError.code ? `${c.lastError.code}: ` : ''}${c.lastError.message} (${age(now - c.lastError.at)} ago)` : '-';
    const state = c.state === 'backing-off' && c.retryAt ? `backing-off (retry in ${age(Math.max(0, c.retryAt - now))})` : c.state;
    // A failing collector cycles backing-off → starting: the streak's start says since when it has been failing.
    const since = c.failingSince !== null && c.failingSince !== undefined ? `failing for ${age(now - c.failingSince)}` : `${age(now - c.since)} ago`;
    const errorFiles = c.exceptions.find((e) => e.kind === EXCEPTION_KINDS.fileError)?.count ?? '-';
    out.push([c.name, c.type, c.stream, state, since, c.errorCount, c.restarts, errorFiles, err].join('\t'));
  }
  // What each collector counts (a schedule job's last run: outcome, rows, duration, error, next run; a
  // sql table's polls and errors): one line per figure, so a long list stays greppable by name.
  const figures = s.collectors.filter((c) => Object.keys(c.counters).length > 0);
  if (figures.length > 0) {
    out.push('', 'collector figures', 'collector\tfigure\tvalue');
    for (const c of figures) for (const [k, v] of Object.entries(c.counters)) out.push([c.name, k, v === '' ? '-' : String(v).replace(/\s+/g, ' ')].join('\t'));
  }
  out.push('', 'streams', 'stream\tpending\tpending_bytes\toldest_pending_age_s\tlast_seq\tacked_seq\tlast_ack\tdropped\tdead_letter\tepoch');
  for (const r of s.streams) {
    const oldest = r.oldestPendingAt === null ? '-' : ((now - r.oldestPendingAt) / 1000).toFixed(1);
    const lastAck = r.lastAckAt === null ? 'never' : new Date(r.lastAckAt).toISOString();
    out.push([r.stream, r.pending, r.pendingBytes, oldest, r.lastSeq, r.ackedSeq, lastAck, r.dropped, r.deadLetters, r.epoch].join('\t'));
  }
  if (s.streams.length === 0) out.push('(no streams yet)');
  out.push('', 'exceptions', 'kind\tcount\toldest_age');
  for (const e of s.exceptions) out.push([e.kind, e.count, e.count > 0 && e.oldest_at !== null ? age(now - e.oldest_at) : '-'].join('\t'));
  if (s.deadLetters.count > 0) out.push('', `${s.deadLetters.count} dead-lettered record(s): edge-agent deadletter list --config <file>`);
  return `${out.join('\n')}\n`;
}

export function formatDeadLetters(rows: DeadLetter[], now: number): string {
  const out = ['id\tstream\tseq\torigin\trecord_id\tage\tbytes\treason'];
  for (const d of rows) out.push([d.id, d.stream, d.seq ?? '-', d.origin, d.recordId ?? '-', age(now - d.at), d.bytes, d.reason].join('\t'));
  if (rows.length === 0) out.push('(no dead-lettered records)');
  return `${out.join('\n')}\n`;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7_200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3_600)}h`;
  return `${Math.round(s / 86_400)}d`;
}


function rate(v: number): string {
  return v >= 100 ? String(Math.round(v)) : v.toFixed(1);
}
