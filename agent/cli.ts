import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger.js';
import { loadTls } from '../common/tls.js';
import { scrubProcessOutput, secretValues } from '../common/secrets.js';
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
import { AGENT_VERSION } from './version.js';
import { answerProblem, defaultAgentId, writeStarterConfig } from './init.js';
import { createInterface } from 'node:readline';
import { installerArgs, runServiceInstaller } from './service-install.js';
import { serviceWriteWarnings } from './service-paths.js';
import { outboxRepair, outboxResend, outboxVerify } from './outbox-tools.js';
import { exitCode, formatResult, recordingEnv, redactor, summary, type CheckResult } from './collectors/sql/check.js';
import { testCollector } from './collectors/sql/sql-test.js';
import type { SqlConfig } from './collectors/sql/schema.js';

const USAGE = `usage: edge-agent <command> --config FILE [options]
  init [--site S] [--agent A] [--broker URL] [--data-dir DIR] [--inbox DIR] [--force]
                          write a commented starter config (default ./agent.yaml); asks on a
                          terminal for what is not given; never replaces a file without --force
  install-service [--site S --agent A --broker URL] [--rw-path DIR]... [--no-start]
                          (packaged executable, as root / Administrator) install or upgrade the
                          service: runs install.sh (systemd) or install.cmd (Windows, nssm; no
                          --rw-path) beside the executable (README "Install at a site")
  uninstall-service [--purge]   remove it; keeps config and outbox unless --purge
  run                     start the agent (collectors, outbox, forwarder)
  validate                check the config file; prints OK or the file:line:col and key at fault
  status [--json]         collectors (state, last error), streams (backlog, last ack, dead letters),
                          exceptions; from the running agent, else from the outbox file
  deadletter list    [--stream S] [--limit N] [--json]
  deadletter resend  (--all | --stream S | --id N ...)   append them again as new records
  deadletter discard (--all | --stream S | --id N ...)   delete them for good (logged)
  outbox verify [--json]  integrity check, seq contiguity per stream, checkpoints, dead letters; exit 1 on a problem
  outbox repair [--json]  (agent stopped) move unreadable records to the dead-letter table with the reason
  outbox resend --stream S --from SEQ   append retained (acked, not yet pruned) records again; the relay
                          recognises those it holds by id
  sql test [--collector NAME]   connect as each sql collector (or NAME) and check its tables: exists,
                          SELECT granted, key unique, version column type and index; for logical:
                          wal_level, free slots, REPLICATION, publication, replica identity, slot
                          state and lag; prints ok/warn/FAIL
                          with the statement that fixes each; exit 1 on any FAIL
  --version               print the version (and the Node.js it runs on)`;

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
      collector: { type: 'string' },
      version: { type: 'boolean', short: 'V' },
      site: { type: 'string' },
      agent: { type: 'string' },
      broker: { type: 'string' },
      'data-dir': { type: 'string' },
      inbox: { type: 'string' },
      force: { type: 'boolean' },
      root: { type: 'string' },
      'rw-path': { type: 'string', multiple: true },
      'no-start': { type: 'boolean' },
      purge: { type: 'boolean' },
      from: { type: 'string' },
    },
  });
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2);
}
const { values, positionals } = parsed;
const [command, sub] = positionals;
if (values.version) {
  process.stdout.write(`edge-agent ${AGENT_VERSION} (node ${process.version}, ${process.platform}-${process.arch})\n`);
  process.exit(0);
}
if (values.help || !command) fail(USAGE, command ? 0 : 2);
if (!['init', 'install-service', 'uninstall-service', 'run', 'validate', 'status', 'deadletter', 'sql', 'outbox'].includes(command)) fail(`unknown command "${command}"\n${USAGE}`, 2);
if (command === 'install-service' || command === 'uninstall-service') {
  try {
    process.exitCode = runServiceInstaller(command === 'install-service' ? 'install' : 'uninstall', installerArgs(values));
  } catch (err) {
    fail(describeError(err));
  }
} else if (command === 'init') {
  // No top-level await: the packaged executable runs this module as CommonJS.
  init().catch((err: unknown) => fail(describeError(err)));
} else {
  main().catch((err: unknown) => fail(describeError(err)));
}

async function main(): Promise<void> {
  if (!values.config) fail(`--config FILE is required\n${USAGE}`, 2);
  if (command === 'sql' && sub !== 'test') fail(`sql needs test\n${USAGE}`, 2);
  // `sql test` prints connection settings: it notes which came from ${VAR} so as to print the reference instead.
  const recorded = command === 'sql' ? recordingEnv(process.env) : undefined;
    const cfg = loadOrExit(() => loadAgentConfig(values.config!, recorded ? { env: recorded.env } : {}));
  // From here on nothing this command prints (status, validate, errors) can carry a secret of the config.
  const secrets = secretValues(cfg);
  scrubProcessOutput(secrets);

  try {
    if (command === 'validate') {
      // The certificate files too: missing, not PEM, key not matching, expired (common/tls.ts).
      const tls = cfg.transport.tls ? loadTls(cfg.transport.tls, 'transport.tls') : undefined;
      if (tls && tls.problems.length > 0) fail(tls.problems.map(describeError).join('\n'));
      const cert = tls?.cert ? `, client certificate ${tls.cert.subject} valid until ${tls.cert.validTo.toISOString()}` : '';
      process.stdout.write(`OK ${values.config}: site ${cfg.site}, agent ${cfg.agent}, ${cfg.collectors.length} collector(s)${cert}\n`);
      for (const w of serviceWriteWarnings(cfg)) process.stderr.write(`${w}\n`);
    } else if (command === 'status') {
      const live = await controlRequest<AgentSnapshot>(controlSocketPath(cfg.data_dir), 'GET', '/status');
      const snapshot = live ?? offlineSnapshot(cfg);
      process.stdout.write(values.json ? `${JSON.stringify(snapshot, null, 2)}\n` : formatStatus(snapshot, Date.now()));
    } else if (command === 'deadletter') {
      await deadletter(cfg, sub);
    } else if (command === 'sql') {
      process.exitCode = await sqlTest(cfg, recorded!.used);
    } else if (command === 'outbox') {
      process.exitCode = await outbox(cfg, sub);
    } else {
      const logger = createLogger({ level: cfg.log_level, name: 'edge-agent', secrets });
      await runService(logger, 'agent', () => Agent.start(cfg, logger));
    }
  } catch (err) {
    fail(describeError(err));
  }
}

/** `init`: the starter config from flags, asking on a terminal for what is missing. */
async function init(): Promise<void> {
  const path = values.config ?? 'agent.yaml';
  if (existsSync(path) && !values.force) fail(`${path} already exists; pass --force to replace it`);
  const given = { site: values.site, agent: values.agent ?? (process.stdin.isTTY ? undefined : defaultAgentId()), broker: values.broker };
  for (const key of ['site', 'agent', 'broker'] as const) {
    const v = given[key];
    const problem = v === undefined ? undefined : answerProblem(key, v);
    if (problem) fail(`--${key} ${JSON.stringify(v)}: ${problem}`, 2);
  }
  const missing = (['site', 'agent', 'broker'] as const).filter((k) => given[k] === undefined);
  if (missing.length > 0 && !process.stdin.isTTY) fail(`init needs ${missing.map((k) => `--${k}`).join(', ')} (or run it on a terminal to be asked)\n${USAGE}`, 2);
  if (missing.length > 0) {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    // Lines through the iterator, not rl.question(): it buffers answers typed (or pasted) ahead.
    const lines = rl[Symbol.asyncIterator]();
    const ask = async (prompt: string): Promise<string> => {
      rl.setPrompt(prompt);
      rl.prompt();
      const next = await lines.next();
      if (next.done) fail('\ninit: input ended before every answer was given', 2);
      return String(next.value);
    };
    const offers = { site: undefined, agent: defaultAgentId(), broker: 'mqtt://127.0.0.1:1883' };
    const labels = { site: 'Site (e.g. the warehouse code)', agent: 'Agent id (unique within the site)', broker: 'Broker URL' };
    try {
      for (const key of missing) {
        for (;;) {
          const offer = offers[key];
          const answer = (await ask(`${labels[key]}${offer ? ` [${offer}]` : ''}: `)).trim() || offer || '';
          const problem = answerProblem(key, answer);
          if (!problem) {
            given[key] = answer;
            break;
          }
          process.stdout.write(`  ${problem}\n`);
        }
      }
    } finally {
      rl.close();
    }
  }
  writeStarterConfig(
    path,
    { site: given.site!, agent: given.agent!, broker: given.broker!, dataDir: values['data-dir'] ?? './data', ...(values.inbox ? { inbox: values.inbox } : {}) },
    { force: values.force ?? false },
  );
  process.stdout.write(`wrote ${path}; check it with: edge-agent validate --config ${path}\n`);
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
  const logger = createLogger({ level: 'warn', name: 'edge-agent', secrets: secretValues(cfg) });
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

async function outbox(cfg: LoadedAgentConfig, action: string | undefined): Promise<number> {
  const out = { write: (t: string) => void process.stdout.write(t), isTTY: process.stdout.isTTY === true };
  const logger = createLogger({ level: 'warn', name: 'edge-agent', secrets: secretValues(cfg) });
  if (action !== 'verify' && action !== 'repair' && action !== 'resend') fail(`outbox needs verify, repair or resend\n${USAGE}`, 2);
  if (!existsSync(cfg.outboxPath)) fail(`no outbox at ${cfg.outboxPath}`, 2);
  if (action === 'verify') return outboxVerify(cfg, values.json === true, out);
  if (action === 'repair') return outboxRepair(cfg, values.json === true, out, logger);
  const from = Number(values.from);
  if (!values.stream || !Number.isInteger(from) || from < 1) fail('outbox resend needs --stream S and --from SEQ (a seq from 1)', 2);
  return outboxResend(cfg, values.stream, from, values.json === true, out, logger);
}

/** `sql test`: each sql collector's (or --collector's) database checked as it will be captured; 1 on any FAIL. */
async function sqlTest(cfg: LoadedAgentConfig, fromEnv: ReadonlyMap<string, string>): Promise<number> {
  const all = cfg.collectors.filter((c): c is SqlConfig => c.type === 'sql');
  const names = all.map((c) => c.name).join(', ');
  if (all.length === 0) fail(`no collector of type sql in ${values.config}`, 2);
  const chosen = values.collector ? all.filter((c) => c.name === values.collector) : all;
  if (chosen.length === 0) fail(`no sql collector named "${values.collector}" in ${values.config} (sql collectors: ${names})`, 2);
  const redact = redactor(fromEnv, all.map((c) => c.connection.password));
  const results: CheckResult[] = [];
  for (const c of chosen) {
    const r = await testCollector(c);
    for (const line of r) process.stdout.write(`${formatResult(line, redact)}\n`);
    results.push(...r);
  }
  process.stdout.write(`${summary(results)}\n`);
  return exitCode(results);
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
