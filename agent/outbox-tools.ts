import { Outbox, type RepairReport, type ResendProgress } from './outbox/outbox.js';
import { formatVerify, verifyOutbox, type VerifyReport } from './outbox/verify.js';
import { outboxOptions, type LoadedAgentConfig } from './config.js';
import { controlRequest, controlSocketPath } from './state/control.js';
import { ErpEdgeError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/**
 * `edge-agent outbox verify | repair | resend`: the operator's tools on the outbox file. verify
 * reads (the agent may run); repair writes and needs the agent stopped; resend goes through the
 * running agent when there is one (so its forwarder sends at once), else opens the file.
 */
export interface Out {
  write(text: string): void;
  isTTY: boolean;
}

export function outboxVerify(cfg: LoadedAgentConfig, json: boolean, out: Out): number {
  const report: VerifyReport = verifyOutbox(cfg.outboxPath, { collectors: cfg.collectors.map((c) => c.name) });
  out.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatVerify(report));
  return report.ok ? 0 : 1;
}

export async function outboxRepair(cfg: LoadedAgentConfig, json: boolean, out: Out, logger: Logger): Promise<number> {
  await refuseIfRunning(cfg, 'repair');
  const outbox = new Outbox(outboxOptions(cfg.outboxPath, cfg.outbox, logger));
  let report: RepairReport;
  try {
    report = outbox.repair();
  } finally {
    outbox.close();
  }
  const after = verifyOutbox(cfg.outboxPath, { collectors: cfg.collectors.map((c) => c.name) });
  if (json) {
    out.write(`${JSON.stringify({ ...report, verify: after }, null, 2)}\n`);
  } else {
    const lines: string[] = [];
    const n = report.quarantined.reduce((k, q) => k + q.to - q.from + 1, 0);
    lines.push(n === 0 ? 'no unreadable records' : `${n} record(s) moved to the dead-letter table (edge-agent deadletter list):`);
    for (const q of report.quarantined.slice(0, 50)) lines.push(`  ${q.stream} seq ${q.from}${q.to > q.from ? `..${q.to}` : ''}: ${q.reason}`);
    if (report.quarantined.length > 50) lines.push(`  … and ${report.quarantined.length - 50} more`);
    for (const c of report.checkpointsRemoved) lines.push(`checkpoint removed (not JSON): ${c.collector} / ${c.key}: the collector starts over there`);
    for (const s of report.streamsFixed) lines.push(`stream ${s.stream}: next seq raised from ${s.was} to ${s.nextSeq} (above its highest stored record)`);
    lines.push(after.ok ? 'outbox verify after repair: ok' : 'outbox verify after repair: still FAILING (see edge-agent outbox verify)');
    out.write(`${lines.join('\n')}\n`);
  }
  return after.ok ? 0 : 1;
}

export async function outboxResend(cfg: LoadedAgentConfig, stream: string, from: number, json: boolean, out: Out, logger: Logger): Promise<number> {
  const live = await controlRequest<ResendProgress>(controlSocketPath(cfg.data_dir), 'POST', '/outbox/resend', { stream, from });
  let result: ResendProgress;
  if (live) {
    result = live;
  } else {
    const outbox = new Outbox(outboxOptions(cfg.outboxPath, cfg.outbox, logger));
    const bar = progress(out, json);
    try {
      result = outbox.resendRetained(stream, from, bar.update);
    } finally {
      bar.end();
      outbox.close();
    }
  }
  if (json) out.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    out.write(`resent ${result.resent} retained record(s) of ${stream} (seqs up to ${result.upto}) as new records${live ? ' (by the running agent)' : ''}\n`);
    if (result.notRetained) out.write(`not resent: seqs ${result.notRetained.from}..${result.notRetained.to} were pruned after the replay window\n`);
    if (result.total === 0 && !result.notRetained) out.write(`nothing acked from seq ${from} on (pending records are sent anyway)\n`);
  }
  return 0;
}

/** A bar redrawn in place on a terminal; elsewhere one line per `every` records. */
export function progress(out: Out, quiet: boolean, every = 10_000): { update: (p: ResendProgress) => void; end: () => void } {
  let lastLine = 0;
  let drawn = false;
  return {
    update(p) {
      if (quiet || p.total === 0) return;
      if (out.isTTY) {
        const width = 30;
        const done = Math.round((p.resent / p.total) * width);
        out.write(`\r[${'#'.repeat(done)}${' '.repeat(width - done)}] ${p.resent}/${p.total} ${Math.floor((p.resent / p.total) * 100)}%`);
        drawn = true;
      } else if (p.resent - lastLine >= every || p.resent === p.total) {
        lastLine = p.resent;
        out.write(`resent ${p.resent}/${p.total}\n`);
      }
    },
    end() {
      if (drawn) out.write('\n');
    },
  };
}

async function refuseIfRunning(cfg: LoadedAgentConfig, what: string): Promise<void> {
  const live = await controlRequest<unknown>(controlSocketPath(cfg.data_dir), 'GET', '/status');
  if (live) {
    throw new ErpEdgeError('ERP_AGENT_RUNNING', `the agent is running on ${cfg.outboxPath}: stop it before outbox ${what} (it must be the only writer)`, { path: cfg.outboxPath });
  }
}
