import { createLogger } from '../common/logger.js';
import { describeError, fail, onShutdown, parseCommand } from '../common/cli.js';
import { loadRelayConfig } from './config.js';
import { Relay } from './relay.js';

const USAGE = `usage: cloud-relay <run|validate> --config FILE`;

const { command, config } = parseCommand(process.argv.slice(2), ['run', 'validate'], USAGE);
let cfg;
try {
  cfg = loadRelayConfig(config);
} catch (err) {
  fail(describeError(err));
}
if (command === 'validate') {
  process.stdout.write(`OK ${config}\n`);
} else {
  const logger = createLogger({ level: cfg.log_level, name: 'cloud-relay' });
  try {
    const relay = await Relay.start(cfg, logger);
    onShutdown(() => relay.stop());
  } catch (err) {
    logger.fatal({ err: { message: describeError(err) } }, 'relay failed to start');
    fail(describeError(err));
  }
}
