import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger.js';
import { describeError, fail, loadOrExit, runService } from '../common/cli.js';
import { loadAgentConfig, outboxOptions, type LoadedAgentConfig } from './config.js';
import { existsSync } from 'node:fs';
import { Outbox, readDeadLetters } from './outbox/outbox.js';
import type { DeadLetter, DeadLetterQuery } from './outbox/dead-letter.js';
import { discardDeadLetters, resendDeadLetters, type ResendResult } from './host/dead-letter-actions.js';
import { controlRequest, controlSocketPath } from './state/control.js';
import { offlineSnapshot } from './state/offline.js';
import type { AgentSnapshot } from './state/agent-state.js';
import { formatDeadLetters, formatStatus } from './status.js';
import { Agent } from './agent.js';

const USAGE = `usage: edge-agent <command> --config FILE [options]
  run                     start the agent (collectors, outbox, forwarder)
  validate                check the config file; prints OK or the file:line:col and key at fault
  status [--json]         collectors (state, last error), streams (backlog, last ack, dead letters),
                          exceptions; from the running agent, else from the outbox file
  deadletter list    [--stream S] [--limit N] [--json]
  deadletter resend  (--all | --stream S | --id N ...)   append them again as new records
  deadletter discard (--all | --stream S | --id N ...)   delete them for good (logged)`;

let parsed;
try {
  parsed = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      json: { type: 'boolean' },
      stream: { type: 'string' },
      id: { type: 'string', multiple: true },
      all: { type: 'boolean' },
      limit: { type: 'string' },
    },
  });
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2);
}
const { values, positionals } = parsed;
const [command, sub] = positionals;
if (values.help || !command) fail(USAGE, command ? 0 : 2);
if (!['run', 'validate', 'status', 'deadletter'].includes(command)) fail(`unknown command "${command}"\n${USAGE}`, 2);
if (!values.config) fail(`--config FILE is required\n${USAGE}`, 2);
const cfg = loadOrExit(() => loadAgentConfig(values.config!));

try {
  if (command === 'validate') {
    process.stdout.write(`OK ${values.config}: site ${cfg.site}, agent ${cfg.agent}, ${cfg.collectors.length} collector(s)\n`);
  } else if (command === 'status') {
    const live = await controlRequest<AgentSnapshot>(controlSocketPath(cfg.data_dir), 'GET', '/status');
    const snapshot = live ?? offlineSnapshot(cfg);
    process.stdout.write(values.json ? `${JSON.stringify(snapshot, null, 2)}\n` : formatStatus(snapshot, Date.now()));
  } else if (command === 'deadletter') {
    await deadletter(cfg, sub);
  } else {
    const logger = createLogger({ level: cfg.log_level, name: 'edge-agent' });
    await runService(logger, 'agent', () => Agent.start(cfg, logger));
  }
} catch (err) {
  fail(describeError(err));
}

async function deadletter(cfg: LoadedAgentConfig, action: string | undefined): Promise<void> {
  const socket = controlSocketPath(cfg.data_dir);
  if (action === 'list') {
    const qs = new URLSearchParams({ ...(values.stream ? { stream: values.stream } : {}), limit: values.limit ?? '1000' });
    const offline = () =>
      existsSync(cfg.outboxPath) ? readDeadLetters(cfg.outboxPath, { ...(values.stream ? { stream: values.stream } : {}), limit: Number(values.limit ?? 1000) }) : [];
    const rows = (await controlRequest<DeadLetter[]>(socket, 'GET', `/deadletters?${qs}`)) ?? offline();
    process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : formatDeadLetters(rows, Date.now()));
    return;
  }
  if (action !== 'resend' && action !== 'discard') fail(`deadletter needs list, resend or discard\n${USAGE}`, 2);
  const ids = values.id?.map(Number);
  if (ids?.some((n) => !Number.isInteger(n))) fail('--id takes the numeric ids that `deadletter list` shows', 2);
  if (!values.all && !values.stream && !ids) fail(`deadletter ${action} acts on --all, --stream S or --id N: say which`, 2);
  const q: DeadLetterQuery = { ...(values.stream ? { stream: values.stream } : {}), ...(ids ? { ids } : {}) };
  const logger = createLogger({ level: 'warn', name: 'edge-agent' });
  if (action === 'resend') {
    const r =
      (await controlRequest<ResendResult>(socket, 'POST', '/deadletters/resend', q)) ??
      withOutbox(cfg, (o) => resendDeadLetters(o, q, cfg.outbox.max_record_bytes, logger));
    process.stdout.write(`resent ${r.resent} record(s)${Object.keys(r.streams).length ? ` (${Object.entries(r.streams).map(([s, n]) => `${s}: ${n}`).join(', ')})` : ''}\n`);
    for (const x of r.refused) process.stdout.write(`not resent: dead letter ${x.id}: ${x.reason}\n`);
  } else {
    const r = (await controlRequest<{ discarded: number }>(socket, 'POST', '/deadletters/discard', q)) ?? { discarded: withOutbox(cfg, (o) => discardDeadLetters(o, q, logger)).length };
    process.stdout.write(`discarded ${r.discarded} record(s)\n`);
  }
}

/** The agent is not running: act on the outbox file directly (it is the only writer then). */
function withOutbox<T>(cfg: LoadedAgentConfig, fn: (o: Outbox) => T): T {
  const outbox = new Outbox(outboxOptions(cfg.outboxPath, cfg.outbox));
  try {
    return fn(outbox);
  } finally {
    outbox.close();
  }
}
