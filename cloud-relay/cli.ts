import { createLogger } from '../common/logger.js';
import { loadOrExit, parseCommand, runService } from '../common/cli.js';
import { loadRelayConfig } from './config.js';
import { Relay } from './relay.js';

const USAGE = `usage: cloud-relay <run|validate> --config FILE`;

const { command, config } = parseCommand(process.argv.slice(2), ['run', 'validate'], USAGE);
const cfg = loadOrExit(() => loadRelayConfig(config));
if (command === 'validate') {
  process.stdout.write(`OK ${config}\n`);
} else {
  const logger = createLogger({ level: cfg.log_level, name: 'cloud-relay' });
  await runService(logger, 'relay', () => Relay.start(cfg, logger));
}
