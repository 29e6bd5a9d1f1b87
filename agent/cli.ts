import { existsSync } from 'node:fs';
import { createLogger } from '../common/logger.js';
import { fail, loadOrExit, parseCommand, runService } from '../common/cli.js';
import { loadAgentConfig } from './config.js';
import { readOutboxStatus } from './outbox/outbox.js';
import { formatStatus } from './status.js';
import { Agent } from './agent.js';

const USAGE = `usage: edge-agent <run|validate|status> --config FILE
  run       start the agent (collectors, outbox, forwarder)
  validate  check the config file; prints OK or the file:line:col and key at fault
  status    per-stream pending count, oldest pending age and last ack, from the outbox`;

const { command, config } = parseCommand(process.argv.slice(2), ['run', 'validate', 'status'], USAGE);
const cfg = loadOrExit(() => loadAgentConfig(config));
if (command === 'validate') {
  process.stdout.write(`OK ${config}: site ${cfg.site}, agent ${cfg.agent}, ${cfg.collectors.length} collector(s)\n`);
} else if (command === 'status') {
  if (!existsSync(cfg.outboxPath)) fail(`no outbox yet at ${cfg.outboxPath} (the agent has not run)`);
  process.stdout.write(formatStatus(readOutboxStatus(cfg.outboxPath), Date.now()));
} else {
  const logger = createLogger({ level: cfg.log_level, name: 'edge-agent' });
  await runService(logger, 'agent', () => Agent.start(cfg, logger));
}
